"""``seqrec export`` (seqrec.serve.export): TorchScript / ONNX graphs of retriever user towers and
CTR rankers equal the eager models on real batches, the onnxruntime ranker equals the service's
eager ranker, stale / missing / unsupported exports are refused; the layers' export paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (the ONNX exporter needs it)")

from seqrec.cli import main  # noqa: E402
from seqrec.errors import CheckpointError, ConfigError  # noqa: E402
from seqrec.layers.attention import ActivationUnit  # noqa: E402
from seqrec.layers.augru import AttentionGRU, SequenceGRU  # noqa: E402
from seqrec.serve.export import export_run, load_exported  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-5


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train(config: str, out: Path, *sets: str) -> Path:
    argv = ["train", str(ROOT / "configs" / config), "--out", str(out), "--no-progress",
            "--set", "train.epochs=1", "--set", "train.threads=1"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    return out


# tiny runs on the real Amazon Beauty data (1 epoch, narrow layers), shared by the module's tests
@pytest.fixture(scope="module")
def youtube_run(data_root, tmp_path_factory) -> Path:
    return _train("youtube_dnn_amazon_beauty.toml", tmp_path_factory.mktemp("export") / "youtube_dnn",
                  "model.dim=16", "model.layers=[32]", "model.n_negatives=100", "train.patience=0")


@pytest.fixture(scope="module")
def din_run(data_root, tmp_path_factory) -> Path:
    return _train("din_amazon_beauty.toml", tmp_path_factory.mktemp("export") / "din", "model.embedding_dim=4",
                  "train.batch_size=2048", "model.att_hidden=[16,8]", "model.mlp_hidden=[32,16]")


@pytest.fixture(scope="module")
def dien_run(data_root, tmp_path_factory) -> Path:
    return _train("dien_amazon_beauty.toml", tmp_path_factory.mktemp("export") / "dien", "model.embedding_dim=4",
                  "train.batch_size=2048", "model.mlp_hidden=[32,16]", "model.aux_hidden=[8]")


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a.double() - b.double()).abs().max().item()


# -- the layers' export paths compute the eager values -----------------------------------------
@pytest.mark.parametrize("softmax", [False, True])
def test_activation_unit_dense_path_equals_the_packed_one(softmax):
    torch.manual_seed(0)
    unit = ActivationUnit(6, (8, 4), "dice", softmax=softmax)
    with torch.no_grad():  # trained-like Dice statistics
        unit.mlp.net[1].bn.running_mean.uniform_(-1, 1)
        unit.mlp.net[1].bn.running_var.uniform_(0.5, 2)
        unit.mlp.net[1].alpha.uniform_(-0.5, 0.5)
    unit.eval()
    q, k = torch.randn(5, 6), torch.randn(5, 7, 6)
    lens = torch.tensor([0, 1, 3, 7, 5])
    mask = torch.arange(7)[None] < lens[:, None]
    k = k * mask[..., None]
    with torch.no_grad():
        want = unit.weights(q, k, mask)
        unit.dense_export = True
        got = unit.weights(q, k, mask)
    assert _max_diff(got, want) <= 1e-6
    assert (got[~mask] == 0).all()


@pytest.mark.parametrize("mode", ["gru", "augru", "agru", "aigru"])
@pytest.mark.parametrize("aligned", [True, False])
def test_gru_dense_path_equals_the_kernel_for_any_mask(mode, aligned):
    torch.manual_seed(1)
    B, T, D = 6, 9, 5
    lens = torch.tensor([0, 1, 4, 9, 2, 6])
    mask = torch.arange(T)[None] < lens[:, None]  # left-aligned
    if not aligned:  # real steps anywhere (the kernel packs them in order)
        mask = torch.stack([row[torch.randperm(T)] for row in mask])
    x, att = torch.randn(B, T, D) * mask[..., None], torch.rand(B, T)
    layer = SequenceGRU(D, 4) if mode == "gru" else AttentionGRU(D, 4, mode)
    args = (x, mask) if mode == "gru" else (x, att, mask)
    with torch.no_grad():
        want = layer(*args)
        layer.dense_export = True
        got = layer(*args)
    assert _max_diff(got, want) <= 1e-6


# -- parity of the exported graphs on real batches ---------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_user_tower_export_equals_the_model(youtube_run, fmt, tmp_path):
    from seqrec.families.retrieval import RetrievalRun, split_batch

    out = tmp_path / f"tower.{fmt}"
    rec = export_run(youtube_run, fmt, out)
    assert rec["family"] == "retrieval" and rec["model"] == "youtube_dnn" and rec["outputs"] == ["user_vectors"]
    assert Path(rec["path"]) == out and out.is_file() and Path(rec["sidecar"]).is_file()
    assert rec["parity_max_abs_diff"] <= TOL
    run = RetrievalRun(youtube_run)
    tower = load_exported(out, run_dir=youtube_run)
    task = run.task
    for split, rows in ((task.valid, np.arange(0, 3000, 3)), (task.test, np.array([7]))):  # batch 1000 and 1
        batch = split_batch(task, split, rows, run.config.data.max_len)  # histories of their own width
        with torch.no_grad():
            want = run.model.user_vectors(batch)
        assert _max_diff(tower(batch)["user_vectors"], want) <= TOL


def _ctr_batch(run_dir: Path, rows: np.ndarray) -> dict[str, torch.Tensor]:
    from seqrec.families.ctr import CTRRun, load_task

    cols = load_task(CTRRun(run_dir).config).valid.columns
    return {k: torch.from_numpy(np.ascontiguousarray(v[rows])) for k, v in cols.items()}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("model", ["din", "dien"])
def test_ranker_export_equals_the_model(model, fmt, request, tmp_path):
    from seqrec.families.ctr import CTRRun

    run_dir = request.getfixturevalue(f"{model}_run")
    out = tmp_path / f"ranker.{fmt}"
    rec = export_run(run_dir, fmt, out)
    assert rec["family"] == "ctr" and rec["model"] == model and rec["outputs"] == ["logits"]
    assert [i["name"] for i in rec["inputs"]] == ["user", "item", "cate", "hist_item", "hist_cate"]
    assert rec["parity_max_abs_diff"] <= TOL
    ranker = load_exported(out, run_dir=run_dir)
    eager = CTRRun(run_dir).model
    batch = _ctr_batch(run_dir, np.arange(0, 20_000, 20))  # 1000 real validation samples
    with torch.no_grad():
        want = eager(batch).logits
    assert _max_diff(ranker(batch)["logits"], want) <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("model", ["din", "dien"])
def test_onnx_ranker_scores_equal_the_eager_ranker(model, request, tmp_path):
    from seqrec.families.ctr import CTRRun, load_task
    from seqrec.serve.stages import Ranker

    run_dir = tmp_path / model
    shutil.copytree(request.getfixturevalue(f"{model}_run"), run_dir)
    rec = export_run(run_dir, "onnx")
    assert rec["path"] == str(run_dir / "ranker.onnx")
    eager, onnx = Ranker(run_dir), Ranker(run_dir, backend="onnx")
    assert onnx.scorer.kind == "onnx" and "ranker.onnx" in onnx.checksums
    cols = load_task(CTRRun(run_dir).config).test.columns
    items = np.random.default_rng(0).choice(np.arange(2, len(eager.item_cate)), 1000, replace=False)
    for row in (0, 4321):
        hist = cols["hist_item"][row]
        hist = hist[hist != 0]  # a real history, oldest first
        want, _ = eager.score(hist, None, items)
        got, att = onnx.score(hist, None, items, explain=True)
        assert got.shape == (1000,) and att is None
        assert np.abs(got - want).max() <= TOL
    empty = np.zeros(0, np.int64)  # no history at all
    assert np.abs(onnx.score(empty, None, items)[0] - eager.score(empty, None, items)[0]).max() <= TOL


@pytest.mark.slow
def test_missing_or_stale_ranker_onnx_is_refused(din_run, tmp_path):
    from seqrec.serve.stages import Ranker
    from seqrec.train.checkpoint import load_tensors, save_tensors

    run_dir = tmp_path / "din"
    shutil.copytree(din_run, run_dir)
    (run_dir / "ranker.onnx").unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="no ranker.onnx.*seqrec export .* --format onnx"):
        Ranker(run_dir, backend="onnx")
    export_run(run_dir, "onnx")
    Ranker(run_dir, backend="onnx")  # fresh: loads
    state = load_tensors(run_dir / "model.pt")
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.01  # model.pt retrained since the export
    save_tensors(run_dir / "model.pt", state)
    with pytest.raises(CheckpointError, match="stale.*seqrec export"):
        Ranker(run_dir, backend="onnx")
    with pytest.raises(ConfigError, match="backend"):
        Ranker(run_dir, backend="tensorrt")


@pytest.mark.slow
def test_non_two_tower_models_and_unknown_formats_are_refused(data_root, tmp_path):
    run = _train("pop_retrieval_amazon_beauty.toml", tmp_path / "pop")
    with pytest.raises(ConfigError, match="pop_retrieval does not score by inner products.*two-tower"):
        export_run(run, "onnx")
    with pytest.raises(ConfigError, match="unknown export format 'tflite'; choose one of torchscript, onnx"):
        export_run(run, "tflite")


def test_cli_bad_run_dir_and_format_are_one_line_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    assert main(["export", str(tmp_path), "--format", "tflite"]) == 2
    err = capsys.readouterr().err
    assert "unknown export format" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_export_end_to_end(din_run, youtube_run, tmp_path, capsys):
    out = tmp_path / "din.onnx"
    assert main(["export", str(din_run), "--format", "onnx", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and "din ranker exported as onnx" in line and str(out) in line
    assert out.is_file() and (tmp_path / "din.onnx.json").is_file()
    assert main(["export", str(youtube_run), "--format", "torchscript", "--json"]) == 0
    import json

    rec = json.loads(capsys.readouterr().out)
    assert rec["path"] == str(youtube_run / "user_tower.torchscript.pt") and rec["bytes"] > 0
    assert rec["parity_max_abs_diff"] <= TOL
