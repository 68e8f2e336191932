"""Recurrent purchase predictors: "will this user buy from the category in the next window?".

The user's purchase history is a padded event sequence; each event vector (embeddings of its
ids plus its numbers, :class:`~seqrec.layers.events.EventEncoder`) goes through dropout, a
recurrent network runs over the real events only, and its final state feeds an MLP that
gives one logit:

    x_1..x_n -> RNN -> h_n [; dense] -> MLP (ReLU, dropout) -> logit

* :class:`LSTMClassifier` — LSTM (Hochreiter & Schmidhuber, Neural Computation 1997), the
  "LSTM alone" baseline the CNN+LSTM model is compared with;
* :class:`GRUClassifier` — GRU (Cho et al. 2014) over the events in the manner of GRU4Rec
  (Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016),
  one hidden layer of 100 units, read out at the last event for a binary label instead of a
  next-item ranking.

:class:`PurchaseRNN` is the shared body; :mod:`seqrec.models.cnn_lstm` puts a convolution
and pooling stage in front of it. The models follow the CTR interface (``X(config, schema)``,
batch dict -> :class:`~seqrec.models.ctr_base.ClassifierOutput`), so the CTR trainer trains them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.errors import SchemaError
from seqrec.layers.events import EventEncoder, final_state
from seqrec.layers.mlp import MLP
from seqrec.models.ctr_base import ClassifierOutput
from seqrec.schema import Schema


@dataclass(frozen=True)
class PurchaseRNNConfig:
    embedding_dim: int = 16  # width of every id table
    hidden: int = 64  # recurrent state width
    layers: int = 1  # stacked recurrent layers
    mlp_hidden: tuple[int, ...] = (64,)
    dropout: float = 0.2  # on the event vectors, between recurrent layers, in the MLP
    use_dense: bool = False  # concatenate the dense (aggregate) features into the MLP input
    sparse_grad: bool = False  # embedding tables get sparse gradients (lazy Adam / Adagrad)
    mba_reg: float = 0.0  # λ of the mini-batch aware L2 the CTR trainer applies (0 = off)
    exclude: tuple[str, ...] = ()  # event features the model does not read (e.g. "hist_product")

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.hidden < 1 or self.layers < 1:
            raise ValueError(f"embedding_dim, hidden and layers must be >= 1, got "
                             f"{self.embedding_dim}, {self.hidden}, {self.layers}")
        if any(h < 1 for h in self.mlp_hidden):
            raise ValueError(f"mlp_hidden sizes must be >= 1, got {self.mlp_hidden}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mba_reg < 0:
            raise ValueError(f"mba_reg must be >= 0, got {self.mba_reg}")


@dataclass(frozen=True)
class LSTMClassifierConfig(PurchaseRNNConfig):
    pass


@dataclass(frozen=True)
class GRUClassifierConfig(PurchaseRNNConfig):
    hidden: int = 100


class PurchaseRNN(nn.Module):
    """events -> dropout -> [front stage] -> RNN over real steps -> final state [; dense] -> MLP.

    Subclasses pick the recurrent cell (``rnn_cls``) and may add a front stage that maps
    (x, mask) to a new (x, mask) (see :meth:`build_front`).
    """

    rnn_cls: type[nn.RNNBase] = nn.LSTM

    def __init__(self, config: PurchaseRNNConfig, schema: Schema) -> None:
        super().__init__()
        self.config = config
        self.inp = EventEncoder(schema, config.embedding_dim, sparse=config.sparse_grad, exclude=config.exclude)
        self.drop = nn.Dropout(config.dropout)
        self.front, rnn_in = self.build_front(self.inp.out_dim)
        self.rnn = self.rnn_cls(rnn_in, config.hidden, num_layers=config.layers, batch_first=True,
                                dropout=config.dropout if config.layers > 1 else 0.0)
        self.dense = tuple(f.name for f in schema.of_kind("dense")) if config.use_dense else ()
        if config.use_dense and not self.dense:
            raise SchemaError("use_dense is set but the schema has no dense features")
        dense_dim = sum(schema.feature(n).dim for n in self.dense)
        self.mlp = MLP(config.hidden + dense_dim, config.mlp_hidden, "relu", config.dropout, out_dim=1)

    def build_front(self, in_dim: int) -> tuple[nn.Module | None, int]:
        """The stage between event vectors and the RNN, and its output width (none here)."""
        return None, in_dim

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ClassifierOutput:
        x, mask = self.inp(batch)  # (B, T, E), (B, T)
        x = self.drop(x)  # padded positions stay 0
        if self.front is not None:
            x, mask = self.front(x, mask)  # (B, T', C), (B, T')
        h = final_state(self.rnn, x, mask)  # (B, H)
        if self.dense:
            h = torch.cat([h, *(batch[n].to(h.dtype) for n in self.dense)], 1)  # (B, H + F)
        return ClassifierOutput(self.mlp(h).squeeze(-1))  # (B,)


class LSTMClassifier(PurchaseRNN):
    """Event vectors -> LSTM -> final hidden state -> MLP -> purchase logit."""

    rnn_cls = nn.LSTM


class GRUClassifier(PurchaseRNN):
    """GRU4Rec-style: event vectors -> GRU (100 units) -> final state -> MLP -> purchase logit."""

    rnn_cls = nn.GRU
