"""Item–item graph from co-interactions, and PinSage's importance-based neighbourhoods.

Ying et al., "Graph Convolutional Neural Networks for Web-Scale Recommender Systems", KDD 2018,
sec. 3.2 ("importance-based neighbourhoods"): the neighbourhood of an item is not its full
adjacency but the top-T items by the L1-normalised visit counts of short random walks started at
it, and those normalised counts weight the neighbours in the aggregation ("importance pooling").
Sec. 3.3 draws hard negatives from the items ranked 2000-5000 by personalised PageRank from the
query; here the walks' visit counts serve as that ranking (a Monte Carlo estimate of personalised
PageRank with restarts), and the rank range is a setting because our catalogues have 10^4 items,
not 10^9.

The graph is the bipartite user–item graph of the training interactions, walked
item -> user -> item (one *hop* = two edges; each step picks a neighbour uniformly): two items are
adjacent when some user interacted with both. Every walker restarts at its source with
probability ``restart`` before each hop (so walks stay short: expected length 1 / restart hops);
an item reached in a hop counts one visit, the source itself never. Everything is vectorised over
all walkers at once (numpy), in chunks of source items to bound memory, each chunk seeded by
(seed, chunk), so the result depends only on the seed and the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from seqrec.data.tasks.retrieval import CSR


@dataclass(frozen=True)
class ItemGraph:
    """PinSage neighbourhoods of items 0..N (row 0 = padding) and the hard-negative pools."""

    neighbours: np.ndarray  # (N + 1, T) int64, top-T items by visit count, 0 = none
    weights: np.ndarray  # (N + 1, T) float32, L1-normalised visit counts (0 where no neighbour)
    hard: CSR  # per item 0..N: items ranked in [hard_lo, hard_hi) by visit count
    n_visits: int  # walk visits counted in total


def item_user_csr(train: CSR, n_items: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(users x items+1, items+1 x users) 0/1 CSR matrices of the training interactions."""
    x = sp.csr_matrix((np.ones(len(train.values), np.float32), train.values, train.indptr),
                      shape=(len(train), n_items + 1))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x, x.T.tocsr()


def visit_counts(ui: sp.csr_matrix, iu: sp.csr_matrix, sources: np.ndarray, *, n_walks: int,
                 n_hops: int, restart: float, rng: np.random.Generator) -> sp.csr_matrix:
    """(len(sources), N + 1) visit counts of ``n_walks`` walks of ``n_hops`` hops from each source.

    ``ui`` / ``iu``: :func:`item_user_csr`. A walker at an item with no users (or a user with no
    items) cannot move and stops counting."""
    n_items1 = iu.shape[0]
    row = np.repeat(np.arange(len(sources), dtype=np.int64), n_walks)  # (W,) walker -> source row
    src = np.asarray(sources, dtype=np.int64)[row]
    cur = src.copy()
    alive = np.ones(len(cur), dtype=bool)
    rows_out, cols_out = [], []
    i_ptr, i_idx = iu.indptr.astype(np.int64), iu.indices.astype(np.int64)
    u_ptr, u_idx = ui.indptr.astype(np.int64), ui.indices.astype(np.int64)
    for _ in range(n_hops):
        back = rng.random(len(cur)) < restart
        cur = np.where(back, src, cur)
        alive |= back  # a walker that got stuck resumes from its source
        deg_i = i_ptr[cur + 1] - i_ptr[cur]
        alive &= deg_i > 0
        user = i_idx[np.minimum(i_ptr[cur] + (rng.random(len(cur)) * deg_i).astype(np.int64),
                                len(i_idx) - 1)]  # (W,) a random user of the item (dead walkers: any)
        user = np.where(alive, user, 0)
        deg_u = u_ptr[user + 1] - u_ptr[user]
        alive &= deg_u > 0
        nxt = u_idx[np.minimum(u_ptr[user] + (rng.random(len(cur)) * deg_u).astype(np.int64),
                               len(u_idx) - 1)]  # (W,) a random item of the user
        cur = np.where(alive, nxt, cur)
        keep = alive & (cur != src)
        rows_out.append(row[keep])
        cols_out.append(cur[keep])
    r = np.concatenate(rows_out)
    c = np.concatenate(cols_out)
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(sources), n_items1))
    m.sum_duplicates()
    return m


def ranked(counts: sp.csr_matrix, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Every stored entry of ``counts`` ranked within its row by visit count (descending; ties in a
    seeded random order): (row, column, count, rank) arrays sorted by (row, rank)."""
    rows = np.repeat(np.arange(counts.shape[0], dtype=np.int64), np.diff(counts.indptr))
    order = np.lexsort((rng.random(len(rows)), -counts.data, rows))
    rows, cols, cnt = rows[order], counts.indices[order].astype(np.int64), counts.data[order]
    rank = np.arange(len(rows), dtype=np.int64) - counts.indptr[rows]
    return rows, cols, cnt, rank


def build_item_graph(train: CSR, n_items: int, *, n_neighbours: int = 10, n_walks: int = 50,
                     n_hops: int = 4, restart: float = 0.5, hard_lo: int = 100, hard_hi: int = 500,
                     seed: int = 0, chunk: int = 4096) -> ItemGraph:
    """PinSage neighbourhoods of every item (see module docstring) and its hard-negative pool.

    An item's hard pool is the items it visited ranked in ``[lo, hi)`` with ``lo = min(hard_lo,
    n // 2)`` and ``hi = min(hard_hi, n)`` for an item that visited ``n`` distinct items (so a
    rarely connected item still gets its weakest-related visited items); empty when n < 2."""
    if n_neighbours < 1 or n_walks < 1 or n_hops < 1:
        raise ValueError("n_neighbours, n_walks and n_hops must be >= 1")
    if not 0.0 <= restart < 1.0:
        raise ValueError(f"restart must be in [0, 1), got {restart}")
    if not 0 <= hard_lo < hard_hi:
        raise ValueError(f"need 0 <= hard_lo < hard_hi, got {hard_lo}, {hard_hi}")
    ui, iu = item_user_csr(train, n_items)
    nbr = np.zeros((n_items + 1, n_neighbours), dtype=np.int64)
    wts = np.zeros((n_items + 1, n_neighbours), dtype=np.float32)
    hard_rows: list[np.ndarray] = [np.zeros(0, np.int64)]  # item 0: none
    n_visits = 0
    for c, start in enumerate(range(1, n_items + 1, chunk)):
        rng = np.random.default_rng([seed, c])
        sources = np.arange(start, min(start + chunk, n_items + 1), dtype=np.int64)
        counts = visit_counts(ui, iu, sources, n_walks=n_walks, n_hops=n_hops, restart=restart, rng=rng)
        n_visits += int(counts.sum())
        rows, cols, cnt, rank = ranked(counts, rng)
        top = rank < n_neighbours
        nbr[sources[rows[top]], rank[top]] = cols[top]
        wts[sources[rows[top]], rank[top]] = cnt[top]
        n_seen = np.diff(counts.indptr)  # (C,) distinct items visited per source
        lo = np.minimum(hard_lo, n_seen // 2)[rows]
        hi = np.minimum(hard_hi, n_seen)[rows]
        sel = (rank >= lo) & (rank < hi) & (n_seen[rows] >= 2)
        split = np.searchsorted(rows[sel], np.arange(1, len(sources)))
        hard_rows.extend(np.split(cols[sel], split))
    total = wts.sum(1, keepdims=True)
    wts = np.divide(wts, total, out=np.zeros_like(wts), where=total > 0)
    return ItemGraph(nbr, wts.astype(np.float32), CSR.from_lists(hard_rows), n_visits)
