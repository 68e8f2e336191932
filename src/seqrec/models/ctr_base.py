"""What every CTR model shares: the config fields, the output, field embeddings for baselines.

Every CTR model is ``X(config, schema)`` and maps a batch (dict of tensors, see
:mod:`seqrec.data.samples`) to :class:`ClassifierOutput`: click logits (B,) and, for DIEN, the
auxiliary loss. The mini-batch aware L2 (``mba_reg``, DIN sec. 4.2) is applied by the
trainer through ``model.inp.emb.minibatch_l2`` for any model.

Initialisation: embedding rows ~ N(0, ``init_std``) (row 0, padding, stays zero); with
``dense_init_std > 0`` the weight matrices of the hidden MLP layers and recurrences are
drawn from N(0, ``dense_init_std``) instead of torch's defaults (biases keep theirs) —
DeepCTR-Torch's ``init_std`` recipe, used by the ``*-paper`` variants.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqrec.layers.embedding import make_table
from seqrec.layers.mlp import ACTIVATIONS
from seqrec.models.ctr_inputs import CTRInputs
from seqrec.schema import Schema


@dataclass(frozen=True)
class CTRConfig:
    embedding_dim: int = 18
    mlp_hidden: tuple[int, ...] = (200, 80)
    mlp_act: str = "prelu"  # relu | prelu | prelu_shared | dice
    dropout: float = 0.0
    mba_reg: float = 0.0  # λ of the mini-batch aware regulariser (0 = off)
    # embedding tables get sparse gradients: the optimiser then updates only the rows a
    # batch uses (lazy Adam / Adagrad), instead of a pass over every table each step
    sparse_grad: bool = True
    # a learned scalar per candidate item added to the logit (the sequence models: DIN,
    # DIEN, DSIN, BST, the sum-pooled MLP), as the DIN authors' code does (``item_b``);
    # Wide&Deep / DeepFM / DLRM carry such terms in their first-order part already
    item_bias: bool = True
    # DIN / DIEN: also feed the final MLP the sum-pooled history Σ e_t and its product with
    # the candidate e_a ⊙ Σ e_t, as the authors' released code does (DIEN repository:
    # Model_DIN and DIEN, ``item_his_eb_sum`` and ``item_eb * item_his_eb_sum``)
    sum_product: bool = True
    init_std: float = 1e-2  # embedding rows ~ N(0, init_std)
    dense_init_std: float = 0.0  # > 0: hidden MLP / recurrent weights ~ N(0, it); 0: torch's init

    def __post_init__(self) -> None:
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")
        acts = [a for a in ACTIVATIONS if a not in ("sigmoid", "none")]
        if self.mlp_act not in acts:
            raise ValueError(f"mlp_act must be one of {acts}, got {self.mlp_act!r}")
        if not 0 <= self.dropout < 1 or self.mba_reg < 0:
            raise ValueError("dropout must be in [0, 1) and mba_reg >= 0")
        if self.init_std <= 0 or self.dense_init_std < 0:
            raise ValueError(f"init_std must be > 0 and dense_init_std >= 0, got {self.init_std}, "
                             f"{self.dense_init_std}")


@dataclass
class ClassifierOutput:
    """What a binary classifier (every CTR and neural purchase model) returns: the logits, and
    an auxiliary loss when the model has one (DIEN)."""

    logits: torch.Tensor  # (B,)
    aux_loss: torch.Tensor | None = None


def ctr_inputs(config: CTRConfig, schema: Schema) -> CTRInputs:
    """The embedding tables and field bookkeeping a CTR model is built on, as configured."""
    return CTRInputs(schema.with_dim(config.embedding_dim), sparse=config.sparse_grad,
                     init_std=config.init_std)


def normal_weights_(std: float, *modules: torch.nn.Module) -> None:
    """Redraw the ``weight`` matrices of the given Linear / RNN modules from N(0, std)
    (biases untouched); a no-op for ``std == 0``."""
    if std <= 0:
        return
    with torch.no_grad():
        for m in modules:
            for name, p in m.named_parameters():
                if name.rsplit(".", 1)[-1].startswith("weight") and p.dim() == 2:
                    p.normal_(0.0, std)


def field_embeddings(inp: CTRInputs, batch) -> torch.Tensor:
    """(B, F, D): every sparse feature, plus each history feature mean-pooled over its real
    positions — the fields of the non-sequence baselines (Wide&Deep, DeepFM, DLRM)."""
    emb = inp.emb
    vecs = [emb.lookup(batch, n) for n in (*inp.f.targets, *inp.f.others)]
    mask = (batch[inp.first_hist] != 0).unsqueeze(-1)  # (B, T, 1)
    n = mask.sum(1).clamp(min=1)
    for h in inp.f.history:
        vecs.append((emb.lookup(batch, h) * mask).sum(1) / n)
    return torch.stack(vecs, 1)


def dense_input(inp: CTRInputs, batch) -> torch.Tensor | None:
    if not inp.f.dense:
        return None
    return torch.cat([batch[n] for n in inp.f.dense], 1)


class ItemBias(torch.nn.Module):
    """b_item[candidate]: one scalar per row of the first target feature's table."""

    def __init__(self, inp) -> None:
        super().__init__()
        self.name = inp.f.targets[0]
        rows = inp.schema.table(inp.schema.feature(self.name).table).rows
        self.b = make_table(rows, 1, sparse=inp.emb.sparse)
        torch.nn.init.zeros_(self.b.weight)

    def forward(self, batch) -> torch.Tensor:
        return self.b(batch[self.name]).squeeze(-1)


def add_item_bias(model: torch.nn.Module, logits: torch.Tensor, batch) -> torch.Tensor:
    bias = getattr(model, "item_bias", None)
    return logits if bias is None else logits + bias(batch)


def sum_product(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[Σ_t e_t, e_a ⊙ Σ_t e_t] over the real behaviours: (B, D), (B, T, D) -> (B, 2D)."""
    s = (k * mask.unsqueeze(-1)).sum(1)
    return torch.cat([s, q * s], 1)
