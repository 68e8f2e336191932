"""Negative samplers and training examples for the retrieval models (shared, seeded, vectorised).

:class:`ItemSampler` draws items from count^alpha (alpha = 0: uniform over the catalogue; 1:
popularity) and reports log Q(j), the probability of drawing j, for the logQ correction.

:func:`next_item_batches` yields the (history -> next item) examples of YouTube DNN, MIND and
TDM (Covington et al. 2016 sec. 3.3: predict the *next* watch from the past ones, so the user
vector never sees its label). On time-ordered data every train position p >= 1 of a user is an
example: history = the ``max_len`` items before p, target = the item at p, example age = days
from the target's time to the last training time (0 without times; 0 at serving). On item sets
without order (BARS) every train interaction is an example and the history is the user's
*other* train items (``max_len`` of them drawn at random with replacement when there are more;
the label never among them).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from seqrec.data.tasks.retrieval import RetrievalTask


class ItemSampler:
    """Items 1..N drawn i.i.d. from count^alpha (row 0 never drawn)."""

    def __init__(self, counts: np.ndarray, alpha: float = 0.0, seed: int = 0) -> None:
        w = np.zeros_like(counts, dtype=np.float64)
        w[1:] = np.maximum(counts[1:], 0) ** alpha if alpha else 1.0
        if alpha:
            w[1:][counts[1:] <= 0] = 0.0
        self.p = w / w.sum()
        self.log_p = torch.from_numpy(np.log(np.maximum(self.p, 1e-30))).float()  # (N + 1,)
        self.cdf = np.cumsum(self.p)
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """(n,) item indices, from the sampler's own stream or ``rng`` (a per-epoch stream)."""
        u = (self.rng if rng is None else rng).random(n) * self.cdf[-1]
        return torch.from_numpy(np.searchsorted(self.cdf, u, side="right").clip(1, len(self.p) - 1))

    def log_q(self, items: torch.Tensor) -> torch.Tensor:
        return self.log_p[items]


def user_features(task: RetrievalTask, users: np.ndarray) -> dict[str, torch.Tensor]:
    return {f"feat_{k}": torch.from_numpy(v[users]) for k, v in task.user_features.items()}


def next_item_examples(task: RetrievalTask) -> tuple[np.ndarray, np.ndarray]:
    """(user, position in task.train.values) of every training example (see module docstring)."""
    tr = task.train
    users = tr.row_ids()
    pos = np.arange(len(tr.values), dtype=np.int64)
    if task.ordered:
        keep = pos > tr.indptr[users]  # position >= 1 within its user
        return users[keep], pos[keep]
    keep = tr.lengths()[users] >= 2  # a user with one item has no history for it
    return users[keep], pos[keep]


def next_item_batches(task: RetrievalTask, batch_size: int, max_len: int, seed: int,
                      shuffle: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Batches ``{user, history (B, L), age (B,), target (B,), feat_*}`` over every example once."""
    users, pos = next_item_examples(task)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pos)) if shuffle else np.arange(len(pos))
    tr = task.train
    t_end = float(task.train_times.max()) if task.train_times is not None else 0.0
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        u, p = users[idx], pos[idx]
        if task.ordered:
            hist = _prefix(tr.values, tr.indptr[u], p, max_len)
        else:
            hist = _others(tr.values, tr.indptr[u], tr.indptr[u + 1], p, max_len, rng)
        age = ((t_end - task.train_times[p]) / 86400.0 if task.train_times is not None
               else np.zeros(len(p)))
        yield {"user": torch.from_numpy(u), "history": torch.from_numpy(hist),
               "age": torch.from_numpy(age.astype(np.float32)), "target": torch.from_numpy(tr.values[p]),
               **user_features(task, u)}


def _prefix(values: np.ndarray, start: np.ndarray, pos: np.ndarray, max_len: int) -> np.ndarray:
    """values[max(start, pos - max_len):pos] per row, left-padded: (B, max_len)."""
    col = np.arange(max_len)[None, :]
    src = pos[:, None] - max_len + col  # (B, L)
    ok = src >= start[:, None]
    out = np.zeros((len(pos), max_len), dtype=np.int64)
    out[ok] = values[src[ok]]
    return out


def _others(values: np.ndarray, start: np.ndarray, end: np.ndarray, pos: np.ndarray, max_len: int,
            rng: np.random.Generator) -> np.ndarray:
    """The row's values other than position ``pos``, left-padded: (B, max_len). A row with more
    than ``max_len`` others gets ``max_len`` of them drawn uniformly with replacement (O(B * L),
    where a draw without replacement would cost a sort of the whole row)."""
    n_other = end - start - 1  # (B,)
    col = np.arange(max_len)[None, :]
    full = n_other <= max_len
    # rows with few others: offsets 0..n_other-1 right-aligned; others: random offsets
    off = np.where(full[:, None], col - (max_len - n_other)[:, None],
                   (rng.random((len(pos), max_len)) * np.maximum(n_other, 1)[:, None]).astype(np.int64))
    ok = off >= 0
    label_off = (pos - start)[:, None]
    src = start[:, None] + off + (off >= label_off)  # skip the label's own position
    out = np.zeros((len(pos), max_len), dtype=np.int64)
    out[ok] = values[src[ok]]
    return out
