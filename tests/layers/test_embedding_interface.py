"""Every embedding table comes from ``seqrec.layers.embedding.make_table``: the one interface a
sharded implementation (a TorchRec collection, docs/scale.md) replaces."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import seqrec
from seqrec.layers.embedding import FeatureEmbedding, make_table
from seqrec.schema import Feature, Schema, Table

SRC = Path(seqrec.__file__).parent


def test_no_module_builds_an_embedding_table_itself():
    direct = re.compile(r"\bnn\.Embedding(Bag)?\(")
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py") if p.name != "embedding.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if direct.search(line) and "``" not in line]  # (docs quote it)
    assert offenders == [], f"build tables with seqrec.layers.embedding.make_table: {offenders}"


def test_make_table_is_torch_s_embedding_with_the_same_init_stream():
    torch.manual_seed(3)
    a = make_table(7, 4, padding_idx=0, sparse=True)
    torch.manual_seed(3)
    b = torch.nn.Embedding(7, 4, padding_idx=0, sparse=True)
    assert torch.equal(a.weight, b.weight) and a.sparse and a.padding_idx == 0


def test_feature_embedding_tables_follow_the_sparse_switch():
    schema = Schema(tables=(Table("item", 10, 3),), features=(Feature("item", "sparse", "item"),))
    emb = FeatureEmbedding(schema, sparse=True)
    out = emb.lookup({"item": torch.tensor([1, 2, 2])}, "item")
    out.sum().backward()
    g = emb.tables["item"].weight.grad
    assert g.is_sparse and sorted(g.coalesce().indices()[0].tolist()) == [1, 2]
