"""SASRec's training examples and losses (Kang & McAuley, ICDM 2018, sec. III-E; and cross-entropy).

Examples: every user with at least two train items gives one sequence per epoch, input =
its train items but the last (the last ``max_len`` of them), target at each position = the
next item (input s[:-1], targets s[1:]); left-padded, so position t predicts s_{t+1} from
s_1..s_t and padded positions predict nothing. Built once, vectorised, from the train CSR
(:meth:`CSR.padded_tail`); each batch is cut to its longest sequence (positions count from
the most recent item, so the cut changes nothing). Amazon sequences are short (median 6
items, cut at 50): with random batches ~85% of every batch is padding, so by default the
epoch's random order is sorted by length within chunks of ``bucket_batches`` batches' worth
of sequences and cut into batches of equal *positions* (``batch_size`` times the mean
number of positions per sequence: many short sequences or a few long ones, so that every
position weighs in a step as in a random batch), and the batches are shuffled (length
bucketing with a token budget; every sequence once per epoch, ~ the same number of steps). ``n_examples`` and the throughput count
**predicted positions** (next-item targets), the unit of RecBole's per-prefix examples.

Losses, chosen by the model config's ``loss``:

* ``bce`` — the paper's: -sum_t [log sigma(r_{o_t, t}) + sum_j log(1 - sigma(r_{j, t}))] over
  real positions, divided by their number, with ``n_negatives`` (the paper: 1) items j per
  position drawn uniformly from the items **not in the user's train sequence** (rejection
  sampling, as the authors' sampler); :func:`seqrec.losses.retrieval.bce_pos_neg`;
* ``ce`` — softmax cross-entropy over the whole catalogue at every real position
  (:func:`seqrec.losses.retrieval.full_softmax`; Klenitskiy & Vasilev, RecSys 2023); only the
  real positions' outputs are multiplied with the item table;
* ``sampled`` — softmax over ``n_negatives`` items per batch, shared by all its positions,
  drawn from count^``sample_alpha`` with the logQ correction and accidental hits masked
  (:func:`seqrec.losses.retrieval.sampled_softmax`).
"""

from __future__ import annotations

import numpy as np
import torch

from seqrec.data.retrieval_sampling import ItemSampler
from seqrec.data.tasks.retrieval import CSR
from seqrec.losses.retrieval import bce_pos_neg, full_softmax, sampled_softmax
from seqrec.train.objectives import Objective


class SeenItems:
    """Membership of (user, item) pairs in a per-user CSR (sorted int64 keys, binary search)."""

    def __init__(self, csr: CSR, n_items: int) -> None:
        self.width = n_items + 1
        self.keys = np.unique(csr.row_ids() * self.width + csr.values)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Bool array of the broadcast shape of ``users`` and ``items``."""
        k = users * self.width + items
        if len(self.keys) == 0:
            return np.zeros(k.shape, dtype=bool)
        i = np.searchsorted(self.keys, k).clip(max=len(self.keys) - 1)
        return self.keys[i] == k


def sample_unseen(seen: SeenItems, users: np.ndarray, shape: tuple[int, ...], n_items: int,
                  rng: np.random.Generator, max_rounds: int = 50) -> np.ndarray:
    """Items drawn uniformly from 1..n_items, redrawn where the row's user has seen them:
    (len(users), *shape). After ``max_rounds`` (a user who has seen nearly every item) the
    remaining draws are kept."""
    out = rng.integers(1, n_items + 1, size=(len(users), *shape))
    u = users.reshape((-1,) + (1,) * len(shape))
    for _ in range(max_rounds):
        bad = seen.contains(u, out)
        if not bad.any():
            break
        out[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
    return out


class SASRecObjective(Objective):
    def __init__(self, model, task, cfg) -> None:
        super().__init__(model, task, cfg)
        mc = model.config
        self.kind, self.n_neg = mc.loss, int(mc.n_negatives)
        self.shared_keys = ("neg",) if self.kind == "sampled" else ()
        tr = task.train
        L = cfg.data.max_len
        self.users = np.flatnonzero(tr.lengths() >= 2)
        seqs = tr.padded_tail(self.users, L + 1)  # (U, L + 1)
        self.inputs, self.targets = seqs[:, :-1], seqs[:, 1:]  # (U, L) each; input 0 = no prediction
        self.n_inputs = np.minimum(tr.lengths()[self.users] - 1, L)  # real positions per sequence
        self.n_examples = int(self.n_inputs.sum())
        self.n_items = task.n_items
        self.seen = SeenItems(tr, task.n_items) if self.kind == "bce" else None
        self.sampler = (ItemSampler(task.item_counts(), float(mc.sample_alpha), cfg.train.seed)
                        if self.kind == "sampled" else None)

    def batch_order(self, rng: np.random.Generator) -> list[np.ndarray]:
        """The epoch's batches of sequence rows (see the module docstring): random batches of
        ``batch_size`` sequences, or with ``bucket_batches`` > 1, a random permutation cut into
        chunks of that many batches' sequences, each chunk sorted by length and cut into
        batches of ~``batch_size`` x (mean positions per sequence) positions, the batches
        shuffled."""
        bs, chunk = self.cfg.train.batch_size, int(self.model.config.bucket_batches)
        order = rng.permutation(len(self.users))
        if chunk <= 1:
            return [order[s:s + bs] for s in range(0, len(order), bs)]
        budget = bs * self.n_examples / len(self.users)  # positions in a random batch, on average
        out: list[np.ndarray] = []
        for s in range(0, len(order), bs * chunk):
            part = order[s:s + bs * chunk]
            part = part[np.argsort(self.n_inputs[part], kind="stable")]
            ends = np.cumsum(self.n_inputs[part])  # positions up to each sequence
            cuts = np.searchsorted(ends, np.arange(budget, ends[-1], budget), side="left") + 1
            out += [b for b in np.split(part, np.unique(cuts)) if len(b)]
        return [out[i] for i in rng.permutation(len(out))]

    def batches(self, epoch: int):
        rng = np.random.default_rng(self.cfg.train.seed + epoch)
        L = self.inputs.shape[1]
        for idx in self.batch_order(rng):
            w = int(self.n_inputs[idx].max())  # the batch's longest sequence; the rest is padding
            batch = {"user": torch.from_numpy(self.users[idx]),
                     "history": torch.from_numpy(self.inputs[idx, L - w:]),  # (B, W)
                     "target": torch.from_numpy(self.targets[idx, L - w:])}  # (B, W)
            if self.kind == "bce":
                neg = sample_unseen(self.seen, self.users[idx], (w, self.n_neg), self.n_items, rng)
                batch["neg"] = torch.from_numpy(neg)  # (B, W, S)
            elif self.kind == "sampled":
                batch["neg"] = self.sampler.sample(self.n_neg)  # (S,) shared by the batch
            yield batch

    @staticmethod
    def batch_size(batch: dict[str, torch.Tensor]) -> int:
        """Predicted positions of the batch (the unit of ``n_examples``)."""
        return int((batch["history"] > 0).sum())

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model.sequence_outputs(batch["history"])  # (B, W, D)
        items = self.model.item_vectors()  # (N + 1, D)
        mask = batch["history"] > 0  # (B, W)
        if self.kind == "bce":
            target = batch["target"]
            pos = (out * items[target]).sum(-1)  # (B, W)
            neg = (out.unsqueeze(2) * items[batch["neg"]]).sum(-1)  # (B, W, S)
            return bce_pos_neg(pos, neg, mask)
        f = out[mask]  # (P, D) real positions only
        target = batch["target"][mask]  # (P,)
        if self.kind == "ce":
            return full_softmax(f @ items.T, target)  # (P, N + 1) logits
        neg = batch["neg"]  # (S,)
        pos_logits = (f * items[target]).sum(-1)  # (P,)
        neg_logits = f @ items[neg].T  # (P, S)
        log_s = float(np.log(len(neg)))
        return sampled_softmax(pos_logits, neg_logits, pos_log_q=self.sampler.log_q(target) + log_s,
                               neg_log_q=self.sampler.log_q(neg) + log_s,
                               accidental=neg[None, :] == target[:, None])
