"""Next-item sampled softmax with logQ correction (YouTube DNN; Covington et al. 2016, Yi et al. 2019).

Examples: :func:`seqrec.data.retrieval_sampling.next_item_batches`. Per batch, ``n_negatives``
items are drawn once from count^``sample_alpha`` and shared by every row (plus, with
``in_batch``, the batch's other targets, whose draw probability is the data frequency). Logits
are inner products of the user vector with the item vectors; each is corrected by - log Q
(``logq = True``), and negatives equal to the row's target are masked.
"""

from __future__ import annotations

import numpy as np
import torch

from seqrec.data.retrieval_sampling import ItemSampler, next_item_batches, next_item_examples
from seqrec.losses.retrieval import sampled_softmax
from seqrec.train.objectives import Objective


class SampledSoftmaxNextItem(Objective):
    def __init__(self, model, task, cfg) -> None:
        super().__init__(model, task, cfg)
        mc = model.config
        counts = task.item_counts()
        self.sampler = ItemSampler(counts, float(getattr(mc, "sample_alpha", 0.0)), cfg.train.seed)
        self.n_neg = int(getattr(mc, "n_negatives", 1000))
        self.logq = bool(getattr(mc, "logq", True))
        self.in_batch = bool(getattr(mc, "in_batch", False))
        self.temperature = float(getattr(mc, "temperature", 1.0))
        self.log_q_data = torch.from_numpy(np.log(np.maximum(counts / counts.sum(), 1e-30))).float()
        self.n_examples = len(next_item_examples(task)[1])

    def batches(self, epoch: int):
        tc = self.cfg.train
        return next_item_batches(self.task, tc.batch_size, self.cfg.data.max_len, tc.seed + epoch)

    def loss(self, batch):
        model = self.model
        target = batch["target"]  # (B,)
        u = model.user_vectors(batch)  # (B, D)
        items = model.item_vectors()  # (N + 1, D)
        neg = self.sampler.sample(self.n_neg)  # (S,)
        pos_logits = (u * items[target]).sum(-1)  # (B,)
        neg_logits = u @ items[neg].T  # (B, S)
        acc = neg[None, :] == target[:, None]  # (B, S)
        neg_q = self.sampler.log_q(neg) + np.log(self.n_neg) if self.logq else None
        # the positive is corrected like every candidate (TF's sampled_softmax_loss, Yi et al. eq. 3)
        pos_q = self.sampler.log_q(target) + np.log(self.n_neg) if self.logq else None
        if self.in_batch:
            ib = u @ items[target].T  # (B, B): the other rows' targets as negatives
            neg_logits = torch.cat([neg_logits, ib], dim=1)
            acc = torch.cat([acc, target[None, :] == target[:, None]], dim=1)
            if self.logq:
                neg_q = torch.cat([neg_q, self.log_q_data[target] + np.log(len(target))])
            if self.logq:
                pos_q = self.log_q_data[target] + np.log(len(target))
        return sampled_softmax(pos_logits, neg_logits, pos_log_q=pos_q, neg_log_q=neg_q, accidental=acc,
                               temperature=self.temperature)
