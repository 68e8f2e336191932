"""BPR on (user, positive, sampled negative) triples (MF-BPR; Rendle et al. UAI 2009).

Every training interaction is one positive per epoch; ``n_negatives`` items per positive are drawn
uniformly from the catalogue (an accidental train item is kept: at ~0.05% density the bias is
negligible and the draw stays O(1), as in most BPR implementations)."""

from __future__ import annotations

import numpy as np
import torch

from seqrec.data.retrieval_sampling import ItemSampler
from seqrec.losses.retrieval import bpr
from seqrec.train.objectives import Objective


class BPRPairs(Objective):
    def __init__(self, model, task, cfg) -> None:
        super().__init__(model, task, cfg)
        self.sampler = ItemSampler(task.item_counts(), 0.0, cfg.train.seed)
        self.n_neg = int(getattr(model.config, "n_negatives", 1))
        self.users = task.train.row_ids()
        self.items = task.train.values
        self.n_examples = len(self.items)

    def batches(self, epoch: int):
        rng = np.random.default_rng(self.cfg.train.seed + epoch)
        order = rng.permutation(self.n_examples)
        bs = self.cfg.train.batch_size
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            yield {"user": torch.from_numpy(self.users[idx]), "target": torch.from_numpy(self.items[idx]),
                   "neg": self.sampler.sample(len(idx) * self.n_neg).view(len(idx), self.n_neg)}

    def loss(self, batch):
        u = self.model.user_vectors(batch)  # (B, D)
        items = self.model.item_vectors()  # (N + 1, D)
        pos = (u * items[batch["target"]]).sum(-1)  # (B,)
        neg = torch.einsum("bd,bsd->bs", u, items[batch["neg"]])  # (B, S)
        return bpr(pos, neg) + self.model.regularization(batch)
