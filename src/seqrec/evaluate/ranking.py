"""Full-catalogue next-item ranking metrics: Recall@K (= HitRate@K), MRR@K, NDCG@K.

Protocol (one implementation, used by every model and baseline):

* every position of every test session is evaluated: the model has seen the
  session up to event ``t`` (state carried along the session) and must rank the
  item at ``t + 1`` among **all** items of the catalogue (no sampled negatives);
* rank = 1 + number of items scored strictly higher than the target
  (``ties="optimistic"``, the default); ``ties="pessimistic"`` counts items with
  equal scores against the model too (rank = number of items scored >= target);
* padding and OOV columns are never ranked; a target the model has never seen
  (OOV) counts as a miss at every cut-off;
* MRR@K = mean of 1/rank where rank <= K else 0; NDCG@K with one relevant item
  = mean of 1/log2(rank + 1) where rank <= K else 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from seqrec.data.events import SessionArrays
from seqrec.data.vocab import N_SPECIAL, OOV
from seqrec.kernels.ranking import count_above

DEFAULT_KS = (5, 10, 20)
TIES = ("optimistic", "pessimistic")
MISS_RANK = torch.iinfo(torch.int64).max  # rank given to OOV targets (N + 1 is a hit when K > N)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, ties: str = "optimistic") -> torch.Tensor:
    """Rank of each row's target among that row's scores (1 = best).

    scores: (B, N) float; targets: (B,) int64 column indices. Columns below
    ``N_SPECIAL`` (padding, OOV) are never counted. Rows whose target is OOV
    get rank ``MISS_RANK`` (int64 max: a miss at any cut-off, even K > N).
    The count is a compiled kernel (:func:`seqrec.kernels.ranking.count_above`): ~12x faster
    than ``(scores > t).sum(1)``
    (which builds a bool matrix) on a (512, 43k) block.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    t = scores.gather(1, targets.unsqueeze(1))  # (B, 1)
    if torch.isnan(t).any():  # NaN compares false to everything: it would rank first
        from seqrec.errors import SeqrecError

        raise SeqrecError("the model produced NaN scores; it diverged (lower the learning rate)")
    counts = np.empty(len(targets), dtype=np.int64)
    s = scores.detach().contiguous().numpy()
    count_above(s, t.squeeze(1).numpy().astype(s.dtype), N_SPECIAL, ties == "pessimistic", counts)
    # optimistic: 1 + #strictly higher; pessimistic: #higher or equal (the target included)
    ranks = torch.from_numpy(counts) + (1 if ties == "optimistic" else 0)
    return torch.where(targets < N_SPECIAL, MISS_RANK, ranks)


class RankingAccumulator:
    """Sums metric contributions batch by batch; ``result()`` returns the means."""

    def __init__(self, ks: Sequence[int] = DEFAULT_KS) -> None:
        self.ks = tuple(sorted(ks))
        self.n = 0
        self.n_oov_targets = 0
        self.sums = {f"{m}@{k}": 0.0 for k in self.ks for m in ("recall", "mrr", "ndcg")}

    def update(self, ranks: torch.Tensor, n_oov: int = 0) -> None:
        r = ranks.double()
        self.n += r.numel()
        self.n_oov_targets += n_oov
        for k in self.ks:
            hit = r <= k
            self.sums[f"recall@{k}"] += hit.sum().item()
            self.sums[f"mrr@{k}"] += torch.where(hit, 1.0 / r, 0.0).sum().item()
            self.sums[f"ndcg@{k}"] += torch.where(hit, 1.0 / torch.log2(r + 1.0), 0.0).sum().item()

    def result(self) -> dict:
        out = {name: (v / self.n if self.n else float("nan")) for name, v in self.sums.items()}
        out["n_events"] = self.n
        out["n_oov_targets"] = self.n_oov_targets
        return out


class SessionScorer(Protocol):
    """What the session evaluator drives: GRU4Rec and every session baseline implement it.

    Lanes are independent sessions. ``step`` feeds one item per lane (``reset``
    marks lanes that start a new session) and returns (B, n_items) scores for the
    next item. ``keep`` drops finished lanes (keeps the listed lane indices).
    """

    n_items: int

    def begin(self, n_lanes: int) -> None: ...

    def step(self, items: torch.Tensor, reset: torch.Tensor) -> torch.Tensor: ...

    def keep(self, lanes: torch.Tensor) -> None: ...


@torch.no_grad()
def evaluate_sessions(
    scorer: SessionScorer,
    sessions: SessionArrays,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    ties: str = "optimistic",
    batch_size: int = 512,
    progress: bool = False,
    desc: str = "evaluate",
    ranks_out: np.ndarray | None = None,
) -> dict:
    """Evaluate next-item prediction at every position of every session.

    Sessions are walked in parallel lanes (like training); a lane whose
    session ends takes the next session and is reset. Returns the metric means
    plus ``n_events`` (predictions made) and ``n_sessions``. ``ranks_out``, an
    int64 array as long as ``sessions.items``, receives the rank of every
    prediction at the index of its input event (the target is the next item);
    other entries are left as they are.
    """
    lengths = sessions.lengths
    order = np.flatnonzero(lengths >= 2)  # a 1-event session has nothing to predict
    acc = RankingAccumulator(ks)
    if len(order) == 0:
        out = acc.result()
        out["n_sessions"] = 0
        return out
    items = sessions.items
    offsets = sessions.offsets
    n_lanes = min(batch_size, len(order))
    lane_sess = order[:n_lanes].copy()
    next_s = n_lanes
    pos = offsets[lane_sess].copy()
    end = offsets[lane_sess + 1].copy()
    reset = np.ones(n_lanes, dtype=bool)
    scorer.begin(n_lanes)
    total = int((lengths[order] - 1).sum())
    bar = tqdm(total=total, desc=desc, unit="ev", disable=not progress, leave=False)
    while len(pos):
        inp = torch.from_numpy(items[pos])
        tgt = torch.from_numpy(items[pos + 1])
        scores = scorer.step(inp, torch.from_numpy(reset))  # (B, N)
        scores[:, :N_SPECIAL] = -torch.inf
        ranks = target_ranks(scores, tgt, ties)
        acc.update(ranks, n_oov=int((tgt == OOV).sum()))
        if ranks_out is not None:
            ranks_out[pos] = ranks.numpy()
        bar.update(len(pos))
        pos += 1
        reset[:] = False
        done = np.flatnonzero(pos + 1 >= end)
        for lane in done:
            if next_s < len(order):
                s = order[next_s]
                next_s += 1
                lane_sess[lane], pos[lane], end[lane] = s, offsets[s], offsets[s + 1]
                reset[lane] = True
            else:
                end[lane] = -1  # finished for good
        alive = end >= 0
        if not alive.all():
            keep = np.flatnonzero(alive)
            lane_sess, pos, end, reset = lane_sess[keep], pos[keep], end[keep], reset[keep]
            scorer.keep(torch.from_numpy(keep))
    bar.close()
    out = acc.result()
    out["n_sessions"] = len(order)
    return out
