"""The two purchase protocols of seqrec.data.tasks.purchase: ``article-1to1`` (the article's
no-need negatives, 1:1) and ``deployment`` (every active user, natural base rate).

The selection test on real Instacart data shows what the article's protocol does to the test
set: it drops the past buyers of the category who do not buy in the window, so "bought it
before" separates the classes perfectly; the deployment test set keeps them and its base rate
is the raw rate of buyers among active users, computed here from the log alone.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from seqrec.baselines.purchase_rules import rule_scores
from seqrec.config import PurchaseTaskConfig, load_run_config
from seqrec.data.readers.purchase import (
    COLUMNS,
    PURCHASE_DATASETS,
    PurchaseDataset,
    canonical_log,
)
from seqrec.data.tasks.purchase import EventArrays, build_purchase_task, read_purchase_log, resolve
from seqrec.errors import ConfigError, DataValidationError

DEPLOY = "deployment"


def ev(user: str, time: float, order: int, cate: str) -> dict:
    return {"user_id": user, "time": float(time), "day": float(time), "order_id": order, "btype": "buy",
            "product": f"p_{cate}", "cate": cate, "sub": f"s_{cate}", "quantity": 1.0, "value": 0.0,
            "dow": int(time) % 7, "hour": 12}


def dataset(observation: float = 0.0) -> PurchaseDataset:
    return PurchaseDataset("synthetic", "synthetic", (), "made by hand", "none", "day", {"category": "cate"},
                           "category", 10.0, observation, "no-need", lambda folder: None, "hand-made log")


def random_rows(n_users: int = 150, seed: int = 0) -> list[dict]:
    """Days [0, 60) (the data ends on day 60): a third buy X often, a third only from day 40 on,
    a third never; some users start late (no event before a cut-off)."""
    rng = np.random.default_rng(seed)
    rows, oid = [], 0
    for u in range(n_users):
        start = 45.0 if u % 10 == 9 else 0.0  # inactive before the test cut-off (day 50)? some are
        for t in np.sort(rng.uniform(start, 59, rng.integers(2, 9))):
            oid += 1
            often = u % 3 == 0 or (u % 3 == 1 and t >= 40)
            rows.append(ev(f"u{u:03d}", t, oid, str(rng.choice(["X", "Y"] if often else ["Y", "Z"]))))
    rows.append(ev("u000", 59.5, oid + 1, "Z"))
    return rows


def oracle(rows: list[dict], cut: float, window: float = 10.0, observation: float = 0.0) -> dict[str, int]:
    """user -> label for every user with an event in [cut - observation, cut), from the rows alone."""
    lo = cut - observation if observation > 0 else -np.inf
    active = {r["user_id"] for r in rows if lo <= r["time"] < cut}
    buyers = {r["user_id"] for r in rows if r["cate"] == "X" and cut <= r["time"] < cut + window}
    return {u: int(u in buyers) for u in active}


def got(task, split: str, users: np.ndarray) -> dict[str, int]:
    c = task.split(split).columns
    assert (c["shifted"] == 0).all() or split == "train"
    orig = c["shifted"] == 0
    return {str(users[u]): int(y) for u, y in zip(c["user"][orig], c["label"][orig], strict=True)}


@pytest.mark.parametrize("observation", [0.0, 15.0])
def test_deployment_samples_are_every_active_user_by_oracle(observation):
    rows, info = random_rows(), dataset(observation)
    log = canonical_log(pl.DataFrame(rows, schema=COLUMNS, orient="row"), "test log")
    pc = PurchaseTaskConfig(category="X", protocol=DEPLOY)
    task = build_purchase_task(log, info, pc, seed=4)
    users = EventArrays(log, task.spec).users
    # test: every user active before the test cut-off (day 50), labelled by the window [50, 60)
    want = oracle(rows, 50.0, observation=observation)
    assert got(task, "test", users) == want
    assert task.counts["test"]["samples"] == len(want) and task.counts["test"]["positives"] == sum(want.values())
    # train + valid: every user active before the training cut-off (day 40), split 80 / 20, disjoint
    tr, va = got(task, "train", users), got(task, "valid", users)
    assert not tr.keys() & va.keys()
    assert {**tr, **va} == oracle(rows, 40.0, observation=observation)
    n_users = len({r["user_id"] for r in rows})
    valid_group = round(0.2 * n_users)  # valid_frac of all users, test_frac unused
    assert len(va) <= valid_group < len(va) + 10
    for split in ("train", "valid", "test"):  # no sub-sampling: every sample kept, natural rate
        c = task.counts[split]
        assert c["samples"] == c["users"] and c["positives"] == c["positives_all"]
    assert 0 < task.counts["test"]["positives"] < task.counts["test"]["samples"] / 2


def test_article_drops_past_buyers_that_deployment_keeps():
    rows = random_rows()
    log = canonical_log(pl.DataFrame(rows, schema=COLUMNS, orient="row"), "test log")
    article = build_purchase_task(log, dataset(), PurchaseTaskConfig(category="X"), seed=0)
    deploy = build_purchase_task(log, dataset(), PurchaseTaskConfig(category="X", protocol=DEPLOY), seed=0)
    for task, split in ((article, "test"), (deploy, "test"), (article, "train"), (deploy, "train")):
        c = task.split(split).columns
        before = rule_scores("bought_before", c["agg"]) == 1
        lapsed = before & (c["label"] == 0)  # bought X before the cut-off, not in the window
        if task is article:
            assert not lapsed.any() and (c["label"][before] == 1).all()  # precision 1 by selection
            assert c["label"].mean() == 0.5
        else:
            assert lapsed.any()
    assert article.spec.negatives == "no-need" and deploy.spec.negatives == "non-buyers"


def test_deployment_shift_copies_are_not_rebalanced():
    log = canonical_log(pl.DataFrame(random_rows(), schema=COLUMNS, orient="row"), "test log")
    plain = build_purchase_task(log, dataset(), PurchaseTaskConfig(category="X", protocol=DEPLOY), seed=1)
    task = build_purchase_task(log, dataset(), PurchaseTaskConfig(category="X", protocol=DEPLOY, shift=(1,)),
                               seed=1)
    tr, tr0 = task.train.columns, plain.train.columns
    orig = tr["shifted"] == 0
    np.testing.assert_array_equal(tr["user"][orig], tr0["user"])  # every original kept, in order
    np.testing.assert_array_equal(tr["label"][orig], tr0["label"])
    n_copies = int((~orig).sum())
    assert n_copies == task.counts["train"]["augmented"] > 0
    assert len(tr["label"]) == len(tr0["label"]) + n_copies  # nothing dropped to balance
    for split in ("valid", "test"):
        np.testing.assert_array_equal(task.split(split).columns["user"], plain.split(split).columns["user"])


def test_protocol_config_errors():
    raw = {"data": {"dataset": "instacart", "purchase": {"category": "frozen"}}, "model": {"name": "xgboost"}}
    assert load_run_config(raw=raw).data.purchase.protocol == "article-1to1"  # the default
    with pytest.raises(ConfigError, match=r"protocol must be one of \['article-1to1', 'deployment'\], got 'live'"):
        load_run_config(raw=raw, overrides=['data.purchase.protocol="live"'])
    with pytest.raises(ConfigError, match="no-need.*deployment"):
        load_run_config(raw=raw, overrides=['data.purchase.protocol="deployment"',
                                           'data.purchase.negatives="no-need"'])
    spec = resolve(PURCHASE_DATASETS["instacart"], PurchaseTaskConfig(category="frozen", protocol=DEPLOY))
    assert (spec.protocol, spec.negatives) == (DEPLOY, "non-buyers")  # the dataset default (no-need) is off


def test_deployment_without_positives_is_named():
    rows = random_rows() + [ev("u001", 1.0, 99_999, "W")]  # W: one purchase, before every window
    log = canonical_log(pl.DataFrame(rows, schema=COLUMNS, orient="row"), "test log")
    with pytest.raises(DataValidationError, match="split: 0 positives"):
        build_purchase_task(log, dataset(), PurchaseTaskConfig(category="W", protocol=DEPLOY))


# -- the selection, on real Instacart data -------------------------------------------------------
@pytest.fixture(scope="module")
def instacart(data_root):
    return read_purchase_log("instacart", data_root)


@pytest.mark.parametrize("department", ["household", "babies"])
def test_selection_on_real_instacart(instacart, department):
    """At the test cut-off (each user's last 3 orders are the window) the article's test set holds
    no past buyer who does not buy again; the deployment test set holds every active user, those
    included, and its base rate is the raw buyer rate among active users, computed from the log."""
    log, info = instacart, PURCHASE_DATASETS["instacart"]
    # the raw rate from the log alone: cut-off = last order number - 2; active = any order before it
    per_user = (log.with_columns(cut=pl.col("time").max().over("user_id") - 2.0, cat=pl.col("cate") == department)
                .group_by("user_id").agg(active=(pl.col("time") < pl.col("cut")).any(),
                                         buys=(pl.col("cat") & (pl.col("time") >= pl.col("cut"))).any(),
                                         before=(pl.col("cat") & (pl.col("time") < pl.col("cut"))).any())
                .filter(pl.col("active")))
    raw_buyers = set(per_user.filter(pl.col("buys"))["user_id"])
    lapsed = set(per_user.filter(pl.col("before") & ~pl.col("buys"))["user_id"])  # bought before, not now
    assert len(lapsed) > 20

    deploy = build_purchase_task(log, info, PurchaseTaskConfig(category=department, protocol=DEPLOY),
                                 max_len=20, seed=0)
    article = build_purchase_task(log, info, PurchaseTaskConfig(category=department), max_len=20, seed=0)
    ids = EventArrays(log, deploy.spec).users
    dt, at = deploy.test.columns, article.test.columns
    d_users, a_users = set(ids[dt["user"]]), set(ids[at["user"]])

    # deployment: every active user, lapsed buyers included, at exactly the raw base rate
    assert d_users == set(per_user["user_id"])
    assert lapsed <= d_users
    assert set(ids[dt["user"][dt["label"] == 1]]) == raw_buyers
    assert Fraction(int(dt["label"].sum()), len(dt["label"])) == Fraction(len(raw_buyers), per_user.height)
    # the article's protocol: not one lapsed buyer, 1:1, and "bought before" never flags a negative
    assert not lapsed & a_users
    assert at["label"].mean() == 0.5
    for c, clean in ((at, True), (dt, False)):
        flagged = rule_scores("bought_before", c["agg"]) == 1
        precision = c["label"][flagged].mean()
        assert bool(precision == 1.0) == clean
