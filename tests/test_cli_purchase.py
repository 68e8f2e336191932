"""``seqrec train / evaluate / score-users`` for purchase prediction on the Instacart sample."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from seqrec.cli import main

CATEGORY = "household"
MODELS = {  # tiny settings: the point is the plumbing, not the scores
    "xgboost": {"n_estimators": 40, "early_stopping_rounds": 10},
    "cnn_lstm": {"embedding_dim": 8, "hidden": 16, "mlp_hidden": [16], "conv_channels": 8},
}


def _toml(value) -> str:
    return json.dumps(value)  # strings, numbers and flat lists are the same in TOML


def write_config(path: Path, data_root: Path | str, model: str, category: str = CATEGORY, **model_kw) -> Path:
    lines = ["[data]", 'dataset = "instacart"', f"data_dir = {_toml(str(data_root))}", "max_len = 30",
             "[data.purchase]", f"category = {_toml(category)}", "shift = [1]",
             "[model]", f"name = {_toml(model)}", *(f"{k} = {_toml(v)}" for k, v in model_kw.items()),
             "[train]", "epochs = 2", "batch_size = 64", 'optimizer = "adam"', "lr = 0.003"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


# -- fast: bad input is one clear line ----------------------------------------------------------
def test_train_unknown_category_is_one_line(data_root, tmp_path):
    cfg = write_config(tmp_path / "c.toml", data_root, "xgboost", category="nosuch")
    rc, _, err = run_cli(["train", cfg, "--out", tmp_path / "run", "--no-progress"])
    assert_one_line_error(rc, err, "unknown category 'nosuch'", "household")
    assert not (tmp_path / "run").exists()  # bad input leaves nothing behind


def test_train_bad_shift_is_one_line(data_root, tmp_path):
    cfg = write_config(tmp_path / "c.toml", data_root, "xgboost")
    rc, _, err = run_cli(["train", cfg, "--out", tmp_path / "run", "--set", "data.purchase.shift=[0]"])
    assert_one_line_error(rc, err, "shift")


def test_train_missing_data_is_one_line(tmp_path):
    cfg = write_config(tmp_path / "c.toml", tmp_path / "nodata", "xgboost")
    rc, _, err = run_cli(["train", cfg, "--out", tmp_path / "run"])
    assert_one_line_error(rc, err, "df_sample.csv.gz", str(tmp_path / "nodata" / "purchase" / "instacart_sample"))


def test_score_users_on_a_missing_run_is_one_line(tmp_path):
    rc, _, err = run_cli(["score-users", tmp_path, "--category", CATEGORY])
    assert_one_line_error(rc, err, "config.json")


# -- rule baselines under the deployment protocol (a few seconds: nothing to train but a logistic
# regression; marked slow all the same, as it fits on the real Instacart log)
@pytest.mark.slow
@pytest.mark.parametrize("model", ["bought_before", "rfm_logreg"])
def test_rule_baseline_deployment_train_evaluate_score(data_root, tmp_path, model):
    cfg = write_config(tmp_path / "c.toml", data_root, model)
    run = tmp_path / "run"
    rc, out, err = run_cli(["train", cfg, "--out", run, "--no-progress", "--set", 'data.purchase.protocol="deployment"',
                            "--set", "data.purchase.shift=[]"])
    assert rc == 0, err
    assert f"{model} on instacart / {CATEGORY}: test precision=" in out and "593 users" in out
    assert (run / "baseline.json").is_file() and not (run / "model.pt").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["protocol"] == "deployment" and metrics["negatives"] == "non-buyers"
    t = metrics["test"]
    assert t["n_users"] == t["n_samples"] == 593  # every Instacart user is active before the test cut-off
    assert t["base_rate"] == t["n_positive"] / 593 < 0.5  # the natural rate, not 1:1
    assert t["lift@top5%"] == pytest.approx(t["precision@top5%"] / t["base_rate"])
    if model == "rfm_logreg":
        assert metrics["C"] in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    rc, so, err = run_cli(["evaluate", run, "--json"])
    assert rc == 0, err
    assert json.loads(so) == t  # the saved baseline reproduces the report exactly
    rc, _, err = run_cli(["score-users", run, "--category", CATEGORY])
    assert rc == 0, err
    with (run / f"scores_{CATEGORY}.csv").open() as f:
        everyone = list(csv.reader(f))[1:]
    assert len(everyone) == 593  # score-users scores everyone, as the deployment test does
    if model == "bought_before":
        assert {r[2] for r in everyone} == {"1.000000", "0.000000"}


# -- slow: train, evaluate and score on real data -----------------------------------------------
@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory):
    """One trained run per model (trained once for the module)."""
    done: dict[str, tuple[Path, str]] = {}

    def get(model: str) -> tuple[Path, str]:
        if model not in done:
            tmp = tmp_path_factory.mktemp(model)
            cfg = write_config(tmp / f"{model}.toml", data_root, model, **MODELS[model])
            rc, out, err = run_cli(["train", cfg, "--out", tmp / "run", "--no-progress"])
            assert rc == 0, err
            done[model] = (tmp / "run", out)
        return done[model]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_train_then_evaluate_reproduces_metrics(runs, model):
    run, out = runs(model)
    assert f"{model} on instacart / {CATEGORY}: test precision=" in out
    files = {"config.json", "schema.json", "metrics.json", "vocab_cate.json", "vocab_product.json"}
    files |= {"model.xgb.json"} if model == "xgboost" else {"model.pt", "log.csv"}
    assert files <= {p.name for p in run.iterdir()}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["category"] == CATEGORY and metrics["shift"] == [1]
    assert metrics["counts"]["train"]["augmented"] > 0
    for split in ("valid", "test"):
        m = metrics[split]
        assert m["n_positive"] * 2 == m["n_samples"] == metrics["counts"][split]["samples"]
    rc, so, err = run_cli(["evaluate", run, "--json"])
    assert rc == 0, err
    got = json.loads(so)
    assert {"precision", "recall", "f1", "auc", "pr_auc", "logloss", "threshold"} <= set(got)
    assert got == metrics["test"]  # the checkpoint reproduces the training-time report exactly
    rc, so, err = run_cli(["evaluate", run, "--json", "--split", "valid"])
    assert rc == 0 and json.loads(so) == metrics["valid"]


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_score_users_top_k(runs, model, tmp_path, data_root):
    run, _ = runs(model)
    path = tmp_path / "top.csv"
    rc, out, err = run_cli(["score-users", run, "--category", CATEGORY, "--top", 5, "--out", path])
    assert rc == 0, err
    assert str(path) in out
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["rank", "user_id", "probability"]
    top = rows[1:]
    assert [r[0] for r in top] == ["1", "2", "3", "4", "5"]
    probs = [float(r[2]) for r in top]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    assert len({r[1] for r in top}) == 5
    # without --top every user is ranked, into RUN/scores_<category>.csv; its head is the top 5
    rc, _, err = run_cli(["score-users", run, "--category", CATEGORY])
    assert rc == 0, err
    with (run / f"scores_{CATEGORY}.csv").open() as f:
        everyone = list(csv.reader(f))[1:]
    assert len(everyone) == 593  # every Instacart user has a history at the end of the data
    assert everyone[:5] == top
    ranked = [float(r[2]) for r in everyone]
    assert ranked == sorted(ranked, reverse=True)


@pytest.mark.slow
def test_score_users_wrong_or_unknown_category(runs):
    run, _ = runs("xgboost")
    rc, _, err = run_cli(["score-users", run, "--category", "pets"])
    assert_one_line_error(rc, err, f"trained for category '{CATEGORY}'", "pets")
    assert not (run / "scores_pets.csv").exists()
    rc, _, err = run_cli(["score-users", run, "--category", "nosuch"])
    assert_one_line_error(rc, err, "unknown category 'nosuch'")
    rc, _, err = run_cli(["score-users", run, "--category", CATEGORY, "--top", 0])
    assert_one_line_error(rc, err, "--top")
