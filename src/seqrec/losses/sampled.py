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

import math
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



# -- closed-form gradients (the fused training step) --------------------------------------------
#
# The functions above are the definitions (differentiable, used with autograd by HRNN and by
# the tests). ``loss_and_grad`` returns the same loss value together with its gradient with
# respect to the scores, derived by hand, so the fused GRU4Rec step needs no autograd graph:
# ~15 elementwise passes over the (B, M) matrix instead of ~40 forward + backward ops.
# ``tests/test_losses.py`` checks every gradient against autograd of the definitions.
#
# Notation per row i (target t = r_ii; j runs over the negatives, j != i; s = softmax over the
# negatives; σ = logistic sigmoid):
#   BPR-max:  L = -log P + λ R,  P = Σ s_j σ(t - r_j),  R = Σ s_j r_j²
#             dL/dr_j = s_j (P - σ_j²) / P + λ s_j (r_j² - R + 2 r_j),  σ_j = σ(t - r_j)
#             dL/dt   = -Σ s_j σ_j (1 - σ_j) / P
#   TOP1-max: L = Σ s_j q_j,  q_j = σ(r_j - t) + σ(r_j²),  Q = L
#             dL/dr_j = s_j (q_j - Q) + s_j (d_j (1 - d_j) + 2 r_j a_j (1 - a_j)),
#             d_j = σ(r_j - t), a_j = σ(r_j²);  dL/dt = -Σ s_j d_j (1 - d_j)
#   BPR:      L = 1/n Σ softplus(r_j - t);  dL/dr_j = d_j / n;  dL/dt = -Σ d_j / n
#   TOP1:     L = 1/n Σ d_j + a_j;  dL/dr_j = (d_j (1 - d_j) + 2 r_j a_j (1 - a_j)) / n;
#             dL/dt = -Σ d_j (1 - d_j) / n
#   XE:       L = logsumexp(z) - z_i,  z = r - logq·log Q;  dL/dz = softmax(z) - onehot(i)
# Each loss is the mean over the B rows, so every gradient is divided by B.


def _neg_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over each row's negatives (the target column i of row i gets 0)."""
    e = torch.exp(scores - scores.amax(1, keepdim=True))  # (B, M)
    e.diagonal().zero_()
    return e.div_(e.sum(1, keepdim=True))


def _bpr_max_grad(r: torch.Tensor, bpreg: float) -> tuple[torch.Tensor, torch.Tensor]:
    # dL/dr_j = s_j [λ (r_j² + 2 r_j) - σ_j² / P + c] with the row constant c = P / P - λ R
    # (P in the denominators is P + ε), the same as the form above in fewer passes
    t = r.diagonal().unsqueeze(1)  # (B, 1)
    s = _neg_softmax(r)  # (B, M)
    sig = torch.sigmoid(t - r)  # σ(t - r_j)
    ssig = s * sig
    P = ssig.sum(1, keepdim=True)  # (B, 1)
    Pe = P + _EPS
    S2 = torch.linalg.vecdot(ssig, sig).unsqueeze(1)  # Σ s σ²
    r2 = r * r
    R = torch.linalg.vecdot(s, r2).unsqueeze(1)  # Σ s r²
    loss = -torch.log(Pe) + bpreg * R  # (B, 1)
    g = torch.add(P / Pe - bpreg * R, r2.add_(r, alpha=2.0), alpha=bpreg)
    g.addcmul_(sig.div(Pe), sig, value=-1.0).mul_(s)  # the diagonal is 0 here (s_ii = 0)
    g.diagonal().copy_(((S2 - P) / Pe).squeeze(1))  # dL/dt = -Σ s σ (1 - σ) / P
    return loss, g


def _top1_max_grad(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = r.diagonal().unsqueeze(1)
    s = _neg_softmax(r)
    d = torch.sigmoid(r - t)  # σ(r_j - t)
    a = torch.sigmoid(r * r)  # σ(r_j²)
    q = d + a
    Q = (s * q).sum(1, keepdim=True)  # (B, 1) = the loss
    dd = d - d * d  # σ'(r_j - t)
    dt = -(s * dd).sum(1)  # (B,)
    g = q.sub_(Q).add_(dd).add_((a - a * a).mul_(r), alpha=2.0).mul_(s)
    g.diagonal().copy_(dt)
    return Q, g


def _bpr_grad(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B, M = r.shape
    n = M - 1
    x = r - r.diagonal().unsqueeze(1)  # r_j - t (0 on the diagonal)
    loss = (F.softplus(x).sum(1, keepdim=True) - math.log(2.0)) / n  # drop softplus(0)
    d = torch.sigmoid(x)
    d.diagonal().zero_()
    dt = -d.sum(1)
    d.diagonal().copy_(dt)
    return loss, d.div_(n)


def _top1_grad(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B, M = r.shape
    n = M - 1
    d = torch.sigmoid(r - r.diagonal().unsqueeze(1))  # σ(r_j - t)
    a = torch.sigmoid(r * r)
    d.diagonal().zero_()
    a.diagonal().zero_()
    loss = (d + a).sum(1, keepdim=True) / n
    dd = d - d * d
    g = (a - a * a).mul_(r).mul_(2.0).add_(dd)
    g.diagonal().copy_(-dd.sum(1))
    return loss, g.div_(n)


def _xe_grad(r: torch.Tensor, log_q: torch.Tensor | None, logq: float) -> tuple[torch.Tensor, torch.Tensor]:
    z = r - logq * log_q[None, :] if (logq > 0 and log_q is not None) else r  # (B, M)
    mx = z.amax(1, keepdim=True)
    e = torch.exp(z - mx)
    se = e.sum(1, keepdim=True)
    loss = torch.log(se) + mx - z.diagonal().unsqueeze(1)  # (B, 1)
    p = e.div_(se)
    p.diagonal().sub_(1.0)
    return loss, p


def loss_and_grad(
    name: str,
    scores: torch.Tensor,
    *,
    bpreg: float = 1.0,
    logq: float = 0.0,
    log_q: torch.Tensor | None = None,
    norm: int | None = None,
) -> tuple[float, torch.Tensor]:
    """(loss value, d loss / d scores) for :func:`sampled_loss` with the same arguments.

    The value is the mean over the B rows; the gradient is that of the rows' sum divided by
    ``norm`` (default B, i.e. of the mean). The GRU4Rec trainer passes the configured batch
    size, as the reference implementation does: a step with fewer live lanes (the end of an
    epoch) then moves the weights proportionally less.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
    B, M = scores.shape
    if M < 2:
        return 0.0, torch.zeros_like(scores)
    if name == "bpr-max":
        loss, g = _bpr_max_grad(scores, bpreg)
    elif name == "top1-max":
        loss, g = _top1_max_grad(scores)
    elif name == "bpr":
        loss, g = _bpr_grad(scores)
    elif name == "top1":
        loss, g = _top1_grad(scores)
    else:
        loss, g = _xe_grad(scores, log_q, logq)
    return loss.mean().item(), g.div_(norm or B)
