"""Session-parallel and user-parallel mini-batches, the popularity sampler and dwell-time repeats."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from seqrec.data.dwell import dwell_times, repeat_by_dwell
from seqrec.data.events import SessionArrays
from seqrec.data.sampling import PopularitySampler
from seqrec.data.session_parallel import session_parallel_batches
from seqrec.data.user_parallel import user_parallel_batches

# five sessions of lengths 2, 3, 4, 5, 2 (item ids tell session and position apart), plus a
# one-event session (index 2) that has nothing to predict and must be skipped
SESSIONS = [[10, 11], [20, 21, 22], [99], [30, 31, 32, 33], [40, 41, 42, 43, 44], [50, 51]]


def _arrays(sessions):
    a = SessionArrays.from_lists(sessions)
    return a.items, a.offsets


def _trace(steps):
    return [
        (
            s.inputs.tolist(),
            s.targets.tolist(),
            s.reset.tolist(),
            None if s.keep is None else s.keep.tolist(),
        )
        for s in steps
    ]


def test_session_parallel_exact_sequence():
    items, offsets = _arrays(SESSIONS)
    steps = list(session_parallel_batches(items, offsets, batch_size=2))
    # lane 0 starts [10 11], lane 1 [20 21 22]. After step 1 lane 0's session is used up
    # and session [30 ...] enters lane 0 (reset); after step 2 lane 1 takes [40 ...];
    # after step 4 lane 0 takes [50 51]; after step 5 no session is left, so lane 0 is
    # dropped (keep = [1]) and lane 1 finishes [40 ... 44] alone.
    assert _trace(steps) == [
        ([10, 20], [11, 21], [True, True], None),
        ([30, 21], [31, 22], [True, False], None),
        ([31, 40], [32, 41], [False, True], None),
        ([32, 41], [33, 42], [False, False], None),
        ([50, 42], [51, 43], [True, False], None),
        ([43], [44], [False], [1]),
    ]
    assert [s.lanes.tolist() for s in steps] == [[0, 1], [3, 1], [3, 4], [3, 4], [5, 4], [4]]
    assert all(s.inputs.dtype == torch.int64 and s.targets.dtype == torch.int64 for s in steps)


def test_session_parallel_order_and_large_batch():
    items, offsets = _arrays(SESSIONS)
    # batch larger than the number of sessions: every usable session gets its own lane
    steps = list(session_parallel_batches(items, offsets, batch_size=8, order=np.array([5, 0, 4])))
    assert _trace(steps) == [
        ([50, 10, 40], [51, 11, 41], [True, True, True], None),
        ([41], [42], [False], [2]),
        ([42], [43], [False], None),
        ([43], [44], [False], None),
    ]
    # nothing usable -> no step at all
    assert list(session_parallel_batches(items, offsets, 2, order=np.array([2]))) == []


def _check_pairs(sessions, batch_size, order=None):
    """Every within-session (item, next item) pair exactly once, lanes continue their session."""
    items, offsets = _arrays(sessions)
    seen = Counter()
    prev_lanes = None
    prev_pos: dict[int, int] = {}
    for st in session_parallel_batches(items, offsets, batch_size, order):
        lanes = st.lanes
        if st.keep is not None:
            prev_lanes = prev_lanes[st.keep.numpy()]
        for b, s in enumerate(lanes):
            if not st.reset[b]:
                assert prev_lanes[b] == s  # a lane without reset continues the same session
                prev_pos[s] += 1
            else:
                assert s not in prev_pos  # a session enters a lane once
                prev_pos[s] = 0
            p = prev_pos[s]
            assert (st.inputs[b].item(), st.targets[b].item()) == (
                sessions[s][p],
                sessions[s][p + 1],
            )
            seen[(s, p)] += 1
        prev_lanes = lanes.copy()
    want = Counter({(s, p): 1 for s, sess in enumerate(sessions) for p in range(len(sess) - 1)})
    if order is not None:
        want = Counter({k: v for k, v in want.items() if k[0] in set(order.tolist())})
    assert seen == want


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 50])
def test_session_parallel_every_pair_once(batch_size):
    rng = np.random.default_rng(batch_size)
    sessions = [list(rng.integers(2, 40, size=rng.integers(1, 9))) for _ in range(30)]
    _check_pairs(sessions, batch_size)
    _check_pairs(sessions, batch_size, order=rng.permutation(30)[:20])


# -- user-parallel (HRNN) ---------------------------------------------------------------------

# user 0: sessions 0 [100 101], 1 [110 111 112]
# user 1: sessions 2 [200 201], 3 [210] (one event: skipped), 4 [220 221]
# user 2: session 5 [300 301 302]
USER_SESSIONS = [[100, 101], [110, 111, 112], [200, 201], [210], [220, 221], [300, 301, 302]]
SESSION_USER = np.array([0, 0, 1, 1, 1, 2])


def test_user_parallel_exact_sequence():
    items, offsets = _arrays(USER_SESSIONS)
    steps = list(user_parallel_batches(items, offsets, SESSION_USER, batch_size=2))
    trace = [
        (
            s.inputs.tolist(),
            s.targets.tolist(),
            s.new_session.tolist(),
            s.new_user.tolist(),
            None if s.keep is None else s.keep.tolist(),
            s.sessions.tolist(),
        )
        for s in steps
    ]
    # step 1: users 0 and 1 start; both first sessions end -> each lane moves to its user's
    # next usable session (new_session, same user); step 2: user 1 has no session left after
    # [220 221] -> user 2 enters lane 1 (new_user); user 0 ends after step 3 and no user is
    # left -> lane 0 dropped.
    assert trace == [
        ([100, 200], [101, 201], [True, True], [True, True], None, [0, 2]),
        ([110, 220], [111, 221], [True, True], [False, False], None, [1, 4]),
        ([111, 300], [112, 301], [False, True], [False, True], None, [1, 5]),
        ([301], [302], [False], [False], [1], [5]),
    ]


def test_user_parallel_no_pair_crosses_a_session():
    rng = np.random.default_rng(0)
    sessions, users = [], []
    for u in range(12):
        for _ in range(rng.integers(1, 4)):
            sessions.append(list(rng.integers(2, 50, size=rng.integers(1, 6))))
            users.append(u)
    items, offsets = _arrays(sessions)
    session_user = np.array(users)
    seen = Counter()
    pos: dict[int, int] = {}
    prev = None
    for st in user_parallel_batches(items, offsets, session_user, batch_size=3):
        if st.keep is not None:
            prev = prev[st.keep.numpy()]
        for b, s in enumerate(st.sessions):
            s = int(s)
            if st.new_session[b]:
                assert s not in pos
                pos[s] = 0
                if prev is not None and b < len(prev) and not st.new_user[b]:
                    # same user continues with a later session
                    assert session_user[prev[b]] == session_user[s] and s > prev[b]
                if st.new_user[b] and prev is not None and b < len(prev):
                    assert session_user[prev[b]] != session_user[s]
            else:
                assert prev[b] == s
                pos[s] += 1
            assert not (st.new_user[b] and not st.new_session[b])  # new user => new session
            p = pos[s]
            assert (st.inputs[b].item(), st.targets[b].item()) == (
                sessions[s][p],
                sessions[s][p + 1],
            )
            seen[(s, p)] += 1
        prev = st.sessions.copy()
    want = Counter({(s, p): 1 for s, sess in enumerate(sessions) for p in range(len(sess) - 1)})
    assert seen == want


# -- popularity sampler ----------------------------------------------------------------------

COUNTS = np.array([0, 0, 1, 4, 9, 0, 16], dtype=np.float64)  # padding, OOV, items 2..6


def _freq(sampler, n_batches):
    draws = torch.cat([sampler.next() for _ in range(n_batches)]).numpy()
    return np.bincount(draws, minlength=len(COUNTS)) / len(draws), draws


def test_sampler_follows_count_power_alpha():
    # alpha = 0.5: weights sqrt(count) = (0, 0, 1, 2, 3, 0, 4) -> probabilities / 10
    s = PopularitySampler(COUNTS, alpha=0.5, n_sample=1000, cache_size=50_000, seed=3)
    np.testing.assert_allclose(s.probs, [0, 0, 0.1, 0.2, 0.3, 0, 0.4])
    freq, draws = _freq(s, 200)  # 200k draws over 4 refills of the cache
    assert freq[[0, 1, 5]].sum() == 0  # padding, OOV and count-0 items never drawn
    np.testing.assert_allclose(freq, s.probs, atol=0.005)
    assert draws.dtype == np.int64


def test_sampler_alpha_zero_is_uniform_over_seen_items():
    s = PopularitySampler(COUNTS, alpha=0.0, n_sample=500, cache_size=20_000, seed=0)
    freq, _ = _freq(s, 200)
    np.testing.assert_allclose(freq[[2, 3, 4, 6]], 0.25, atol=0.006)
    assert freq[[0, 1, 5]].sum() == 0


def test_sampler_alpha_one_is_popularity():
    s = PopularitySampler(COUNTS, alpha=1.0, n_sample=500, cache_size=20_000, seed=0)
    freq, _ = _freq(s, 200)
    np.testing.assert_allclose(freq, COUNTS / COUNTS.sum(), atol=0.006)


def test_sampler_seeded_and_shared_shape():
    a = PopularitySampler(COUNTS, 0.75, n_sample=16, cache_size=64, seed=7)
    b = PopularitySampler(COUNTS, 0.75, n_sample=16, cache_size=64, seed=7)
    c = PopularitySampler(COUNTS, 0.75, n_sample=16, cache_size=64, seed=8)
    xa = [a.next() for _ in range(10)]  # 4 draws per cache: crosses refills
    xb = [b.next() for _ in range(10)]
    xc = [c.next() for _ in range(10)]
    assert all(torch.equal(p, q) for p, q in zip(xa, xb, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(xa, xc, strict=True))
    assert all(x.shape == (16,) for x in xa)
    assert not torch.equal(xa[0], xa[4])  # a refill draws new numbers


def test_sampler_edge_cases():
    assert PopularitySampler(COUNTS, 0.5, n_sample=0).next().shape == (0,)
    with pytest.raises(ValueError, match="positive count"):
        PopularitySampler(np.zeros(5), 0.5, n_sample=4)


# -- dwell time ------------------------------------------------------------------------------


def _timed(sessions, times):
    a = SessionArrays.from_lists(sessions)
    a.times = np.asarray(times, dtype=np.float64)
    return a


def test_repeat_by_dwell_hand_computed():
    # session 0 times 0, 10, 95, 100 -> dwell 10, 85, 5, (last) -> floor(d / 30) + 1 = 1, 3, 1, 1
    # session 1 times 200, 290     -> dwell 90, (last)         -> 4, 1 (the 100 -> 200 gap
    # between the sessions is no dwell time)
    a = _timed([[2, 3, 4, 5], [6, 7]], [0, 10, 95, 100, 200, 290])
    dt = dwell_times(a)
    np.testing.assert_array_equal(dt[[0, 1, 2, 4]], [10, 85, 5, 90])
    assert np.isnan(dt[[3, 5]]).all()
    out = repeat_by_dwell(a, bucket=30)
    assert out.items.tolist() == [2, 3, 3, 3, 4, 5, 6, 6, 6, 6, 7]
    assert out.offsets.tolist() == [0, 6, 11]
    assert out.times.tolist() == [0, 10, 10, 10, 95, 100, 200, 200, 200, 200, 290]
    # max_repeat caps the copies
    capped = repeat_by_dwell(a, bucket=30, max_repeat=2)
    assert capped.items.tolist() == [2, 3, 3, 4, 5, 6, 6, 7]
    assert capped.offsets.tolist() == [0, 5, 8]
    # bucket larger than every dwell: unchanged
    same = repeat_by_dwell(a, bucket=1000)
    assert same.items.tolist() == a.items.tolist() and same.offsets.tolist() == a.offsets.tolist()


def test_repeat_by_dwell_keeps_users_and_single_event_sessions():
    a = _timed([[2], [3, 4]], [5, 0, 61])
    a.users = np.array([7, 8])
    out = repeat_by_dwell(a, bucket=60)
    assert out.items.tolist() == [2, 3, 3, 4] and out.offsets.tolist() == [0, 1, 4]
    assert out.users.tolist() == [7, 8]


@pytest.mark.parametrize("bucket", [0, -5])
def test_repeat_by_dwell_bad_bucket(bucket):
    a = _timed([[2, 3]], [0, 10])
    with pytest.raises(ValueError, match="bucket"):
        repeat_by_dwell(a, bucket=bucket)
    with pytest.raises(ValueError, match="max_repeat"):
        repeat_by_dwell(a, bucket=30, max_repeat=0)


def test_sampler_refill_equals_searchsorted_then_row_sort():
    """The galloping kernel gives exactly np.searchsorted(cdf, u, "right") with each row sorted,
    including keys equal to a cdf value (side "right": the next item) and items of weight 0."""
    from seqrec.kernels.sampling import inverse_cdf_sorted_rows

    rng = np.random.default_rng(0)
    counts = rng.zipf(1.5, 5000).astype(np.float64)
    counts[rng.choice(5000, 500, replace=False)] = 0  # runs of equal cdf values
    s = PopularitySampler(counts, 0.75, n_sample=300, cache_size=300 * 40, seed=1)
    u = np.random.default_rng(1).random((40, 300))
    u[0, :50] = s.cdf[rng.choice(4999, 50)]  # exact cdf values
    u[1, :3] = [0.0, np.nextafter(1.0, 0.0), s.cdf[0]]
    want = np.sort(np.searchsorted(s.cdf, u, side="right"), axis=1)
    got = np.empty(u.shape, dtype=np.int64)
    inverse_cdf_sorted_rows(s.cdf, u.copy(), got)
    np.testing.assert_array_equal(got, want)
    assert (np.diff(got, axis=1) >= 0).all()
    # and the sampler itself serves these rows: the same seed, the same draws as the reference
    ref = np.sort(np.searchsorted(s.cdf, np.random.default_rng(1).random((40, 300)), side="right"), axis=1)
    np.testing.assert_array_equal(torch.stack([s.next() for _ in range(40)]).numpy(), ref)
