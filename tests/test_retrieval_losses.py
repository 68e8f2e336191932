"""seqrec.losses.retrieval.sampled_softmax against the textbook formula (concatenate, log-softmax)."""

from __future__ import annotations

import pytest
import torch

from seqrec.losses.retrieval import sampled_softmax


def _reference(pos, neg, pos_q, neg_q, acc, t):
    p, n = pos / t, neg / t
    if pos_q is not None:
        p = p - pos_q
    if neg_q is not None:
        n = n - (neg_q if neg_q.dim() == 2 else neg_q[None, :])
    if acc is not None:
        n = n.masked_fill(acc, float("-inf"))
    logits = torch.cat([p[:, None], n], 1)
    return -torch.log_softmax(logits, 1)[:, 0].mean()


@pytest.mark.parametrize("t", [1.0, 0.1])
@pytest.mark.parametrize("q_dim", [None, 1, 2])
@pytest.mark.parametrize("with_acc", [False, True])
def test_matches_the_concatenated_log_softmax_with_gradients(t, q_dim, with_acc):
    g = torch.Generator().manual_seed(0)
    pos0, neg0 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, 9, generator=g, dtype=torch.float64)
    pos_q = torch.randn(6, generator=g, dtype=torch.float64) if q_dim else None
    neg_q = None if q_dim is None else torch.randn(*((9,) if q_dim == 1 else (6, 9)), generator=g, dtype=torch.float64)
    acc = (torch.rand(6, 9, generator=g) < 0.2) if with_acc else None
    grads = []
    for fn in (sampled_softmax, None):
        pos, neg = pos0.clone().requires_grad_(), neg0.clone().requires_grad_()
        if fn is None:
            loss = _reference(pos, neg, pos_q, neg_q, acc, t)
        else:
            loss = fn(pos, neg, pos_log_q=pos_q, neg_log_q=neg_q, accidental=acc, temperature=t)
        loss.backward()
        grads.append((loss.detach(), pos.grad, neg.grad))
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
