"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Implements (section III of the paper):

* embedding: E_t = M_{s_t} * sqrt(d) + P_t (sec. III-B; the sqrt(d) scale as in the authors'
  code), dropout on E, padded positions zeroed. P are learned position embeddings counted
  **from the most recent item** (the last position of a history is always P_{L-1}, the one
  before it P_{L-2}, ...): the authors' left-padded layout, which also makes a user's
  vector independent of how much left padding its batch carries;
* ``n_blocks`` self-attention blocks (eq. 1-4), each S = SA(E) with a causal mask (position
  t attends to items 1..t only; padding is never a key), then the point-wise FFN
  F = ReLU(S W1 + b1) W2 + b2 with W1, W2 of size d x d (``ff = 0``); residual, layer norm
  and dropout as the paper writes them, g(x) = x + Dropout(g(LayerNorm(x))) (pre-norm,
  sec. III-C), and a final layer norm (the authors' code); ``heads = 1`` is the paper's;
* prediction with the shared item embedding (sec. III-D, "shared item embedding"):
  r_{i,t} = F_t . M_i, so scores are inner products and a faiss index serves them.

:meth:`SASRec.sequence_outputs` returns F for every position (B, L, D) (training: one
next-item prediction per position); :meth:`SASRec.user_vectors` is F at the last position of
the left-padded ``history``. The losses (BCE with one sampled negative per position, eq. in
sec. III-E; full or sampled softmax cross-entropy) live in
:mod:`seqrec.train.objectives.sasrec`, selected by ``loss``.

Deviation: the authors' code normalises only the queries of the attention and adds the
residual to the normalised input; this follows the paper's equation (both queries and keys
from LayerNorm(x), residual on x), the usual pre-norm transformer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.embedding import make_table
from seqrec.layers.transformer import SelfAttentionBlock
from seqrec.models.retrieval_base import RetrievalInfo, RetrievalModel

SASREC_LOSSES = ("bce", "ce", "sampled")
_GROUP_WIDTHS = (8, 16, 32)  # user_vectors: histories up to these lengths run cut to that width


@dataclass(frozen=True)
class SASRecConfig:
    dim: int = 64  # d (the paper: 50)
    n_blocks: int = 2  # b (the paper: 2)
    heads: int = 1  # the paper: 1
    ff: int = 0  # FFN inner width; 0 = d (the paper's d x d W1, W2)
    dropout: float = 0.5  # the paper: 0.5 on the sparse Amazon data, 0.2 on MovieLens-1M
    init_std: float = 0.02  # N(0, init_std) for the item and position tables
    # objective settings (seqrec.train.objectives.sasrec):
    # bce = the paper's binary cross-entropy, n_negatives sampled items per position that are not
    # in the user's sequence; ce = softmax cross-entropy over the whole catalogue at every
    # position; sampled = softmax over n_negatives shared items drawn from count^sample_alpha
    # (logQ corrected)
    loss: str = "bce"
    n_negatives: int = 1
    sample_alpha: float = 0.0
    bucket_batches: int = 32  # batches per length-sorted chunk of an epoch (<= 1: random batches)

    def __post_init__(self) -> None:
        if self.loss not in SASREC_LOSSES:
            raise ValueError(f"loss must be one of {list(SASREC_LOSSES)}, got {self.loss!r}")
        if self.dim < 1 or self.n_blocks < 1 or self.heads < 1 or self.n_negatives < 1 or self.ff < 0:
            raise ValueError("dim, n_blocks, heads and n_negatives must be >= 1 and ff >= 0")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init_std <= 0 or self.sample_alpha < 0:
            raise ValueError("init_std must be > 0 and sample_alpha >= 0")


@dataclass(frozen=True)
class SASRecCEConfig(SASRecConfig):
    """SASRec trained with softmax cross-entropy over the whole catalogue (Klenitskiy & Vasilev,
    RecSys 2023: "Turning dross into gold loss: is BERT4Rec really better than SASRec?")."""

    loss: str = "ce"


class SASRec(RetrievalModel):
    def __init__(self, config: SASRecConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        d = config.dim
        self.max_len = info.max_len
        self.item = make_table(info.n_items + 1, d, padding_idx=0)
        self.pos = make_table(self.max_len, d)
        nn.init.normal_(self.item.weight, std=config.init_std)
        nn.init.normal_(self.pos.weight, std=config.init_std)
        with torch.no_grad():
            self.item.weight[0].zero_()
        self.drop = nn.Dropout(config.dropout)
        self.encoder = SelfAttentionBlock(d, config.heads, ff=config.ff or d, dropout=config.dropout,
                                          layers=config.n_blocks, layer_norm=True, norm_first=True,
                                          causal=True)

    def sequence_outputs(self, history: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded item indices -> F (B, L, D), zero at padded positions. Only the
        last ``max_len`` columns are read."""
        history = history[:, -self.max_len:]
        B, L = history.shape
        mask = history > 0  # (B, L)
        pos = torch.arange(self.max_len - L, self.max_len, device=history.device)  # counted from the end
        x = self.item(history) * (self.config.dim ** 0.5) + self.pos(pos)[None]  # (B, L, D)
        x = self.drop(x) * mask.unsqueeze(-1)
        return self.encoder(x, mask)  # (B, L, D)

    #: export only (:mod:`seqrec.serve.export`): every row at the batch's full width, no grouping
    #: by length (its row selection depends on the data, which a traced graph cannot follow)
    dense_export: bool = False

    def user_vectors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """F at the last position (B, D). Rows are run in groups of similar length, each group
        cut to its longest history (positions count from the end and attention is causal, so
        the cut changes nothing; most Amazon histories are far shorter than ``max_len``)."""
        history = batch["history"][:, -self.max_len:]
        if self.dense_export:
            return self.sequence_outputs(history)[:, -1]  # (B, D)
        lens = (history > 0).sum(1)  # (B,)
        out = history.new_zeros(len(history), self.config.dim, dtype=self.item.weight.dtype)
        lo = -1
        for hi in (*(w for w in _GROUP_WIDTHS if w < history.shape[1]), history.shape[1]):
            rows = ((lens > lo) & (lens <= hi)).nonzero().squeeze(1)
            if len(rows):
                out[rows] = self.sequence_outputs(history[rows, -max(hi, 1):])[:, -1]
            lo = hi
        return out

    def item_vectors(self) -> torch.Tensor:
        return self.item.weight  # (N + 1, D)
