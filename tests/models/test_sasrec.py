"""SASRec: causality, padding invariance, the training examples, and the losses on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqrec.config import load_run_config
from seqrec.data.tasks.retrieval import loo_task
from seqrec.models.retrieval_base import RetrievalInfo
from seqrec.models.sasrec import SASRec, SASRecCEConfig, SASRecConfig
from seqrec.train.objectives import objective_for
from seqrec.train.objectives.sasrec import SASRecObjective, SeenItems, sample_unseen

N_ITEMS = 9


def _model(**kw) -> SASRec:
    torch.manual_seed(0)
    cfg = SASRecConfig(dim=8, n_blocks=2, heads=2, dropout=0.0, init_std=0.5, **kw)
    return SASRec(cfg, RetrievalInfo(n_users=4, n_items=N_ITEMS, max_len=12)).eval()


def _task():
    rows = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8, 9]), np.array([2, 4, 6, 8]), np.array([9, 1, 3, 5, 7])]
    return loo_task("tiny", np.arange(4), rows)


def _cfg(name: str, max_len: int = 3, **model):
    return load_run_config(raw={"data": {"dataset": "tiny", "train_split": "train", "max_len": max_len},
                                "model": {"name": name, **model}, "train": {"batch_size": 2, "seed": 1}})


def test_a_later_item_never_changes_earlier_positions():
    m = _model()
    h = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    base = m.sequence_outputs(h)  # (1, 8, D)
    for t in range(h.shape[1]):
        h2 = h.clone()
        h2[0, t] = 7 if h[0, t] != 7 else 8
        out = m.sequence_outputs(h2)
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=0)
        assert not torch.allclose(out[:, t], base[:, t])


def test_left_padding_changes_neither_the_user_vector_nor_the_real_positions():
    m = _model()
    h = torch.tensor([[0, 0, 4, 2, 7], [5, 6, 1, 2, 3], [0, 0, 0, 0, 9]])
    u = m.user_vectors({"history": h})
    padded = torch.cat([torch.zeros(3, 7, dtype=torch.long), h], 1)  # width 12 = max_len
    torch.testing.assert_close(m.user_vectors({"history": padded}), u)
    torch.testing.assert_close(m.sequence_outputs(padded)[:, 7:], m.sequence_outputs(h))
    torch.testing.assert_close(m.sequence_outputs(h)[:, -1], u)  # grouped by length = one pass
    assert torch.equal(m.sequence_outputs(h)[0, :2], torch.zeros(2, 8))  # padding outputs are 0
    assert torch.equal(m.user_vectors({"history": torch.zeros(2, 4, dtype=torch.long)}), torch.zeros(2, 8))
    scores = m.score_all({"history": h})
    assert scores.shape == (3, N_ITEMS + 1) and torch.isfinite(scores).all()


def test_configs_reject_bad_values_and_the_ce_variant_defaults_to_ce():
    assert SASRecCEConfig().loss == "ce" and SASRecConfig().loss == "bce"
    for bad in ({"loss": "mse"}, {"dim": 6, "heads": 4}, {"dropout": 1.0}, {"n_blocks": 0}):
        with pytest.raises(ValueError):
            SASRecConfig(**bad)


def test_examples_are_the_train_sequences_shifted_by_one_cut_to_max_len():
    task = _task()  # train = all but the last two: [1 2 3 4], [7], [2 4], [9 1 3]
    cfg = _cfg("sasrec", max_len=3)
    obj = objective_for("sasrec", SASRec(cfg.model, RetrievalInfo(4, N_ITEMS, max_len=3)), task, cfg)
    assert obj.users.tolist() == [0, 2, 3]  # user 1 has one train item: nothing to predict
    assert obj.inputs.tolist() == [[1, 2, 3], [0, 0, 2], [0, 9, 1]]
    assert obj.targets.tolist() == [[2, 3, 4], [0, 2, 4], [9, 1, 3]]
    assert obj.n_examples == 3 + 1 + 2
    for epoch in range(2):
        batches = list(obj.batches(epoch))
        assert sorted(np.concatenate([b["user"].numpy() for b in batches]).tolist()) == [0, 2, 3]
        assert sum(obj.batch_size(b) for b in batches) == obj.n_examples
        for b in batches:  # negatives: one per position, never an item of the user's train sequence
            assert b["neg"].shape == (*b["history"].shape, 1)
            for u, neg in zip(b["user"].tolist(), b["neg"].tolist(), strict=True):
                assert not set(np.ravel(neg)) & set(task.train.row(u).tolist())


def test_sample_unseen_avoids_each_users_items():
    task = _task()
    seen = SeenItems(task.train, N_ITEMS)
    assert seen.contains(np.array([0, 0, 1]), np.array([1, 5, 7])).tolist() == [True, False, True]
    draws = sample_unseen(seen, np.array([0, 3]), (50, 2), N_ITEMS, np.random.default_rng(0))
    assert draws.shape == (2, 50, 2) and draws.min() >= 1 and draws.max() <= N_ITEMS
    assert not set(draws[0].ravel()) & {1, 2, 3, 4} and not set(draws[1].ravel()) & {9, 1, 3}


class _Fixed(torch.nn.Module):
    """A stand-in model with fixed outputs F and item table M (the objective only needs these)."""

    def __init__(self, out: torch.Tensor, items: torch.Tensor, config) -> None:
        super().__init__()
        self.out, self.items, self.config = out, items, config

    def sequence_outputs(self, history):
        return self.out

    def item_vectors(self):
        return self.items


def test_bce_loss_matches_the_papers_formula_on_a_hand_computed_case():
    task, cfg = _task(), _cfg("sasrec")
    items = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]
                         + [[0.0, 0.0]] * (N_ITEMS - 4))
    out = torch.tensor([[[5.0, 5.0], [2.0, 0.0], [0.0, 1.0]]])  # (1, 3, 2); position 0 is padding
    batch = {"history": torch.tensor([[0, 1, 2]]), "target": torch.tensor([[1, 1, 3]]),
             "neg": torch.tensor([[[2], [4], [2]]])}
    obj = SASRecObjective(_Fixed(out, items, cfg.model), task, cfg)
    # position 1: r(pos=1) = 2, r(neg=4) = -2; position 2: r(pos=3) = 1, r(neg=2) = 1
    want = (-math.log(1 / (1 + math.exp(-2))) - math.log(1 - 1 / (1 + math.exp(2)))
            - math.log(1 / (1 + math.exp(-1))) - math.log(1 - 1 / (1 + math.exp(-1)))) / 2
    assert obj.loss(batch).item() == pytest.approx(want, rel=1e-6)


def test_cross_entropy_counts_real_positions_only():
    task, cfg = _task(), _cfg("sasrec-ce")
    torch.manual_seed(0)
    items = torch.randn(N_ITEMS + 1, 4)
    out = torch.randn(2, 3, 4)
    hist = torch.tensor([[0, 0, 5], [0, 2, 3]])
    obj = SASRecObjective(_Fixed(out, items, cfg.model), task, cfg)
    batch = {"history": hist, "target": torch.tensor([[0, 0, 7], [0, 3, 9]])}
    logits = out[hist > 0] @ items[1:].T  # (3, N): the padding column is no class
    want = F.cross_entropy(logits, torch.tensor([7, 3, 9]) - 1)
    torch.testing.assert_close(obj.loss(batch), want)
    other = {"history": hist, "target": torch.tensor([[4, 8, 7], [1, 3, 9]])}  # targets under padding
    torch.testing.assert_close(obj.loss(other), want)


def test_sampled_softmax_masks_accidental_hits_and_trains():
    task, cfg = _task(), _cfg("sasrec", loss="sampled", n_negatives=4, dim=8, dropout=0.0)
    model = SASRec(cfg.model, RetrievalInfo(4, N_ITEMS, max_len=3))
    obj = SASRecObjective(model, task, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    batches = list(obj.batches(0))
    first = None
    for _ in range(30):
        loss = sum(obj.loss(b) for b in batches)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and loss.item() < first
