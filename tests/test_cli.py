"""The ``seqrec`` command line end to end on real data (yoochoose_100k, tiny settings), run
in-process through ``seqrec.cli.main``; error paths exit 2 with exactly one line on stderr."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqrec.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "gru4rec_yoochoose_100k_bpr-max.toml"
TINY = [
    "--set",
    "train.epochs=1",
    "--set",
    "model.layers=[32]",
    "--set",
    "loss.n_sample=128",
    "--set",
    "train.batch_size=64",
    "--set",
    "loss.sample_cache=100000",
    "--no-progress",
]


def _run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _cli(capsys, argv: list) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_error(rc: int, err: str, *needles: str) -> str:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def gru_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """One tiny GRU4Rec run through ``seqrec train``, shared by the tests below."""
    out = tmp_path_factory.mktemp("cli") / "gru4rec_run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQREC_DATA", str(data_root))
        rc, stdout, stderr = _run_main(["train", CONFIG, "--out", out, *TINY])
    assert rc == 0, stderr
    return out, stdout


@pytest.fixture
def shared_data(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQREC_DATA", str(data_root))
    return data_root


# -- train / evaluate / recommend ----------------------------------------------------------


@pytest.mark.slow
def test_train_writes_the_run_directory(gru_run):
    out, stdout = gru_run
    for name in ("config.json", "model.pt", "vocab.json", "metrics.json", "log.csv"):
        assert (out / name).is_file(), name
    assert "gru4rec on yoochoose_100k: test recall@20=" in stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["name"] == "gru4rec" and cfg["model"]["layers"] == [32]
    assert cfg["loss"]["n_sample"] == 128 and cfg["train"]["epochs"] == 1
    assert cfg["loss"]["name"] == "bpr-max"  # from the TOML, not overridden
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test"]["n_events"] > 1000
    assert metrics["best_epoch"] == -1  # trained on train_full: no validation split, no best epoch
    # one tiny epoch already learns something: far above a random ranker (20 / 2933 ≈ 0.007)
    assert 0.1 < metrics["test"]["recall@20"] <= 1.0
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("kind,epoch,step") and any(r.startswith("epoch,1,") for r in log)


@pytest.mark.slow
def test_evaluate_json_reproduces_training_metrics(gru_run, shared_data, capsys):
    out, _ = gru_run
    rc, stdout, _ = _cli(capsys, ["evaluate", out, "--json"])
    assert rc == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    got = json.loads(lines[0])
    want = json.loads((out / "metrics.json").read_text())["test"]
    for key in ("recall@20", "mrr@20", "ndcg@20", "recall@5", "mrr@10", "n_events", "n_sessions"):
        assert got[key] == want[key], key  # recomputed from the checkpoint: exactly equal
    # ties: real-valued scores give (nearly) the same figures under the pessimistic rule
    rc, stdout, _ = _cli(capsys, ["evaluate", out, "--json", "--ties", "pessimistic"])
    pes = json.loads(stdout)
    assert pes["recall@20"] == pytest.approx(want["recall@20"], abs=0.005)
    # the plain text form names every metric
    rc, stdout, _ = _cli(capsys, ["evaluate", out])
    assert rc == 0 and "recall@20" in stdout and "n_events" in stdout


@pytest.mark.slow
def test_recommend_known_and_unknown_ids(gru_run, capsys):
    out, _ = gru_run
    ids = json.loads((out / "vocab.json").read_text())["ids"]
    a, b = ids[0], ids[1]
    rc, stdout, stderr = _cli(capsys, ["recommend", out, "--items", f"{a},{b}", "-k", "5"])
    assert rc == 0 and stderr == ""
    lines = stdout.strip().splitlines()
    assert len(lines) == 5
    assert [ln.split()[0] for ln in lines] == ["1", "2", "3", "4", "5"]
    scores = [float(ln.split()[2]) for ln in lines]
    assert scores == sorted(scores, reverse=True)
    assert all(int(ln.split()[1]) in set(ids) for ln in lines)
    # an unknown id is reported on stderr and skipped: same result as without it
    rc, stdout2, stderr = _cli(capsys, ["recommend", out, "--items", f"{a},999,{b}", "-k", "5"])
    assert rc == 0 and stdout2 == stdout
    assert "999" in stderr and "unknown" in stderr
    rc, js, _ = _cli(capsys, ["recommend", out, "--items", f"{a},{b}", "-k", "5", "--json"])
    res = json.loads(js)
    assert len(res["items"]) == 5 and res["unknown"] == []
    # --unknown error: exit 2, one line naming the id
    rc, stdout, stderr = _cli(
        capsys, ["recommend", out, "--items", f"{a},999", "--unknown", "error"]
    )
    _one_line_error(rc, stderr, "999")
    assert stdout == ""
    # only unknown ids
    rc, _, stderr = _cli(capsys, ["recommend", out, "--items", "999,998"])
    _one_line_error(rc, stderr, "999", "998")
    rc, _, stderr = _cli(capsys, ["recommend", out, "--items", f"{a}", "-k", "0"])
    _one_line_error(rc, stderr, "-k")


@pytest.mark.slow
def test_resume_finishes_an_interrupted_run_with_the_same_weights(shared_data, tmp_path):
    """Two epochs in one go == one epoch, then ``--resume`` to two: the optimiser state, the
    per-epoch seeds and the fused step's bound views of the state all carry over."""
    import torch

    from seqrec.train.checkpoint import load_tensors

    full, part = tmp_path / "full", tmp_path / "part"
    rc, _, err = _run_main(["train", CONFIG, "--out", full, *TINY, "--set", "train.epochs=2"])
    assert rc == 0, err
    rc, _, err = _run_main(["train", CONFIG, "--out", part, *TINY])  # stopped after epoch 1
    assert rc == 0, err
    one_epoch = load_tensors(part / "model.pt")
    rc, _, err = _run_main(["train", CONFIG, "--out", part, *TINY, "--set", "train.epochs=2", "--resume"])
    assert rc == 0, err
    a, b = load_tensors(full / "model.pt"), load_tensors(part / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(b["item_out"], one_epoch["item_out"])  # the resumed epoch did train
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (full, part))
    assert ma["epochs"] == mb["epochs"] == 2
    for key in ("recall@20", "mrr@20", "ndcg@20", "n_events"):
        assert ma["test"][key] == mb["test"][key], key


@pytest.mark.slow
@pytest.mark.parametrize("model", ["pop", "item-knn"])
def test_baseline_through_the_cli(model, tmp_path, shared_data, capsys):
    cfg = tmp_path / f"{model}.toml"
    cfg.write_text(f'[data]\ndataset = "yoochoose_100k"\n\n[model]\nname = "{model}"\n')
    out = tmp_path / "run"
    rc, stdout, stderr = _cli(capsys, ["train", cfg, "--out", out, "--no-progress"])
    assert rc == 0, stderr
    assert f"{model} on yoochoose_100k" in stdout
    assert (out / "metrics.json").is_file() and (out / "baseline").is_dir()
    want = json.loads((out / "metrics.json").read_text())["test"]
    rc, stdout, _ = _cli(capsys, ["evaluate", out, "--json"])
    got = json.loads(stdout)
    for key in ("recall@20", "mrr@20", "ndcg@20", "n_events"):
        assert got[key] == want[key], key
    assert 0.0 < got["recall@20"] < 1.0
    ids = json.loads((out / "vocab.json").read_text())["ids"]
    rc, stdout, _ = _cli(capsys, ["recommend", out, "--items", str(ids[0]), "-k", "3"])
    assert rc == 0 and len(stdout.strip().splitlines()) == 3


def test_datasets_lists_found(shared_data, capsys):
    rc, stdout, _ = _cli(capsys, ["datasets"])
    assert rc == 0
    rows = {ln.split()[0]: ln for ln in stdout.splitlines()[1:] if ln and not ln.startswith(" ")}
    for name in ("yoochoose_100k", "retailrocket_users", "diginetica"):
        assert name in rows and "found" in rows[name], stdout
    assert "licence: research-only, CC BY-NC-ND 4.0" in stdout  # each dataset's licence note
    rc, stdout, _ = _cli(capsys, ["datasets", "--json"])
    table = {r["name"]: r for r in json.loads(stdout.split("\n", 1)[1])}
    assert table["yoochoose_100k"]["found"] is True and table["yoochoose_100k"]["families"] == ["session"]
    assert all(r["source"] and r["licence"] and r["recipes"] for r in table.values())
    assert {n: r["found"] for n, r in table.items() if "ctr" in r["families"]} == {
        "amazon_beauty": True, "amazon_sports": True, "taobao": True}
    assert table["taobao"]["families"] == ["session", "ctr", "purchase", "retrieval", "multitask"]
    assert {n for n, r in table.items() if "retrieval" in r["families"]} == {
        "gowalla", "movielens1m_m1", "amazon_beauty", "amazon_sports", "ml-100k", "taobao"}


# -- error paths: exit 2, exactly one line on stderr naming the problem ------------------------


def test_missing_config_file(tmp_path, capsys):
    rc, _, err = _cli(capsys, ["train", tmp_path / "nope.toml", "--out", tmp_path / "r"])
    _one_line_error(rc, err, "nope.toml", "not found")


def test_config_with_unknown_key(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[model]\nname = "gru4rec"\nhidden_size = 100\n')
    rc, _, err = _cli(capsys, ["train", cfg, "--out", tmp_path / "r"])
    line = _one_line_error(rc, err, "hidden_size", "allowed", "layers")
    assert line.startswith("seqrec train: error:")


def test_bad_set_syntax(tmp_path, capsys):
    rc, _, err = _cli(capsys, ["train", CONFIG, "--out", tmp_path / "r", "--set", "trainlr0.1"])
    _one_line_error(rc, err, "trainlr0.1", "section.key=value")


def test_unknown_dataset(tmp_path, shared_data, capsys):
    rc, _, err = _cli(
        capsys, ["train", CONFIG, "--out", tmp_path / "r", "--set", "data.dataset=nosuchdata"]
    )
    _one_line_error(rc, err, "nosuchdata", "yoochoose_100k")


def test_evaluate_on_a_directory_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, _, err = _cli(capsys, ["evaluate", tmp_path / "empty"])
    _one_line_error(rc, err, "config.json", "run directory")
    rc, _, err = _cli(capsys, ["evaluate", tmp_path / "missing"])
    _one_line_error(rc, err, "missing", "does not exist")
    rc, _, err = _cli(capsys, ["recommend", tmp_path / "empty", "--items", "1"])
    _one_line_error(rc, err, "config.json")


def test_out_dir_that_is_not_a_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, _, err = _cli(capsys, ["train", CONFIG, "--out", out, *TINY])
    _one_line_error(rc, err, "precious", "not a seqrec run directory")
    assert (out / "notes.txt").read_text() == "keep me"


def test_seqrec_data_pointing_to_an_empty_dir(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "nodata"
    empty.mkdir()
    monkeypatch.setenv("SEQREC_DATA", str(empty))
    rc, _, err = _cli(capsys, ["train", CONFIG, "--out", tmp_path / "r", *TINY])
    _one_line_error(rc, err, "yoochoose_100k", "train_full.txt", str(empty), "SEQREC_DATA")
    rc, stdout, _ = _cli(capsys, ["datasets"])
    assert rc == 0 and "MISSING" in stdout and str(empty) in stdout


def test_entry_point_subprocess(tmp_path):
    """The installed console script exists and maps errors to exit code 2 + one line."""
    exe = Path(sys.executable).parent / "seqrec"
    if not exe.exists():
        found = shutil.which("seqrec")
        if found is None:
            pytest.skip("seqrec console script not installed")
        exe = Path(found)
    proc = subprocess.run(
        [str(exe), "train", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = _one_line_error(proc.returncode, proc.stderr, "missing.toml")
    assert line.startswith("seqrec train: error: config file")
    assert proc.stdout == ""


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("datasets", "train", "evaluate", "recommend"):
        assert cmd in out


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.epochs=0", "train].epochs: must be >= 1, got 0"),
        ("train.batch_size=-1", "train].batch_size: must be >= 1, got -1"),
        ("loss.n_sample=-3", "loss].n_sample: must be >= 0, got -3"),
        ("train.lr=-1", "train].lr: must be > 0, got -1"),
        ("train.momentum=-2", "train].momentum: must be in [0, 1), got -2"),
        ("model.dropout_embed=1.5", "model].dropout_embed: must be in [0, 1), got 1.5"),
        ("loss.sample_alpha=nan", "loss].sample_alpha: must be a finite number, got nan"),
        ("train.threads=-4", "train].threads: must be >= 0, got -4"),
        ("train.patience=-1", "train].patience: must be >= 0, got -1"),
        ('train.optimizer="adamw"', "train].optimizer: 'adamw' is not one of"),
        ("eval.ks=[0,20]", "eval].ks: must be >= 1"),
    ],
)
def test_bad_config_values_are_one_line_and_exit_2(override, needle, tmp_path):
    """Issue #21's list: each of these used to train a junk model or end in a traceback."""
    rc, _, err = _run_main(["train", CONFIG, "--out", tmp_path / "r", "--set", override, "--no-progress"])
    _one_line_error(rc, err, needle)
    assert not (tmp_path / "r").exists()  # nothing written before the config is checked
