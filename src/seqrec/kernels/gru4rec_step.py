"""GRU4Rec's training step without autograd: forward, hand-written backward, row-wise update.

A session-parallel step is a handful of small dense matmuls (B = 80 lanes,
224 units, ~2,100 scored items). Driven through autograd the step was
dominated by graph bookkeeping, gradient accumulation into gathered rows,
bool masks and a sort to find the distinct rows (profiled: ~12.7 ms a step,
of which the matmuls took ~2 ms). Here the same step is written out:

forward (per GRU layer, torch's gate order r, z, n; one-step truncated BPTT)
    gx = W x + b,  gh = U h + c,  r = σ(gx_r + gh_r),  z = σ(gx_z + gh_z)
    n = tanh(gx_n + r ⊙ gh_n),   h' = n + z ⊙ (h - n)
    (the gate math in one numba pass with float32 sigmoid / tanh: :mod:`seqrec.kernels.gru`)
    o = dropout(h') is the layer's output and also the state carried to the next step
    S = o Wyᵀ + by  over the M = B + n_sample output rows,  A = final_act(S)
backward (closed forms of :func:`seqrec.losses.sampled.loss_and_grad`; BPR-max
with the activation and its backward in one numba pass, :mod:`seqrec.kernels.bpr_max`;
L = the lanes' summed loss / ``batch_size``, the configured one, not the live lanes)
    dS = dL/dA ⊙ final_act'(S);  do = dS Wy;  dWy = dSᵀ o;  dby = Σ_b dS
    dn = dh' ⊙ (1 - z),  dz = dh' ⊙ (h - n),  dn̂ = dn ⊙ (1 - n²)
    dr̂ = dn̂ ⊙ gh_n ⊙ r(1 - r),  dẑ = dz ⊙ z(1 - z)
    dgx = [dr̂, dẑ, dn̂],  dgh = [dr̂, dẑ, dn̂ ⊙ r],  dW = dgxᵀ x,  dU = dghᵀ h,  dx = dgx W
    (dgx and dgh in one numba pass, bit-identical to the torch ops: :mod:`seqrec.kernels.gru`)
update
    the item-table gradients, one row per use (output rows, and the input rows
    where the table is shared), go to the optimiser's ``step_scatter_bound``: a numba
    kernel sums the uses of each distinct row (no sort) and updates exactly
    those rows, and the bias of the scored ones (an item that is only an input
    has no bias term); the dense GRU weights go through ``step_bound``.

glue
    the step sees the model only through ``GRU4Rec.fast_path_params()`` (a
    :class:`~seqrec.models.gru4rec.GRU4RecFastPath`: the item tables, the GRU
    layers' parameters, the dropout pool and rates, the final activation), taken
    once by the trainer; the loss settings come from the run's ``[loss]`` section.
    It binds its parameters to the optimiser once (numpy views of the
    parameters, their state and fixed dense-gradient buffers, rebuilt after a
    resume loads new state), keeps the GRU layers' parameters in a list, makes
    each dropout mask and the masked activation in one numba pass
    (``PooledDropout.apply``) and reuses the BPR-max scratch. Per step that
    replaced ~70 Python-level lookups and ~12 small torch dispatches; the
    trained parameters were bit-identical to the step before it. Measured with a scratch
    harness that alternates the old and the new step every step (ABBA, 4,000
    steps, diginetica, the speed benchmark's settings): median 6.15 -> 5.85 ms a
    step (mean 6.36 -> 6.03).

bfloat16 output layer (``train.matmul_dtype = "bfloat16"``, opt-in)
    the three output-layer products (S, do, dWy: ~2/3 of the step's multiply-adds)
    take o, Wy and dS rounded to bfloat16 and run oneDNN's bf16 kernels (fp32
    accumulation, bf16 result; on this AVX512-BF16 CPU 245-255 us each against
    414-518 us in float32, isolated). Their results are widened back to float32;
    parameters, optimiser state, the GRU and evaluation stay float32. This is
    mixed-precision training, a deliberate deviation from the reference (which
    computes in float32): the scores carry ~3 significant digits. Without bf16
    instructions it is slower, not faster (oneDNN held to AVX512_CORE with
    ``ONEDNN_MAX_CPU_ISA``: the three products 3.6-3.7 ms against 1.8-1.9 ms).

With the default float32 it is numerically the autograd step, to float rounding
(``tests/test_fused_step.py`` compares the updated parameters of both for every
embedding, loss and final activation), consumes the dropout pool in the same order, and uses the same
optimiser object, so checkpoints and resume are shared. HRNN (whose session
start depends on the user GRU) keeps the autograd step.
"""

from __future__ import annotations

import numpy as np
import torch

from seqrec.kernels.bpr_max import BprMaxWork, bpr_max_from_scores
from seqrec.kernels.gru import gru_cell_backward, gru_cell_forward
from seqrec.kernels.optim import ScatterScratch
from seqrec.losses.sampled import loss_and_grad
from seqrec.models.gru4rec import GRU4RecFastPath

_EMPTY = np.empty((0, 0), dtype=np.float32)


class FusedGRU4RecStep:
    """Callable ``(inputs, targets, samples, hidden, log_q) -> (loss, new hidden)``.

    A training step: dropout is applied at the configured rates (the trainer keeps the model in
    training mode while it calls the step).
    """

    def __init__(self, params: GRU4RecFastPath, optimizer: torch.optim.Optimizer, loss: str,
                 bpreg: float = 0.0, logq: float = 0.0, bf16: bool = False,
                 batch_size: int | None = None) -> None:
        """``params``: ``GRU4Rec.fast_path_params()``, the only view of the model the step has;
        ``loss``, ``bpreg``, ``logq``: the ``[loss]`` settings; ``batch_size``: the loss gradient
        is the rows' sum over it (None: over the live lanes)."""
        self.p = params
        self.opt = optimizer
        self.loss = loss
        self.bpreg = bpreg
        self.logq = logq
        self.bf16 = bf16  # the bfloat16 output layer (train.matmul_dtype, validated by TrainConfig)
        self.norm = batch_size
        n_items = params.item_out.shape[0]
        self._scratch_out = ScatterScratch(n_items)
        self._scratch_in = ScatterScratch(n_items)
        self._grad = torch.empty(0)  # (K, H_L) per-use gradients of item_out rows
        self._bgrad = torch.empty(0)  # (K,) per-use gradients of item_bias rows
        self._bpr_work = BprMaxWork()
        # per GRU layer (w_in, b_in, w_hh, b_hh), looked up once (nn.Module attribute access per step
        # was measurable); the dense gradients are written into fixed buffers the optimiser is bound to
        self._layers = list(params.layers)
        dense = [p for layer in self._layers for p in layer]
        self._dgrad = {p: torch.zeros_like(p) for p in dense}
        self._dense = optimizer.bind(dense, [self._dgrad[p] for p in dense])
        self._rows_out = optimizer.bind([params.item_out, params.item_bias])
        self._rows_in = optimizer.bind([params.item_in]) if params.item_in is not None else None

    def _buffers(self, k: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._grad.shape[0] < k:
            self._grad = torch.empty(k, d)
            self._bgrad = torch.zeros(k)
        return self._grad[:k], self._bgrad[:k]

    @torch.no_grad()
    def __call__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        samples: torch.Tensor,
        hidden: list[torch.Tensor],
        log_q: torch.Tensor | None = None,
    ) -> tuple[float, list[torch.Tensor]]:
        m = self.p
        drop = m.dropout
        shared = m.item_in is None  # constrained: the inputs' rows are output rows too
        # (M,) targets first, then shared samples; with a shared table the inputs follow, for the update
        idx = torch.cat([targets, samples, inputs] if shared else [targets, samples])
        M, B = len(targets) + len(samples), len(inputs)
        out_items = idx[:M]
        w_out = m.item_out.index_select(0, out_items)  # (M, H_L)
        b_out = m.item_bias.index_select(0, out_items)  # (M,)
        x = m.input_table.index_select(0, inputs)  # (B, D) or (B, 3H) for one-hot
        mask_e = None
        if m.dropout_embed > 0:
            x, mask_e = drop.apply(x, m.dropout_embed)
        saved = []  # per layer: (layer input, h, [r, z], n, gh, hidden-dropout mask)
        new_hidden = []
        for i, h in enumerate(hidden):
            H = h.shape[1]
            w_in, b_in, w_hh, b_hh = self._layers[i]
            # (B, 3H); one-hot input: x already holds the gathered rows of W
            gx = torch.addmm(b_in, x, w_in.t()) if w_in.numel() else x + b_in
            gh = torch.addmm(b_hh, h, w_hh.t())  # (B, 3H)
            B_ = h.shape[0]
            rz, n, h_new = torch.empty(B_, 2 * H), torch.empty(B_, H), torch.empty(B_, H)
            gru_cell_forward(gx.numpy(), gh.numpy(), h.numpy(), rz.numpy(), n.numpy(), h_new.numpy())
            mask_h = None
            out = h_new
            if m.dropout_hidden > 0:
                out, mask_h = drop.apply(h_new, m.dropout_hidden)
            new_hidden.append(out)  # the dropped-out output is the carried state (as the reference)
            saved.append((x, h, rz, n, gh, mask_h))
            x = out
        o = x  # (B, H_L)
        if self.bf16:  # bf16 inputs, fp32 accumulation; result widened back to fp32
            o_h, w_h = o.bfloat16(), w_out.bfloat16()
            S = torch.mm(o_h, w_h.t()).float().add_(b_out)  # (B, M)
        else:
            S = torch.addmm(b_out, o, w_out.t())  # (B, M)
        act = m.final_act
        if self.loss == "bpr-max" and S.shape[1] >= 2:  # one numba pass: act, loss, act's backward
            loss, dS = bpr_max_from_scores(S, act, self.bpreg, self._bpr_work, norm=self.norm)
        else:
            A = act.forward_(S)  # S may be overwritten where the backward only needs A
            loss, dA = loss_and_grad(self.loss, A, bpreg=self.bpreg, logq=self.logq, log_q=log_q,
                                     norm=self.norm)
            dS = act.backward(dA, S, A)
        # output layer; the item_out/bias gradient rows go straight into the update buffers:
        # one row per use (targets and samples, then the inputs when the table is shared)
        grad, bgrad = self._buffers(M + B if shared else M, o.shape[1])
        if self.bf16:
            dS_h = dS.bfloat16()
            d_out = torch.mm(dS_h, w_h).float()  # (B, H_L)
            grad[:M].copy_(torch.mm(dS_h.t(), o_h))  # dWy rows (M, H_L)
        else:
            d_out = dS @ w_out  # (B, H_L)
            torch.mm(dS.t(), o, out=grad[:M])  # dWy rows (M, H_L)
        torch.sum(dS, 0, out=bgrad[:M])  # dby rows (M,)
        # GRU layers, top to bottom
        dg = self._dgrad
        for i in range(len(saved) - 1, -1, -1):
            x_i, h, rz, n, gh, mask_h = saved[i]
            dgx, dgh = torch.empty(gh.shape), torch.empty(gh.shape)  # (B, 3H)
            gru_cell_backward(d_out.numpy(), _EMPTY if mask_h is None else mask_h.numpy(), h.numpy(),
                              rz.numpy(), n.numpy(), gh.numpy(), dgx.numpy(), dgh.numpy())
            w_in, b_in, w_hh, b_hh = self._layers[i]
            torch.sum(dgx, 0, out=dg[b_in])
            torch.mm(dgh.t(), h, out=dg[w_hh])
            torch.sum(dgh, 0, out=dg[b_hh])
            if w_in.numel():
                torch.mm(dgx.t(), x_i, out=dg[w_in])
                d_out = dgx @ w_in  # gradient into the layer's input (B, D)
            else:
                d_out = dgx  # one-hot: gradient of the gathered W rows (B, 3H)
        # parameter updates: dense GRU weights, then exactly the item rows used
        self.opt.step_bound(self._dense)
        if shared:  # constrained: the inputs' rows get their gradient in the same update
            d_x = grad[M:]
            if mask_e is not None:
                torch.mul(d_out, mask_e, out=d_x)
            else:
                d_x.copy_(d_out)
            # the bias gradients cover the M scored uses: an item that is only an input keeps its bias
            self.opt.step_scatter_bound(self._rows_out, idx, grad, self._scratch_out, bgrad[:M])
        else:
            d_x = d_out * mask_e if mask_e is not None else d_out
            self.opt.step_scatter_bound(self._rows_out, out_items, grad, self._scratch_out, bgrad)
            self.opt.step_scatter_bound(self._rows_in, inputs, d_x.contiguous(), self._scratch_in)
        return loss, new_hidden
