"""Training scenarios run by ``tests/distributed`` as one plain process or under torchrun.

``python _workers.py SCENARIO[,SCENARIO...] OUT`` (one process) or ``torchrun --nproc-per-node 2
_workers.py SCENARIOS OUT``: every rank trains with the package's step loop and writes ``OUT/SCENARIO/rank{r}.pt``
(final parameters and the number of optimiser steps) for the test to compare.

Scenarios (no dropout, no batch statistics, so N ranks must equal one process up to float
summation order):
  tiny-sparse   nn.Embedding(sparse=True) + Linear, SGD, 20 steps, the last global batch short
                (17 rows, split 9 / 8)
  tiny-dense    the same with a dense table
  tiny-adam     tiny-sparse with SparseAdam + Adam (Adam's first steps are lr * sign(g), so an
                element whose gradient is at rounding level moves by +-lr either way: the test's
                tolerance is looser)
  ctr-memory    CTRTrainer, mlp_sum with sparse tables, SGD, synthetic CTR samples, in-memory batches
  ctr-streamed  CTRTrainer on a fake streamed source (``streamed = True``, ``batches(batch_size, *,
                shuffle, seed, rank, world)``) whose ranks own different numbers of batches
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from seqrec import distributed as D
from seqrec.config import load_run_config
from seqrec.data.samples import LabeledSamples, sample_batches
from seqrec.train.ctr_trainer import build_torch_optimizer
from seqrec.train.session_trainer import TrainState
from seqrec.train.steps import run_epoch

ROWS, BATCH = 19 * 32 + 17, 32  # 20 global batches, the last one short


class Tiny(torch.nn.Module):
    """Two tables (one looked up twice, padding row 0) and a per-id bias, + a linear layer:
    the shape of the CTR models' inputs (DDP's own sparse reduction halves these gradients)."""

    def __init__(self, sparse: bool) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 6, sparse=sparse, padding_idx=0)
        self.bias = torch.nn.Embedding(50, 1, sparse=sparse)
        self.lin = torch.nn.Linear(12, 1)

    def forward(self, batch):
        x = torch.cat([self.emb(batch["a"]), self.emb(batch["b"])], dim=1)  # (B, 12)
        return self.lin(x).squeeze(1) + self.bias(batch["a"]).squeeze(1)  # (B,)


def tiny(sparse: bool, optimizer: str = "sgd") -> dict:
    torch.manual_seed(0)
    model = Tiny(sparse)
    rng = np.random.default_rng(1)
    data = {"a": torch.from_numpy(rng.integers(0, 50, ROWS)), "b": torch.from_numpy(rng.integers(0, 50, ROWS)),
            "y": torch.from_numpy(rng.normal(size=ROWS).astype(np.float32))}
    tr = SimpleNamespace(model=model, opt=build_torch_optimizer(optimizer, model, 0.05), state=TrainState(),
                         cfg=SimpleNamespace(train=SimpleNamespace(epochs=1, progress=False, log_every=100,
                                                                   max_steps=0)))
    tr.loss = lambda b: ((model(b) - b["y"]) ** 2).mean()
    glob = ({k: v[s:s + BATCH] for k, v in data.items()} for s in range(0, ROWS, BATCH))
    loss, seen, _ = run_epoch(tr, 0, D.sharded(glob, lambda b: len(b["y"])), lambda b: len(b["y"]),
                              total=ROWS, unit="row")
    return {"params": model.state_dict(), "steps": tr.state.steps, "loss": loss, "seen": seen}


def ctr_columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = 6
    real = np.arange(t)[None, :] < rng.integers(0, t + 1, n)[:, None]
    item_cate = rng.integers(2, 10, 40)
    item, hist = rng.integers(2, 40, n), np.where(real, rng.integers(2, 40, (n, t)), 0)
    return {"user": rng.integers(2, 20, n), "item": item, "cate": item_cate[item], "hist_item": hist,
            "hist_cate": np.where(real, item_cate[hist], 0), "label": (rng.random(n) < 0.4).astype(np.float32)}


class FakeStream:
    """The PreparedSamples contract: each rank reads its own shards (here: rank r owns 4 + 2r
    local batches), so ranks run out at different steps."""

    streamed = True

    def __init__(self, data: LabeledSamples) -> None:
        self.data = data

    def batches(self, batch_size, *, shuffle, seed, rank, world):
        own = list(sample_batches(self.data, batch_size, shuffle=shuffle, seed=seed + 1000 * rank))
        return iter(own[:4 + 2 * rank])


def ctr(streamed: bool) -> dict:
    from seqrec.families.ctr import build_ctr_model
    from seqrec.schema import Feature, Schema, Table
    from seqrec.train.ctr_trainer import CTRTrainer

    schema = Schema(tables=(Table("item", 40, 8), Table("cate", 10, 8), Table("user", 20, 8)),
                    features=(Feature("user", "sparse", "user"), Feature("item", "sparse", "item"),
                              Feature("cate", "sparse", "cate"), Feature("hist_item", "sequence", "item", max_len=6),
                              Feature("hist_cate", "sequence", "cate", max_len=6)))
    cfg = load_run_config(raw={"model": {"name": "mlp_sum", "embedding_dim": 8, "sparse_grad": True},
                               "train": {"epochs": 1, "batch_size": 64, "optimizer": "sgd", "lr": 0.1,
                                         "progress": False}})
    torch.manual_seed(0)
    model = build_ctr_model(cfg, schema)
    data = LabeledSamples(schema, ctr_columns(64 * 10 + 5), "synthetic")
    trainer = CTRTrainer(model, cfg, FakeStream(data) if streamed else data)
    trainer.fit(None)
    return {"params": model.state_dict(), "steps": trainer.state.steps, "loss": trainer.state.history[-1]["loss"],
            "seen": trainer.state.train_events}


def main(scenarios: str, out: str) -> None:
    """Run the comma-separated ``scenarios`` one after the other in this job (one start-up)."""
    runs = {"tiny-sparse": lambda: tiny(True), "tiny-dense": lambda: tiny(False),
            "tiny-adam": lambda: tiny(True, "adam"), "ctr-memory": lambda: ctr(False),
            "ctr-streamed": lambda: ctr(True)}
    torch.set_num_threads(1)
    with D.session() as ctx:
        for name in scenarios.split(","):
            res = runs[name]()
            (Path(out) / name).mkdir(parents=True, exist_ok=True)
            torch.save(res, Path(out) / name / f"rank{ctx.rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
