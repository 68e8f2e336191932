"""MIND: Multi-Interest Network with Dynamic Routing (Li et al., CIKM 2019).

A user is several interest vectors, extracted from the behaviour history by behaviour-to-interest
dynamic routing (:mod:`seqrec.layers.routing`, sec. 4.3, eqs. 3-6 and 9, Algorithm 1):

1. embedding layer: the history's item embeddings e_i (the same table scores the labels, as in
   the paper's sec. 4.2; item side features are not in our data);
2. multi-interest extractor: B2I routing -> K interest capsules, K'_u of them used (eq. 9);
3. H: each capsule, concatenated with the user-feature embeddings (where the data has them,
   sec. 4.2), goes through the same ReLU layers (``hidden``), then a linear layer to ``dim``
   (deviation: the paper draws ReLU layers only; a linear last layer lets the inner products
   with the item vectors take either sign; ``hidden = []`` without user features uses the
   capsules themselves);
4. training: label-aware attention (eq. 10, power p) turns the interests into one vector per
   example, v_u = V_u softmax(pow(V_u^T e_label, p)), scored by sampled softmax with logQ over
   the catalogue (eq. 11-12; :mod:`seqrec.train.objectives.mind`);
5. serving: every used interest scores the catalogue and an item keeps its best interest's score
   (the base class's ``score_all``); with an index each interest queries it and the lists are
   merged by score, which gives the same top-K (sec. 4.5).

``extractor = "mean"`` replaces the routing with the mean of the history embeddings (one
interest): the YouTube-DNN-like reference trained by the same objective on the same examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.embedding import make_table
from seqrec.layers.mlp import MLP
from seqrec.layers.routing import B2IRouting, label_aware_attention
from seqrec.models.retrieval_base import RetrievalInfo, RetrievalModel


@dataclass(frozen=True)
class MINDConfig:
    dim: int = 64
    n_interests: int = 4  # K, the most interests a user gets
    iterations: int = 3  # routing rounds r
    sigma: float = 1.0  # routing logits start from N(0, sigma^2)
    dynamic_interests: bool = True  # K'_u of eq. 9 (False: always K)
    detach_routing: bool = False  # stop gradients through the routing rounds but the last
    eval_seed: int = 0  # seed of the eval-mode routing logits
    # the bilinear map S starts as the identity (else N(0, 1 / dim)); chosen on Beauty validation
    s_identity_init: bool = True
    extractor: str = "routing"  # routing | mean (one interest: the mean of the history)
    hidden: tuple[int, ...] = ()  # H: ReLU layers applied to every interest
    dropout: float = 0.2  # on the history embeddings and after each hidden layer
    feature_dim: int = 16  # per user feature (data with features only)
    use_features: bool = True
    init_std: float = 0.05  # item embeddings
    label_power: float = 2.0  # p of eq. 10
    label_attention: str = "power"  # power (eq. 10) | scaled (softmax(p s)); see label_aware_attention
    # objective (sampled softmax with logQ, shared with YouTube DNN)
    n_negatives: int = 1000
    sample_alpha: float = 0.0  # negatives drawn from count^alpha
    logq: bool = True
    in_batch: bool = False
    # logits / temperature: squashed interests have norm < 1, so at 1.0 the logits stay small and
    # training crawls (Beauty validation HR@20 after 2 epochs: 0.061 at 1.0, 0.115 at 0.1)
    temperature: float = 0.2

    def __post_init__(self) -> None:
        if min(self.dim, self.n_interests, self.iterations, self.n_negatives, self.feature_dim) < 1:
            raise ValueError("dim, n_interests, iterations, n_negatives and feature_dim must be >= 1")
        if self.sigma < 0 or self.init_std <= 0 or self.temperature <= 0 or self.label_power < 0:
            raise ValueError("sigma and label_power must be >= 0, init_std and temperature > 0")
        if self.extractor not in ("routing", "mean"):
            raise ValueError(f"extractor must be 'routing' or 'mean', got {self.extractor!r}")
        if self.label_attention not in ("power", "scaled"):
            raise ValueError(f"label_attention must be 'power' or 'scaled', got {self.label_attention!r}")
        if self.label_attention == "power" and self.label_power != int(self.label_power):
            raise ValueError(f"label_attention 'power' needs a whole-number label_power, got {self.label_power}")
        if any(h < 1 for h in self.hidden):
            raise ValueError("hidden sizes must be >= 1")


class MIND(RetrievalModel):
    multi_interest = True

    def __init__(self, config: MINDConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        d = config.dim
        self.item = make_table(info.n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item.weight, std=config.init_std)
        with torch.no_grad():
            self.item.weight[0].zero_()
        self.n_interests = config.n_interests if config.extractor == "routing" else 1
        self.routing = (B2IRouting(d, d, config.n_interests, config.iterations, config.sigma,
                                   config.dynamic_interests, config.detach_routing, config.eval_seed,
                                   config.s_identity_init)
                        if config.extractor == "routing" else None)
        self.features = sorted(info.feature_sizes) if config.use_features else []
        self.feat = nn.ModuleDict({k: make_table(info.feature_sizes[k], config.feature_dim)
                                   for k in self.features})
        in_dim = d + config.feature_dim * len(self.features)
        self.tower = (MLP(in_dim, config.hidden, "relu", config.dropout, out_dim=d)
                      if config.hidden or self.features else nn.Identity())
        self.drop = nn.Dropout(config.dropout)

    def _extract(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, D) capsules and (B, K) mask from (B, L) item indices."""
        mask = history > 0  # (B, L)
        emb = self.drop(self.item(history))  # (B, L, D)
        if self.routing is not None:
            return self.routing(emb, mask)
        m = mask.unsqueeze(-1).to(emb.dtype)
        mean = (emb * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D)
        return mean[:, None], torch.ones(len(history), 1, dtype=torch.bool, device=history.device)

    def interests(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, D) interest vectors after H and the (B, K) mask of those in use."""
        caps, mask = self._extract(batch["history"])
        if self.features:
            f = torch.cat([self.feat[k](batch[f"feat_{k}"]) for k in self.features], dim=-1)  # (B, F)
            caps = torch.cat([caps, f[:, None].expand(-1, caps.shape[1], -1)], dim=-1)  # (B, K, D + F)
        return self.tower(caps), mask

    def user_vectors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.interests(batch)[0]  # (B, K, D)

    def interest_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        history = batch["history"]
        if self.routing is None:
            return torch.ones(len(history), 1, dtype=torch.bool, device=history.device)
        return self.routing.interest_mask(history > 0)  # (B, K)

    def item_vectors(self) -> torch.Tensor:
        return self.item.weight  # (N + 1, D)

    def train_user_vector(self, batch: Mapping[str, torch.Tensor], target_vectors: torch.Tensor) -> torch.Tensor:
        """(B, D) label-aware user vectors (eq. 10) for (B, D) label item vectors (training only)."""
        v, mask = self.interests(batch)
        return label_aware_attention(v, mask, target_vectors, self.config.label_power, self.config.label_attention)
