"""Look-alike audience extension on user vectors: RALM and two baselines.

RALM (Liu et al. KDD 2019, "Real-time Attention Based Look-alike Model for Recommender System")
represents an item by the users who engaged with it (its *seeds*) and scores a target user u by
its similarity to the seed set's representation (sec. 4 of the paper):

* both towers project their user vectors with one shared fully connected layer P;
* **global attention** (target-independent): g = Σ_i a_i s_i, a = softmax_i(w^T tanh(W s_i));
* **local attention** (target-dependent): l = Σ_i b_i s_i, b = softmax_i(τ · u^T W_l s_i);
* score(u) = α · cos(u, g) + (1 - α) · cos(u, l).

Here the user vectors are DUPN's representations r (Ni et al. KDD 2018; :mod:`seqrec.models.dupn`,
:mod:`seqrec.families.dupn_users`), an "item" is a **category** of the Taobao sample, its seeds are
the users who **bought** from it in the seed window (all days before the target day), and its true
audience (the targets) the users who are not seeds and buy from it on the target day. Purchases
rather than carts: a look-alike audience is meant to convert, and a cart is an intent; carts
(``behaviours``) roughly triple the number of categories with enough seeds but measure a different,
easier thing (a cart is often followed by more carts of the same category).

Deviations from the paper, forced by the sample or chosen (stated):

* the user vectors are DUPN's, not RALM's own user-representation network (its attention-merge
  layer); they are fixed (not fine-tuned with the look-alike loss);
* no seed clustering (the paper's K-means of the seeds, for speed with millions of seeds): a
  category here has 3 to a few dozen seeds, the attention runs over all of them;
* the vector methods (RALM and seed-mean) read the DUPN vectors standardised per dimension over the
  users (:func:`standardise`): raw, every user's r shares one dominant direction (mean pairwise cosine
  0.77, 0.92 for its LSTM part, on a 4-epoch run), so a raw cosine mostly measures that; chosen on
  the day before the test day (raw vectors: chance-level recall there), the benchmark prints both;
* the projected vectors are L2-normalised (the attention logits are then cosines, the local
  one scaled by a learned temperature τ, so that a target equal to a seed can concentrate its local
  weight on it); α is one learned number through a sigmoid (the paper's α, β weight factors);
* P and W_l are parameterised as identity + Δ with an L2 penalty on Δ and w starts at 0, so the
  untrained model (:attr:`RALM.trained` False) is parameter-free: uniform global weights (the mean
  of the normalised seeds) and cosine local attention. The benchmark reports both;
* training (:func:`train_ralm`): a listwise softmax over each training case's candidates with the
  case's targets as the positives (our choice of loss, not the paper's sampled click samples);
  **only windows whose target day is before the evaluation day** (the seed sets and targets of
  earlier days), never the evaluation targets. Settings (steps, lr, l2, learning P and W_l, the
  standardisation) were chosen with the day before the test day as the evaluation window
  (``benchmarks/ralm.py --eval-day``), then run once on the test day;
* a caveat of those training windows: the DUPN model was trained on the rows of the days before
  its validation day, so the vectors of a window inside that period come from a model that has
  fitted that window's behaviour (not its look-alike targets as such, but e.g. its ``buy`` labels);
  the evaluation window (the test day) has no such help. RALM may learn to use what does not
  carry over.

Baselines: ``seed-mean`` — cosine of u to the mean of the seeds' vectors; ``popularity`` —
no vectors at all: candidates ranked by their own number of events (pv / cart / fav / buy) on the
category in the seed window, ties by their number of events of any category in the seed window,
then by user index (the sceptic's rule: "who already browses it, then who is most active").

Metrics: precision@K and recall@K of the targets among the candidates (all users seen before the
target day, minus the seeds), per category, averaged over the categories (macro).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seqrec.data.tasks.taobao_multitask import BUY  # the behaviour id of a purchase
from seqrec.models.ralm import RALM

KS = (10, 50, 100)


@dataclass
class Events:
    """Behaviour events as arrays: ``user`` 0-based user index (-1 = not a known user), ``cate``
    (category index; 0 / 1 = none / unknown), ``btype``, ``day``; ``n_users`` known users."""

    user: np.ndarray
    cate: np.ndarray
    btype: np.ndarray
    day: np.ndarray
    n_users: int

    @classmethod
    def from_log(cls, log) -> Events:
        """From a ``taobao_multitask._Log`` (user vocabulary index 2.. -> 0..)."""
        return cls(log.users - 2, log.cates, log.btype, log.days, log.vocabs["user"].n_known)

    def counts(self, mask: np.ndarray) -> np.ndarray:
        """Events per known user among ``mask``."""
        u = self.user[mask]
        return np.bincount(u[u >= 0], minlength=self.n_users)


@dataclass
class Case:
    """One category of one window: seeds, targets and candidates (user indices)."""

    day: int
    cate: int
    seeds: np.ndarray
    targets: np.ndarray
    candidates: np.ndarray


def make_cases(ev: Events, day: int, *, behaviours: Sequence[int] = (BUY,), min_seeds: int = 3,
               min_targets: int = 1, seed_from: int = 0) -> list[Case]:
    """The look-alike cases of target day ``day``: for every category, seeds = known users with a
    ``behaviours`` event on it in days [seed_from, day), candidates = users with any event before
    ``day`` minus the seeds, targets = candidates with a ``behaviours`` event on it on ``day``; kept
    when it has >= ``min_seeds`` seeds and >= ``min_targets`` targets."""
    known = ev.user >= 0
    act = np.isin(ev.btype, list(behaviours)) & known & (ev.cate > 1)
    active_before = np.zeros(ev.n_users, bool)
    active_before[ev.user[known & (ev.day < day)]] = True
    s = act & (ev.day >= seed_from) & (ev.day < day)
    t = act & (ev.day == day)
    seeds = _groups(ev.cate[s], ev.user[s])
    targets = _groups(ev.cate[t], ev.user[t])
    out = []
    for c in sorted(set(seeds) & set(targets)):
        sd = seeds[c]
        cand = np.setdiff1d(np.flatnonzero(active_before), sd)
        tg = np.intersect1d(targets[c], cand)
        if len(sd) >= min_seeds and len(tg) >= min_targets:
            out.append(Case(day, int(c), sd, tg, cand))
    return out


def _groups(keys: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    pairs = np.unique(np.stack([keys, values], 1), axis=0) if len(keys) else np.zeros((0, 2), np.int64)
    cut = np.flatnonzero(np.diff(pairs[:, 0])) + 1
    return {int(g[0, 0]): g[:, 1] for g in np.split(pairs, cut) if len(g)}


# -- scores: higher = more likely in the audience; one score per known user -------------------
def popularity_scores(ev: Events, day: int, cate: int, seed_from: int = 0) -> np.ndarray:
    """Events on ``cate`` in the seed window, ties by all events in it (lexicographic: the
    fractional part never overtakes a whole event)."""
    win = (ev.day >= seed_from) & (ev.day < day)
    on_c = ev.counts(win & (ev.cate == cate)).astype(np.float64)
    total = ev.counts(win).astype(np.float64)
    return on_c + total / (total.max() + 1.0)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def seed_mean_scores(vectors: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Cosine of every user's vector to the mean of the seeds' vectors."""
    return _unit(vectors) @ _unit(vectors[seeds].mean(0))


@torch.no_grad()
def ralm_scores(model: RALM, vectors: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    model.eval()
    v = torch.as_tensor(vectors, dtype=torch.float32)
    return model(v[seeds], v).double().numpy()


def _pad(vecs: torch.Tensor, cases: Sequence[Case]):
    """Padded seed vectors (B, S, d), seed mask (B, S), candidate and target masks (B, N)."""
    B, N, S = len(cases), vecs.shape[0], max(len(c.seeds) for c in cases)
    idx = torch.zeros(B, S, dtype=torch.long)
    mask = torch.zeros(B, S, dtype=torch.bool)
    cand = torch.zeros(B, N, dtype=torch.bool)
    tgt = torch.zeros(B, N, dtype=torch.bool)
    for i, c in enumerate(cases):
        idx[i, :len(c.seeds)] = torch.as_tensor(c.seeds)
        mask[i, :len(c.seeds)] = True
        cand[i, torch.as_tensor(c.candidates)] = True
        tgt[i, torch.as_tensor(c.targets)] = True
    return vecs[idx], mask, cand, tgt


def train_ralm(model: RALM, windows: Sequence[tuple[np.ndarray, Sequence[Case]]], *, steps: int = 100,
               lr: float = 0.01, l2: float = 1e-2, seed: int = 0) -> dict:
    """Fit ``model`` on ``windows`` = [(user vectors as of the window's target day, its cases)]:
    each step, for every case, a softmax over its candidates' scores (times a learned scale) with
    the targets as the classes (mean negative log-likelihood over a case's targets, then over the
    cases), plus ``l2`` · the penalty; Adam, full batch. Returns {"cases", "targets", "steps",
    "loss_first", "loss_last"} (the look-alike loss without the penalty)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    data = [(torch.as_tensor(v, dtype=torch.float32), *_pad(torch.as_tensor(v, dtype=torch.float32), cs))
            for v, cs in windows if len(cs)]
    if not data:
        raise ValueError("no training case: the earlier windows have no category with enough seeds and targets")
    n_cases = sum(len(d[2]) for d in data)
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        nll = 0.0
        for users, seeds, mask, cand, tgt in data:
            logit = model.log_scale.exp() * model(seeds, users, mask)
            logp = torch.log_softmax(logit.masked_fill(~cand, float("-inf")), 1)
            nll = nll - (logp.masked_fill(~tgt, 0.0).sum(1) / tgt.sum(1)).sum() / n_cases
        loss = nll + l2 * model.penalty()
        loss.backward()
        opt.step()
        losses.append(float(nll.detach()))
    model.eval()
    model.trained = True
    return {"cases": n_cases, "targets": int(sum(int(d[4].sum()) for d in data)), "steps": steps,
            "loss_first": losses[0], "loss_last": losses[-1]}


def standardise(vectors: np.ndarray) -> np.ndarray:
    """Each dimension centred and scaled to unit variance over the users (rows) given."""
    v = np.asarray(vectors, np.float64)
    return ((v - v.mean(0)) / np.maximum(v.std(0), 1e-12)).astype(np.float32)


# -- metrics -------------------------------------------------------------------------------------
def precision_recall(scores: np.ndarray, case: Case, ks: Sequence[int] = KS) -> dict[str, float]:
    """precision@K and recall@K of ``case.targets`` in the top K candidates by ``scores`` (one per
    user; ties by candidate order, i.e. user index)."""
    s = scores[case.candidates]
    order = case.candidates[np.argsort(-s, kind="stable")]
    hit = np.isin(order, case.targets)
    out = {}
    for k in ks:
        h = int(hit[:k].sum())
        out[f"precision@{k}"] = h / k
        out[f"recall@{k}"] = h / len(case.targets)
    return out


def evaluate(score_fn, cases: Sequence[Case], ks: Sequence[int] = KS) -> dict:
    """Macro averages over ``cases`` of :func:`precision_recall` with ``score_fn(case)`` (scores of
    all users), the standard error of each recall@K (``recall@K_se``), ``categories``, ``targets``,
    ``seeds_median`` and ``candidates_median``."""
    per = [precision_recall(score_fn(c), c, ks) for c in cases]
    out = {k: float(np.mean([p[k] for p in per])) for k in per[0]} if per else {}
    for k in ks:  # the standard error of the mean over categories (they are few)
        out[f"recall@{k}_se"] = float(np.std([p[f"recall@{k}"] for p in per], ddof=1) / np.sqrt(len(per))) \
            if len(per) > 1 else None
    out.update(categories=len(cases), targets=int(sum(len(c.targets) for c in cases)),
               seeds_median=float(np.median([len(c.seeds) for c in cases])) if cases else None,
               candidates_median=float(np.median([len(c.candidates) for c in cases])) if cases else None)
    return out


def chance(cases: Sequence[Case], ks: Sequence[int] = KS) -> dict:
    """Expected precision@K and recall@K of a random ranking of the candidates (targets /
    candidates and K / candidates), averaged over the cases."""
    out = {}
    for k in ks:
        out[f"precision@{k}"] = float(np.mean([len(c.targets) / len(c.candidates) for c in cases]))
        out[f"recall@{k}"] = float(np.mean([min(k, len(c.candidates)) / len(c.candidates) for c in cases]))
    return out
