"""MIND's objective: sampled softmax with logQ on the label-aware user vector (Li et al. 2019, eq. 12).

The examples, the negative sampler and the logQ correction are YouTube DNN's
(:class:`seqrec.train.objectives.next_item.SampledSoftmaxNextItem`: every train position is an
example, the history never holds its label). The only difference is the user vector: the
interests are combined by label-aware attention on the label item (eq. 10), which exists in
training only; serving scores every interest (the model's ``score_all``).
"""

from __future__ import annotations

import numpy as np
import torch

from seqrec.distributed import gather_rows
from seqrec.losses.retrieval import sampled_softmax
from seqrec.train.objectives.next_item import SampledSoftmaxNextItem


class MINDSampledSoftmax(SampledSoftmaxNextItem):
    def loss(self, batch):
        target = batch["target"]  # (B,)
        items = self.model.item_vectors()  # (N + 1, D)
        pos_vec = items[target]  # (B, D)
        u = self.model.train_user_vector(batch, pos_vec)  # (B, D)
        neg = self.sampler.sample(self.n_neg)  # (S,)
        pos_logits = (u * pos_vec).sum(-1)  # (B,)
        neg_logits = u @ items[neg].T  # (B, S)
        acc = neg[None, :] == target[:, None]  # (B, S)
        log_s = np.log(self.n_neg)
        neg_q = self.sampler.log_q(neg) + log_s if self.logq else None
        pos_q = self.sampler.log_q(target) + log_s if self.logq else None
        if self.in_batch:
            # the other rows' targets as negatives, drawn with their data frequency: the whole
            # global batch's (gathered from every rank under torchrun)
            every = gather_rows(target)  # (G,)
            every_vec = pos_vec if every is target else items[every]  # (G, D)
            neg_logits = torch.cat([neg_logits, u @ every_vec.T], dim=1)  # (B, S + G)
            acc = torch.cat([acc, every[None, :] == target[:, None]], dim=1)
            if self.logq:
                neg_q = torch.cat([neg_q, self.log_q_data[every] + np.log(len(every))])
                pos_q = self.log_q_data[target] + np.log(len(every))
        return sampled_softmax(pos_logits, neg_logits, pos_log_q=pos_q, neg_log_q=neg_q, accidental=acc,
                               temperature=self.temperature)
