"""GRU4Rec: session-based recommendation with a GRU over the session's clicks.

Implements
  * Hidasi, Karatzoglou, Baltrunas, Tikk. "Session-based recommendations with
    recurrent neural networks", ICLR 2016 — GRU over the session, one step per
    event, scores for the next item from the final hidden state, trained with
    session-parallel mini-batches and in-batch negatives;
  * Hidasi & Karatzoglou. "Recurrent neural networks with top-k gains for
    session-based recommendations", CIKM 2018 — extra negatives shared by the
    mini-batch (sampled from supp^alpha), BPR-max / TOP1-max losses, the
    constrained embedding (output weights reused as input embedding) and the
    final activations (elu-a, linear, tanh, ...). The losses live in
    :mod:`seqrec.losses.sampled` (configured by the run's ``[loss]`` section,
    :class:`seqrec.config.LossConfig`); batching in :mod:`seqrec.data.session_parallel`;
    the training step without autograd in :mod:`seqrec.kernels.gru4rec_step`.

Equations (one GRU layer; torch's gate convention):
  r_t = σ(W_r x_t + U_r h_{t-1} + b_r),  z_t = σ(W_z x_t + U_z h_{t-1} + b_z)
  n_t = tanh(W_n x_t + b_n + r_t ⊙ (U_n h_{t-1} + b'_n)),  h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
  score(t, i) = h_t · Wy_i + by_i,  ŷ = final_act(score)

Input embedding options (``embedding``):
  * ``"onehot"``: x_t is the one-hot item vector, so W x_t is row ``item`` of an
    (n_items, 3H) matrix — gathered, never materialised;
  * ``"separate"``: an (n_items, embedding_dim) table, then W (embedding_dim → 3H);
  * ``"constrained"``: x_t = Wy_item (the output weights are the input embedding).

Deliberate deviations: the hidden state is carried across steps but gradients
are not propagated through time (truncated to one step, as in the reference
implementation); ranking uses the pre-activation scores (identical order for
strictly monotonic final activations, and no artificial ties for relu).
As in the reference implementation, a layer's output after hidden dropout is
also the state carried to the next event while training, and each of the three
gate matrices of a GRU weight gets the Glorot bound of its own (H, D) shape.

Rows 0 (padding) and 1 (OOV) of every item table are zero, so an unknown item
enters as an all-zero input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.layers.activation import FinalActivation
from seqrec.layers.dropout import PooledDropout

EMBEDDINGS = ("onehot", "separate", "constrained")


@dataclass(frozen=True)
class GRU4RecConfig:
    layers: tuple[int, ...] = (100,)
    embedding: str = "constrained"  # onehot | separate | constrained
    embedding_dim: int = 0  # for embedding="separate" (0 = layers[0])
    dropout_embed: float = 0.0
    dropout_hidden: float = 0.0
    final_act: str = "linear"  # linear | elu-<a> | tanh | relu | leaky-<a> (applied by forward())

    def __post_init__(self) -> None:
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {self.embedding!r}")
        if not self.layers or min(self.layers) <= 0:
            raise ValueError(f"layers must be positive sizes, got {self.layers}")
        FinalActivation(self.final_act)  # validates the name


@dataclass(frozen=True)
class GRU4RecFastPath:
    """What GRU4Rec's fused training step (:mod:`seqrec.kernels.gru4rec_step`) uses of the model.

    The parameters themselves (the step reads them and the optimiser updates them in place),
    the modules it applies and the two dropout rates; see :meth:`GRU4Rec.fast_path_params`.
    """

    item_out: nn.Parameter  # Wy (N, H_L): output rows, and the input rows when constrained
    item_bias: nn.Parameter  # by (N,)
    item_in: nn.Parameter | None  # (N, D) or one-hot (N, 3H); None = constrained (inputs are Wy rows)
    layers: tuple[tuple[nn.Parameter, nn.Parameter, nn.Parameter, nn.Parameter], ...]  # (w_in, b_in,
    # w_hh, b_hh) per GRU layer; w_in is empty (numel 0) for a one-hot first layer
    dropout: PooledDropout
    dropout_embed: float
    dropout_hidden: float
    final_act: FinalActivation

    @property
    def input_table(self) -> nn.Parameter:
        """The table input items are looked up in (``item_out`` when constrained)."""
        return self.item_out if self.item_in is None else self.item_in


def _gru_cell_gates(
    gx: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """GRU cell given the input-side gate pre-activations gx (B, 3H) (one-hot input)."""
    gh = F.linear(h, w_hh, b_hh)  # (B, 3H)
    xr, xz, xn = gx.chunk(3, 1)
    hr, hz, hn = gh.chunk(3, 1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n)  # (1 - z) n + z h


def _init_uniform(t: torch.Tensor, fan_in: int, fan_out: int, gen: torch.Generator | None) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        t.uniform_(-bound, bound, generator=gen)


class GRU4Rec(nn.Module):
    """Multi-layer GRU over item sequences with sampled-output scoring (see module doc)."""

    def __init__(self, config: GRU4RecConfig, n_items: int, extra_input: int = 0) -> None:
        """``extra_input`` > 0 adds that many input features next to the item (HRNN's user state)."""
        super().__init__()
        self.config = config
        self.n_items = n_items
        H = config.layers
        self.out_dim = H[-1]
        # output weights and bias, one row per item (rows 0/1 = padding/OOV stay 0)
        self.item_out = nn.Parameter(torch.empty(n_items, self.out_dim))  # Wy (N, H_L)
        self.item_bias = nn.Parameter(torch.zeros(n_items))  # by (N,)
        if config.embedding == "onehot":
            self.item_in = nn.Parameter(torch.empty(n_items, 3 * H[0]))  # rows of W x (N, 3H)
            in_dim = None
        elif config.embedding == "separate":
            dim = config.embedding_dim or H[0]
            self.item_in = nn.Parameter(torch.empty(n_items, dim))  # (N, E)
            in_dim = dim
        else:
            self.register_parameter("item_in", None)
            in_dim = self.out_dim
        self.w_in = nn.ParameterList()  # input->gates for each layer (3H, D_in)
        self.b_in = nn.ParameterList()
        self.w_hh = nn.ParameterList()  # hidden->gates (3H, H)
        self.b_hh = nn.ParameterList()
        if extra_input and in_dim is None:
            raise ValueError("extra input features need embedding='separate' or 'constrained'")
        prev = in_dim + extra_input if in_dim is not None else None
        self.extra_input = extra_input
        for h in H:
            if prev is None:  # one-hot first layer: the gathered rows are W x
                self.w_in.append(nn.Parameter(torch.empty(0)))
            else:
                self.w_in.append(nn.Parameter(torch.empty(3 * h, prev)))
            self.b_in.append(nn.Parameter(torch.zeros(3 * h)))
            self.w_hh.append(nn.Parameter(torch.empty(3 * h, h)))
            self.b_hh.append(nn.Parameter(torch.zeros(3 * h)))
            prev = h
        self.final_act = FinalActivation(config.final_act)
        self.dropout = PooledDropout()
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Uniform(±sqrt(6 / (fan_in + fan_out))) per weight matrix, zero biases.

        The GRU's stacked (3H, D) matrices are three gate matrices of (H, D) each, and
        each gets the bound of its own shape, sqrt(6 / (D + H)) (as the reference
        implementation initialises them), not that of the stacked shape.
        """
        H = self.config.layers
        _init_uniform(self.item_out, self.n_items, self.out_dim, generator)
        with torch.no_grad():
            self.item_bias.zero_()
        if self.item_in is not None:  # one-hot: (N, 3H) = the rows of three (N, H) gate matrices
            gates = 3 if self.config.embedding == "onehot" else 1
            _init_uniform(self.item_in, self.n_items, self.item_in.shape[1] // gates, generator)
        for i, h in enumerate(H):
            if self.w_in[i].numel():
                _init_uniform(self.w_in[i], self.w_in[i].shape[1], h, generator)  # 3 x (H, D)
            _init_uniform(self.w_hh[i], h, h, generator)  # 3 x (H, H)
        with torch.no_grad():
            for p in (self.item_out, self.item_in):
                if p is not None:
                    p[:2].zero_()  # padding and OOV rows

    # -- pieces ------------------------------------------------------------------
    def init_hidden(self, batch: int) -> list[torch.Tensor]:
        return [torch.zeros(batch, h) for h in self.config.layers]

    def input_table(self) -> torch.Tensor:
        """The table input items are looked up in (``item_out`` when constrained)."""
        return self.item_out if self.item_in is None else self.item_in

    def fast_path_params(self) -> GRU4RecFastPath:
        """The parameters and pieces the fused training step needs (the step uses nothing else).

        Only a model without extra inputs has a fast path (HRNN's session GRU trains through
        autograd).
        """
        if self.extra_input:
            raise ValueError("the fused step does not take extra inputs (HRNN uses autograd)")
        cfg = self.config
        layers = tuple((self.w_in[i], self.b_in[i], self.w_hh[i], self.b_hh[i]) for i in range(len(self.w_hh)))
        return GRU4RecFastPath(item_out=self.item_out, item_bias=self.item_bias, item_in=self.item_in,
                               layers=layers, dropout=self.dropout, dropout_embed=cfg.dropout_embed,
                               dropout_hidden=cfg.dropout_hidden, final_act=self.final_act)

    def step(
        self,
        items: torch.Tensor | None,
        hidden: list[torch.Tensor],
        x: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Advance every lane by one event.

        items: (B,) int64 (or ``x``: rows already gathered from :meth:`input_table`);
        hidden: per layer (B, H_l) -> (top output (B, H_L) after dropout, new hidden).
        """
        cfg = self.config
        if x is None:
            x = self.input_table().index_select(0, items)  # (B, D)
        if cfg.dropout_embed > 0 and self.training:
            x = self.dropout(x, cfg.dropout_embed)
        if self.extra_input:
            x = torch.cat([x, extra], 1)  # (B, D + extra)
        new_hidden = []
        for i, h in enumerate(hidden):
            if self.w_in[i].numel() == 0:  # one-hot input: x already holds W x (B, 3H)
                h = _gru_cell_gates(x + self.b_in[i], h, self.w_hh[i], self.b_hh[i])
            else:
                h = torch.gru_cell(x, h, self.w_in[i], self.w_hh[i], self.b_in[i], self.b_hh[i])
            x = h
            if cfg.dropout_hidden > 0 and self.training:
                x = self.dropout(h, cfg.dropout_hidden)
            new_hidden.append(x)  # (B, H_i): the dropped-out output is the carried state
        return x, new_hidden

    def score_all(self, out: torch.Tensor, buffer: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activation scores against the whole catalogue: (B, H) -> (B, N).

        ``buffer`` (at least (B, N) float32, inference only) receives the scores and its first
        B rows are returned: evaluation reuses one buffer instead of allocating ~B*N*4 bytes
        a step.
        """
        if buffer is None:
            return torch.addmm(self.item_bias, out, self.item_out.t())
        return torch.addmm(self.item_bias, out, self.item_out.t(), out=buffer[: len(out)])

    def forward(
        self,
        in_rows: torch.Tensor,
        hidden: list[torch.Tensor],
        out_w: torch.Tensor,
        out_b: torch.Tensor,
        out_cols: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One training step on gathered rows.

        in_rows: (B, D) rows of :meth:`input_table` for the input items;
        out_w (U, H_L), out_b (U,): the ``item_out`` / ``item_bias`` rows of the U
        distinct items scored this step; out_cols (M,): which of the U rows each
        scored column is (targets first, then shared samples)
        -> ((B, M) activated scores, new hidden). The trainer gathers the rows
        so it updates exactly those rows (see :mod:`seqrec.train.rows`).
        """
        out, hidden = self.step(None, hidden, x=in_rows, extra=extra)
        scores = torch.addmm(out_b, out, out_w.t())  # (B, U): each distinct item once
        scores = scores.index_select(1, out_cols)  # (B, M)
        scores = self.final_act(scores)
        return scores, hidden


class GRU4RecScorer:
    """Drives a trained GRU4Rec through :func:`seqrec.evaluate.ranking.evaluate_sessions`."""

    def __init__(self, model: GRU4Rec) -> None:
        self.model = model.eval()
        self.n_items = model.n_items
        self.hidden: list[torch.Tensor] = []
        self.buffer: torch.Tensor | None = None  # set by begin(); None = a fresh tensor per step

    def begin(self, n_lanes: int) -> None:
        self.hidden = self.model.init_hidden(n_lanes)
        # one score buffer for the whole pass: a fresh (B, N) tensor per step costs page
        # faults that measured as long as the matrix product itself on a 2-core VM
        self.buffer = torch.empty(n_lanes, self.n_items)

    @torch.no_grad()
    def step(self, items: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
        """(B, N) scores, valid until the next call (they live in a reused buffer)."""
        keep = (~reset).to(torch.float32).unsqueeze(1)  # (B, 1)
        out, self.hidden = self.model.step(items, [h * keep for h in self.hidden])
        return self.model.score_all(out, self.buffer)  # (B, N)

    def keep(self, lanes: torch.Tensor) -> None:
        self.hidden = [h.index_select(0, lanes) for h in self.hidden]
