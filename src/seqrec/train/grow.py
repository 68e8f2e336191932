"""Growing a trained model's embedding tables for new ids (daily incremental updates).

A daily update starts from the previous checkpoint while the vocabularies have grown: new items,
categories and users appear, and :meth:`seqrec.data.vocab.Vocab.fit` appends them after the known
ones (existing indices never change). The tables then need one row per new id:

* old rows are kept **bit for bit** (the model scores every known id exactly as before);
* new rows are drawn fresh, ~ N(0, ``init_std``) (the model's own embedding init), from a seeded
  generator;
* the optimiser's per-row state (Adam / SparseAdam moments, Adagrad sums, SGD momentum) is
  extended with zero rows, so the update continues the old run's state for the old rows. Adam's
  step count is global, so a new row's first updates are bias-corrected as late steps (smaller
  than a fresh optimiser's first steps) — the usual behaviour of appended rows.

The tensor is replaced inside the same ``nn.Parameter`` object, so every optimiser that holds the
parameter keeps working. Tests: ``tests/train/test_grow.py``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from seqrec.schema import Schema, Table


@torch.no_grad()
def grow_embedding(emb: nn.Embedding, rows: int, *, init_std: float, optimizers=(),
                   generator: torch.Generator | None = None) -> int:
    """Grow ``emb`` to ``rows`` rows (a no-op when it has as many); returns how many were added."""
    old = emb.weight.data
    n_old = old.shape[0]
    if rows < n_old:
        raise ValueError(f"an embedding table cannot shrink: {n_old} -> {rows} rows")
    if rows == n_old:
        return 0
    new = old.new_empty(rows, old.shape[1])
    new[:n_old] = old
    new[n_old:].normal_(0.0, init_std, generator=generator)
    emb.weight.data = new
    emb.num_embeddings = rows
    if emb.weight.grad is not None:
        emb.weight.grad = None
    for opt in optimizers:
        for o in getattr(opt, "opts", [opt]):  # seqrec's optimiser bundles hold several
            state = o.state.get(emb.weight)
            if not state:
                continue
            for k, v in list(state.items()):
                if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == n_old:
                    pad = v.new_zeros(rows - n_old, *v.shape[1:])
                    state[k] = torch.cat([v, pad])
    return rows - n_old


def schema_with_rows(schema: Schema, rows: dict[str, int]) -> Schema:
    """The schema with the named tables at their new row counts."""
    unknown = set(rows) - {t.name for t in schema.tables}
    if unknown:
        raise ValueError(f"no table(s) {sorted(unknown)} in the schema")
    tables = tuple(Table(t.name, rows.get(t.name, t.rows), t.dim) for t in schema.tables)
    return dataclasses.replace(schema, tables=tables)


def grow_ctr_model(model: nn.Module, rows: dict[str, int], *, optimizers=(), seed: int = 0) -> dict[str, int]:
    """Grow a schema-built CTR model's tables (``model.inp.emb``) and its per-item logit bias to
    ``rows`` (table -> rows); the model's schema follows. Returns rows added per table."""
    g = torch.Generator().manual_seed(seed)
    inp = model.inp
    std = float(getattr(model.config, "init_std", 1e-2))
    added = {}
    for name, n in rows.items():
        added[name] = grow_embedding(inp.emb.tables[name], n, init_std=std, optimizers=optimizers, generator=g)
    bias = getattr(model, "item_bias", None)
    if bias is not None:
        table = inp.schema.feature(bias.name).table
        if table in rows:
            with torch.no_grad():
                before = bias.b.weight.shape[0]
                grow_embedding(bias.b, rows[table], init_std=std, optimizers=optimizers, generator=g)
                bias.b.weight[before:].zero_()  # a new item's bias starts at 0, as every bias did
    inp.schema = schema_with_rows(inp.schema, rows)
    inp.emb.schema = inp.schema
    if inp.emb.inv_counts:  # the mini-batch aware L2's counts: new rows are not penalised until refitted
        for name, n in rows.items():
            c = inp.emb.inv_counts.get(name)
            if c is not None and len(c) < n:
                inp.emb.inv_counts[name] = torch.cat([c, c.new_zeros(n - len(c))])
    return added
