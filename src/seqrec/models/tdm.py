"""TDM: tree-based deep model (Zhu et al., "Learning Tree-based Deep Model for Recommender
Systems", KDD 2018).

The items are the leaves of a binary tree (:mod:`seqrec.models.tdm_tree`), and every node has an
embedding. A deep scorer estimates how much a user is interested in a node; the tree is trained
so that, layer by layer, a node's score ranks like the best of its children (the "max-heap like"
tree, sec. 3.2, eq. 1), so retrieval can walk down the tree with a beam instead of scoring the
whole catalogue.

**Scorer** (sec. 3.3, fig. 2): the history's item embeddings k_t are weighted against the node
embedding q by DIN's activation unit (:class:`seqrec.layers.attention.ActivationUnit`,
w_t = MLP([k_t, q, k_t - q, k_t * q]), no softmax by default), pooled per block of recent
behaviours (``n_windows`` blocks counted from the most recent one; the paper's time windows, here
by position because the user batch carries no times), and an MLP with PReLU maps
[v_1..v_W, q, v_1 * q .. v_W * q] to one logit.

**Embeddings.** The leaves' embeddings are the item embeddings (one table, shared with the
history's items); internal nodes have their own table. Re-clustering the tree
(:meth:`TDM.rebuild_tree`) therefore keeps every item's vector, and the internal nodes restart at
the mean of their new leaves' embeddings.

**Retrieval** (sec. 3.2, algorithm 1): ``search = "beam"`` walks down layer by layer: the layers
with at most ``beam`` nodes are kept whole without scoring; below, the children of the kept nodes
are scored and the top ``beam`` kept; the last layer's top ``beam`` leaves are the result. The
scorer is applied to ``sum over scored layers of (kept nodes' children)`` (user, node) pairs, at
most ``2 * beam`` per layer (:meth:`TDM.beam_search` returns the count). ``score_all`` gives
those ``beam`` leaves their scores and every other item -inf, so the full-ranking metrics apply
unchanged; the protocol's excluded items (the user's history) are masked afterwards, so ``beam``
must be at least K + the number of distinct history items for a user to keep K candidates: the
configs choose it from the history lengths (stated there). ``search = "bruteforce"`` scores every
leaf with the same scorer (the tree's cost made visible: ``tdm-bruteforce``).

Training (:class:`seqrec.train.objectives.tdm.TDMLayerwise`): eq. 3/4, binary cross-entropy with
the target item's ancestor on every layer as positive and ``n_negatives`` nodes per layer drawn
uniformly from that layer's other nodes; the tree is rebuilt from the learned item embeddings
before the epochs in ``rebuild_epochs`` (the paper's alternating learning of model and tree,
sec. 3.4; the first tree is a random order of the items, as the paper's initial tree is random
within categories and our tasks have no categories).

Deviations: windows are position blocks, not time windows; the scorer's output is one logit
(sigmoid) where the paper has a 2-way softmax (the same function); the tree rebuild clusters the
leaf embeddings with balanced 2-means as the paper does, but on our shared item embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.attention import ActivationUnit
from seqrec.layers.embedding import make_table
from seqrec.layers.mlp import ACTIVATIONS, MLP
from seqrec.models.retrieval_base import RetrievalInfo, RetrievalModel
from seqrec.models.tdm_tree import ItemTree

SEARCHES = ("beam", "bruteforce")


@dataclass(frozen=True)
class TDMConfig:
    dim: int = 24  # node / item embedding width (the paper: 24)
    att_hidden: tuple[int, ...] = (32,)  # activation unit hidden layers
    att_act: str = "prelu"
    att_softmax: bool = False  # DIN keeps the attention weights un-normalised
    n_windows: int = 1  # blocks of recent behaviours pooled separately (the paper's time windows)
    hidden: tuple[int, ...] = (64, 32)  # scorer MLP (the paper: 128, 64, 24 with PReLU)
    act: str = "prelu"
    dropout: float = 0.0
    init_std: float = 0.05
    # objective (seqrec.train.objectives.tdm)
    n_negatives: int = 6  # negatives per layer, uniform over the layer's other nodes
    rebuild_epochs: tuple[int, ...] = (1,)  # re-cluster the tree before these epochs (0-based)
    kmeans_iters: int = 10  # 2-means rounds per split when the tree is (re)built
    # retrieval
    search: str = "beam"  # "beam" | "bruteforce"
    beam: int = 100  # nodes kept per layer, and leaves returned
    chunk: int = 1 << 18  # (behaviour, node) pairs scored at once (memory bound of a search)

    def __post_init__(self) -> None:
        if self.dim < 1 or self.n_windows < 1 or self.beam < 1 or self.n_negatives < 1 or self.chunk < 1:
            raise ValueError("dim, n_windows, beam, n_negatives and chunk must be >= 1")
        if self.search not in SEARCHES:
            raise ValueError(f"search must be one of {list(SEARCHES)}, got {self.search!r}")
        for a in (self.att_act, self.act):
            if a not in ACTIVATIONS:
                raise ValueError(f"unknown activation {a!r}; choose one of {list(ACTIVATIONS)}")
        if not 0 <= self.dropout < 1 or self.init_std <= 0:
            raise ValueError("dropout must be in [0, 1) and init_std > 0")
        if any(h < 1 for h in self.att_hidden + self.hidden) or any(e < 0 for e in self.rebuild_epochs):
            raise ValueError("hidden sizes must be >= 1 and rebuild_epochs >= 0")
        if self.kmeans_iters < 0:
            raise ValueError("kmeans_iters must be >= 0")


class TDM(RetrievalModel):
    dot_product = False  # the scorer is a network over (history, node), not an inner product

    def __init__(self, config: TDMConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.tree = ItemTree(info.n_items)
        self.item_emb = make_table(info.n_items + 1, c.dim, padding_idx=0)  # leaves + history
        self.node_emb = make_table(max(self.tree.leaf_start, 1), c.dim)  # internal nodes
        nn.init.normal_(self.item_emb.weight, std=c.init_std)
        nn.init.normal_(self.node_emb.weight, std=c.init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.att = ActivationUnit(c.dim, c.att_hidden, c.att_act, c.att_softmax)
        self.mlp = MLP((2 * c.n_windows + 1) * c.dim, c.hidden, act=c.act, dropout=c.dropout, out_dim=1)
        self.block = math.ceil(info.max_len / c.n_windows)  # behaviours per window
        # the first tree: a random order of the items (re-clustered during training)
        self.tree.set_order(torch.randperm(info.n_items) + 1)

    # -- the scorer ------------------------------------------------------------------------------

    def node_vectors(self, nodes: torch.Tensor) -> torch.Tensor:
        """(...,) node ids -> (..., D): leaves use their item's embedding, internal nodes their own."""
        start = self.tree.leaf_start
        leaf = nodes >= start
        items = self.tree.leaf_item[(nodes - start).clamp(0, self.info.n_items - 1)]
        inner = self.node_emb(nodes.clamp(0, self.node_emb.num_embeddings - 1))
        return torch.where(leaf[..., None], self.item_emb(items), inner)

    def encode_history(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> history embeddings (B, T, D) and mask (B, T) (True = a real behaviour)."""
        hist = batch["history"]  # (B, T), left-padded
        return self.item_emb(hist), hist > 0

    def _windows(self, t: int, device) -> torch.Tensor:
        """(T, W) one-hot window of every position, counted from the most recent (the right)."""
        back = torch.arange(t - 1, -1, -1, device=device)  # positions from the right end
        win = (back // self.block).clamp(max=self.config.n_windows - 1)
        return nn.functional.one_hot(win, self.config.n_windows).float()

    def node_logits(self, k: torch.Tensor, mask: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """History k (B, T, D) with mask (B, T), nodes (B, C) ids >= 0 -> logits (B, C)."""
        q = self.node_vectors(nodes)  # (B, C, D)
        w = self.att.weights_many(q, k, mask)  # (B, C, T)
        if self.config.n_windows == 1:
            v = torch.bmm(w, k)[:, :, None, :]  # (B, C, 1, D)
        else:
            win = self._windows(k.shape[1], k.device)  # (T, W)
            v = torch.einsum("bct,tw,btd->bcwd", w, win, k)  # (B, C, W, D)
        x = torch.cat([v.flatten(2), q, (v * q[:, :, None, :]).flatten(2)], dim=-1)  # (B, C, (2W+1)D)
        return self.mlp(x).squeeze(-1)  # (B, C)

    def _chunked_logits(self, k: torch.Tensor, mask: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """node_logits in pieces of about ``config.chunk`` (behaviour, node) pairs (no grad use)."""
        longest = max(int(mask.sum(1).max()), 1) if mask.numel() else 1
        out = k.new_empty(nodes.shape)
        if longest * nodes.shape[1] <= self.config.chunk:  # whole rows, several at a time
            rows, cols = self.config.chunk // (longest * nodes.shape[1]), nodes.shape[1]
        else:  # one row, its nodes in pieces
            rows, cols = 1, max(1, self.config.chunk // longest)
        for r in range(0, nodes.shape[0], rows):
            for c in range(0, nodes.shape[1], cols):
                out[r:r + rows, c:c + cols] = self.node_logits(k[r:r + rows], mask[r:r + rows],
                                                               nodes[r:r + rows, c:c + cols])
        return out

    # -- retrieval -------------------------------------------------------------------------------

    def beam_search(self, batch: Mapping[str, torch.Tensor], beam: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layer-wise beam search -> items (B, b), their logits (B, b), and the number of
        (user, node) pairs scored per user (B,); b = min(beam, n_items)."""
        beam = beam or self.config.beam
        tree = self.tree
        k, mask = self.encode_history(batch)
        bsz = k.shape[0]
        nodes = torch.zeros(bsz, 1, dtype=torch.int64, device=k.device)  # the root
        scores = k.new_zeros(bsz, 1)
        n_scored = torch.zeros(bsz, dtype=torch.int64, device=k.device)
        for layer in range(1, tree.depth + 1):
            cand = tree.child[nodes].flatten(1)  # (B, 2c), -1 = no such child
            valid = cand >= 0
            if layer < tree.depth and tree.layer_size(layer) <= beam:
                # the whole layer fits the beam: keep it, nothing to rank (every row has it all)
                nodes = cand[:, valid[0]]
                continue
            logits = self._chunked_logits(k, mask, cand.clamp(min=0))  # (B, 2c)
            logits = logits.masked_fill(~valid, -math.inf)
            n_scored += valid.sum(1)
            scores, pick = torch.topk(logits, min(beam, int(valid.sum(1).min())), dim=1)
            nodes = cand.gather(1, pick)  # (B, b)
        return tree.leaf_item[nodes - tree.leaf_start], scores, n_scored

    def bruteforce(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_items + 1) logits of every leaf with the same scorer; column 0 = -inf."""
        k, mask = self.encode_history(batch)
        tree = self.tree
        leaves = torch.arange(tree.leaf_start, tree.n_nodes, device=k.device)  # (N,)
        logits = self._chunked_logits(k, mask, leaves.expand(k.shape[0], -1))  # (B, N)
        out = logits.new_full((k.shape[0], self.info.n_items + 1), -math.inf)
        out[:, tree.leaf_item] = logits
        return out

    def score_all(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Beam search: the retrieved leaves' logits, -inf elsewhere; brute force: every item's."""
        if self.config.search == "bruteforce":
            return self.bruteforce(batch)
        items, scores, _ = self.beam_search(batch)
        out = scores.new_full((scores.shape[0], self.info.n_items + 1), -math.inf)
        return out.scatter_(1, items, scores)

    # -- the tree --------------------------------------------------------------------------------

    @torch.no_grad()
    def rebuild_tree(self, seed: int = 0) -> None:
        """Re-cluster the leaves on the learned item embeddings (balanced 2-means, sec. 3.4) and
        restart every internal node at the mean of its new leaves' embeddings."""
        self.tree.rebuild(self.item_emb.weight, iters=self.config.kmeans_iters, seed=seed)
        means = self.tree.subtree_means(self.item_emb.weight)  # (n_nodes, D)
        n_inner = self.tree.leaf_start
        self.node_emb.weight[:n_inner] = means[:n_inner]
