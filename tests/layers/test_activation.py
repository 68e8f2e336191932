"""Final activations: forward, in-place forward and the one-kernel backward against autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqrec.layers.activation import FinalActivation

REF = {
    "linear": lambda s: s,
    "tanh": torch.tanh,
    "relu": F.relu,
    "elu-0.5": lambda s: F.elu(s, 0.5),
    "elu-1": F.elu,
    "elu-2": lambda s: F.elu(s, 2.0),
    "leaky-0.1": lambda s: F.leaky_relu(s, 0.1),
}


@pytest.mark.parametrize("name", sorted(REF))
def test_forward_inplace_and_backward(name):
    act = FinalActivation(name)
    s = torch.randn(6, 50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s.requires_grad_()
    a = act(s)
    torch.testing.assert_close(a, REF[name](s))
    g = torch.randn_like(s)
    (a * g).sum().backward()
    s0 = s.detach().clone()
    a_inplace = act.forward_(s0.clone() if act.kind in ("relu", "leaky") else s0)
    torch.testing.assert_close(a_inplace, a.detach())
    torch.testing.assert_close(act.backward(g, s.detach(), a.detach()), s.grad)


def test_softmax_is_linear_and_bad_names():
    assert FinalActivation("softmax").linear
    for bad in ("elu-x", "sigmoid", "leaky-"):
        with pytest.raises(ValueError, match="final_act"):
            FinalActivation(bad)
