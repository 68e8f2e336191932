"""MF-BPR's objective: shared negatives are the per-positive loss with the pool repeated, and the
sparse tables train with the lazy Adam (the optimiser builder takes an all-sparse model)."""

from __future__ import annotations

import numpy as np
import torch

from seqrec.config import load_run_config
from seqrec.data.tasks.retrieval import CSR, EvalSplit, RetrievalTask
from seqrec.models.mf_bpr import MFBPR
from seqrec.models.retrieval_base import RetrievalInfo
from seqrec.train.ctr_trainer import build_torch_optimizer
from seqrec.train.objectives.pairs import BPRPairs

INFO = RetrievalInfo(4, 8)


def tiny_task() -> RetrievalTask:
    train = CSR.from_lists([np.asarray(r) for r in ([1, 2], [3, 4, 5], [6], [7, 8])])
    users = np.arange(4)
    return RetrievalTask("tiny", 4, 8, train, None, EvalSplit(users, train, train, train), np.arange(1, 9), users,
                         ordered=False, protocol="bars")


def cfg(**model):
    return load_run_config(raw={"data": {"dataset": "gowalla"}, "model": {"name": "mf_bpr", **model},
                                "train": {"batch_size": 3, "optimizer": "adam", "lr": 0.01}})


def test_shared_negatives_equal_the_repeated_pool():
    torch.manual_seed(0)
    c_shared, c_each = cfg(n_negatives=3, shared_negatives=True, reg=0.01), cfg(n_negatives=3, reg=0.01)
    model = MFBPR(c_shared.model, INFO)
    shared = BPRPairs(model, tiny_task(), c_shared)
    batch = next(iter(shared.batches(0)))
    assert batch["neg"].shape == (3,)
    twin = MFBPR(c_each.model, INFO)  # the objective reads its settings from the model's config
    twin.load_state_dict(model.state_dict())
    each = BPRPairs(twin, tiny_task(), c_each)
    repeated = {**batch, "neg": batch["neg"][None, :].expand(len(batch["user"]), -1)}
    torch.testing.assert_close(shared.loss(batch), each.loss(repeated))


def test_sparse_tables_train_with_lazy_adam():
    c = cfg(n_negatives=2, sparse=True)
    model = MFBPR(c.model, INFO)
    opt = build_torch_optimizer("adam", model, 0.05)
    assert [type(o).__name__ for o in opt.opts] == ["SparseAdam"]
    objective = BPRPairs(model, tiny_task(), c)
    batch = next(iter(objective.batches(0)))
    before = model.item.weight.detach().clone()
    loss = objective.loss(batch)
    opt.zero_grad()
    loss.backward()
    assert model.item.weight.grad.is_sparse
    opt.step()
    used = torch.unique(torch.cat([batch["target"], batch["neg"].view(-1)]))
    moved = (model.item.weight.detach() != before).any(1)
    assert moved[used].all() and not moved[[i for i in range(9) if i not in set(used.tolist())]].any()
