"""N ranks equal one process on the same global batches (models without dropout or batch
statistics): the replicated step loop's gradients, dense and sparse, are those of the global
batch (``tests/distributed/_workers.py`` holds the scenarios)."""

from __future__ import annotations

import pytest
import torch
from _dist_helpers import WORKERS, launch
from _dist_helpers import pytestmark as _gloo

pytestmark = [pytest.mark.slow, _gloo]  # ~16 s: two job start-ups

EQUAL = ("tiny-sparse", "tiny-dense", "tiny-adam", "ctr-memory")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """Every scenario's rank files, from one 1-process and one 2-rank job."""
    out = {}
    for ranks, names in ((1, EQUAL), (2, (*EQUAL, "ctr-streamed"))):
        d = tmp_path_factory.mktemp(f"ranks{ranks}")
        res = launch([str(WORKERS), ",".join(names), str(d)], ranks, timeout=240)
        assert res.returncode == 0, res.stderr[-4000:]
        for n in names:
            out[n, ranks] = [torch.load(d / n / f"rank{r}.pt", weights_only=False) for r in range(ranks)]
    return out


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


# (scenario, tolerance on every parameter after 20 / 11 steps). SGD: only the float summation
# order differs (~1e-7). Adam: its first steps are lr * sign(g), so an element whose gradient is
# at rounding level could move by +-lr either way; none does here, and 1e-5 says so.
@pytest.mark.parametrize(("scenario", "tol"), [("tiny-sparse", 1e-6), ("tiny-dense", 1e-6), ("tiny-adam", 1e-5),
                                               ("ctr-memory", 1e-6)])
def test_two_ranks_equal_one_process(results, scenario, tol):
    (one,) = results[scenario, 1]
    r0, r1 = results[scenario, 2]
    assert max_diff(r0["params"], r1["params"]) == 0.0  # the replicas stay identical
    assert r0["steps"] == r1["steps"] == one["steps"]
    assert r0["seen"] == one["seen"]  # the short last global batch was trained, split 9 / 8 or 3 / 2
    assert abs(r0["loss"] - one["loss"]) < 1e-6
    assert max_diff(one["params"], r0["params"]) < tol


def test_streamed_ranks_stop_together(results):
    """Rank 0 owns 4 batches of its shards, rank 1 six: both take 4 steps (local batches of 32
    rows, 64 global) and stay replicas of each other."""
    r0, r1 = results["ctr-streamed", 2]
    assert r0["steps"] == r1["steps"] == 4
    assert r0["seen"] == 4 * 64
    assert max_diff(r0["params"], r1["params"]) == 0.0
