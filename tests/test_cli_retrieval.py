"""``seqrec train / evaluate / recommend`` for retrieval models on real data, and their bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqrec.cli import main

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"recall@20", "ndcg@20", "recall@50", "hitrate@20", "hitrate@10", "ndcg@10"}


def _cli(capsys, argv: list) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture(scope="module")
def mf_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("mf") / "run"
    rc = main(["train", str(ROOT / "configs/mf_bpr_movielens1m_m1.toml"), "--out", str(out),
               "--set", "train.epochs=1", "--set", "model.dim=16", "--set", "data.train_split=train",
               "--no-progress"])
    assert rc == 0
    return out


@pytest.mark.slow
def test_train_evaluate_json_reproduces_the_run(mf_run, capsys):
    for f in ("config.json", "ids.json", "model.pt", "metrics.json", "log.csv"):
        assert (mf_run / f).is_file(), f
    trained = json.loads((mf_run / "metrics.json").read_text())
    assert trained["family"] == "retrieval" and trained["items"] == 3043
    rc, so, se = _cli(capsys, ["evaluate", mf_run, "--json"])
    assert rc == 0, se
    m = json.loads(so)
    assert set(m) >= KEYS
    for k in KEYS:
        assert m[k] == pytest.approx(trained["test"][k], abs=1e-12)
    rc, so, _ = _cli(capsys, ["evaluate", mf_run, "--json", "--split", "valid"])
    assert rc == 0 and json.loads(so)["recall@20"] == pytest.approx(trained["valid"]["recall@20"], abs=1e-12)


@pytest.mark.slow
def test_recommend_for_a_user_excludes_their_items(mf_run, capsys):
    ids = json.loads((mf_run / "ids.json").read_text())
    user = ids["users"][0]
    rc, so, se = _cli(capsys, ["recommend", mf_run, "--user", user, "-k", "30", "--json"])
    assert rc == 0, se
    res = json.loads(so)
    assert len(res["items"]) == 30 and res["scores"] == sorted(res["scores"], reverse=True)
    seen = set((ROOT.parent / "shared/data/retrieval/movielens1m_m1/train.txt").read_text().splitlines()[0]
               .split()[1:])
    assert not seen & set(res["items"])


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--user", "no-such-user"], "user 'no-such-user' is not in the training data"),
    (["--user", "0", "-k", "100000"], "larger than the catalogue (3043 items)"),
    (["--items", "nope,nada"], "the history is empty"),
    (["--items", "1,2"], "scores known users only: use --user"),
    ([], "give --items"),
    (["--user", "0", "-k", "0"], "-k must be positive"),
])
def test_bad_recommend_input_is_one_line_and_exit_2(mf_run, capsys, argv, message):
    rc, so, se = _cli(capsys, ["recommend", mf_run, *argv])
    assert rc == 2
    assert message in se and len(se.strip().splitlines()) == 1


@pytest.mark.slow
def test_history_model_recommends_for_items_and_skips_unknown_ids(tmp_path, capsys, data_root):
    out = tmp_path / "icf"
    rc, so, se = _cli(capsys, ["train", ROOT / "configs/itemcf_movielens1m_m1.toml", "--out", out, "--no-progress"])
    assert rc == 0, se
    assert "test recall@20=" in so
    trained = json.loads((out / "metrics.json").read_text())["test"]
    rc, so, se = _cli(capsys, ["evaluate", out, "--json", "--ties", "pessimistic"])
    assert rc == 0, se
    assert json.loads(so)["recall@20"] == pytest.approx(trained["recall@20"], abs=1e-12)  # strict order: no ties
    rc, so, se = _cli(capsys, ["recommend", out, "--items", "1,2,no-such-item", "-k", "5", "--json"])
    assert rc == 0, se
    res = json.loads(so)
    assert res["unknown"] == ["no-such-item"] and len(res["items"]) == 5
    assert not {"1", "2"} & set(res["items"])
    rc, _, se = _cli(capsys, ["recommend", out, "--items", "1,no-such-item", "--unknown", "error"])
    assert rc == 2 and "no-such-item" in se


def test_retrieval_rejects_own_data_path(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\npath = "x.csv"\n[model]\nname = "mf_bpr"\n')
    rc, _, se = _cli(capsys, ["train", cfg, "--out", tmp_path / "r"])
    assert rc == 2 and "registered dataset" in se


def test_evaluate_of_a_missing_run_is_one_line(tmp_path, capsys):
    rc, _, se = _cli(capsys, ["evaluate", tmp_path / "nothing"])
    assert rc == 2 and "does not exist" in se


@pytest.mark.slow
def test_train_full_without_test_is_a_pretraining_run(tmp_path, capsys, data_root):
    """train_full has no validation split: with eval.test = false nothing is evaluated, and the
    summary says so (a GMF / MLP pretraining run for NeuMF), instead of failing after training."""
    out = tmp_path / "gmf"
    rc, so, se = _cli(capsys, ["train", ROOT / "configs/mf_bpr_movielens1m_m1.toml", "--out", out,
                               "--set", "train.epochs=1", "--set", "model.dim=8", "--set", "data.train_split=train_full",
                               "--set", "eval.test=false", "--no-progress"])
    assert rc == 0, se
    assert "not evaluated" in so
    m = json.loads((out / "metrics.json").read_text())
    assert "test" not in m and "valid" not in m and (out / "model.pt").is_file()


@pytest.mark.slow
def test_config_progress_false_is_honoured_without_the_flag(tmp_path, capsys, data_root):
    rc, _, se = _cli(capsys, ["train", ROOT / "configs/pop_retrieval_movielens1m_m1.toml", "--out", tmp_path / "p",
                              "--set", "train.progress=false"])
    assert rc == 0, se
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert cfg["train"]["progress"] is False  # the CLI no longer overrides the config with its default
