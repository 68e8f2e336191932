"""Sampled ranking losses of the GRU4Rec family.

All take the (B, M) score matrix of one session-parallel step: row ``i`` is
lane ``i``; column ``i`` (for i < B) is lane ``i``'s target, every other
column is a negative for it (the other lanes' targets, then the ``n_sample``
extra items shared by the batch). Each returns the mean over the B lanes.

* cross-entropy: -log softmax(r_i)_i over the sampled set; optional logQ
  correction subtracts ``logq * log Q(j)`` from column ``j``'s score, Q being
  the probability that ``j`` appears among the sampled columns (Bengio &
  Senécal 2008; Yi et al. RecSys 2019).
* BPR (Rendle et al. 2009, as used in GRU4Rec ICLR 2016):
  -1/N_S Σ_j log σ(r_i - r_j)
* TOP1 (GRU4Rec ICLR 2016): 1/N_S Σ_j σ(r_j - r_i) + σ(r_j²)
* BPR-max (Hidasi & Karatzoglou CIKM 2018, eq. 9-10):
  -log Σ_j s_j σ(r_i - r_j) + λ Σ_j s_j r_j²,   s = softmax over the negatives
* TOP1-max (CIKM 2018, eq. 8): Σ_j s_j (σ(r_j - r_i) + σ(r_j²))

The target column is excluded from the negatives (and from the softmax over
negatives) by masking.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

LOSSES = ("cross-entropy", "bpr", "top1", "bpr-max", "top1-max")
_EPS = 1e-24


def _split(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Target scores (B, 1) and a (B, M) boolean mask of the negatives."""
    B, M = scores.shape
    target = scores.diagonal()[:, None]  # (B, 1)
    return target, _neg_mask(B, M)


@lru_cache(maxsize=64)
def _neg_mask(B: int, M: int) -> torch.Tensor:
    neg = torch.ones(B, M, dtype=torch.bool)
    neg[:, :B].fill_diagonal_(False)
    return neg


def cross_entropy(scores: torch.Tensor, log_q: torch.Tensor | None = None, logq: float = 0.0) -> torch.Tensor:
    """Softmax cross-entropy over the sampled columns, with optional logQ correction."""
    if logq > 0 and log_q is not None:
        scores = scores - logq * log_q[None, :]  # (B, M)
    B = scores.shape[0]
    return F.cross_entropy(scores, torch.arange(B))


def bpr(scores: torch.Tensor) -> torch.Tensor:
    target, neg = _split(scores)
    n_neg = neg.sum(1)  # (B,)
    per = -(F.logsigmoid(target - scores) * neg).sum(1) / n_neg
    return per.mean()


def top1(scores: torch.Tensor) -> torch.Tensor:
    target, neg = _split(scores)
    n_neg = neg.sum(1)
    per = ((torch.sigmoid(scores - target) + torch.sigmoid(scores * scores)) * neg).sum(1) / n_neg
    return per.mean()


def _softmax_neg(scores: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Softmax over each row's negatives only (the target gets weight 0)."""
    return torch.softmax(scores.masked_fill(~neg, -torch.inf), dim=1)  # (B, M)


def bpr_max(scores: torch.Tensor, bpreg: float = 1.0) -> torch.Tensor:
    target, neg = _split(scores)
    s = _softmax_neg(scores, neg)  # (B, M)
    ranking = -torch.log((s * torch.sigmoid(target - scores)).sum(1) + _EPS)
    reg = bpreg * (s * scores * scores).sum(1)
    return (ranking + reg).mean()


def top1_max(scores: torch.Tensor) -> torch.Tensor:
    target, neg = _split(scores)
    s = _softmax_neg(scores, neg)
    per = (s * (torch.sigmoid(scores - target) + torch.sigmoid(scores * scores))).sum(1)
    return per.mean()


def sampled_loss(
    name: str,
    scores: torch.Tensor,
    *,
    bpreg: float = 1.0,
    logq: float = 0.0,
    log_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch by name (one of :data:`LOSSES`).

    A (B, 1) matrix has no negative to rank against (one lane left at the end of
    an epoch with ``n_sample = 0``): the loss is 0, not NaN.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
    if scores.shape[1] < 2:
        return scores.sum() * 0.0
    if name == "cross-entropy":
        return cross_entropy(scores, log_q, logq)
    if name == "bpr":
        return bpr(scores)
    if name == "top1":
        return top1(scores)
    if name == "bpr-max":
        return bpr_max(scores, bpreg)
    if name == "top1-max":
        return top1_max(scores)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")

