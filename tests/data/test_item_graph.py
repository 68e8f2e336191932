"""PinSage's item graph: random-walk visit counts and importance-based neighbourhoods."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.item_graph import build_item_graph, item_user_csr, visit_counts
from seqrec.data.tasks.retrieval import CSR


def _train(rows: list[list[int]]) -> CSR:
    return CSR.from_lists([np.asarray(r, np.int64) for r in rows])


# users: 0 {1, 2}, 1 {1, 2}, 2 {1, 3}, 3 {4, 5}; item 6 has no interaction
TINY = _train([[1, 2], [1, 2], [1, 3], [4, 5]])


def test_visit_counts_follow_co_interaction_on_a_hand_made_graph():
    ui, iu = item_user_csr(TINY, 6)
    c = visit_counts(ui, iu, np.array([1]), n_walks=3000, n_hops=1, restart=0.0,
                     rng=np.random.default_rng(0)).toarray()[0]
    # from item 1: P(2) = 2/3 * 1/2 = 1/3, P(3) = 1/3 * 1/2 = 1/6, itself (not counted) 1/2
    assert c[1] == 0 and c[4] == c[5] == c[6] == 0
    assert c[2] / 3000 == pytest.approx(1 / 3, abs=0.03)
    assert c[3] / 3000 == pytest.approx(1 / 6, abs=0.03)


def test_neighbours_are_ordered_by_visit_count_with_normalised_weights():
    g = build_item_graph(TINY, 6, n_neighbours=3, n_walks=2000, n_hops=1, restart=0.0, seed=0)
    assert g.neighbours[1].tolist() == [2, 3, 0]
    assert g.weights[1, 0] > g.weights[1, 1] > 0 and g.weights[1, 2] == 0
    assert g.weights[1].sum() == pytest.approx(1.0)
    assert g.weights[1, 0] == pytest.approx(2 / 3, abs=0.03)  # 1/3 : 1/6 of the visits
    assert g.neighbours[4].tolist() == [5, 0, 0] and g.weights[4, 0] == pytest.approx(1.0)
    assert g.neighbours[2].tolist() == [1, 0, 0]  # one hop: 2's users hold only 1 and 2


def _random_train(seed: int, n_users: int = 60, n_items: int = 40) -> CSR:
    rng = np.random.default_rng(seed)
    return _train([np.sort(rng.choice(np.arange(1, n_items + 1), rng.integers(1, 8), replace=False)).tolist()
                   for _ in range(n_users)])


def test_one_hop_neighbourhoods_only_hold_co_interacted_items():
    train = _random_train(1)
    ui, _ = item_user_csr(train, 40)
    co = (ui.T @ ui).toarray() > 0  # (41, 41) items sharing a user
    g = build_item_graph(train, 40, n_neighbours=8, n_walks=30, n_hops=1, restart=0.0, seed=3)
    for i in range(1, 41):
        nb = g.neighbours[i][g.neighbours[i] > 0]
        assert i not in nb
        assert co[i, nb].all(), f"item {i}: {nb} not all co-interacted"
        assert len(set(nb.tolist())) == len(nb)


def test_longer_walks_stay_in_the_connected_component():
    g = build_item_graph(TINY, 6, n_neighbours=4, n_walks=200, n_hops=5, restart=0.3, seed=0)
    for i in (1, 2, 3):
        assert set(g.neighbours[i][g.neighbours[i] > 0].tolist()) <= {1, 2, 3} - {i}
    assert set(g.neighbours[5][g.neighbours[5] > 0].tolist()) == {4}
    assert not g.neighbours[6].any() and not g.weights[6].any()  # no interactions: no neighbours
    assert not g.neighbours[0].any()


def test_same_seed_same_graph_other_seed_other_graph():
    train = _random_train(2)
    kw = dict(n_neighbours=5, n_walks=10, n_hops=3, restart=0.3, hard_lo=2, hard_hi=6, chunk=16)
    a, b = build_item_graph(train, 40, seed=7, **kw), build_item_graph(train, 40, seed=7, **kw)
    c = build_item_graph(train, 40, seed=8, **kw)
    assert np.array_equal(a.neighbours, b.neighbours) and np.array_equal(a.weights, b.weights)
    assert np.array_equal(a.hard.values, b.hard.values) and np.array_equal(a.hard.indptr, b.hard.indptr)
    assert not np.array_equal(a.weights, c.weights)


def test_hard_pool_is_the_rank_range_below_the_neighbourhood():
    train = _random_train(4)
    g = build_item_graph(train, 40, n_neighbours=3, n_walks=200, n_hops=3, restart=0.3, hard_lo=3,
                         hard_hi=8, seed=0)
    full = 0
    for i in range(1, 41):
        pool = g.hard.row(i)
        assert i not in pool and len(pool) <= 5 and len(set(pool.tolist())) == len(pool)
        if len(pool) == 5:  # items that visited >= 8 items: exactly ranks 3..7, below the top 3
            full += 1
            assert not set(pool.tolist()) & set(g.neighbours[i].tolist())
    assert full > 20


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        build_item_graph(TINY, 6, n_neighbours=0)
    with pytest.raises(ValueError):
        build_item_graph(TINY, 6, restart=1.0)
    with pytest.raises(ValueError):
        build_item_graph(TINY, 6, hard_lo=5, hard_hi=5)
