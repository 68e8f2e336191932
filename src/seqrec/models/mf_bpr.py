"""MF-BPR: matrix factorisation trained with Bayesian personalised ranking.

Rendle et al., "BPR: Bayesian personalized ranking from implicit feedback", UAI 2009: score
x_ui = <p_u, q_i> (eq. 6 with MF), loss -ln sigma(x_ui - x_uj) over (u, i, j) triples with j a
sampled unobserved item, plus L2 on the parameters a triple uses (the lambda terms of the BPR-Opt
criterion, eq. 4), applied per batch as in LightGCN's and BARS's MF-BPR. The objective is
:class:`seqrec.train.objectives.pairs.BPRPairs`; serving is the user vector against the item
vectors (an inner product, so a faiss index serves it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.embedding import make_table
from seqrec.models.retrieval_base import RetrievalInfo, RetrievalModel


@dataclass(frozen=True)
class MFBPRConfig:
    dim: int = 64
    reg: float = 1e-4  # L2 weight on the user / item rows a batch uses (BPR-Opt's lambda)
    n_negatives: int = 1  # sampled negatives per positive (objective setting)
    # True: the n_negatives items are drawn once per batch and every positive of the batch is
    # ranked against all of them (one (B, S) matrix product instead of B * S gathered rows)
    shared_negatives: bool = False
    # sparse embedding gradients: the optimiser touches only the rows a batch uses (train.optimizer
    # "adam" becomes torch's SparseAdam, the lazy Adam); worth it for small batches
    sparse: bool = False
    init_std: float = 0.1

    def __post_init__(self) -> None:
        if self.dim < 1 or self.n_negatives < 1:
            raise ValueError("dim and n_negatives must be >= 1")
        if self.reg < 0 or self.init_std <= 0:
            raise ValueError("reg must be >= 0 and init_std > 0")


class MFBPR(RetrievalModel):
    needs_user = True  # scores known users only (a user embedding)

    def __init__(self, config: MFBPRConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.user = make_table(info.n_users, config.dim, sparse=config.sparse)
        self.item = make_table(info.n_items + 1, config.dim, padding_idx=0, sparse=config.sparse)
        nn.init.normal_(self.user.weight, std=config.init_std)
        nn.init.normal_(self.item.weight, std=config.init_std)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def user_vectors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.user(batch["user"])  # (B, D)

    def item_vectors(self) -> torch.Tensor:
        return self.item.weight  # (N + 1, D)

    def item_rows(self, items: torch.Tensor) -> torch.Tensor:
        """(..., D) vectors of ``items`` (...,), through the table (sparse gradients when configured)."""
        return self.item(items)

    def regularization(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """lambda * (|p_u|^2 + |q_i|^2 + |q_j|^2) / 2, averaged over the batch's triples."""
        u = self.user(batch["user"])
        i = self.item(batch["target"])
        j = self.item(batch["neg"])  # (B, S, D), or (S, D) when the batch shares its negatives
        sq = u.pow(2).sum(-1) + i.pow(2).sum(-1) + j.pow(2).sum(-1).mean(-1)
        return self.config.reg * 0.5 * sq.mean()
