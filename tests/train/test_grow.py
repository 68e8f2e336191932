"""Vocabulary growth for daily updates, on a DIN trained on real Amazon Beauty samples: old rows
keep their values bit for bit, new ids get fresh rows, the optimiser state grows with them, and
known ids score exactly as before."""

from __future__ import annotations

import pytest
import torch

from seqrec.config import load_run_config
from seqrec.data.samples import SampleBatch, sample_batches
from seqrec.families.ctr import build_ctr_model, load_ctr_task
from seqrec.train.ctr_trainer import CTRTrainer
from seqrec.train.grow import grow_ctr_model, grow_embedding, schema_with_rows


@pytest.fixture(scope="module")
def beauty(data_root):
    return load_ctr_task("amazon_beauty", str(data_root))


def _trained(beauty):
    cfg = load_run_config("configs/din_amazon_beauty.toml", ["train.progress=false"])
    torch.manual_seed(0)
    model = build_ctr_model(cfg, beauty.schema)
    trainer = CTRTrainer(model, cfg, beauty.train)
    model.train()
    for i, b in enumerate(sample_batches(beauty.train, 256, shuffle=True, seed=0)):
        loss = trainer.loss(b)
        trainer.opt.zero_grad()
        loss.backward()
        trainer.opt.step()
        if i == 5:
            break
    return model, trainer


def test_growth_keeps_old_rows_and_scores_adds_fresh_rows_and_extends_the_optimiser(beauty):
    model, trainer = _trained(beauty)
    batch = next(sample_batches(beauty.valid, 512))
    model.eval()
    with torch.no_grad():
        before = model(batch).logits.clone()
    items = model.inp.emb.tables["item"]
    old_items = items.weight.detach().clone()
    old_bias = model.item_bias.b.weight.detach().clone()
    n_item, n_cate = items.weight.shape[0], model.inp.emb.tables["cate"].weight.shape[0]
    state = {id(p): {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
             for o in trainer.opt.opts for p, s in o.state.items()}
    param = items.weight
    added = grow_ctr_model(model, {"item": n_item + 300, "cate": n_cate + 7}, optimizers=[trainer.opt], seed=1)
    assert added == {"item": 300, "cate": 7}
    assert items.weight is param  # the same Parameter: optimisers keep working
    assert torch.equal(items.weight[:n_item], old_items)  # bit for bit
    assert torch.equal(model.item_bias.b.weight[:n_item], old_bias)
    new = items.weight[n_item:].detach().clone()
    assert new.abs().sum() > 0 and abs(new.std().item() - model.config.init_std) < 0.2 * model.config.init_std
    assert torch.equal(model.item_bias.b.weight[n_item:], torch.zeros(300, 1))
    assert model.inp.schema.table("item").rows == n_item + 300
    with torch.no_grad():
        assert torch.equal(model(batch).logits, before)  # known ids score exactly as before
    for o in trainer.opt.opts:  # the optimiser state: old rows unchanged, new rows zero
        for p, s in o.state.items():
            for k, v in s.items():
                if torch.is_tensor(v) and v.dim() >= 1 and p is param:
                    assert v.shape[0] == n_item + 300
                    assert torch.equal(v[:n_item], state[id(p)][k]) and not v[n_item:].any()
    # one more step with new ids in the batch: their rows train, the step runs
    model.train()
    b = next(sample_batches(beauty.train, 256, shuffle=True, seed=3))
    cols = {k: v.clone() for k, v in b.columns.items()}
    cols["item"][:10] = torch.arange(n_item, n_item + 10)
    cols["cate"][:10] = n_cate + 1
    loss = trainer.loss(SampleBatch(columns=cols, label=b.label, user=b.user))
    trainer.opt.zero_grad()
    loss.backward()
    trainer.opt.step()
    assert not torch.equal(items.weight[n_item:n_item + 10], new[:10])


def test_growing_never_shrinks_and_the_schema_follows(beauty):
    emb = torch.nn.Embedding(10, 4)
    with pytest.raises(ValueError, match="shrink"):
        grow_embedding(emb, 5, init_std=0.01)
    assert grow_embedding(emb, 10, init_std=0.01) == 0
    s = schema_with_rows(beauty.schema, {"item": 99999})
    assert s.table("item").rows == 99999 and s.table("cate") == beauty.schema.table("cate")
    with pytest.raises(ValueError, match="no table"):
        schema_with_rows(beauty.schema, {"nope": 3})
