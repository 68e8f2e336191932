"""Purchase prediction samples: the task builder of seqrec.data.tasks.purchase.

Hand-made canonical logs check the recipe of :mod:`seqrec.data.tasks.purchase` exactly
(cut-offs, labels under both negative rules, shift augmentation, leakage, bad input); the
real logs check that no input sees the cut-off. Readers: ``test_purchase_readers.py``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from seqrec.config import PurchaseTaskConfig
from seqrec.data.readers.purchase import (
    COLUMNS,
    PURCHASE_DATASETS,
    PurchaseDataset,
    canonical_log,
)
from seqrec.data.tasks.purchase import (
    AGG_FEATURES,
    EventArrays,
    balance,
    build_purchase_task,
    check_category,
    label_users,
    read_purchase_log,
    resolve,
    scoring_samples,
    shift_augment,
)
from seqrec.errors import ConfigError, DataValidationError, SchemaError

SPLITS = ("train", "valid", "test")


# -- hand-made logs -----------------------------------------------------------------------------
def ev(user: str, time: float, order: int, cate: str = "Y", *, btype: str = "buy", product: str | None = None,
       sub: str | None = None, quantity: float = 1.0, value: float = 0.0) -> dict:
    """One event of a canonical log (day = time, so gaps are in the same unit)."""
    return {"user_id": user, "time": float(time), "day": float(time), "order_id": order, "btype": btype,
            "product": product or f"p_{cate}", "cate": cate, "sub": sub or f"s_{cate}",
            "quantity": quantity, "value": value, "dow": int(time) % 7, "hour": 12}


def make_log(rows: list[dict]) -> pl.DataFrame:
    return canonical_log(pl.DataFrame(rows, schema=COLUMNS, orient="row"), "test log")


def dataset(unit: str = "day", window: float = 10.0, observation: float = 0.0,
            negatives: str = "no-need") -> PurchaseDataset:
    return PurchaseDataset(
        "synthetic", "synthetic", (), "made by hand", "none", unit,
        {"category": "cate", "aisle": "sub", "product": "product"}, "category", window, observation,
        negatives, lambda folder: None, "hand-made log")


def random_rows(n_users: int = 120, seed: int = 0, t_end: float = 60.0) -> list[dict]:
    """Day-unit log over [0, t_end): a third of the users buy X often, a third only from day 40,
    a third never; the last event is at t_end - 0.5 so the data ends at t_end."""
    rng = np.random.default_rng(seed)
    rows, oid = [], 0
    for u in range(n_users):
        kind = u % 3
        for t in np.sort(rng.uniform(0, t_end - 1, rng.integers(3, 10))):
            oid += 1
            for _ in range(rng.integers(1, 4)):
                if kind == 0 or (kind == 1 and t >= 40):
                    cate = str(rng.choice(["X", "Y", "Z"]))
                else:
                    cate = str(rng.choice(["Y", "Z"]))
                rows.append(ev(f"u{u:03d}", t, oid, cate, product=f"{cate}{rng.integers(6)}",
                               quantity=float(rng.integers(1, 4)), value=float(rng.integers(1, 30))))
    rows.append(ev("u000", t_end - 0.5, oid + 1, "Z"))
    return rows


def columns(task, split: str) -> dict[str, np.ndarray]:
    return task.split(split).columns


def assert_same_task(a, b, splits=SPLITS) -> None:
    for split in splits:
        ca, cb = columns(a, split), columns(b, split)
        assert ca.keys() == cb.keys()
        for k in ca:
            np.testing.assert_array_equal(ca[k], cb[k], err_msg=f"{split}.{k}")


def n_hist(c: dict) -> np.ndarray:
    return (~np.isnan(c["hist_time"])).sum(1)


# -- shift augmentation -------------------------------------------------------------------------
def shift_log() -> pl.DataFrame:
    rows = []
    # u1: five purchases (baskets of 2, 1, 3, 1, 2 lines) before day 10, X bought in the window
    for order, (day, size) in enumerate([(1, 2), (2, 1), (3, 3), (4, 1), (5, 2)], start=1):
        rows += [ev("u1", day, order, "Y", product=f"p{order}{k}") for k in range(size)]
    rows.append(ev("u1", 12, 6, "X"))  # global indices 0..8 before the cut, 9 in the window
    # u2: one purchase of two lines (indices 10, 11), never X
    rows += [ev("u2", 3, 7, "Z"), ev("u2", 3, 7, "Y")]
    # u3 (Taobao-like): pv, pv, buy, cart before the cut (indices 12..15), buys X on day 11
    rows += [ev("u3", 1, 8, "Y", btype="pv"), ev("u3", 2, 9, "Y", btype="pv"), ev("u3", 3, 10, "Y"),
             ev("u3", 4, 11, "Y", btype="cart"), ev("u3", 11, 12, "X")]
    return make_log(rows)


def test_shift_augment_by_hand():
    spec = resolve(dataset(), PurchaseTaskConfig(category="X"))
    ev_ = EventArrays(shift_log(), spec)
    s = label_users(ev_, spec, np.arange(3), np.full(3, 10.0))
    np.testing.assert_array_equal(s.start, [0, 10, 12])
    np.testing.assert_array_equal(s.end, [9, 12, 16])
    np.testing.assert_array_equal(s.label, [1, 0, 1])

    c = shift_augment(ev_, s, (1, 2))
    # n=1: u1 stops before its 5th purchase (index 7); u2 would keep nothing -> skipped; u3 stops
    # before its only buy (index 14), keeping the two views. n=2: only u1 has two purchases.
    np.testing.assert_array_equal(c.user, [0, 2, 0])
    np.testing.assert_array_equal(c.end, [7, 14, 6])
    np.testing.assert_array_equal(c.start, [0, 12, 0])
    np.testing.assert_array_equal(c.shifted, [1, 1, 2])
    np.testing.assert_array_equal(c.label, [1, 1, 1])  # labels are the originals'
    np.testing.assert_array_equal(c.cut, [10, 10, 10])
    np.testing.assert_array_equal(s.shifted, [0, 0, 0])  # the originals are untouched
    np.testing.assert_array_equal(s.end, [9, 12, 16])

    c4 = shift_augment(ev_, s, (4,))  # u1 keeps its first purchase only
    np.testing.assert_array_equal(c4.end, [2])
    assert len(shift_augment(ev_, s, (5,))) == 0  # before u1's first purchase: nothing left
    assert len(shift_augment(ev_, s, (6,))) == 0  # more purchases than the history has
    assert len(shift_augment(ev_, s, ())) == 0


@pytest.mark.parametrize("negatives", ["no-need", "non-buyers"])
def test_shift_copies_only_in_train_and_balanced(negatives):
    log, info = make_log(random_rows()), dataset(negatives=negatives)
    plain = build_purchase_task(log, info, PurchaseTaskConfig(category="X"), seed=3)
    task = build_purchase_task(log, info, PurchaseTaskConfig(category="X", shift=(1,)), seed=3)
    for split in ("valid", "test"):
        assert (columns(task, split)["shifted"] == 0).all()
    assert_same_task(plain, task, ("valid", "test"))  # augmentation touches train only

    tr = columns(task, "train")
    copies = tr["shifted"] > 0
    assert copies.sum() == task.counts["train"]["augmented"] > 0
    assert set(np.unique(tr["shifted"])) == {0, 1}
    assert tr["label"].sum() * 2 == len(tr["label"])  # still 1:1
    # every original is kept, in order: the originals are exactly the un-augmented train split
    orig = {k: v[~copies] for k, v in tr.items()}
    for k, v in columns(plain, "train").items():
        np.testing.assert_array_equal(orig[k], v, err_msg=k)
    # a copy is its original's history cut before the last purchase, with the same label and cut-off
    by_user = {int(u): i for i, u in enumerate(orig["user"])}
    for i in np.flatnonzero(copies):
        j = by_user[int(tr["user"][i])]
        assert tr["label"][i] == orig["label"][j] and tr["cutoff"][i] == orig["cutoff"][j]
        n, m = n_hist(tr)[i], n_hist(orig)[j]
        assert 0 < n < m
        np.testing.assert_array_equal(tr["hist_time"][i, :n], orig["hist_time"][j, :n])
        assert tr["hist_time"][i, n - 1] < orig["hist_time"][j, m - 1]


# -- cut-offs and labels ------------------------------------------------------------------------
def label_log() -> pl.DataFrame:
    """Day unit, data ends on day 30: window 10 -> training cut-off 10, test cut-off 20."""
    return make_log([
        ev("a", 2, 1, "X"), ev("a", 12, 2, "X"),  # bought X before and in the window: positive
        ev("b", 2, 3, "X"), ev("b", 5, 4, "Y"), ev("b", 12, 5, "Y"),  # X before, not in window
        ev("c", 3, 6, "Y"),  # never X: negative
        ev("d", 4, 7, "Y"), ev("d", 15, 8, "X"),  # first X in the window: positive
        ev("e", 11, 9, "X"),  # nothing before the cut-off: not a sample
        ev("f", 1, 10, "Y"), ev("f", 10, 11, "X"),  # X exactly at the cut-off: in the window
        ev("g", 1, 12, "Y"), ev("g", 20, 13, "X"),  # X exactly at the window's end: outside
        ev("h", 1, 14, "Y"), ev("h", 12, 15, "X", btype="pv"),  # only viewed X in the window
        ev("i", 3, 16, "X", btype="cart"), ev("i", 4, 17, "Y"),  # carted X before: no purchase
        ev("z", 29.5, 18, "Y"),  # the last event: the data ends on day 30
    ])


@pytest.mark.parametrize(("negatives", "expected"), [
    ("no-need", {"a": 1, "c": 0, "d": 1, "f": 1, "g": 0, "h": 0, "i": 0}),
    ("non-buyers", {"a": 1, "b": 0, "c": 0, "d": 1, "f": 1, "g": 0, "h": 0, "i": 0}),
])
def test_labels_by_hand(negatives, expected):
    spec = resolve(dataset(negatives=negatives), PurchaseTaskConfig(category="X"))
    ev_ = EventArrays(label_log(), spec)
    np.testing.assert_array_equal(ev_.cut_offs(spec, "train")[:1], [10.0])
    np.testing.assert_array_equal(ev_.cut_offs(spec, "test")[:1], [20.0])
    np.testing.assert_array_equal(ev_.cut_offs(spec, "score")[:1], [30.0])
    users = np.arange(ev_.n_users)
    s = label_users(ev_, spec, users, ev_.cut_offs(spec, "train"))
    got = {str(ev_.users[u]): int(y) for u, y in zip(s.user, s.label, strict=True)}
    assert got == expected
    # each history is the user's events before the cut-off (f's day-10 purchase is not in it)
    f = int(np.flatnonzero(s.user == list(ev_.users).index("f"))[0])
    np.testing.assert_array_equal(ev_.time[s.start[f]:s.end[f]], [1.0])


def test_labels_at_the_test_cut_off_by_hand():
    spec = resolve(dataset(negatives="non-buyers"), PurchaseTaskConfig(category="X"))
    ev_ = EventArrays(label_log(), spec)
    s = label_users(ev_, spec, np.arange(ev_.n_users), ev_.cut_offs(spec, "test"))
    got = {str(ev_.users[u]): int(y) for u, y in zip(s.user, s.label, strict=True)}
    # window [20, 30): only g buys X (day 20, at the cut-off); z has no event before day 20
    assert got == {"a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0, "g": 1, "h": 0, "i": 0}


def test_observation_window_by_hand():
    spec = resolve(dataset(observation=8.0, negatives="non-buyers"), PurchaseTaskConfig(category="X"))
    ev_ = EventArrays(label_log(), spec)
    s = label_users(ev_, spec, np.arange(ev_.n_users), ev_.cut_offs(spec, "train"))
    # inputs come from [2, 10): a, b, c, d, i have events there; f, g, h (day 1 only) do not
    assert sorted(str(ev_.users[u]) for u in s.user) == ["a", "b", "c", "d", "i"]
    b = list(ev_.users).index("b")
    k = int(np.flatnonzero(s.user == b)[0])
    np.testing.assert_array_equal(ev_.time[s.start[k]:s.end[k]], [2.0, 5.0])


def test_order_unit_cut_offs_by_hand():
    # u: 6 orders, X in order 3; v: 4 orders, X in order 4. Window 2 orders: test = the last two
    # orders (cut-off n - 1), training cut-off n - 3, so the windows meet.
    rows = [ev("u", k, k, "X" if k == 3 else "Y") for k in range(1, 7)]
    rows += [ev("v", k, 10 + k, "X" if k == 4 else "Y") for k in range(1, 5)]
    spec = resolve(dataset(unit="order", window=2.0, negatives="non-buyers"), PurchaseTaskConfig(category="X"))
    ev_ = EventArrays(make_log(rows), spec)
    np.testing.assert_array_equal(ev_.cut_offs(spec, "train"), [3.0, 1.0])
    np.testing.assert_array_equal(ev_.cut_offs(spec, "test"), [5.0, 3.0])
    np.testing.assert_array_equal(ev_.cut_offs(spec, "score"), [7.0, 5.0])
    tr = label_users(ev_, spec, np.arange(2), ev_.cut_offs(spec, "train"))
    np.testing.assert_array_equal(tr.user, [0])  # v has no order before order 1
    np.testing.assert_array_equal(tr.label, [1])  # u buys X in order 3, inside [3, 5)
    te = label_users(ev_, spec, np.arange(2), ev_.cut_offs(spec, "test"))
    np.testing.assert_array_equal(te.label, [0, 1])  # u: orders 5-6 no X; v: order 4 has X
    np.testing.assert_array_equal(te.end - te.start, [4, 2])


def test_balance_keeps_originals_and_is_one_to_one():
    from seqrec.data.tasks.purchase import Samples

    z = np.zeros(7, dtype=np.int64)
    s = Samples(np.arange(7), z, z + 1, z.astype(float), np.array([1, 0, 0, 1, 0, 0, 0], np.float32), z)
    b = balance(s, np.random.default_rng(0), "here")
    assert b.label.sum() == 2 and len(b) == 4
    assert set(b.user[b.label == 1]) == {0, 3}
    kept = balance(s, np.random.default_rng(0), "here", keep_first=3)  # originals 0, 1, 2 stay
    assert {0, 1, 2} <= set(kept.user) and len(kept) == 4
    with pytest.raises(DataValidationError, match="0 positives"):
        balance(s.take(np.array([1, 2])), np.random.default_rng(0), "here")


@pytest.mark.parametrize("negatives", ["no-need", "non-buyers"])
def test_every_split_is_balanced_and_users_are_disjoint(negatives):
    task = build_purchase_task(make_log(random_rows()), dataset(negatives=negatives),
                               PurchaseTaskConfig(category="X"), seed=1)
    seen: set = set()
    for split in SPLITS:
        c = columns(task, split)
        assert c["label"].sum() * 2 == len(c["label"]) > 0, split
        assert task.counts[split]["positives"] * 2 == task.counts[split]["samples"] == len(c["label"])
        users = set(c["user"].tolist())
        assert len(users) == len(c["user"])  # one sample per user
        assert not users & seen, f"{split} shares users with an earlier split"
        seen |= users


def test_build_is_deterministic_with_a_seed():
    log, info, pc = make_log(random_rows()), dataset(), PurchaseTaskConfig(category="X", shift=(1, 2))
    a = build_purchase_task(log, info, pc, seed=7)
    assert_same_task(a, build_purchase_task(log, info, pc, seed=7))
    other = build_purchase_task(log, info, pc, seed=8)
    assert any(not np.array_equal(columns(a, s)["user"], columns(other, s)["user"]) for s in SPLITS)


# -- no leakage ---------------------------------------------------------------------------------
def check_no_leakage(task, log: pl.DataFrame, info: PurchaseDataset) -> None:
    """Inputs only hold events before the cut-off; unshifted histories are exactly the user's
    last ``max_len`` events in the observation window; cut-offs and splits are as specified."""
    spec = task.spec
    ev_ = EventArrays(log, spec)
    T = task.schema.max_len("hist")
    train_cut, test_cut = ev_.cut_offs(spec, "train"), ev_.cut_offs(spec, "test")
    np.testing.assert_allclose(test_cut - train_cut, spec.window)  # test cut-off after training's
    seen: set = set()
    for split in SPLITS:
        c = columns(task, split)
        cut = c["cutoff"]
        ht = c["hist_time"]
        real = ~np.isnan(ht)
        assert (ht[real] < np.broadcast_to(cut[:, None], ht.shape)[real]).all(), split
        expected = (test_cut if split == "test" else train_cut)[c["user"]]
        np.testing.assert_array_equal(cut, expected)
        if spec.observation > 0:
            assert (ht[real] >= np.broadcast_to(cut[:, None] - spec.observation, ht.shape)[real]).all()
        for k in ("hist_product", "hist_cate"):
            if k in c:
                assert ((c[k] > 0) == real).all()  # padding exactly where there is no event
        orig = c["shifted"] == 0
        for i in np.flatnonzero(orig):
            u = int(c["user"][i])
            times = ev_.time[ev_.start[u]:ev_.start[u + 1]]
            lo = cut[i] - spec.observation if spec.observation > 0 else -np.inf
            before = times[(times < cut[i]) & (times >= lo)]
            n = int(real[i].sum())
            assert n == min(T, len(before)) > 0
            np.testing.assert_array_equal(ht[i, :n], before[-n:])
        users = set(c["user"].tolist())
        assert not users & seen
        seen |= users


@pytest.mark.parametrize(("name", "category"), [("instacart", "household"), ("taobao", "any"),
                                                ("cdnow", "any")])
def test_no_leakage_on_real_data(data_root, name, category):
    log, info = read_purchase_log(name, data_root), PURCHASE_DATASETS[name]
    task = build_purchase_task(log, info, PurchaseTaskConfig(category=category, shift=(1,)), max_len=20,
                               seed=0)
    check_no_leakage(task, log, info)
    n_copies = int((columns(task, "train")["shifted"] > 0).sum())
    assert n_copies == task.counts["train"]["augmented"]
    if name == "taobao":  # "any" + no-need: negatives never bought, so no negative copy balances one
        assert n_copies == 0
    else:
        assert n_copies > 0
    if info.unit == "day":  # one cut-off for everybody: the test split's is one window later
        assert columns(task, "test")["cutoff"].min() > columns(task, "train")["cutoff"].max()


def test_no_leakage_on_a_synthetic_log_with_marked_late_events():
    # data ends on day 60, window 10: training cut-off 40, test cut-off 50. Every event from
    # day 40 on gets a product and sub-category that exist nowhere else ("late"; "future" from
    # day 50); the categories stay, so the labels still see the target category X.
    rows = random_rows()
    for r in rows:
        if r["time"] >= 40:
            tag = "future" if r["time"] >= 50 else "late"
            r["product"], r["sub"] = f"{tag}_{r['product']}", tag
    log, info = make_log(rows), dataset()
    task = build_purchase_task(log, info, PurchaseTaskConfig(category="X", shift=(1,)), seed=0)
    check_no_leakage(task, log, info)
    assert not [p for p in task.vocabs["product"].ids_ if p.startswith(("late", "future"))]
    assert not {"late", "future"} & set(task.vocabs["sub"].ids_)
    for split in ("train", "valid"):  # decoded training-time inputs hold no late product
        c = columns(task, split)
        codes = c["hist_product"][c["hist_product"] > 0]
        assert (codes > 1).all()  # nothing OOV: every product is a known, early one
        assert all(p[0] in "XYZ" for p in task.vocabs["product"].decode(codes))
    test = columns(task, "test")
    late = test["hist_time"] >= 40
    assert late.any()  # test histories do reach past the training cut-off...
    assert (test["hist_product"][late] == 1).all()  # ...with products unknown at training time


def test_post_cutoff_events_do_not_change_any_input():
    base = random_rows()
    log, info, pc = make_log(base), dataset(), PurchaseTaskConfig(category="X", shift=(1,))
    ref = build_purchase_task(log, info, pc, seed=2)
    users = sorted({r["user_id"] for r in base})
    rng = np.random.default_rng(5)

    def noise(lo: float, hi: float, cate: str) -> list[dict]:  # a new basket per user in [lo, hi)
        return [ev(u, rng.uniform(lo, hi), 10_000 + i, cate, product=f"noise{i}", quantity=9.0, value=99.0)
                for i, u in enumerate(users)]

    # after the test cut-off, outside the target category: no input and no label may change
    after = build_purchase_task(make_log(base + noise(50, 59, "N")), info, pc, seed=2)
    assert_same_task(ref, after)
    # between the cut-offs: training and validation inputs are unchanged, test inputs see it
    between = build_purchase_task(make_log(base + noise(40, 50, "N")), info, pc, seed=2)
    assert_same_task(ref, between, ("train", "valid"))
    assert not np.array_equal(columns(ref, "test")["agg"], columns(between, "test")["agg"])
    # target-category purchases after a cut-off change labels (so the balancing), not inputs:
    # compare the users sampled in both builds
    users = users[::4]
    for lo, hi, splits in ((40, 50, ("train", "valid")), (50, 59, SPLITS)):
        target = build_purchase_task(make_log(base + noise(lo, hi, "X")), info, pc, seed=2)
        changed = 0
        for split in splits:
            a, b = columns(ref, split), columns(target, split)
            ia = {int(u): i for i, u in enumerate(a["user"]) if a["shifted"][i] == 0}
            ib = {int(u): i for i, u in enumerate(b["user"]) if b["shifted"][i] == 0}
            common = sorted(ia.keys() & ib.keys())
            ra, rb = [ia[u] for u in common], [ib[u] for u in common]
            assert len(common) > 5
            for k in a:
                if k.removeprefix("hist_") in ref.vocabs:  # vocab indices depend on who is in train
                    va, vb = ref.vocabs[k.removeprefix("hist_")], target.vocabs[k.removeprefix("hist_")]
                    ca, cb = a[k][ra], b[k][rb]
                    known = (ca > 1) & (cb > 1)
                    assert ((ca == 0) == (cb == 0)).all() and known.sum() > 0.5 * (ca > 0).sum()
                    assert va.decode(ca[known]) == vb.decode(cb[known]), f"{split}.{k}"
                elif k.startswith("hist_") or k in ("agg", "cutoff"):
                    np.testing.assert_array_equal(a[k][ra], b[k][rb], err_msg=f"{split}.{k}")
            changed += int((a["label"][ra] != b["label"][rb]).sum())
        assert changed > 0  # the labels did see the new purchases


def test_aggregates_by_hand():
    # one user, cut-off 10: purchases on days 2 (X, 2 lines) and 6 (Y), a pv of X on day 7
    log = make_log([ev("u", 2, 1, "X", quantity=2.0, value=5.0, product="a"),
                    ev("u", 2, 1, "X", quantity=1.0, value=3.0, product="b"),
                    ev("u", 6, 2, "Y", quantity=4.0, value=10.0, product="c"),
                    ev("u", 7, 3, "X", btype="pv", product="a"), ev("u", 12, 4, "X")])
    from seqrec.data.tasks.purchase import aggregates

    spec = resolve(dataset(), PurchaseTaskConfig(category="X"))
    ev_ = EventArrays(log, spec)
    s = label_users(ev_, spec, np.array([0]), np.array([10.0]))
    got = dict(zip(AGG_FEATURES, aggregates(ev_, s, spec)[0], strict=True))
    assert s.label.tolist() == [1.0]
    assert got["n_events"] == 4 and got["n_buy_lines"] == 3 and got["n_purchases"] == 2
    assert got["n_cat_lines"] == 2 and got["n_cat_purchases"] == 1
    assert got["quantity"] == 7 and got["cat_quantity"] == 3 and got["value"] == 18 and got["cat_value"] == 8
    assert got["recency"] == 4 and got["cat_recency"] == 8 and got["cat_first_age"] == 8 and got["tenure"] == 8
    assert got["gap_mean"] == 4 and got["gap_last"] == 4 and got["gap_std"] == -1.0  # one gap: std undefined
    assert got["n_products"] == 3 and got["n_cates"] == 2 and got["last_has_cat"] == 0
    assert got["n_pv"] == 1 and got["cat_pv"] == 1 and got["cat_recent"] == 2


def test_scoring_samples_use_every_event():
    log, info = make_log(random_rows(30)), dataset()
    pc = PurchaseTaskConfig(category="X")
    task = build_purchase_task(log, info, pc, seed=0)
    users, data = scoring_samples(log, info, pc, task.schema, task.vocabs)
    assert sorted(users.tolist()) == sorted(set(log["user_id"].to_list()))
    last = dict(log.group_by("user_id").agg(pl.col("time").max()).iter_rows())
    c = data.columns
    n = n_hist(c)
    got = c["hist_time"][np.arange(len(n)), n - 1]
    np.testing.assert_array_equal(got, [last[u] for u in users])  # history runs to the last event
    assert (c["cutoff"] == 60.0).all()


# -- bad input ----------------------------------------------------------------------------------
def test_unknown_category_names_known_ones():
    with pytest.raises(ConfigError) as exc:
        build_purchase_task(label_log(), dataset(), PurchaseTaskConfig(category="nosuch"))
    msg = str(exc.value)
    assert "'nosuch'" in msg and "'X'" in msg and "'Y'" in msg
    spec = resolve(dataset(), PurchaseTaskConfig(category="X"))
    check_category(label_log(), spec)  # a known one passes


def test_category_only_viewed_is_unknown():
    spec = resolve(dataset(), PurchaseTaskConfig(category="V"))
    log = make_log([ev("a", 1, 1, "V", btype="pv"), ev("a", 2, 2, "Y")])
    with pytest.raises(ConfigError, match="'V'.*no purchase"):
        check_category(log, spec)


def test_window_without_positives():
    # W was bought once, before any window
    log = make_log(random_rows() + [ev("u001", 1.0, 99_999, "W")])
    with pytest.raises(DataValidationError, match="0 positives") as exc:
        build_purchase_task(log, dataset(), PurchaseTaskConfig(category="W"))
    assert "window" in str(exc.value)


@pytest.mark.parametrize(("unit", "window", "observation"), [
    ("day", 40.0, -1.0),  # cut-offs before the first event
    ("day", 100.0, -1.0),
    ("day", 10.0, 0.001),  # an observation window nobody has an event in
    ("order", 9.0, -1.0),  # more orders than any user has
])
def test_window_too_long_for_the_data(unit, window, observation):
    rows = random_rows(30)  # days 0..60: window 40 puts the training cut-off at day -20
    if unit == "order":  # 3 orders per user
        rows = [ev(f"u{u}", k, 10 * u + k, "X" if (u + k) % 2 else "Y") for u in range(30) for k in (1, 2, 3)]
    pc = PurchaseTaskConfig(category="X", window=window, observation=observation)
    with pytest.raises(DataValidationError, match="no user has an event before the cut-off"):
        build_purchase_task(make_log(rows), dataset(unit=unit), pc)


def test_unknown_level_lists_levels():
    with pytest.raises(ConfigError, match=r"no category level 'nosuch'.*'any', 'category', 'aisle'"):
        build_purchase_task(label_log(), dataset(), PurchaseTaskConfig(category="X", level="nosuch"))


def test_fractional_window_of_an_order_dataset():
    with pytest.raises(ConfigError, match="whole"):
        resolve(dataset(unit="order"), PurchaseTaskConfig(category="X", window=1.5))
    assert resolve(dataset(unit="day"), PurchaseTaskConfig(category="X", window=1.5)).window == 1.5


def test_defaults_come_from_the_dataset():
    spec = resolve(PURCHASE_DATASETS["cdnow"], PurchaseTaskConfig())
    assert (spec.column, spec.window, spec.observation, spec.negatives) == (None, 90.0, 365.0, "non-buyers")
    spec = resolve(PURCHASE_DATASETS["instacart"], PurchaseTaskConfig(category="pets", shift=(2, 1, 2)))
    assert (spec.level, spec.column, spec.window, spec.negatives, spec.shift) == (
        "department", "cate", 3.0, "no-need", (1, 2))
    assert resolve(PURCHASE_DATASETS["instacart"], PurchaseTaskConfig(category="x", level="aisle")).column == "sub"


def test_finish_rejects_bad_logs():
    rows = [ev("a", 1, 1)]
    with pytest.raises(SchemaError, match="'quantity'|quantity"):
        canonical_log(pl.DataFrame(rows).drop("quantity"), "here")
    with pytest.raises(DataValidationError, match="'user_id'.*row 1"):
        canonical_log(pl.DataFrame(rows + [{**rows[0], "user_id": None}], schema=COLUMNS, orient="row"), "here")
    with pytest.raises(DataValidationError, match="no events"):
        canonical_log(pl.DataFrame(schema=COLUMNS), "here")


def test_unknown_split_name():
    task = build_purchase_task(make_log(random_rows()), dataset(), PurchaseTaskConfig(category="X"))
    with pytest.raises(ConfigError, match="'nosuch'"):
        task.split("nosuch")


def test_empty_window_is_named():
    """A training window that falls in a gap of the data (no purchase at all) says so."""
    rows = [ev(f"u{i}", t, 10 * i + k, "X" if i % 2 else "Y") for i in range(20)
            for k, t in enumerate((1.0, 2.0, 3.0))]  # everything in days 1-3 ...
    rows += [ev(f"u{i}", 40.0 + i % 5, 10 * i + 5, "X" if i % 2 else "Y")
             for i in range(20)]  # ... then days 40-44
    spec = PurchaseTaskConfig(category="X", window=10.0)  # train window [25, 35): no event at all
    with pytest.raises(DataValidationError, match="empty window"):
        build_purchase_task(make_log(rows), dataset(), spec)
