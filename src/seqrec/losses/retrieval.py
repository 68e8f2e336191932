"""Losses of the retrieval models, kept outside the models (they only compute vectors and scores).

* :func:`sampled_softmax` — softmax cross-entropy of the positive against sampled negatives with
  the logQ correction of Yi et al., "Sampling-bias-corrected neural modeling for large corpus item
  recommendations", RecSys 2019, eq. (3): every logit s(u, j) becomes s(u, j) - log Q(j), where
  Q(j) is the probability that j is drawn as a candidate; negatives that equal the positive
  ("accidental hits") are removed. Jean et al. (ACL 2015) / Bengio & Senecal (2008) for the
  sampled softmax itself; Covington et al. (RecSys 2016) train YouTube DNN with it.
* :func:`full_softmax` — cross-entropy over the whole catalogue (SASRec-CE, Klenitskiy &
  Vasilev, RecSys 2023; Petrov & Macdonald, RecSys 2023).
* :func:`bce_pos_neg` — binary cross-entropy of one positive against sampled negatives
  (SASRec's eq. in Kang & McAuley 2018 sec. III-E; NCF's pointwise log loss, He et al. 2017 eq. 7).
* :func:`bpr` — Bayesian personalised ranking, -log sigma(s_pos - s_neg) (Rendle et al. UAI 2009).
* :func:`max_margin` — max(0, s_neg - s_pos + margin) (PinSage, Ying et al. KDD 2018 eq. 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sampled_softmax(pos_logits: torch.Tensor, neg_logits: torch.Tensor, *, pos_log_q: torch.Tensor | None = None,
                    neg_log_q: torch.Tensor | None = None, accidental: torch.Tensor | None = None,
                    temperature: float = 1.0) -> torch.Tensor:
    """Mean softmax cross-entropy of (B,) positive logits against (B, S) negative logits.

    ``pos_log_q`` (B,) / ``neg_log_q`` (S,) or (B, S): log sampling probabilities subtracted
    from the logits (logQ correction; None = no correction). ``accidental`` (B, S) bool: negatives
    equal to the row's positive, masked out."""
    pos = pos_logits / temperature
    neg = neg_logits / temperature
    if pos_log_q is not None:
        pos = pos - pos_log_q
    if neg_log_q is not None:
        neg = neg - (neg_log_q if neg_log_q.dim() == 2 else neg_log_q[None, :])
    if accidental is not None:
        neg = neg.masked_fill(accidental, float("-inf"))
    logits = torch.cat([pos[:, None], neg], dim=1)  # (B, 1 + S)
    return -(logits[:, 0] - torch.logsumexp(logits, dim=1)).mean()


def full_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (B, N + 1) logits over the catalogue (column 0 = padding, excluded)
    against (B,) target indices; rows whose target is 0 are ignored."""
    logits = logits.clone()
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets, ignore_index=0)


def bce_pos_neg(pos_logits: torch.Tensor, neg_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy with label 1 for the positives and 0 for the negatives.

    ``pos_logits`` (...,), ``neg_logits`` (..., S) or (...,); ``mask`` (...,) bool keeps the
    positions that count (SASRec's padding), averaged over kept positives."""
    if neg_logits.dim() == pos_logits.dim():
        neg_logits = neg_logits[..., None]
    loss = F.softplus(-pos_logits) + F.softplus(neg_logits).sum(-1)  # -log s(p) - sum log(1 - s(n))
    if mask is None:
        return loss.mean()
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp(min=1.0)


def bpr(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Mean -log sigma(s_pos - s_neg); ``neg_logits`` (B,) or (B, S) (averaged over S)."""
    if neg_logits.dim() == pos_logits.dim() + 1:
        pos_logits = pos_logits[..., None]
    return F.softplus(neg_logits - pos_logits).mean()


def max_margin(pos_logits: torch.Tensor, neg_logits: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Mean hinge max(0, s_neg - s_pos + margin); ``neg_logits`` (B,) or (B, S)."""
    if neg_logits.dim() == pos_logits.dim() + 1:
        pos_logits = pos_logits[..., None]
    return F.relu(neg_logits - pos_logits + margin).mean()
