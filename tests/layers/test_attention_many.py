"""ActivationUnit.weights_many (many queries per history row) equals weights pair by pair."""

from __future__ import annotations

import pytest
import torch

from seqrec.layers.attention import ActivationUnit


@pytest.mark.parametrize("act", ["prelu", "relu", "dice"])
@pytest.mark.parametrize("softmax", [False, True])
def test_weights_many_equals_weights_per_query(act, softmax):
    torch.manual_seed(0)
    unit = ActivationUnit(8, (12, 6), act=act, softmax=softmax).eval()
    q, k = torch.randn(3, 5, 8), torch.randn(3, 4, 8)
    mask = torch.rand(3, 4) > 0.3
    mask[0] = False  # a row with no behaviour
    many = unit.weights_many(q, k, mask)  # (B, C, T)
    ref = torch.stack([unit.weights(q[:, c], k, mask) for c in range(5)], 1)
    torch.testing.assert_close(many, ref, rtol=1e-5, atol=1e-6)
    assert (many[~mask[:, None, :].expand_as(many)] == 0).all()


def test_weights_many_gradients_match():
    torch.manual_seed(1)
    unit = ActivationUnit(4, (6,), act="prelu")
    q, k = torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 5, 4, requires_grad=True)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, :2] = False
    unit.weights_many(q, k, mask).square().sum().backward()
    g_many = [q.grad.clone(), k.grad.clone()]
    q.grad, k.grad = None, None
    torch.stack([unit.weights(q[:, c], k, mask) for c in range(3)], 1).square().sum().backward()
    torch.testing.assert_close(g_many[0], q.grad)
    torch.testing.assert_close(g_many[1], k.grad)
