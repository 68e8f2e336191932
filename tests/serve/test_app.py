"""The HTTP service end to end on real Amazon Beauty runs: the full path, fallbacks, limits,
sessions, versions, metrics, A/B and hot reload."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from seqrec.serve.pipeline import Deadline, PipelineHolder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(serve_runs, tmp_path_factory, make_pipeline):
    from fastapi.testclient import TestClient

    from seqrec.serve.app import create_app

    state = tmp_path_factory.mktemp("state")
    app = create_app(make_pipeline(serve_runs, state))
    with TestClient(app) as c:
        c.state_dir = state
        yield c


@pytest.fixture(scope="module")
def history(serve_runs):
    from seqrec.families.retrieval import RetrievalRun

    run = RetrievalRun(serve_runs["retriever"])
    row = run.task.test.history.row(3)
    return [run.item_ids[i - 1] for i in row.tolist()]


def test_recommend_retrieves_ranks_and_returns_k(client, serve_runs, history):
    r = client.post("/recommend", json={"history": history, "k": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [i["id"] for i in body["items"]]
    assert len(ids) == 20 and len(set(ids)) == 20
    assert not set(ids) & set(history)  # exclude_seen defaults to true
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert body["model_versions"]["ranker"].startswith("din@")
    assert {"retrieve", "rank", "total"} <= set(body["timings_ms"])
    # the same list as the pipeline computed directly: retrieve 1,000 through the index, rank them all
    v = client.app.state.holder.current.variants["main"]
    hist, _ = v.retriever.encode_items(history)
    idx, _ = v.retriever.retrieve(hist, 1000, hist)
    assert len(idx) == 1000
    rows = v.to_ranker[idx]
    logits, _ = v.ranker.score(v.to_ranker[hist], None, rows)
    want = v.retriever.raw(idx[np.argsort(-logits, kind="stable")[:20]])
    assert ids == want


def test_recommend_for_a_known_user_uses_the_stored_history(client):
    r = client.post("/recommend", json={"user_id": "1", "k": 5, "explain": True})
    body = r.json()
    assert r.status_code == 200 and len(body["items"]) == 5 and not body["notes"]
    top = body["items"][0]
    assert top["attention"] and "category" in top["attributes"]
    assert len(body["candidates"]) == 100


def test_unknown_ids_are_skipped_and_listed(client, history):
    r = client.post("/recommend", json={"history": [*history, "no-such-item"], "k": 5})
    assert r.status_code == 200
    assert any("no-such-item" in n for n in r.json()["notes"])


@pytest.mark.parametrize("body", [{"history": ["no-such-item"]}, {"user_id": "no-such-user"}, {"history": []}, {}])
def test_no_usable_history_gets_the_popularity_fallback(client, body):
    r = client.post("/recommend", json={**body, "k": 7})
    assert r.status_code == 200
    out = r.json()
    assert len(out["items"]) == 7
    assert any("popularity fallback" in n for n in out["notes"])


def test_score_ranks_given_candidates(client, history):
    cands = ["5", "6", "7", "unknown-x"]
    r = client.post("/score", json={"history": history, "candidates": cands})
    out = r.json()
    assert r.status_code == 200 and {i["id"] for i in out["items"]} == {"5", "6", "7"}
    assert any("unknown-x" in n for n in out["notes"])


@pytest.mark.parametrize("path, body, status, field", [
    ("/recommend", {"history": ["1"], "k": 0}, 422, "k"),
    ("/recommend", {"history": ["1"], "k": 10_000}, 422, "k"),
    ("/recommend", {"history": ["1"] * 201}, 422, "history"),
    ("/recommend", {"history": "1,2"}, 422, "history"),
    ("/recommend", {"history": ["1"], "surprise": 1}, 422, "surprise"),
    ("/recommend", {"k": "many"}, 422, "k"),
    ("/score", {"history": ["1"], "candidates": ["1"] * 2001}, 422, "candidates"),
    ("/score", {"history": ["1"], "candidates": []}, 422, "candidates"),
    ("/score", {"history": ["1"]}, 422, "candidates"),
    ("/session/s1/click", {"item": "1"}, 422, "item_id"),
])
def test_limits_and_bad_requests_are_4xx_naming_the_field(client, path, body, status, field):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and field in r.json()["error"]


def test_body_size_and_broken_json_are_4xx(client):
    big = json.dumps({"history": ["x" * 100] * 1000})
    r = client.post("/recommend", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body"
    r = client.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = client.post("/recommend", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_garbage_never_gives_a_5xx(client):
    rng = np.random.default_rng(0)
    values = [None, -1, 0, 3.5, "", "x", [], [None], [[1]], {"a": 1}, True, "9" * 400, [1, "2", 3.0]]
    for _ in range(150):
        body = {key: values[rng.integers(len(values))] for key in
                rng.choice(["user_id", "history", "k", "exclude_seen", "explain", "session_id", "zz"],
                           size=rng.integers(0, 4), replace=False)}
        for path in ("/recommend", "/score", "/session/g/click"):
            r = client.post(path, json=body)
            assert r.status_code < 500, (path, body, r.text)


def test_session_click_is_one_step_from_the_stored_state(client, serve_runs):
    from seqrec.families.session import Run, recommend

    run = Run(serve_runs["session"])
    clicks = [str(x) for x in run.vocab.ids_[5:8]]
    for c in clicks:
        r = client.post("/session/abc/click", json={"item_id": c, "k": 10})
        assert r.status_code == 200
    out = r.json()
    assert out["clicks"] == 3
    replay = recommend(run, [int(c) for c in clicks], k=10)
    assert [i["id"] for i in out["items"]] == [str(x) for x in replay["items"]]
    r = client.post("/session/abc/click", json={"item_id": "not-an-item", "k": 10})
    assert r.json()["clicks"] == 3 and r.json()["notes"]  # an unknown click leaves the state as it was
    assert [i["id"] for i in r.json()["items"]] == [str(x) for x in replay["items"]]


def test_health_ready_version_openapi_and_metrics(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["ready"] is True
    v = client.get("/version").json()
    assert len(v["main"]["checksums"]["ranker"]["model.pt"]) == 64
    assert "index.faiss" in v["main"]["checksums"]["retriever"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/score", "/session/{session_id}/click", "/admin/reload"} <= set(paths)
    client.post("/recommend", json={"history": ["1"], "k": 0})
    text = client.get("/metrics").text
    assert 'seqrec_requests_total{endpoint="/recommend",status="422"}' in text
    assert 'seqrec_stage_seconds_bucket{le="0.02",stage="rank"}' in text


def test_impressions_are_logged_with_their_variant(client):
    client.post("/recommend", json={"user_id": "2", "k": 3})
    client.app.state.impressions.close()  # flush the buffered lines
    lines = [json.loads(x) for f in client.state_dir.glob("impressions-*.jsonl") for x in f.read_text().splitlines()]
    assert any(x["user_id"] == "2" and x["variant"] == "main" and len(x["items"]) == 3 for x in lines)


def test_reload_needs_the_token(client):
    r = client.post("/admin/reload", json={})
    assert r.status_code == 403 and r.json()["field"] == "authorization"


def test_timeout_is_a_503_naming_it(serve_runs, tmp_path, make_pipeline):
    import dataclasses

    from fastapi.testclient import TestClient

    from seqrec.serve.app import create_app
    from seqrec.serve.config import LimitsConfig

    cfg = dataclasses.replace(make_pipeline(serve_runs, None), limits=LimitsConfig(timeout_ms=1e-3))
    with TestClient(create_app(cfg)) as c:
        r = c.post("/recommend", json={"history": ["1", "2"], "k": 5})
    assert r.status_code == 503 and r.json()["field"] == "timeout"


def test_hot_reload_swaps_atomically_rejects_broken_versions_and_survives_restarts(serve_runs, tmp_path,
                                                                                   monkeypatch, make_pipeline):
    from fastapi.testclient import TestClient

    from seqrec.serve.app import create_app

    v2 = tmp_path / "din_v2"
    shutil.copytree(serve_runs["ranker"], v2)
    broken = tmp_path / "din_broken"
    shutil.copytree(serve_runs["ranker"], broken)
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    state = tmp_path / "state"
    cfg = make_pipeline(serve_runs, state)
    monkeypatch.setenv("SEQREC_ADMIN_TOKEN", "s3cret")
    auth = {"authorization": "Bearer s3cret"}
    with TestClient(create_app(cfg)) as c:
        before = c.post("/recommend", json={"user_id": "1", "k": 5}).json()
        old = c.app.state.holder.current  # a request in flight holds this one
        r = c.post("/admin/reload", json={"variants": {"main": {"ranker": str(v2)}}}, headers=auth)
        assert r.status_code == 200, r.text
        after = c.post("/recommend", json={"user_id": "1", "k": 5}).json()
        assert after["model_versions"]["ranker"].startswith("din_v2@")
        assert [i["id"] for i in after["items"]] == [i["id"] for i in before["items"]]  # the same weights
        # the in-flight request finishes on the old version
        res = old.variants["main"].recommend(user="1", items=None, k=5, exclude_seen=True, explain=False,
                                             deadline=Deadline(0.0, 1e9))
        assert res.versions["ranker"] == before["model_versions"]["ranker"]
        r = c.post("/admin/reload", json={"variants": {"main": {"ranker": str(broken)}}}, headers=auth)
        assert r.status_code == 409 and "rejected" in r.json()["error"]
        r = c.post("/admin/reload", json={"variants": {"nope": {"ranker": str(v2)}}}, headers=auth)
        assert r.status_code == 409
        still = c.post("/recommend", json={"user_id": "1", "k": 5}).json()
        assert still["model_versions"]["ranker"].startswith("din_v2@")
    # a killed server restarts on the last good version (active.json), not the pipeline file's
    holder = PipelineHolder(cfg)
    assert holder.restored and holder.current.variants["main"].versions["ranker"].startswith("din_v2@")
    # a last good version that no longer loads: back to the pipeline file
    shutil.rmtree(v2)
    holder = PipelineHolder(cfg)
    assert not holder.restored and holder.current.variants["main"].versions["ranker"].startswith("din@")
    assert "din_v2" in holder.restore_error  # said, not silent


def test_ab_assignment_is_sticky_and_follows_the_shares(serve_runs, tmp_path, make_pipeline):
    import dataclasses

    from seqrec.serve.pipeline import Pipeline, bucket

    base = make_pipeline(serve_runs, None)
    a = dataclasses.replace(base.variants[0], name="A", share=0.3)
    b = dataclasses.replace(base.variants[0], name="B", share=0.7, ranker="")
    p = Pipeline(dataclasses.replace(base, variants=(a, b)))
    users = [str(u) for u in range(4000)]
    got = [p.assign(u, None).name for u in users]
    assert got == [p.assign(u, None).name for u in users]  # sticky
    assert 0.27 < got.count("A") / len(got) < 0.33
    assert p.assign(None, None).name == "A"  # no key: the first variant
    assert bucket("test", "42") == pytest.approx(bucket("test", "42"))
    assert 0 <= bucket("test", "42") < 1
    assert "ranker" not in p.variants["B"].versions


def test_ranker_user_batch_lays_out_histories_as_training_did(serve_runs):
    """Left-aligned, oldest first, padding after (data/samples.py): DIEN's GRU reads that order."""
    from seqrec.families.ctr import load_task
    from seqrec.serve.stages import Ranker

    rk = Ranker(serve_runs["ranker"])
    cols = load_task(rk.run.config).test.columns
    for r in (0, 7, 123):
        real = cols["hist_item"][r][cols["hist_item"][r] != 0]
        b = rk.user_batch(real, None)
        assert b["hist_item"][0].tolist() == cols["hist_item"][r].tolist()
        assert b["hist_cate"][0].tolist() == cols["hist_cate"][r].tolist()


def test_a_retriever_without_item_vectors_serves_its_own_scores(data_root, tmp_path):
    """Popularity (no user tower, no index): the retriever ranks by the model's score_all."""
    import torch

    from seqrec.config import load_run_config
    from seqrec.experiment import train_run
    from seqrec.serve.stages import Retriever

    out = tmp_path / "pop"
    train_run(load_run_config("configs/pop_retrieval_amazon_beauty.toml", ["train.progress=false"]), out)
    r = Retriever(out, use_index=False)
    hist = np.array([5, 9, 11])
    idx, scores = r.retrieve(hist, 10, hist)
    s = r.run.model.score_all({"user": torch.zeros(1, dtype=torch.long), "history": torch.from_numpy(hist)[None],
                               "age": torch.zeros(1)})[0].float().clone()
    s[0] = -torch.inf
    s[torch.from_numpy(hist)] = -torch.inf
    assert np.array_equal(scores, torch.topk(s, 10).values.numpy())
    assert not set(idx.tolist()) & {5, 9, 11}
