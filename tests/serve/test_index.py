"""The faiss index of item vectors (seqrec.serve.index) and ``seqrec index`` / ``recommend`` through it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

faiss = pytest.importorskip("faiss", reason="faiss-cpu is not installed (pip install 'seqrec[index]')")

from seqrec.cli import main  # noqa: E402
from seqrec.errors import CheckpointError, ConfigError  # noqa: E402
from seqrec.serve.index import IndexParams, ItemIndex, default_nlist, top_k_excluding  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    # unequal norms, as trained item vectors have: inner-product search is not cosine search
    return (g.standard_normal((n, d)) * g.uniform(0.5, 1.5, (n, 1))).astype(np.float32)


def _exact(items: np.ndarray, queries: np.ndarray, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.from_numpy(queries) @ torch.from_numpy(items).T  # (Q, N)
    v, i = torch.topk(s, k, dim=1)
    return i + 1, v  # item index = row + 1


def test_flat_equals_exact_torch_topk():
    items, queries = _vectors(500, 16), _vectors(20, 16, seed=1)
    idx = ItemIndex.build(items, IndexParams(kind="flat"))
    got, scores = idx.search(queries, 10)
    want, want_scores = _exact(items, queries, 10)
    assert np.array_equal(got, want.numpy())
    np.testing.assert_allclose(scores, want_scores.numpy(), rtol=1e-5, atol=1e-5)
    assert got.min() >= 1 and got.max() <= 500  # labels are item indices 1..N, never padding 0


def test_hnsw_recall_on_small_synthetic_set():
    items, queries = _vectors(3000, 16), _vectors(100, 16, seed=2)
    idx = ItemIndex.build(items, IndexParams(kind="hnsw", m=16, ef_search=128))
    got, _ = idx.search(queries, 20)
    want, _ = _exact(items, queries, 20)
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(got.tolist(), want.tolist(), strict=True)])
    assert recall >= 0.95


@pytest.mark.parametrize("transform", ["l2", "none"])
def test_ivf_with_every_cell_probed_is_exact(transform):
    items, queries = _vectors(1000, 8), _vectors(10, 8, seed=3)
    idx = ItemIndex.build(items, IndexParams(kind="ivf", nprobe=10_000, transform=transform))
    assert idx.index.nlist == default_nlist(1000) == 126
    assert idx.params.transform == transform and idx.index.d == 8 + (transform == "l2")
    got, scores = idx.search(queries, 10)
    want, want_scores = _exact(items, queries, 10)
    assert np.array_equal(got, want.numpy())
    # the l2 transform's distances map back to the inner products
    np.testing.assert_allclose(scores, want_scores.numpy(), rtol=1e-4, atol=1e-4)
    # few cells probed: fewer than k found is padded with item 0 / -inf, never a wrong label
    few = ItemIndex.build(items, IndexParams(kind="ivf", nlist=100, nprobe=1)).search(queries, 200)
    assert ((few[0] == 0) == np.isneginf(few[1])).all()
    # with_search views share the faiss index; each search uses its own nprobe
    one, every = idx.with_search(nprobe=1), idx.with_search(nprobe=idx.index.nlist)
    assert not np.array_equal(one.search(queries, 50)[0], every.search(queries, 50)[0])
    assert np.array_equal(every.search(queries, 10)[0], got)


def test_bad_params_and_inputs():
    with pytest.raises(ConfigError, match="kind"):
        IndexParams(kind="lsh")
    with pytest.raises(ConfigError, match="ef_search"):
        IndexParams(ef_search=0)
    idx = ItemIndex.build(_vectors(50, 4), IndexParams(kind="flat"))
    with pytest.raises(ConfigError, match="dimension"):
        idx.search(_vectors(2, 5), 3)
    with pytest.raises(ConfigError, match="NaN"):
        ItemIndex.build(np.full((3, 4), np.nan, np.float32), IndexParams(kind="flat"))


def test_auto_transform_is_l2_for_ivf_only():
    items = _vectors(200, 4)
    assert [ItemIndex.build(items, IndexParams(kind=k)).params.transform for k in ("flat", "ivf", "hnsw")] == \
        ["none", "l2", "none"]
    with pytest.raises(ConfigError, match="exact"):
        IndexParams(kind="flat", transform="l2")


@pytest.mark.parametrize("kind,transform", [("flat", "auto"), ("ivf", "auto"), ("ivf", "none"), ("hnsw", "auto"),
                                            ("hnsw", "l2")])
def test_save_load_round_trip(tmp_path, kind, transform):
    items, queries = _vectors(400, 8), _vectors(5, 8, seed=4)
    idx = ItemIndex.build(items, IndexParams(kind=kind, nprobe=4, ef_search=32, transform=transform))
    meta = idx.save(tmp_path, "abc")
    assert {"kind", "params", "n_items", "dim", "model_sha256", "index_sha256"} <= set(meta)
    assert json.loads((tmp_path / "index.json").read_text())["n_items"] == 400
    back = ItemIndex.load(tmp_path, "abc")
    assert back.params == idx.params and back.kind == kind
    for a, b in zip(idx.search(queries, 7), back.search(queries, 7), strict=True):
        assert np.array_equal(a, b)


def test_stale_or_torn_index_is_refused(tmp_path):
    ItemIndex.build(_vectors(100, 4), IndexParams(kind="flat")).save(tmp_path, "model-v1")
    with pytest.raises(CheckpointError, match="stale"):
        ItemIndex.load(tmp_path, "model-v2")
    (tmp_path / "index.faiss").write_bytes((tmp_path / "index.faiss").read_bytes()[:-8])
    with pytest.raises(CheckpointError, match="does not match"):
        ItemIndex.load(tmp_path, "model-v1")


def test_top_k_excluding_drops_seen_items_and_merges_interests():
    items = _vectors(300, 8)
    idx = ItemIndex.build(items, IndexParams(kind="flat"))
    interests = _vectors(3, 8, seed=5)  # one user's 3 interest vectors
    full = (torch.from_numpy(interests) @ torch.from_numpy(items).T).max(0).values  # (N,) best interest
    seen = (torch.topk(full, 15).indices + 1).numpy()[::2]  # some of the user's best items are seen
    got, scores = top_k_excluding(idx, interests, 10, seen)
    assert len(got) == 10 and not set(got.tolist()) & set(seen.tolist())
    masked = full.clone()
    masked[torch.from_numpy(seen - 1)] = -float("inf")
    want = torch.topk(masked, 10)
    assert got.tolist() == (want.indices + 1).tolist()
    np.testing.assert_allclose(scores, want.values.numpy(), rtol=1e-5, atol=1e-5)


# -- CLI, on a tiny BARS-format dataset ------------------------------------------------------------


def _cli(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """40 users x 60 items in the BARS ``user item item ...`` format, under movielens1m_m1's name."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "retrieval" / "movielens1m_m1"
    folder.mkdir(parents=True)
    g = np.random.default_rng(0)
    train, test = [], []
    for u in range(40):
        picked = g.choice(np.arange(100, 160), 12, replace=False)
        train.append(" ".join(map(str, [u, *picked[:9]])))
        test.append(" ".join(map(str, [u, *picked[9:]])))
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return root


def _train(tiny_data: Path, out: Path, model: str = "mf_bpr") -> Path:
    cfg = ROOT / "configs" / "mf_bpr_movielens1m_m1.toml"
    sets = [f"data.data_dir={tiny_data}", "train.epochs=1", "train.threads=1", "train.batch_size=64"]
    if model == "mf_bpr":
        sets.append("model.dim=8")
    else:
        cfg = out.parent / f"{model}.toml"
        cfg.write_text(f'[data]\ndataset = "movielens1m_m1"\n[model]\nname = "{model}"\n')
        sets = sets[:1]
    rc, _, err = _cli(["train", cfg, "--out", out, "--no-progress", *sum((["--set", s] for s in sets), [])])
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def mf_run(tiny_data, tmp_path_factory) -> Path:
    return _train(tiny_data, tmp_path_factory.mktemp("runs") / "mf")


def test_cli_index_then_recommend_uses_it(mf_run):
    rc, exact, err = _cli(["recommend", mf_run, "--user", "3", "-k", "5", "--json"])
    assert rc == 0, err
    exact = json.loads(exact)
    assert exact["index"] is None
    rc, out, err = _cli(["index", mf_run, "--kind", "flat"])
    assert rc == 0, err
    assert "flat index" in out and "recall@" in out and (mf_run / "index.faiss").is_file()
    rc, res, err = _cli(["recommend", mf_run, "--user", "3", "-k", "5", "--json"])
    assert rc == 0, err
    res = json.loads(res)
    assert res["index"] == "flat"
    assert res["items"] == exact["items"]  # flat = exact, the user's train items excluded the same way
    np.testing.assert_allclose(res["scores"], exact["scores"], rtol=1e-5, atol=1e-6)


def test_cli_recommend_through_hnsw_excludes_seen_items(mf_run, tiny_data):
    rc, out, err = _cli(["index", mf_run, "--kind", "hnsw", "--m", "8", "--ef-search", "64", "--json"])
    assert rc == 0, err
    meta = json.loads(out)
    assert meta["kind"] == "hnsw" and meta["n_items"] == 60 and meta["check"]["recall"] > 0.9
    train = {ln.split()[0]: ln.split()[1:] for ln in
             (tiny_data / "retrieval" / "movielens1m_m1" / "train.txt").read_text().splitlines()}
    rc, res, err = _cli(["recommend", mf_run, "--user", "7", "-k", "51", "--json"])  # 60 - 9 seen = 51
    assert rc == 0, err
    res = json.loads(res)
    assert res["index"] == "hnsw" and len(res["items"]) == 51
    assert not set(res["items"]) & set(train["7"])
    assert res["scores"] == sorted(res["scores"], reverse=True)


def test_cli_stale_index_refused(mf_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(mf_run, run)
    assert _cli(["index", run, "--kind", "flat", "--check", "0"])[0] == 0
    state = torch.load(run / "model.pt", weights_only=True)
    state["item.weight"] = state["item.weight"] * 2  # retrained since the index was built
    torch.save(state, run / "model.pt")
    rc, out, err = _cli(["recommend", run, "--user", "3"])
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "stale" in err and "seqrec index" in err


def test_cli_index_refuses_models_without_inner_products(tiny_data, tmp_path):
    run = _train(tiny_data, tmp_path / "itemcf", model="itemcf")
    rc, out, err = _cli(["index", run])
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "itemcf" in err and "inner product" in err


def test_cli_index_without_faiss_says_how_to_install(mf_run, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *a, **kw):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    rc, out, err = _cli(["index", mf_run])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "pip install" in err


def test_cli_index_bad_params_and_missing_run(mf_run, tmp_path):
    rc, _, err = _cli(["index", mf_run, "--kind", "ivf", "--nprobe", "0"])
    assert rc == 2 and "nprobe" in err
    rc, _, err = _cli(["index", tmp_path / "nothing"])
    assert rc == 2 and "does not exist" in err


def test_recommend_multi_interest_through_the_index_equals_exact(mf_run, tmp_path, monkeypatch):
    """Each interest queries the index and the lists merge by best score: with a flat index the
    result is the exact ranking by max over the interests in use (RetrievalModel.score_all)."""
    import shutil

    import seqrec.families.retrieval as fam
    from seqrec.models.mf_bpr import MFBPR

    class ThreeInterests(MFBPR):  # MF-BPR's weights, three interests of which two are in use
        multi_interest = True

        def user_vectors(self, batch):
            u = self.user(batch["user"])  # (B, D)
            return torch.stack([u, -u, u.flip(-1)], 1)  # (B, 3, D)

        def interest_mask(self, batch):
            return torch.tensor([[True, False, True]]).expand(len(batch["user"]), -1)  # (B, 3)

    real = fam.build_model
    monkeypatch.setattr(fam, "build_model", lambda cfg, info: ThreeInterests(real(cfg, info).config, info))
    run = tmp_path / "run"
    shutil.copytree(mf_run, run)
    for f in ("index.faiss", "index.json"):
        (run / f).unlink(missing_ok=True)
    exact = fam.recommend_retrieval(run, user="11", k=20)
    assert fam.RetrievalRun(run).query_vectors(
        fam.user_batch(np.asarray([11]), np.zeros((1, 1), np.int64), {}))[0].shape == (2, 8)
    assert _cli(["index", run, "--kind", "flat", "--check", "0"])[0] == 0
    res = fam.recommend_retrieval(run, user="11", k=20)
    assert res["index"] == "flat" and exact["index"] is None
    assert res["items"] == exact["items"]
    np.testing.assert_allclose(res["scores"], exact["scores"], rtol=1e-5, atol=1e-6)
