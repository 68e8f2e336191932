"""Next-item sampled softmax with logQ correction (YouTube DNN; Covington et al. 2016, Yi et al. 2019).

Examples: :func:`seqrec.data.retrieval_sampling.next_item_batches`. Per batch, ``n_negatives``
items are drawn once from q_s ~ count^``sample_alpha`` and shared by every row; with
``in_batch`` the batch's B targets are candidates too (a draw from the data frequency q_d).
Logits are inner products of the user vector with the item vectors, divided by
``temperature``; with ``logq`` every logit, the positive's included, is corrected by
- log Q(j), Q(j) = S q_s(j) + B q_d(j) the expected count of j among a row's candidates (Yi et
al. 2019 eq. 3 for one source; the sum is the mixed-negative-sampling form of Yang et al.,
WWW 2020). Candidates equal to the row's target (accidental hits, the row's own in-batch
target included) are masked. A model with ``regularization(batch)`` has it added to the loss.
"""

from __future__ import annotations

import numpy as np
import torch

from seqrec.data.retrieval_sampling import ItemSampler, next_item_batches, next_item_examples
from seqrec.distributed import gather_rows
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

    def _vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Item vectors of ``items``; a model's ``item_vectors_of`` skips the rest of the table."""
        of = getattr(self.model, "item_vectors_of", None)
        return of(items) if of is not None else self.model.item_vectors()[items]

    def log_q(self, items: torch.Tensor, batch_size: int) -> torch.Tensor:
        """log of the expected number of times each of ``items`` is among a row's candidates:
        Q(j) = S q_s(j) (+ B q_data(j) with in-batch negatives) — the one correction every
        logit gets, the positive's included (Yi et al. eq. 3; Yang et al. WWW 2020 for the mix)."""
        q = self.n_neg * self.sampler.log_q(items).exp()
        if self.in_batch:
            q = q + batch_size * self.log_q_data[items].exp()
        return q.clamp(min=1e-30).log()

    def loss(self, batch):
        model = self.model
        target = batch["target"]  # (B,)
        b = len(target)
        # the in-batch negatives are the global batch's targets (a row's own is masked below):
        # under torchrun every rank's rows, gathered, so N ranks score what one process would
        every = gather_rows(target) if self.in_batch else target  # (G,) G = global batch
        u = model.user_vectors(batch)  # (B, D)
        sampled = self.sampler.sample(self.n_neg)  # (S,) shared by every row (the same on every rank)
        neg = torch.cat([sampled, every]) if self.in_batch else sampled  # (S [+ G],)
        gathered = every is not target
        vec = self._vectors(torch.cat([target, sampled, every] if gathered else [target, sampled]))  # (B + S [+ G], D)
        pos_logits = (u * vec[:b]).sum(-1)  # (B,)
        neg_vec = torch.cat([vec[b:], vec[:b]]) if self.in_batch and not gathered else vec[b:]
        neg_logits = u @ neg_vec.T  # (B, S [+ G])
        acc = neg[None, :] == target[:, None]  # (B, S [+ G]) accidental hits, the own target included
        pos_q = self.log_q(target, len(every)) if self.logq else None
        neg_q = self.log_q(neg, len(every)) if self.logq else None
        loss = sampled_softmax(pos_logits, neg_logits, pos_log_q=pos_q, neg_log_q=neg_q, accidental=acc,
                               temperature=self.temperature)
        reg = getattr(model, "regularization", None)
        return loss + reg(batch) if reg is not None else loss
