"""PinSage: graph convolutions over importance-based item neighbourhoods.

Ying et al., "Graph Convolutional Neural Networks for Web-Scale Recommender Systems", KDD 2018.
What this file computes (the paper's Algorithms 1 and 2):

* input features x_i: a learned id embedding per item. The paper's inputs are visual and text
  features of pins; our datasets have none, so the id embedding stands in (it is the only
  transductive part: an item unseen in training has no input features);
* ``K = layers`` convolutions (Algorithm 1, CONVOLVE), for each item u with neighbours N(u) and
  importance weights alpha (:mod:`seqrec.data.item_graph`, sec. 3.2)::

      n_u = gamma({ReLU(Q h_v + q) | v in N(u)}, alpha)    # importance pooling: weighted mean
      h_u <- ReLU(W [h_u ; n_u] + w)                       # concat with self, dense, ReLU
      h_u <- h_u / ||h_u||_2                               # normalise

* the final dense layers of Algorithm 2 (line 16): z_u = G2 ReLU(G1 h_u^K + g).

The neighbourhoods (top-T items by random-walk visit count and their L1-normalised counts) are
buffers of the model, so a run saves them with the weights; the training objective
(:mod:`seqrec.train.objectives.pinsage`) builds them from the training interactions and sets them
with :meth:`PinSage.set_neighbourhoods` before the first step. A minibatch computes only the
nodes its items need, layer by layer (the "computation graph" of sec. 3.2, with every node
computed once per layer); :meth:`item_vectors` computes all items layer-wise (sec. 3.5's
inference without repeated computation) and is cached in eval mode.

PinSage is an item-to-item model: the paper serves related pins for a query pin. For full
ranking a user is the **mean of the PinSage embeddings of the user's history items**, and an
item's score is the inner product with that mean (so a faiss inner-product index serves it).

Deviation (a setting): ``normalize_output = True`` L2-normalises z as well (the paper's Algorithm 2
leaves z unnormalised; with a fixed margin an unnormalised z can meet the margin by growing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.layers.embedding import make_table
from seqrec.models.retrieval_base import RetrievalInfo, RetrievalModel


@dataclass(frozen=True)
class PinSageConfig:
    dim: int = 64  # embedding, hidden and output size
    layers: int = 2  # K convolutions
    neighbours: int = 10  # T: top-T items by visit count per item
    normalize_output: bool = True  # L2-normalise z (see module docstring)
    init_std: float = 0.1  # of the id embeddings
    # graph (built by the objective from the training interactions; seqrec.data.item_graph)
    n_walks: int = 50  # walks per item
    n_hops: int = 4  # item -> user -> item hops per walk
    restart: float = 0.5  # restart probability before each hop
    # objective (seqrec.train.objectives.pinsage)
    margin: float = 0.1  # max-margin loss, eq. 1
    n_negatives: int = 500  # random negatives shared by a minibatch (sec. 3.3)
    neg_alpha: float = 0.0  # random negatives drawn from count^neg_alpha (0 = uniform, the paper's)
    hard_negatives: int = 0  # most hard negatives per query (0 = none)
    hard_from_epoch: int = 2  # curriculum: from this (1-based) epoch on, hard negatives are added ...
    hard_per_epoch: int = 1  # ... this many more every epoch (the paper: one more per epoch)
    hard_lo: int = 100  # hard negatives: items ranked [hard_lo, hard_hi) by visit count from the query
    hard_hi: int = 500
    eval_chunk: int = 16384  # items per chunk when computing all item vectors

    def __post_init__(self) -> None:
        if self.layers < 0:
            raise ValueError(f"layers must be >= 0 (0 = no convolution, an ablation), got {self.layers}")
        if min(self.dim, self.neighbours, self.n_walks, self.n_hops, self.eval_chunk) < 1:
            raise ValueError("dim, neighbours, n_walks, n_hops and eval_chunk must be >= 1")
        if not 0.0 <= self.restart < 1.0:
            raise ValueError(f"restart must be in [0, 1), got {self.restart}")
        if self.margin < 0 or self.init_std <= 0:
            raise ValueError("margin must be >= 0 and init_std > 0")
        if self.neg_alpha < 0:
            raise ValueError(f"neg_alpha must be >= 0, got {self.neg_alpha}")
        if self.n_negatives < 1 or self.hard_negatives < 0 or min(self.hard_from_epoch, self.hard_per_epoch) < 1:
            raise ValueError("n_negatives must be >= 1, hard_negatives >= 0, hard_from_epoch and hard_per_epoch >= 1")
        if not 0 <= self.hard_lo < self.hard_hi:
            raise ValueError(f"need 0 <= hard_lo < hard_hi, got {self.hard_lo}, {self.hard_hi}")


class PinSageConv(nn.Module):
    """One CONVOLVE step (Algorithm 1) for a set of nodes, given their neighbours' inputs."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)  # Q, q: neighbour transform
        self.w = nn.Linear(2 * dim, dim)  # W, w: after concat with self

    def neighbour_features(self, h_prev: torch.Tensor) -> torch.Tensor:
        """ReLU(Q h_v + q) of every node of the previous layer: (P, D) -> (P, D)."""
        return F.relu(self.q(h_prev))

    def combine(self, h_self: torch.Tensor, f: torch.Tensor, nbr_pos: torch.Tensor,
                nbr_w: torch.Tensor) -> torch.Tensor:
        """h_self (C, D) the output nodes' own inputs; f (P, D) neighbour features; nbr_pos (C, T)
        rows of f; nbr_w (C, T) weights summing to 1 per row (0 without neighbours). -> (C, D) unit rows."""
        n = F.embedding_bag(nbr_pos, f, per_sample_weights=nbr_w, mode="sum")  # (C, D) weighted mean
        h = F.relu(self.w(torch.cat([h_self, n], dim=-1)))  # (C, D)
        return F.normalize(h, dim=-1, eps=1e-12)

    def forward(self, h_prev: torch.Tensor, self_pos: torch.Tensor, nbr_pos: torch.Tensor,
                nbr_w: torch.Tensor) -> torch.Tensor:
        """h_prev (P, D) inputs of the previous layer's nodes; self_pos (C,) and nbr_pos (C, T) their
        rows for the C output nodes and their neighbours. -> (C, D)."""
        return self.combine(h_prev[self_pos], self.neighbour_features(h_prev), nbr_pos, nbr_w)


class PinSage(RetrievalModel):
    def __init__(self, config: PinSageConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        n, d, t = info.n_items + 1, config.dim, config.neighbours
        self.item = make_table(n, d, padding_idx=0)  # input features x_i
        nn.init.normal_(self.item.weight, std=config.init_std)
        with torch.no_grad():
            self.item.weight[0].zero_()
        self.convs = nn.ModuleList(PinSageConv(d) for _ in range(config.layers))
        self.g1 = nn.Linear(d, d)
        self.g2 = nn.Linear(d, d, bias=False)  # z = G2 ReLU(G1 h + g): no bias after G2
        self.register_buffer("nbr", torch.zeros(n, t, dtype=torch.int64))  # (N + 1, T), 0 = none
        self.register_buffer("nbr_w", torch.zeros(n, t))  # (N + 1, T) importance weights
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def set_neighbourhoods(self, neighbours: torch.Tensor, weights: torch.Tensor) -> None:
        """Importance-based neighbourhoods of items 0..N: (N + 1, T) items and weights."""
        if tuple(neighbours.shape) != tuple(self.nbr.shape) or neighbours.shape != weights.shape:
            raise ValueError(f"neighbourhoods must be {tuple(self.nbr.shape)}, got {tuple(neighbours.shape)} "
                             f"and {tuple(weights.shape)}")
        with torch.no_grad():
            self.nbr.copy_(neighbours)
            self.nbr_w.copy_(weights)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        z = self.g2(F.relu(self.g1(h)))  # (M, D)
        return F.normalize(z, dim=-1, eps=1e-12) if self.config.normalize_output else z

    def embed(self, items: torch.Tensor) -> torch.Tensor:
        """(M,) item indices -> (M, D) PinSage embeddings, computing each needed node once per layer."""
        top, inverse = torch.unique(items, return_inverse=True)
        nodes = [top]  # nodes[k]: sorted items needed k layers below the output
        for _ in range(self.config.layers):
            nodes.append(torch.unique(torch.cat([nodes[-1], self.nbr[nodes[-1]].reshape(-1)])))
        nodes.reverse()  # nodes[0]: inputs ... nodes[K]: the items asked for
        where = torch.empty(self.nbr.shape[0], dtype=torch.int64, device=items.device)  # item -> row
        h = self.item(nodes[0])  # (P0, D)
        for k, conv in enumerate(self.convs, 1):
            prev, cur = nodes[k - 1], nodes[k]
            where[prev] = torch.arange(len(prev), device=items.device)
            h = conv(h, where[cur], where[self.nbr[cur]], self.nbr_w[cur])  # (|cur|, D)
        out = self._head(h)[inverse]  # (M, D)
        return out.masked_fill((items == 0)[:, None], 0.0)

    def _all_items(self) -> torch.Tensor:
        """(N + 1, D) embeddings of every item, layer by layer over the whole catalogue."""
        n, step = self.nbr.shape[0], self.config.eval_chunk
        h = self.item.weight  # (N + 1, D)
        for conv in self.convs:
            f = conv.neighbour_features(h)  # (N + 1, D)
            h = torch.cat([conv.combine(h[s:s + step], f, self.nbr[s:s + step], self.nbr_w[s:s + step])
                           for s in range(0, n, step)])  # (N + 1, D)
        z = self._head(h)
        return torch.cat([torch.zeros_like(z[:1]), z[1:]])  # row 0 = padding

    def _weights_key(self) -> tuple:
        return tuple((t.data_ptr(), t._version) for t in self.state_dict(keep_vars=True).values())

    def item_vectors(self) -> torch.Tensor:
        """(N + 1, D) embeddings of all items; in eval mode computed once per weights and cached."""
        if self.training:
            return self._all_items()
        key = self._weights_key()
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._all_items())
        return self._cache[1]

    def user_vectors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the history items' PinSage embeddings (PinSage is item-to-item)."""
        hist = batch["history"]  # (B, L), 0 = padding
        items = self.item_vectors()  # (N + 1, D), row 0 = 0
        count = (hist > 0).sum(1, keepdim=True).clamp(min=1)  # (B, 1)
        return items[hist].sum(1) / count  # (B, D)
