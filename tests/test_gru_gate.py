"""The GRU gate backward written once (``seqrec.kernels.gru.gate_backward``) against autograd
of the gate equations, for the plain GRU (GRU4Rec, DIEN's extractor), AUGRU and AGRU."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

from seqrec.kernels.gru import gate_backward


@numba.njit
def _apply(d, h, r, z, n, u, du_dz, gh_n, out):
    for i in range(d.shape[0]):
        for j in range(d.shape[1]):
            res = gate_backward(d[i, j], h[i, j], r[i, j], z[i, j], n[i, j], u[i, j], du_dz[i, j],
                                gh_n[i, j])
            for k in range(6):
                out[k, i, j] = res[k]


@pytest.mark.parametrize("mode", ["gru", "augru", "agru"])
def test_gate_backward_matches_autograd_of_the_gate_equations(mode):
    g = torch.Generator().manual_seed(0)
    shape = (6, 5)

    def leaf(scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()

    r_hat, z_hat, x_n, gh_n, h = leaf(2), leaf(2), leaf(2), leaf(2), leaf()
    a = torch.rand(*shape, generator=g, dtype=torch.float64).requires_grad_()
    d = torch.randn(*shape, generator=g, dtype=torch.float64)
    r, z = torch.sigmoid(r_hat), torch.sigmoid(z_hat)
    n_hat = x_n + r * gh_n
    n = torch.tanh(n_hat)
    u = {"gru": 1 - z, "augru": a * (1 - z), "agru": a}[mode]
    h_new = h + u * (n - h)
    want = torch.autograd.grad((h_new * d).sum(), [r_hat, z_hat, x_n, gh_n, h, a], allow_unused=True)
    d_r, d_z, d_n, d_ghn, d_h, d_a = (w if w is not None else torch.zeros(shape, dtype=torch.float64)
                                      for w in want)

    du_dz = {"gru": -torch.ones(shape, dtype=torch.float64), "augru": -a, "agru": torch.zeros(shape)}[mode]
    du_da = {"gru": torch.zeros(shape), "augru": 1 - z, "agru": torch.ones(shape)}[mode]
    arrays = [t.detach().to(torch.float64).numpy() for t in (d, h, r, z, n, u, du_dz, gh_n)]
    out = np.empty((6, *shape))
    _apply(*arrays, out)
    got = torch.from_numpy(out)
    torch.testing.assert_close(got[0], d_r)
    torch.testing.assert_close(got[1], d_z)
    torch.testing.assert_close(got[2], d_n)  # dn̂ = the gradient of gx_n
    torch.testing.assert_close(got[3], d_ghn)  # dn̂ r
    torch.testing.assert_close(got[5], d_h)  # through the interpolation only (gh_n is a leaf here)
    torch.testing.assert_close(got[4] * du_da.double(), d_a)  # the caller's attention part
