"""TDM's item tree: a binary tree whose leaves are the items, built by recursive balanced 2-means.

Zhu et al., "Learning Tree-based Deep Model for Recommender Systems", KDD 2018, sec. 3.4
("tree construction and learning"): items are clustered top-down on their learned embeddings
into two equal halves at every node, so similar items share ancestors and the tree has the
least possible depth.

**Shape.** The shape depends on the number of items ``N`` only: the root covers the ``N`` leaf
positions; a node covering ``s >= 2`` positions has two children covering the first
``ceil(s / 2)`` and the last ``floor(s / 2)`` of them; a node covering one position at a layer
above the last has a single child (so that all leaves sit on one layer). Every leaf is on layer
``depth = ceil(log2 N)`` (layer 0 is the root), layer ``l`` has at most ``2^l`` nodes, and the
nodes of a layer are numbered consecutively, left to right, after those of the layer above.

**Items.** Which item sits on which leaf is an *order* of the items (leaf ``j`` of the last
layer holds ``order[j]``); clustering only changes that order. :func:`balanced_order` computes
it layer by layer: each node's items are split at the median of their projection on the node's
2-means direction (initialised by the first principal component, then ``iters`` rounds of
"centroids of the two halves -> project on their difference -> split at the median", which is
the balanced assignment step of 2-means: ``|x - c_a|^2 - |x - c_b|^2`` is, up to a constant,
``-2 x . (c_a - c_b)``).

:class:`ItemTree` keeps the structure and the order as buffers, so they travel in the model's
``state_dict`` and a run reloads its tree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def tree_layers(n_items: int) -> list[np.ndarray]:
    """The sizes (number of leaf positions covered) of the nodes of every layer, root first."""
    if n_items < 1:
        raise ValueError(f"a tree needs at least one item, got {n_items}")
    depth = max(1, math.ceil(math.log2(n_items)))
    layers = [np.asarray([n_items], dtype=np.int64)]
    for _ in range(depth):
        s = layers[-1]
        left, right = (s + 1) // 2, s // 2  # a node of size 1 gets one child of size 1
        kids = np.stack([left, right], 1).reshape(-1)  # (2 * n,) left, right interleaved
        layers.append(kids[kids > 0])
    assert (layers[-1] == 1).all()
    return layers


def _segments(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets (n,) and the segment of every position (sum(sizes),) of contiguous segments."""
    starts = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    return starts, np.repeat(np.arange(len(sizes)), sizes)


def _seg_sums(x: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per-segment sums of the rows of ``x`` (a prefix-sum difference: faster than reduceat for
    many small segments)."""
    csum = np.zeros((len(x) + 1, x.shape[1]))
    np.cumsum(x, axis=0, out=csum[1:])
    return csum[starts + sizes] - csum[starts]


def balanced_order(emb: np.ndarray, iters: int = 10, seed: int = 0, power_iters: int = 5) -> np.ndarray:
    """An order of the ``N`` rows of ``emb`` (N, D) such that the tree of :func:`tree_layers`
    splits every node's rows into two balanced 2-means clusters (see module docstring).

    Returns (N,) row indices: leaf ``j`` holds row ``order[j]``. Vectorised over the nodes of a
    layer: O(depth * (iters + power_iters) * N * D) plus one sort per round."""
    x_all = np.asarray(emb, dtype=np.float64)
    n, d = x_all.shape
    rng = np.random.default_rng(seed)
    order = np.arange(n)
    for sizes in tree_layers(n)[:-1]:
        starts, seg = _segments(sizes)
        split = (sizes + 1) // 2  # positions going to the left child
        x = x_all[order]  # (N, D) rows in the current order
        cnt = sizes[:, None].astype(np.float64)
        xc = x - (_seg_sums(x, starts, sizes) / cnt)[seg]  # centred per node
        v = rng.standard_normal((len(sizes), d))  # power iteration: first principal direction
        for _ in range(power_iters):
            proj = (xc * v[seg]).sum(1)  # (N,)
            v = _seg_sums(xc * proj[:, None], starts, sizes)
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        score = (xc * v[seg]).sum(1)
        left = None
        for _ in range(iters + 1):
            perm = np.lexsort((-score, seg))  # within each node, highest score first (stable)
            order, x = order[perm], x[perm]  # seg is sorted, so every row stays in its node
            new_left = (np.arange(n) - starts[seg]) < split[seg]  # (N,) goes to the left child
            if left is not None and (new_left == left).all():
                break
            left = new_left
            # centroids of the two halves -> direction c_left - c_right (2-means assignment step);
            # each half is contiguous within its node, so its sum is a difference of prefix sums
            cl = _seg_sums(x, starts, split) / np.maximum(split, 1)[:, None]
            cr = _seg_sums(x, starts + split, sizes - split) / np.maximum(sizes - split, 1)[:, None]
            score = (x * (cl - cr)[seg]).sum(1)
    return order


class ItemTree(nn.Module):
    """The tree of :func:`tree_layers` over items ``1..n_items`` (0 = padding), as buffers:

    * ``layer_ptr`` (depth + 2,): the nodes of layer ``l`` are ids ``layer_ptr[l]:layer_ptr[l + 1]``
      (root = 0, leaves = the last layer);
    * ``parent`` (n_nodes,), -1 for the root; ``child`` (n_nodes, 2), -1 where there is none;
    * ``leaf_item`` (n_items,): the item on leaf ``layer_ptr[depth] + j``;
    * ``item_leaf`` (n_items + 1,): the leaf of every item (-1 for padding);
    * ``ancestors`` (n_items + 1, depth): an item's node on layers 1..depth (its leaf last; -1 for
      padding). These are TDM's positives (eq. 3: a node is positive for the user if one of its
      descendant leaves is).
    """

    def __init__(self, n_items: int) -> None:
        super().__init__()
        layers = tree_layers(n_items)
        self.n_items, self.depth = n_items, len(layers) - 1
        ptr = np.zeros(len(layers) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in layers], out=ptr[1:])
        n_nodes = int(ptr[-1])
        parent = np.full(n_nodes, -1, dtype=np.int64)
        children = np.full((n_nodes, 2), -1, dtype=np.int64)
        for lay in range(self.depth):
            s = layers[lay]
            n_kids = 1 + (s >= 2)  # (n,) children per node
            par = ptr[lay] + np.repeat(np.arange(len(s)), n_kids)  # parent of each child, in order
            kid = ptr[lay + 1] + np.arange(len(par))
            parent[kid] = par
            first = np.r_[0, np.cumsum(n_kids)[:-1]]
            slot = np.arange(len(par)) - np.repeat(first, n_kids)  # 0 = left, 1 = right
            children[par, slot] = kid
        self.register_buffer("layer_ptr", torch.from_numpy(ptr))
        self.register_buffer("parent", torch.from_numpy(parent))
        self.register_buffer("child", torch.from_numpy(children))
        self.register_buffer("leaf_item", torch.zeros(n_items, dtype=torch.int64))
        self.register_buffer("item_leaf", torch.full((n_items + 1,), -1, dtype=torch.int64))
        self.register_buffer("ancestors", torch.full((n_items + 1, self.depth), -1, dtype=torch.int64))
        self.set_order(torch.arange(1, n_items + 1))

    @property
    def n_nodes(self) -> int:
        return int(self.layer_ptr[-1])

    @property
    def leaf_start(self) -> int:
        return int(self.layer_ptr[self.depth])

    def layer_size(self, layer: int) -> int:
        return int(self.layer_ptr[layer + 1] - self.layer_ptr[layer])

    def set_order(self, items: torch.Tensor) -> None:
        """Put item ``items[j]`` on leaf j (``items`` a permutation of 1..n_items), in place."""
        items = torch.as_tensor(items, dtype=torch.int64)
        if items.shape != (self.n_items,) or not torch.equal(torch.sort(items).values,
                                                            torch.arange(1, self.n_items + 1)):
            raise ValueError("the leaf order must be a permutation of the items 1..n_items")
        leaves = self.leaf_start + torch.arange(self.n_items)
        self.leaf_item.copy_(items)
        self.item_leaf[items] = leaves
        anc = torch.empty(self.n_items, self.depth, dtype=torch.int64)
        anc[:, -1] = leaves
        for lay in range(self.depth - 2, -1, -1):
            anc[:, lay] = self.parent[anc[:, lay + 1]]
        self.ancestors[items] = anc

    def rebuild(self, item_emb: torch.Tensor, iters: int = 10, seed: int = 0) -> None:
        """Re-cluster the leaves on ``item_emb`` (n_items + 1, D), row 0 = padding."""
        order = balanced_order(item_emb[1:].detach().double().cpu().numpy(), iters=iters, seed=seed)
        self.set_order(torch.from_numpy(order + 1))

    def subtree_means(self, item_values: torch.Tensor) -> torch.Tensor:
        """(n_nodes, D): every node's mean of ``item_values`` (n_items + 1, D) over its leaves."""
        d = item_values.shape[1]
        total = item_values.new_zeros(self.n_nodes, d)
        count = item_values.new_zeros(self.n_nodes)
        total[self.leaf_start:] = item_values[self.leaf_item]
        count[self.leaf_start:] = 1.0
        for lay in range(self.depth, 0, -1):
            ids = torch.arange(int(self.layer_ptr[lay]), int(self.layer_ptr[lay + 1]))
            total.index_add_(0, self.parent[ids], total[ids])
            count.index_add_(0, self.parent[ids], count[ids])
        return total / count[:, None]
