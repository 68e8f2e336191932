"""benchmarks/retrieval.py and its split exporter: RecBole's files hold exactly seqrec's splits, the
.npz round-trips, the record schema, the run order and the peers' settings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from seqrec.data.tasks.retrieval import bars_task, loo_task

ROOT = Path(__file__).resolve().parents[1]
RECBOLE_PY = ROOT / ".venv-recbole" / "bin" / "python"


@pytest.fixture
def bars(tmp_path):
    """A tiny BARS-style split: 8 users, 60 items (RecBole's evaluator needs >= 50 for its top 50),
    test items never in train."""
    rng = np.random.default_rng(0)
    tr, te = [], []
    for u in range(8):
        items = rng.permutation(np.arange(10, 70))[: 8 + u % 3]
        tr.append(f"{u} " + " ".join(map(str, items[:-2])))
        te.append(f"{u} " + " ".join(map(str, items[-2:])))
    (tmp_path / "train.txt").write_text("\n".join(tr) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(te) + "\n")
    return bars_task("tiny", tmp_path, train_split="train", seed=0)


@pytest.fixture
def loo():
    rows = [np.array([5, 3, 8, 1, 9]), np.array([2, 2, 7, 4]), np.array([6, 1, 3, 5, 7, 2, 8])]
    return loo_task("tinyseq", np.array([100, 101, 102]), rows)


def _pairs(users, items):
    return sorted(zip(users.tolist(), items.tolist(), strict=True))


def test_general_files_hold_exactly_the_splits(bench_script, bars, tmp_path):
    ex = bench_script("_retrieval_export")
    counts = ex.write_recbole_atomic(bars, tmp_path / "out", "tiny", sequential=False)
    d = tmp_path / "out" / "tiny"
    got = {ph: sorted(ex.read_recbole_atomic(d / f"tiny.{ph}.inter")) for ph in ex.PHASES}
    assert got["train"] == _pairs(bars.train.row_ids(), bars.train.values)
    for ph, sp in (("valid", bars.valid), ("test", bars.test)):
        assert got[ph] == _pairs(sp.users[sp.targets.row_ids()], sp.targets.values)
    assert counts == {ph: len(v) for ph, v in got.items()}
    # RecBole masks, per test user, train + valid items minus the test positives: seqrec's exclusions
    for r, u in enumerate(bars.test.users.tolist()):
        seen = {i for uu, i in got["train"] + got["valid"] if uu == u}
        assert seen == set(bars.test.exclude.row(r).tolist())
    assert (d / "tiny.train.inter").read_text().splitlines()[0] == "user_id:token\titem_id:token"


def test_sequential_files_hold_every_prefix_and_the_eval_histories(bench_script, loo, tmp_path):
    ex = bench_script("_retrieval_export")
    ex.write_recbole_atomic(loo, tmp_path, "s", sequential=True, max_len=3)
    rows = {ph: ex.read_recbole_atomic(tmp_path / "s" / f"s.{ph}.inter") for ph in ex.PHASES}
    want = []
    for u in range(loo.n_users):
        seq = loo.train.row(u).tolist()
        want += [(u, seq[max(0, p - 3):p], seq[p]) for p in range(1, len(seq))]
    assert rows["train"] == want
    for ph, sp in (("valid", loo.valid), ("test", loo.test)):
        assert rows[ph] == [(u, sp.history.row(r).tolist()[-3:], int(sp.targets.row(r)[0]))
                            for r, u in enumerate(sp.users.tolist())]
    # user 1's repeat (item index of raw 2 twice) stays in the history, as seqrec's
    assert len(rows["test"][1][1]) == 3


def test_splits_npz_round_trips(bench_script, bars, tmp_path):
    ex = bench_script("_retrieval_export")
    ex.save_splits(bars, tmp_path / "s.npz")
    z = ex.load_splits(tmp_path / "s.npz")
    assert (z["n_users"], z["n_items"], z["ordered"]) == (bars.n_users, bars.n_items, False)
    np.testing.assert_array_equal(z["train"].values, bars.train.values)
    for name in ("valid", "test"):
        a, b = z[name], getattr(bars, name)
        np.testing.assert_array_equal(a.users, b.users)
        for part in ("targets", "history", "exclude"):
            np.testing.assert_array_equal(getattr(a, part).indptr, getattr(b, part).indptr)
            np.testing.assert_array_equal(getattr(a, part).values, getattr(b, part).values)


def _run(seed, lib="seqrec", inv="a", r20=0.1, sps=100.0, **kw):
    m = {k: r20 for k in ("recall@20", "ndcg@20", "recall@50", "hitrate@20", "hitrate@10", "ndcg@10")}
    return {"dataset": "gowalla", "model": "mf_bpr", "library": lib, "seed": seed, "invocation": inv,
            "metrics": m, "train_samples_per_s": sps, "train_seconds": 2.0, "eval_seconds": 1.0,
            "peak_rss_mb": 10.0 + seed, "epochs": 2, "command": "python benchmarks/retrieval.py ...",
            "date": "2026-12-07T00:00:00", "threads": 1, **kw}


def test_record_schema_means_and_per_seed_values(bench_script):
    rb = bench_script("retrieval")
    rec = None
    for s, v in ((0, 0.1), (1, 0.2), (2, 0.3)):
        rec = rb.aggregate(rec, _run(s, r20=v))
    rec = rb.aggregate(rec, _run(1, r20=0.5))  # a rerun of seed 1 replaces it
    for k in ("dataset", "model", "library", "metrics", "train_samples_per_s", "train_seconds", "eval_seconds",
              "peak_rss_mb", "command"):
        assert k in rec
    assert rec["metrics"]["recall@20"] == pytest.approx(0.3)
    assert rec["metrics"]["per_seed"]["1"]["recall@20"] == 0.5 and rec["seeds"] == [0, 1, 2]
    assert rec["peak_rss_mb"] == 12.0
    json.dumps(rec)
    failed = rb.aggregate(None, dict(_run(0, lib="recbole"), metrics=None, status="failed",
                                     error="MemoryError: Unable to allocate"))
    assert failed["status"] == "failed" and failed["metrics"] is None and "MemoryError" in failed["error"]
    md = rb.render([rec, failed])
    assert "failed: MemoryError: Unable to allocate" in md and "0.3000 ± " in md


def test_plan_alternates_and_ratios_pair_one_invocation(bench_script):
    rb = bench_script("retrieval")
    plan = rb.plan_runs(["gowalla", "amazon_beauty"], ["mf_bpr", "youtube_dnn", "sasrec"],
                        ["seqrec", "recbole", "torch-rechub"], [0, 1])
    assert plan[:4] == [("gowalla", "mf_bpr", "seqrec", 0), ("gowalla", "mf_bpr", "recbole", 0),
                        ("gowalla", "mf_bpr", "recbole", 1), ("gowalla", "mf_bpr", "seqrec", 1)]
    assert ("gowalla", "sasrec", "seqrec", 0) not in plan  # SASRec belongs to the leave-one-out datasets
    assert ("amazon_beauty", "youtube_dnn", "torch-rechub", 0) in plan
    ours = rb.aggregate(rb.aggregate(None, _run(0, sps=300.0)), _run(1, sps=400.0, inv="b"))
    peer = rb.aggregate(rb.aggregate(None, _run(0, "recbole", sps=100.0)), _run(1, "recbole", sps=100.0, inv="c"))
    assert rb.speed_ratios([ours, peer], "gowalla", "mf_bpr", "recbole") == [(0, 3.0)]


def test_peer_settings_follow_seqrec_config(bench_script):
    from seqrec.config import load_run_config

    rb = bench_script("retrieval")
    cfg = load_run_config(raw={"data": {"dataset": "movielens1m_m1"},
                               "model": {"name": "mf_bpr", "dim": 32, "n_negatives": 2},
                               "train": {"epochs": 3, "batch_size": 512, "lr": 0.01}})
    s = rb.peer_settings("mf_bpr", cfg, 0)
    assert (s["dim"], s["n_negatives"], s["epochs"], s["batch_size"], s["lr"]) == (32, 2, 3, 512, 0.01)
    c = rb.recbole_config("mf_bpr", s)
    assert c["embedding_size"] == 32 and c["train_neg_sample_args"]["sample_num"] == 2
    assert rb.peer_settings("mf_bpr", cfg, 7)["epochs"] == 7  # --epochs sets both sides
    d = rb.peer_settings("sasrec", None, 2)
    assert d["source"].startswith("peer defaults") and d["epochs"] == 2
    assert rb.recbole_config("sasrec-ce", d)["loss_type"] == "CE"
    assert rb.recbole_config("sasrec", d)["train_neg_sample_args"]["sample_num"] == 1
    assert any("no configs/sasrec" in x for x in rb.differences("sasrec", d, None))


@pytest.mark.slow
@pytest.mark.skipif(not RECBOLE_PY.exists(), reason=".venv-recbole is absent (make bench-recbole)")
def test_recbole_reads_the_split_and_masks_like_seqrec(bench_script, bars, tmp_path):
    ex = bench_script("_retrieval_export")
    ex.write_recbole_atomic(bars, tmp_path / "data", "tiny", sequential=False)
    ex.save_splits(bars, tmp_path / "tiny.npz")
    work = tmp_path / "work"
    work.mkdir()
    spec = {"model": "BPR", "dataset": "tiny", "data_path": str(tmp_path / "data"),
            "splits": str(tmp_path / "tiny.npz"), "seed": 0, "threads": 1, "max_len": 50, "workdir": str(work),
            "config": {"epochs": 1, "train_batch_size": 8, "embedding_size": 4, "topk": [10]}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "rec.json"
    subprocess.run([str(RECBOLE_PY), str(ROOT / "benchmarks" / "_recbole_peer.py"), "--spec",
                    str(tmp_path / "spec.json"), "--out", str(out)], check=False, timeout=120, cwd=work)
    rec = json.loads(out.read_text())
    assert "error" not in rec, rec.get("traceback")
    assert rec["protocol_check"]["mismatches"] == 0
    assert rec["protocol_check"]["rows"] == len(bars.test)
    assert rec["train_examples_per_epoch"] == len(bars.train.values)
    # RecBole's own evaluator and seqrec's on RecBole's scores agree (ties aside; 4 decimals)
    assert rec["peer_metrics"]["hit@10"] == pytest.approx(rec["metrics"]["hitrate@10"], abs=1e-4)


def test_train_full_repeats_the_test_rows_as_recboles_valid_phase(bench_script, tmp_path):
    ex = bench_script("_retrieval_export")
    (tmp_path / "train.txt").write_text("0 1 2 3\n1 2 4\n")
    (tmp_path / "test.txt").write_text("0 4\n1 1\n")
    task = bars_task("t", tmp_path, train_split="train_full")
    ex.write_recbole_atomic(task, tmp_path / "o", "t", sequential=False)
    rd = {ph: ex.read_recbole_atomic(tmp_path / "o" / "t" / f"t.{ph}.inter") for ph in ex.PHASES}
    assert rd["valid"] == rd["test"] and len(rd["train"]) == 5
