"""Look-alike (seqrec.lookalike): RALM's attention, the baselines, the cases and the metrics on
hand-made examples; benchmarks/ralm.py end to end on the real data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from seqrec import lookalike as la
from seqrec.data.tasks.taobao_multitask import CART

E = torch.eye(4)  # e1..e4


def test_attention_weights_sum_to_one_single_and_batched():
    torch.manual_seed(0)
    m = la.RALM(4)
    with torch.no_grad():
        m.w.normal_()  # a non-uniform global attention
        seeds, users = torch.randn(5, 4), torch.randn(7, 4)
        a, b = m.attention(seeds, users)
        assert a.shape == (5,) and b.shape == (7, 5)
        assert torch.allclose(a.sum(), torch.tensor(1.0)) and torch.allclose(b.sum(1), torch.ones(7))
        assert a.std() > 0  # not uniform once w is set
        # a batch of padded seed sets: padding gets no weight, the real seeds' weights are the single ones
        pad = torch.cat([seeds, torch.zeros(2, 4)]).unsqueeze(0).expand(2, -1, -1).clone()
        mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 3 + [False] * 4])
        ab, bb = m.attention(pad, users, mask)
        assert torch.allclose(ab.sum(1), torch.ones(2)) and torch.allclose(bb.sum(2), torch.ones(2, 7))
        assert (ab[~mask] == 0).all() and (bb[1][:, 3:] == 0).all()
        assert torch.allclose(ab[0, :5], a, atol=1e-6) and torch.allclose(bb[0, :, :5], b, atol=1e-6)
        a3, b3 = m.attention(seeds[:3], users)
        assert torch.allclose(ab[1, :3], a3, atol=1e-6) and torch.allclose(bb[1, :, :3], b3, atol=1e-6)
        assert torch.allclose(m(pad, users, mask)[1], m(seeds[:3], users), atol=1e-6)


def test_a_target_equal_to_a_seed_concentrates_its_local_weight_golden_score():
    m = la.RALM(4)  # untrained: P = W_l = I, w = 0 (uniform global), tau = 10, alpha = 0.5
    seeds = E[:3]
    with torch.no_grad():
        a, b = m.attention(seeds, E[1:2])
        score = float(m(seeds, E[1:2])[0])
    assert torch.allclose(a, torch.full((3,), 1 / 3))
    eps = 1 / (math.exp(10) + 2)  # softmax(10 * [0, 1, 0]) = [eps, 1 - 2 eps, eps]
    assert b.argmax() == 1 and b[0, 1] > 0.999
    assert np.allclose(b[0].numpy(), [eps, 1 - 2 * eps, eps], atol=1e-7)
    cos_g = 1 / math.sqrt(3)  # e2 vs (e1 + e2 + e3) / 3
    cos_l = (1 - 2 * eps) / math.sqrt(2 * eps ** 2 + (1 - 2 * eps) ** 2)
    assert score == pytest.approx(0.5 * cos_g + 0.5 * cos_l, abs=1e-6)
    # a user orthogonal to every seed: the local weights stay uniform, both cosines 0
    with torch.no_grad():
        _, b4 = m.attention(seeds, E[3:4])
        assert torch.allclose(b4, torch.full((1, 3), 1 / 3)) and abs(float(m(seeds, E[3:4])[0])) < 1e-6


def test_precision_and_recall_by_hand():
    case = la.Case(day=1, cate=7, seeds=np.array([10, 11]), targets=np.array([2, 7]), candidates=np.arange(10))
    scores = np.zeros(12)
    scores[[7, 4, 5, 6, 2]] = [5, 4, 3, 2, 1]  # ranking 7, 4, 5, 6, 2, then 0, 1, 3, 8, 9 (ties by index)
    scores[[10, 11]] = 99  # seeds are not candidates: their scores never count
    got = la.precision_recall(scores, case, ks=(1, 3, 5, 10))
    assert got == {"precision@1": 1.0, "recall@1": 0.5, "precision@3": 1 / 3, "recall@3": 0.5,
                   "precision@5": 2 / 5, "recall@5": 1.0, "precision@10": 2 / 10, "recall@10": 1.0}
    tie = la.precision_recall(np.zeros(12), case, ks=(3,))  # all tied: candidates 0, 1, 2
    assert tie == {"precision@3": 1 / 3, "recall@3": 0.5}
    # averaged over categories; chance = targets / candidates and K / candidates
    case2 = la.Case(day=1, cate=8, seeds=np.array([0]), targets=np.array([9]), candidates=np.arange(1, 11))
    ev = la.evaluate(lambda c: scores, [case, case2], ks=(5,))
    assert ev["recall@5"] == pytest.approx((1.0 + 0.0) / 2) and ev["precision@5"] == pytest.approx((0.4 + 0) / 2)
    assert ev["categories"] == 2 and ev["targets"] == 3 and ev["recall@5_se"] == pytest.approx(0.5)
    assert la.chance([case, case2], ks=(5,)) == {"precision@5": pytest.approx(0.15), "recall@5": 0.5}


def _events():
    # (user, cate, btype, day); cate 9 = a second category; user 5 is first seen on day 2
    ev = [(0, 10, la.BUY, 0), (1, 10, la.BUY, 0), (2, 10, la.BUY, 1), (2, 10, la.BUY, 1),
          (3, 10, 2, 0), (3, 10, 2, 1), (3, 9, 2, 1), (4, 9, 2, 0), (4, 9, 2, 1), (4, 9, 2, 1),
          (3, 10, la.BUY, 2), (0, 10, la.BUY, 2), (5, 10, la.BUY, 2), (4, 9, la.BUY, 2), (6, 10, 2, 1),
          (-1, 10, la.BUY, 0)]  # an unknown user (first seen on the test day)
    u, c, b, d = (np.array(x) for x in zip(*ev, strict=True))
    return la.Events(u, c, b, d, n_users=7)


def test_cases_seeds_targets_and_candidates_by_hand():
    cases = la.make_cases(_events(), 2)
    assert len(cases) == 1  # category 9 has no seed
    c = cases[0]
    assert (c.cate, list(c.seeds), list(c.targets)) == (10, [0, 1, 2], [3])  # user 0 is a seed, 5 unseen before
    assert list(c.candidates) == [3, 4, 6]
    assert la.make_cases(_events(), 2, min_seeds=4) == []
    # carts count only when asked: none here, so the same case
    assert [list(x.seeds) for x in la.make_cases(_events(), 2, behaviours=(la.BUY, CART))] == [[0, 1, 2]]


def test_popularity_is_activity_on_the_category_then_overall():
    s = la.popularity_scores(_events(), 2, 10)
    # events on cate 10 before day 2: user 3: 2, user 6: 1, user 4: 0 (3 events of cate 9)
    assert s[3] > s[6] > s[4] > s[5]
    assert int(s[3]) == 2 and int(s[6]) == 1 and int(s[4]) == 0
    order = [int(x) for x in np.argsort(-s[[3, 4, 6]], kind="stable")]
    assert order == [0, 2, 1]


def test_seed_mean_is_the_cosine_to_the_mean_seed():
    v = np.array([[1.0, 0, 0], [0, 2.0, 0], [3.0, 3.0, 0], [0, 0, 1.0]])
    s = la.seed_mean_scores(v, np.array([0, 1]))  # mean (0.5, 1, 0)
    assert s == pytest.approx([0.5 / math.sqrt(1.25), 1 / math.sqrt(1.25), 1.5 / math.sqrt(18 * 1.25) * 3, 0.0])
    z = la.standardise(v)
    assert np.allclose(z.mean(0), 0, atol=1e-6) and np.allclose(z.std(0), 1, atol=1e-5)


def test_train_ralm_lowers_the_loss_on_its_own_windows():
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(40, 6)).astype(np.float32)
    # targets resemble their category's seeds along one direction each
    cases = []
    for k in range(4):
        seeds = np.arange(k * 8, k * 8 + 4)
        vec[seeds, k] += 3
        vec[k * 8 + 4, k] += 3
        cand = np.setdiff1d(np.arange(40), seeds)
        cases.append(la.Case(0, k, seeds, np.array([k * 8 + 4]), cand))
    m = la.RALM(6, seed=0)
    fit = la.train_ralm(m, [(vec, cases)], steps=30, lr=0.05)
    assert m.trained and fit["cases"] == 4 and fit["targets"] == 4 and fit["loss_last"] < fit["loss_first"]
    with pytest.raises(ValueError, match="no training case"):
        la.train_ralm(la.RALM(6), [(vec, [])])
    # the init depends on the seed only
    assert torch.equal(la.RALM(6, seed=3).W.weight, la.RALM(6, seed=3).W.weight)


@pytest.mark.slow
def test_ralm_benchmark_end_to_end(bench_script, dupn_run, tmp_path, capsys):
    mod = bench_script("ralm")
    out = tmp_path / "multitask.json"
    out.write_text(json.dumps([{"dataset": "census_income", "model": "mmoe", "task": "income",
                                "library": "seqrec", "metrics": {"auc": 0.9}}]))
    assert mod.main(["--run", str(dupn_run), "--steps", "3", "--out", str(out)]) == 0
    recs = json.loads(out.read_text())
    assert len(recs) == 4 and recs[0]["dataset"] == "census_income"  # other records kept
    la_recs = {r["model"]: r for r in recs if r["task"] == "lookalike"}
    assert set(la_recs) == {"ralm", "seed-mean", "popularity"}
    for r in la_recs.values():
        assert r["dataset"] == "taobao" and r["library"] == "seqrec" and r["day"] is None
        m = r["metrics"]
        assert m["categories"] >= 20 and m["targets"] >= m["categories"]
        for k in (10, 50, 100):
            assert 0 <= m[f"precision@{k}"] <= 1 and 0 <= m[f"recall@{k}"] <= 1
        assert m["recall@10"] <= m["recall@50"] <= m["recall@100"]
        assert r["peak_rss_mb"] > 0 and "ralm.py" in r["command"]
    assert la_recs["ralm"]["train_samples_per_s"] > 0 and la_recs["popularity"]["train_samples_per_s"] is None
    assert la_recs["ralm"]["train"]["days"][1] < 8  # trained before the test day only
    text = capsys.readouterr().out
    assert "| popularity |" in text and "chance" in text
    # a second run replaces the records, never duplicates them
    assert mod.main(["--run", str(dupn_run), "--steps", "2", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 4
