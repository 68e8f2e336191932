"""TDM's layer-wise objective (Zhu et al. KDD 2018, sec. 3.3, eq. 3 and 4).

Examples: :func:`seqrec.data.retrieval_sampling.next_item_batches` (history -> next item). For
an example with target item i, the positive of layer l (1..depth) is i's ancestor on that layer
(every ancestor of a leaf the user interacts with is "interesting", eq. 1); ``n_negatives``
negatives per layer are drawn uniformly from the layer's *other* nodes (with replacement; a layer
of one node has none, and the root is skipped, as it is positive for everyone). The loss is
binary cross-entropy over the layers' positives and negatives (eq. 4: -sum_u sum_{n in Y+ u Y-}
y log p + (1 - y) log(1 - p)), averaged over (example, layer) pairs
(:func:`seqrec.losses.retrieval.bce_pos_neg`).

Before the epochs in ``model.config.rebuild_epochs`` the tree is re-clustered from the learned
item embeddings (:meth:`seqrec.models.tdm.TDM.rebuild_tree`, the paper's alternating learning).
Negatives come from torch's global generator (seeded by the trainer).
"""

from __future__ import annotations

import torch

from seqrec.data.retrieval_sampling import next_item_batches, next_item_examples
from seqrec.losses.retrieval import bce_pos_neg
from seqrec.train.objectives import Objective


def layer_negatives(tree, positives: torch.Tensor, n_neg: int, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform negatives per layer, never the positive: positives (B, depth) node ids ->
    negatives (B, depth, n_neg) and a (depth,) mask of the layers that have any (> 1 node)."""
    ptr = tree.layer_ptr  # (depth + 2,)
    start, size = ptr[1:-1], ptr[2:] - ptr[1:-1]  # (depth,) layers 1..depth
    has = size > 1
    b, depth = positives.shape
    u = torch.rand(b, depth, n_neg, generator=generator)
    r = (u * (size - 1).clamp(min=1)[None, :, None]).long()  # uniform in 0 .. size - 2
    pos_off = (positives - start)[:, :, None]  # (B, depth, 1)
    neg = start[None, :, None] + r + (r >= pos_off).long()  # skip the positive's own slot
    return neg, has


class TDMLayerwise(Objective):
    def __init__(self, model, task, cfg) -> None:
        super().__init__(model, task, cfg)
        self.n_neg = int(model.config.n_negatives)
        self.n_examples = len(next_item_examples(task)[1])

    def batches(self, epoch: int):
        if epoch in self.model.config.rebuild_epochs:
            self.model.rebuild_tree(seed=self.cfg.train.seed + epoch)
        tc = self.cfg.train
        yield from next_item_batches(self.task, tc.batch_size, self.cfg.data.max_len, tc.seed + epoch)

    def loss(self, batch):
        model = self.model
        tree = model.tree
        pos = tree.ancestors[batch["target"]]  # (B, depth)
        neg, has = layer_negatives(tree, pos, self.n_neg)  # (B, depth, S), (depth,)
        b, depth = pos.shape
        nodes = torch.cat([pos, neg.flatten(1).clamp(max=tree.n_nodes - 1)], dim=1)  # (B, depth * (1 + S))
        k, mask = model.encode_history(batch)
        logits = model.node_logits(k, mask, nodes)  # (B, C)
        neg_l = logits[:, depth:].view(b, depth, self.n_neg)
        neg_l = neg_l.masked_fill(~has[None, :, None], -torch.inf)  # a one-node layer has no negative
        # eq. 4 over every layer's positive and negatives, averaged over (example, layer)
        return bce_pos_neg(logits[:, :depth], neg_l)
