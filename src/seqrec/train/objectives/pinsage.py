"""PinSage's max-margin objective on co-interacted item pairs, with curriculum hard negatives.

Ying et al. KDD 2018, sec. 3.3. Before training, the item graph of the training interactions and
its importance-based neighbourhoods are built (:func:`seqrec.data.item_graph.build_item_graph`)
and set on the model; the seconds it took are in ``stats``.

* Examples: every training interaction (u, i) of a user with >= 2 items gives one pair per
  epoch: query q = i, positive p = another item of the same user drawn uniformly (the paper's
  positives are pins engaged with right after the query; our BARS data are item sets without
  order, so any co-interacted item is a positive).
* Negatives (sec. 3.3, "sampling negative items"): ``n_negatives`` items drawn once per
  minibatch and shared by all its queries, uniformly (the paper) or from count^``neg_alpha``; from epoch ``hard_from_epoch`` on, each query also
  gets hard negatives drawn from the items ranked ``[hard_lo, hard_hi)`` by random-walk visit
  count from the query (the paper's ranks 2000-5000 by personalised PageRank; our catalogues are
  10^4, not 10^9, items). Curriculum ("curriculum training"): (1-based) epoch e >= hard_from_epoch
  gives ``hard_per_epoch`` * (e - hard_from_epoch + 1) hard negatives per query, at most
  ``hard_negatives`` (the paper adds one per epoch). A negative equal to the query or the
  positive is never used: drawn hard negatives equal to the positive are redrawn, and any left
  (and accidental random negatives) are masked out of the loss.
* Loss, eq. (1): mean over queries and negatives of max(0, z_q.z_n - z_q.z_p + margin)
  (:func:`seqrec.losses.retrieval.max_margin`).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from seqrec.data.item_graph import build_item_graph
from seqrec.data.retrieval_sampling import ItemSampler
from seqrec.losses.retrieval import max_margin
from seqrec.train.objectives import Objective


def other_items(values: np.ndarray, start: np.ndarray, end: np.ndarray, pos: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """For each position, a uniformly drawn *other* position's value of the same row (rows >= 2)."""
    n_other = end - start - 1
    off = np.minimum((rng.random(len(pos)) * n_other).astype(np.int64), n_other - 1)
    off = off + (off >= pos - start)  # skip the query's own position
    return values[start + off]


def draw_hard(hard_ptr: np.ndarray, hard_val: np.ndarray, query: np.ndarray, positive: np.ndarray,
              n: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) hard negatives of each query from its pool; 0 (masked) where the pool is empty or
    holds only the positive. A draw equal to the positive moves to the pool's next item."""
    lo, hi = hard_ptr[query], hard_ptr[query + 1]
    size = (hi - lo)[:, None]  # (B, 1)
    k = np.minimum((rng.random((len(query), n)) * size).astype(np.int64), np.maximum(size - 1, 0))
    safe = np.minimum(lo[:, None] + k, max(len(hard_val) - 1, 0))
    out = hard_val[safe] if len(hard_val) else np.zeros((len(query), n), np.int64)
    again = out == positive[:, None]
    k2 = np.where(again, (k + 1) % np.maximum(size, 1), k)
    out = np.where(again, hard_val[np.minimum(lo[:, None] + k2, max(len(hard_val) - 1, 0))]
                   if len(hard_val) else 0, out)
    bad = (size == 0) | (out == positive[:, None]) | (out == query[:, None])
    return np.where(bad, 0, out).astype(np.int64)


class PinSageMaxMargin(Objective):
    shared_keys = ("neg",)  # (S,) random negatives shared by the batch

    def __init__(self, model, task, cfg) -> None:
        super().__init__(model, task, cfg)
        mc = model.config
        t0 = time.perf_counter()
        graph = build_item_graph(task.train, task.n_items, n_neighbours=mc.neighbours, n_walks=mc.n_walks,
                                 n_hops=mc.n_hops, restart=mc.restart, hard_lo=mc.hard_lo, hard_hi=mc.hard_hi,
                                 seed=cfg.train.seed)
        model.set_neighbourhoods(torch.from_numpy(graph.neighbours), torch.from_numpy(graph.weights))
        self.hard_ptr, self.hard_val = graph.hard.indptr, graph.hard.values
        self.stats = {"graph_seconds": time.perf_counter() - t0, "graph_visits": graph.n_visits,
                      "mean_neighbours": float((graph.neighbours[1:] > 0).sum(1).mean()),
                      "mean_hard_pool": float(graph.hard.lengths()[1:].mean())}
        tr = task.train
        users = tr.row_ids()
        keep = tr.lengths()[users] >= 2  # a user with one item has no pair
        self.pos = np.flatnonzero(keep).astype(np.int64)
        self.pos_user = users[keep]
        self.n_examples = len(self.pos)
        self.sampler = ItemSampler(task.item_counts(), mc.neg_alpha, cfg.train.seed)

    def n_hard(self, epoch: int) -> int:
        """Hard negatives per query in (0-based) epoch ``epoch`` (the curriculum)."""
        mc = self.model.config
        return int(min(mc.hard_negatives, mc.hard_per_epoch * max(0, epoch + 1 - mc.hard_from_epoch + 1)))

    def batches(self, epoch: int):
        tr, mc = self.task.train, self.model.config
        rng = np.random.default_rng([self.cfg.train.seed, epoch])
        order = rng.permutation(self.n_examples)
        bs, n_hard = self.cfg.train.batch_size, self.n_hard(epoch)
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            p, u = self.pos[idx], self.pos_user[idx]
            query = tr.values[p]
            positive = other_items(tr.values, tr.indptr[u], tr.indptr[u + 1], p, rng)
            batch = {"query": torch.from_numpy(query), "target": torch.from_numpy(positive),
                     "neg": self.sampler.sample(mc.n_negatives, rng)}
            if n_hard:
                batch["hard"] = torch.from_numpy(draw_hard(self.hard_ptr, self.hard_val, query, positive,
                                                           n_hard, rng))
            yield batch

    def loss(self, batch):
        q, p, neg = batch["query"], batch["target"], batch["neg"]  # (B,), (B,), (S,)
        hard = batch.get("hard")  # (B, H) or None
        parts = [q, p, neg] + ([hard.reshape(-1)] if hard is not None else [])
        z = self.model.embed(torch.cat(parts))  # (B + B + S + B*H, D)
        b, s = len(q), len(neg)
        zq, zp, zn = z[:b], z[b:2 * b], z[2 * b:2 * b + s]
        pos = (zq * zp).sum(-1)  # (B,)
        neg_s = (zq @ zn.T).masked_fill((neg[None, :] == p[:, None]) | (neg[None, :] == q[:, None]),
                                        float("-inf"))  # (B, S)
        if hard is not None:
            zh = z[2 * b + s:].view(b, hard.shape[1], -1)  # (B, H, D)
            hs = torch.einsum("bd,bhd->bh", zq, zh).masked_fill(hard == 0, float("-inf"))  # (B, H)
            neg_s = torch.cat([neg_s, hs], dim=1)
        return max_margin(pos, neg_s, self.model.config.margin)
