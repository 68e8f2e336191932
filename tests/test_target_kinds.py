"""benchmarks/target_kinds.py: the target groups that explain per-dataset results."""

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _table(rows):
    return pl.DataFrame(rows, schema=["session_id", "user_id", "item_id"], orient="row")


def test_target_kinds_same_earlier_new(bench_script):
    tk = bench_script("target_kinds")
    items = np.array([1, 1, 2, 1, 3, 7, 8])
    offsets = np.array([0, 5, 7])
    # session 0: 1->1 same, 1->2 new, 2->1 earlier, 1->3 new, last none; session 1: 7->8 new
    assert tk.target_kinds(items, offsets).tolist() == [0, 2, 1, 2, -1, 2, -1]


def test_user_history_kinds_split_new_targets_by_the_users_training_sessions(bench_script):
    tk = bench_script("target_kinds")
    train = _table([
        ("a", "u1", 10), ("a", "u1", 11),  # u1 had 10 and 11 together
        ("b", "u1", 12),                    # u1 had 12, not with 10
        ("c", "u2", 10), ("c", "u2", 13),  # u2 had 10 and 13: not u1's history
    ])
    events = _table([
        ("t1", "u1", 10), ("t1", "u1", 11), ("t1", "u1", 12), ("t1", "u1", 13), ("t1", "u1", 13),
        ("t2", "u2", 11), ("t2", "u2", 10),
    ])
    items = events["item_id"].to_numpy()
    kind = tk.target_kinds(items, np.array([0, 5, 7]))
    assert kind.tolist() == [2, 2, 2, 0, -1, 2, -1]
    hist = tk.user_history_kinds(train, events, kind)
    # 10->11 pair of u1; 11->12 u1 saw 12 but not with 11; 12->13 u1 never saw 13 (u2 did);
    # 13->13 is "same", not new; 11->10 for u2: u2 saw 10 (with 13, not with 11)
    assert hist.tolist() == [0, 1, 2, -1, -1, 1, -1]


def test_user_history_kinds_needs_user_ids(bench_script):
    tk = bench_script("target_kinds")
    events = pl.DataFrame({"session_id": ["s", "s"], "item_id": [1, 2]})
    with pytest.raises(SystemExit, match="no user_id column"):
        tk.user_history_kinds(events, events, np.array([2, -1]))


def test_target_kinds_match_a_plain_walk_of_random_sessions(bench_script):
    tk = bench_script("target_kinds")
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, size=300)  # includes one-event sessions
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, 12, size=int(offsets[-1]))  # few items: many repeats
    want = np.full(len(items), -1)
    for s in range(len(lengths)):
        seen = set()
        for p in range(offsets[s], offsets[s + 1] - 1):
            seen.add(items[p])
            t = items[p + 1]
            want[p] = 0 if t == items[p] else (1 if t in seen else 2)
    got = tk.target_kinds(items, offsets)
    assert got.tolist() == want.tolist()
    assert {0, 1, 2, -1} <= set(got.tolist())


TINY = ["--set", "train.epochs=1", "--set", "train.batch_size=64", "--no-progress"]


@pytest.fixture(scope="module")
def taobao_runs(data_root, tmp_path_factory):
    """A tiny GRU4Rec and a tiny HRNN run on taobao (real data, with user ids)."""
    from seqrec.cli import main

    out = tmp_path_factory.mktemp("kinds")
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQREC_DATA", str(data_root))
        for name, cfg, extra in (
            ("gru4rec", "gru4rec_taobao_bpr-max.toml", ["--set", "model.layers=[32]"]),
            ("hrnn", "hrnn_taobao.toml", ["--set", "model.session.layers=[32]"]),
        ):
            runs[name] = out / name
            assert main(["train", str(ROOT / "configs" / cfg), "--out", str(runs[name]), *TINY, *extra]) == 0
    return runs


@pytest.mark.slow
def test_script_splits_a_gru4rec_run_by_user_history(bench_script, taobao_runs, data_root, monkeypatch, capsys):
    tk = bench_script("target_kinds")
    monkeypatch.setenv("SEQREC_DATA", str(data_root))
    monkeypatch.setattr(sys, "argv", ["target_kinds.py", "--user-history", str(taobao_runs["gru4rec"])])
    assert tk.main() == 0
    line = capsys.readouterr().out.strip()
    counts = {part.split(" n=")[0].split()[-1]: int(part.split(" n=")[1].split()[0])
              for part in line.split(" | ")}
    assert set(counts) == {"all", "same", "earlier", "new", "new/pair", "new/item", "new/other"}
    assert counts["same"] + counts["earlier"] + counts["new"] == counts["all"]
    assert counts["new/pair"] + counts["new/item"] + counts["new/other"] == counts["new"]


@pytest.mark.slow
def test_script_refuses_an_hrnn_run(bench_script, taobao_runs, data_root, monkeypatch):
    tk = bench_script("target_kinds")
    monkeypatch.setenv("SEQREC_DATA", str(data_root))
    monkeypatch.setattr(sys, "argv", ["target_kinds.py", str(taobao_runs["hrnn"])])
    with pytest.raises(SystemExit, match="HRNN runs are evaluated with user context"):
        tk.main()
