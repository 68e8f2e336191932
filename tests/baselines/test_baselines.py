"""POP, item-kNN and SKNN: hand-computed toy values, lane handling, save/load, real-data smoke."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

from seqrec.baselines import (
    BASELINES,
    SKNN,
    ItemKNN,
    ItemKNNConfig,
    Pop,
    PopConfig,
    SKNNConfig,
    load_baseline,
)
from seqrec.baselines.base import TIEBREAK_EPS, dense_scores, tie_order
from seqrec.data.events import SessionArrays, validate_events
from seqrec.data.vocab import OOV, Vocab
from seqrec.errors import CheckpointError, DataValidationError
from seqrec.evaluate.ranking import evaluate_sessions

S2, S3, S6 = 1 / math.sqrt(2), 1 / math.sqrt(3), 1 / math.sqrt(6)

# item-kNN / POP toy set, items 2..5 (n_items = 6)
#   supports (sessions containing the item): 2 -> 3 (s0 s1 s3), 3 -> 3 (s0 s1 s2),
#   4 -> 2 (s0 s3; clicked twice in s3), 5 -> 1 (s2)
#   co-occurrence: (2,3) = 2, (2,4) = 2, (3,4) = 1, (3,5) = 1, (2,5) = (4,5) = 0
IK_TRAIN = [[2, 3, 4], [2, 3], [3, 5], [2, 4, 4]]


def _step(model, items, reset):
    return model.step(torch.tensor(items, dtype=torch.int64), torch.tensor(reset, dtype=torch.bool))


def _walk(model, session):
    """Scores after each item of one session in a single lane."""
    model.begin(1)
    return [_step(model, [i], [t == 0])[0] for t, i in enumerate(session)]


# -- POP ------------------------------------------------------------------------------------


def test_pop_counts_and_scores():
    train = SessionArrays.from_lists(IK_TRAIN)
    pop = Pop().fit(train, 6)
    # clicks: 2 -> 3, 3 -> 3, 4 -> 3 (1 + 2), 5 -> 1; specials 0
    assert pop.counts_.tolist() == [0, 0, 3, 3, 3, 1]
    by_session = Pop(PopConfig(count="sessions")).fit(train, 6)
    assert by_session.counts_.tolist() == [0, 0, 3, 3, 2, 1]
    raw = Pop(PopConfig(tiebreak="none")).fit(train, 6)
    raw.begin(3)
    out = _step(raw, [2, OOV, 5], [True, True, True])
    assert out.shape == (3, 6) and out.dtype == torch.float32
    assert (out == torch.tensor([0.0, 0, 3, 3, 3, 1])).all()
    out[:, :2] = -torch.inf  # the evaluator writes in place: must not touch the model
    raw.keep(torch.tensor([2]))
    assert _step(raw, [3], [False])[0].tolist() == [0.0, 0, 3, 3, 3, 1]
    # default: the three items with 3 clicks get one strict order, counts are kept
    pop.begin(1)
    out = _step(pop, [2], [True])[0]
    assert out.dtype == torch.float64 and len(set(out.tolist())) == 6
    np.testing.assert_allclose(out.numpy(), [0, 0, 3, 3, 3, 1], atol=1e-6)


def test_tie_order_is_one_strict_order_by_popularity_then_fixed():
    counts = np.array([0, 0, 5, 1, 5, 5, 1, 9])
    tie = tie_order(counts, "pop")
    assert tie.dtype == np.float64 and len(set(tie.tolist())) == len(counts)
    assert (tie > 0).all() and (tie < TIEBREAK_EPS).all()
    # more popular -> larger term, whatever the fixed order among equals
    for i, j in itertools.product(range(len(counts)), repeat=2):
        if counts[i] > counts[j]:
            assert tie[i] > tie[j]
    np.testing.assert_array_equal(tie, tie_order(counts, "pop"))  # deterministic
    assert tie_order(counts, "none") is None
    # effective at non-zero kNN scores: float32 0.577.. + term is distinct per item
    scores = dense_scores(sp.csr_matrix(np.full((1, 8), np.float32(1 / math.sqrt(3)))), tie)
    assert scores.dtype == torch.float64 and len(set(scores[0].tolist())) == 8


@pytest.mark.slow
@pytest.mark.parametrize("cls", [Pop, ItemKNN, SKNN])
def test_default_baselines_rank_the_same_under_both_tie_rules(cls, yoochoose):
    """notes/pitfalls.md: optimistic and pessimistic ranks must agree; kNN scores tie a lot
    (taobao item-kNN MRR@20 was 0.1394 optimistic vs 0.0486 pessimistic before tie_order)."""
    train, test, n_items = yoochoose
    model = cls().fit(train, n_items)
    opt = evaluate_sessions(model, test, ks=(20,))
    pes = evaluate_sessions(model, test, ks=(20,), ties="pessimistic")
    assert opt["recall@20"] == pes["recall@20"] and opt["mrr@20"] == pes["mrr@20"]


def test_bad_input_is_rejected():
    with pytest.raises(DataValidationError, match="n_items"):
        Pop().fit(SessionArrays.from_lists([[2, 9]]), 6)
    with pytest.raises(RuntimeError, match="fit"):
        Pop().begin(2)
    with pytest.raises(ValueError, match="k must be"):
        ItemKNNConfig(k=-1)
    model = ItemKNN(ItemKNNConfig(tiebreak="none")).fit(SessionArrays.from_lists(IK_TRAIN), 6)
    model.begin(2)
    with pytest.raises(ValueError, match="lanes"):
        _step(model, [2], [True])


# -- item-kNN -------------------------------------------------------------------------------


def test_itemknn_cosine_lambda0():
    m = ItemKNN(ItemKNNConfig(k=0, lambda_reg=0.0, tiebreak="none")).fit(SessionArrays.from_lists(IK_TRAIN), 6)
    # cosine: co / sqrt(supp_i supp_j); sim(i, i) = 0
    #   (2,3) = 2 / sqrt(3*3) = 2/3      (2,4) = 2 / sqrt(3*2) = 2/sqrt(6) = 0.8165
    #   (3,4) = 1 / sqrt(3*2) = 0.4082   (3,5) = 1 / sqrt(3*1) = 0.5774
    expected = np.zeros((6, 6))
    for (i, j), v in {(2, 3): 2 / 3, (2, 4): 2 * S6, (3, 4): S6, (3, 5): S3}.items():
        expected[i, j] = expected[j, i] = v
    np.testing.assert_allclose(m.sim_.toarray(), expected, rtol=1e-6)
    assert m.support_.tolist() == [0, 0, 3, 3, 2, 1]


def test_itemknn_lambda_and_topk():
    train = SessionArrays.from_lists(IK_TRAIN)
    m = ItemKNN(ItemKNNConfig(k=0, lambda_reg=2.0, tiebreak="none")).fit(train, 6)
    # co / sqrt((supp_i + 2)(supp_j + 2)):
    #   (2,3) = 2 / sqrt(5*5) = 0.4      (2,4) = 2 / sqrt(5*4) = 0.4472
    #   (3,4) = 1 / sqrt(5*4) = 0.2236   (3,5) = 1 / sqrt(5*3) = 0.2582
    expected = np.zeros((6, 6))
    pairs = {
        (2, 3): 0.4,
        (2, 4): 2 / math.sqrt(20),
        (3, 4): 1 / math.sqrt(20),
        (3, 5): 1 / math.sqrt(15),
    }
    for (i, j), v in pairs.items():
        expected[i, j] = expected[j, i] = v
    np.testing.assert_allclose(m.sim_.toarray(), expected, rtol=1e-6)
    # k = 1 keeps each item's best neighbour: 2 -> 4 (0.447 > 0.4), 3 -> 2, 4 -> 2, 5 -> 3
    top1 = ItemKNN(ItemKNNConfig(k=1, lambda_reg=2.0, tiebreak="none")).fit(train, 6).sim_.toarray()
    assert [int(np.argmax(r)) if r.any() else -1 for r in top1] == [-1, -1, 4, 2, 2, 3]
    assert (top1 > 0).sum() == 4
    # k = 2 drops only item 3's weakest neighbour, 4 (0.2236 < 0.2582 < 0.4): the kept
    # matrix is no longer symmetric (4 still lists 3)
    top2 = ItemKNN(ItemKNNConfig(k=2, lambda_reg=2.0, tiebreak="none")).fit(train, 6).sim_.toarray()
    expected[3, 4] = 0.0
    np.testing.assert_allclose(top2, expected, rtol=1e-6)


def test_itemknn_scores_use_last_item_only():
    m = ItemKNN(ItemKNNConfig(k=0, lambda_reg=0.0, tiebreak="none")).fit(SessionArrays.from_lists(IK_TRAIN), 6)
    m.begin(2)
    out = _step(m, [3, OOV], [True, True])
    np.testing.assert_allclose(out[0].numpy(), [0, 0, 2 / 3, 0, S6, S3], rtol=1e-6)
    assert (out[1] == 0).all()  # OOV last item: no similarity at all
    out = _step(m, [2, 4], [False, False])  # history does not matter, only the last item
    np.testing.assert_allclose(out[0].numpy(), [0, 0, 0, 2 / 3, 2 * S6, 0], rtol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), [0, 0, 2 * S6, S6, 0, 0], rtol=1e-6)


# -- SKNN -----------------------------------------------------------------------------------

# training sessions in time order (from_lists: time = position), items 2..6 (n_items = 7)
SK_TRAIN = [[2, 3], [3, 4], [4, 5, 6], [2, 5]]  # t0 .. t3, |t| = 2, 2, 3, 2


def test_sknn_hand_computed():
    m = SKNN(SKNNConfig(tiebreak="none")).fit(SessionArrays.from_lists(SK_TRAIN), 7)
    first, second = _walk(m, [3, 5])
    # s = {3}: candidates t0, t1 (share item 3); sim = 1 / sqrt(1 * 2) each
    #   item 2: t0; item 3: t0 + t1; item 4: t1
    np.testing.assert_allclose(first.numpy(), [0, 0, S2, 2 * S2, S2, 0, 0], rtol=1e-6)
    # s = {3, 5}: t0, t1, t3 overlap 1 -> 1 / sqrt(2 * 2) = 0.5; t2 overlap 1 -> 1 / sqrt(2 * 3)
    #   item 2: t0 + t3 = 1; item 3: t0 + t1 = 1; item 4: t1 + t2; item 5: t2 + t3; item 6: t2
    np.testing.assert_allclose(second.numpy(), [0, 0, 1.0, 1.0, 0.5 + S6, 0.5 + S6, S6], rtol=1e-6)


def test_sknn_k_and_sample_size():
    train = SessionArrays.from_lists(SK_TRAIN)
    # s = {4, 5}: t1 overlap 1 -> 0.5; t2 overlap 2 -> 2 / sqrt(2 * 3) = 0.8165; t3 -> 0.5
    # k = 1 keeps t2 only: items 4, 5, 6 get 0.8165
    _, out = _walk(SKNN(SKNNConfig(k=1, tiebreak="none")).fit(train, 7), [4, 5])
    np.testing.assert_allclose(out.numpy(), [0, 0, 0, 0, 2 * S6, 2 * S6, 2 * S6], rtol=1e-6)
    # s = {3, 5} with sample_size = 2: only the 2 most recent candidates, t2 (0.4082) and
    # t3 (0.5), are compared: item 2: t3; item 4: t2; item 5: t2 + t3; item 6: t2
    _, out = _walk(SKNN(SKNNConfig(sample_size=2, tiebreak="none")).fit(train, 7), [3, 5])
    np.testing.assert_allclose(out.numpy(), [0, 0, 0.5, 0, S6, 0.5 + S6, S6], rtol=1e-6)


def test_sknn_recency_by_time_or_order():
    train = SessionArrays.from_lists(SK_TRAIN)
    train.times = np.array([9.0, 9.5, 1, 1, 1, 2, 2, 3, 3])  # t0 is the most recent session
    # s = {3}: candidates t0, t1; sample_size = 1 keeps the most recent one
    by_time = _walk(SKNN(SKNNConfig(sample_size=1, tiebreak="none")).fit(train, 7), [3])[0]
    np.testing.assert_allclose(by_time.numpy(), [0, 0, S2, S2, 0, 0, 0], rtol=1e-6)  # t0
    by_order = _walk(SKNN(SKNNConfig(sample_size=1, recency="order", tiebreak="none")).fit(train, 7), [3])[0]
    np.testing.assert_allclose(by_order.numpy(), [0, 0, 0, S2, S2, 0, 0], rtol=1e-6)  # t1


def test_sknn_oov_and_lane_reset():
    m = SKNN(SKNNConfig(tiebreak="none")).fit(SessionArrays.from_lists(SK_TRAIN), 7)
    fresh_3 = _walk(m, [3])[0]
    fresh_45 = _walk(m, [4, 5])[1]
    m.begin(2)
    out = _step(m, [OOV, 3], [True, True])
    assert (out[0] == 0).all()  # only an OOV item seen: nothing to compare on
    out = _step(m, [3, 5], [False, False])
    assert torch.equal(out[0], fresh_3)  # the OOV item added nothing
    # lane 1 starts a new session with item 4: {3, 5} must not leak into it
    out = _step(m, [6, 4], [False, True])
    out = _step(m, [2, 5], [False, False])
    assert torch.equal(out[1], fresh_45)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_lanes_are_independent_and_keep_reindexes(name):
    train = SessionArrays.from_lists(SK_TRAIN + IK_TRAIN)
    model = BASELINES[name]().fit(train, 7)
    a, b, c = [2, 3, 5], [4, 6, 2], [6, 5, 3]
    alone = {tuple(s): _walk(model, s) for s in (a, b, c)}
    model.begin(3)
    rows = [_step(model, [a[0], b[0], c[0]], [True] * 3)]
    rows.append(_step(model, [a[1], b[1], c[1]], [False] * 3))
    model.keep(torch.tensor([0, 2]))  # lane b finishes; c moves to index 1
    rows.append(_step(model, [a[2], c[2]], [False, False]))
    for t in range(3):
        assert torch.equal(rows[t][0], alone[tuple(a)][t])
        assert torch.equal(rows[t][-1], alone[tuple(c)][t])
    assert torch.equal(rows[1][1], alone[tuple(b)][1])
    model.keep(torch.tensor([], dtype=torch.int64))  # the evaluator's final call may be empty


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_save_load_round_trip(name, tmp_path):
    rng = np.random.default_rng(0)
    sessions = [list(rng.integers(2, 30, size=rng.integers(1, 7))) for _ in range(80)]
    train = SessionArrays.from_lists(sessions)
    model = BASELINES[name]().fit(train, 30)
    model.save(tmp_path / name)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["baseline.json", "state.npz"]
    loaded = load_baseline(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.n_items == model.n_items
    walk = [5, 7, OOV, 7, 12, 3]
    for x, y in zip(_walk(model, walk), _walk(loaded, walk), strict=True):
        assert torch.equal(x, y)
    other = next(n for n in sorted(BASELINES) if n != name)
    with pytest.raises(CheckpointError, match="holds baseline"):
        BASELINES[other].load(tmp_path / name)
    with pytest.raises(CheckpointError, match="not found"):
        load_baseline(tmp_path / "missing")


# -- real data: yoochoose_100k ---------------------------------------------------------------


def _read_gru4rec_tsv(path: Path) -> pl.DataFrame:
    df = pl.read_csv(path, separator="\t").rename(
        {"SessionId": "session_id", "ItemId": "item_id", "Time": "timestamp"}
    )
    # keep sessions in file order, sort each session's events by time (stable)
    df = df.with_row_index("_row").with_columns(_first=pl.col("_row").min().over("session_id"))
    df = df.sort(["_first", "timestamp", "_row"]).drop("_row", "_first")
    return validate_events(df, str(path))


@pytest.fixture(scope="module")
def yoochoose(data_root: Path):
    """The real data from the shared data root (tests/conftest.py; skipped when it is absent)."""
    yc = data_root / "session" / "yoochoose_100k"
    train = _read_gru4rec_tsv(yc / "yoochoose-clicks-100k_train_full.txt")
    test = _read_gru4rec_tsv(yc / "yoochoose-clicks-100k_test.txt")
    vocab = Vocab(train["item_id"])
    return (
        SessionArrays.from_events(train, vocab),
        SessionArrays.from_events(test, vocab),
        len(vocab),
    )


@pytest.fixture(scope="module")
def yoochoose_results(yoochoose):
    train, test, n_items = yoochoose
    out = {}
    for name, cls in BASELINES.items():
        t0 = time.perf_counter()
        model = cls().fit(train, n_items)
        t1 = time.perf_counter()
        res = evaluate_sessions(model, test, ks=(20,))
        t2 = time.perf_counter()
        pes = evaluate_sessions(model, test, ks=(20,), ties="pessimistic")
        out[name] = res
        print(
            f"\nyoochoose_100k test {name:8s} Recall@20 {res['recall@20']:.4f} "
            f"MRR@20 {res['mrr@20']:.4f} (pessimistic ties {pes['recall@20']:.4f} / "
            f"{pes['mrr@20']:.4f}) n_events {res['n_events']} "
            f"fit {t1 - t0:.2f}s evaluate {t2 - t1:.2f}s"
        )
    return out


@pytest.mark.slow
def test_yoochoose_pop(yoochoose_results):
    res = yoochoose_results["pop"]
    assert res["n_events"] == 13568 - 3416  # every position of every test session
    # POP is deterministic: the figures of benchmarks/results/session.json
    assert res["recall@20"] == pytest.approx(0.0894405, abs=1e-6)
    assert res["mrr@20"] == pytest.approx(0.0263507, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["item-knn", "sknn"])
def test_yoochoose_knn_beats_pop(yoochoose_results, name):
    assert yoochoose_results[name]["recall@20"] > yoochoose_results["pop"]["recall@20"]
    assert yoochoose_results[name]["mrr@20"] > yoochoose_results["pop"]["mrr@20"]


# -- cross-check against direct (slow, obviously correct) implementations -------------------


def _random_sessions(seed: int, n: int, n_items: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(i) for i in rng.integers(2, n_items, size=rng.integers(1, 7))] for _ in range(n)]


def test_sknn_matches_direct_implementation():
    n_items, k, m = 25, 4, 12
    train = _random_sessions(1, 120, n_items)
    sets = [set(s) for s in train]
    model = SKNN(SKNNConfig(k=k, sample_size=m, tiebreak="none")).fit(SessionArrays.from_lists(train), n_items)
    for session in _random_sessions(2, 15, n_items):
        for t, got in enumerate(_walk(model, session)):
            s = set(session[: t + 1])
            cands = [j for j, n in enumerate(sets) if s & n][-m:]  # the m most recent
            sims = [(len(s & sets[j]) / np.sqrt(len(s) * len(sets[j])), j) for j in cands]
            best = sorted(sims, reverse=True)[:k]  # ties: the more recent session wins
            want = np.zeros(n_items)
            for sim, j in best:
                want[list(sets[j])] += sim
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-7)


def test_itemknn_matches_direct_implementation():
    n_items, lam = 25, 3.0
    train = [set(s) for s in _random_sessions(3, 150, n_items)]
    model = ItemKNN(ItemKNNConfig(k=0, lambda_reg=lam, tiebreak="none")).fit(
        SessionArrays.from_lists([sorted(s) for s in train]), n_items
    )
    supp = [sum(i in s for s in train) for i in range(n_items)]
    want = np.zeros((n_items, n_items))
    for i in range(2, n_items):
        for j in range(2, n_items):
            co = sum(i in s and j in s for s in train)
            if i != j and co:
                want[i, j] = co / np.sqrt((supp[i] + lam) * (supp[j] + lam))
    np.testing.assert_allclose(model.sim_.toarray(), want, rtol=1e-6)


@pytest.mark.parametrize("cls", [ItemKNN, SKNN])
def test_popularity_tiebreak_orders_zero_scores_and_stays_below_similarities(cls):
    """With tiebreak="pop" items a kNN model scores 0 are ordered by popularity (no ties),
    and the term never changes the order of items with different similarities."""
    train = SessionArrays.from_lists([[2, 3], [2, 3], [4, 5], [4, 5], [4, 6], [6, 7], [8, 9]])
    n_items = 10
    raw = cls(cls.config_cls(tiebreak="none")).fit(train, n_items)
    tb = cls(cls.config_cls()).fit(train, n_items)
    for m in (raw, tb):
        m.begin(1)
    r = raw.step(torch.tensor([2]), torch.tensor([True]))[0].double()
    t = tb.step(torch.tensor([2]), torch.tensor([True]))[0].double()
    assert (t - r).abs().max() < 1e-6
    real = torch.arange(2, n_items)
    # the zero-scored items are now ordered by popularity: 4 (3 sessions) > 5, 6 (2) > 7, 8 (1)
    zero = [i for i in real.tolist() if r[i] == 0]
    assert {4, 5, 6, 7, 8} <= set(zero)
    assert t[4] > t[5] > t[7] and t[6] > t[8]
    # items with a positive similarity stay above every zero-similarity item
    pos = [i for i in real.tolist() if r[i] > 0]
    assert min(t[i] for i in pos) > max(t[i] for i in zero)
