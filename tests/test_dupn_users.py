"""DUPN's user representations: the split model equals the unsplit one, ``embed-users`` writes
``model.represent`` of the documented rows, the CLI's file and errors, the split benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqrec.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def loaded(dupn_run):
    from seqrec.families.dupn_users import check_dupn, read_log
    from seqrec.families.multitask import load_task

    torch.set_num_threads(1)
    run = check_dupn(dupn_run)
    return run, load_task(run.config), read_log(run)


def _batch(cols: dict, rows) -> dict:
    names = ("user", "query", "item", "cate", "hist_item", "hist_cate", "hist_btype", "hist_gap")
    return {k: torch.as_tensor(cols[k][rows]) for k in names}


@pytest.mark.slow
def test_split_logits_equal_the_unsplit_forward_for_every_head(loaded):
    run, data, _ = loaded
    model = run.model
    assert not model.training
    t = data.test
    rng = np.random.default_rng(0)
    # real test rows of every task (the l2r / cat rows carry a query), 12 each
    rows = np.concatenate([rng.choice(np.flatnonzero(t["task"] == k), 12, replace=False)
                           for k in range(len(run.tasks))])
    b = _batch(t, rows)
    with torch.no_grad():
        full = model(b).logits  # (B, n_tasks): every head on every row
        r, w = model.represent(b)
        for k, task in enumerate(run.tasks):
            split = model.score_candidates(r, b["item"], b["cate"], task)  # (B, B): every row's r x every candidate
            assert torch.allclose(torch.diagonal(split), full[:, k], atol=1e-5, rtol=0), task
            # off the diagonal: user i with candidate j is the unsplit row i with row j's item
            bi = {**b, "item": b["item"].roll(1), "cate": b["cate"].roll(1)}
            other = model(bi).logits[:, k]
            assert torch.allclose(split[torch.arange(len(rows)), torch.arange(len(rows)).roll(1)], other,
                                  atol=1e-5, rtol=0), task
    assert torch.allclose(w.sum(1), torch.ones(len(rows)), atol=1e-5)


@pytest.mark.slow
def test_user_rows_are_the_users_last_behaviours_before_the_cut(loaded):
    from seqrec.data.readers.raw_logs import TAOBAO_START
    from seqrec.data.tasks.ctr import DAY
    from seqrec.data.tasks.taobao_multitask import gap_bucket
    from seqrec.families.dupn_users import run_test_day, user_rows

    run, data, log = loaded
    rows = user_rows(run, data, log=log)
    n = data.vocabs["user"].n_known
    assert len(rows["user"]) == n and (rows["user"] == np.arange(2, n + 2)).all()
    assert data.vocabs["user"].decode(rows["user"][:3]) == list(rows["user_key"][:3])
    assert (rows["query"] == 0).all() and (rows["item"] == 0).all() and (rows["cate"] == 0).all()
    max_len = rows["hist_item"].shape[1]
    end = TAOBAO_START + (run_test_day(run) + 1) * DAY
    for u in (0, 7, n - 1):  # the last max_len events of the user in the log, time order, left-aligned
        own = np.flatnonzero((log.users == u + 2) & (log.times < end))[-max_len:]
        got = rows["hist_item"][u]
        assert (got[:len(own)] == log.items[own]).all() and (got[len(own):] == 0).all()
        assert (rows["hist_btype"][u][:len(own)] == log.btype[own]).all()
    # an earlier cut: the events before day 3, the gaps measured to its start
    cut = TAOBAO_START + 3 * DAY
    early = user_rows(run, data, before_day=3, log=log)
    u = int(np.argmax((early["hist_item"] > 0).sum(1)))
    own = np.flatnonzero((log.users == u + 2) & (log.times < cut))[-max_len:]
    assert len(own) and (early["hist_item"][u][:len(own)] == log.items[own]).all()
    assert early["hist_gap"][u][len(own) - 1] == gap_bucket(np.array([cut - log.times[own[-1]]]))[0]
    assert ((early["hist_item"] > 0).sum(1) == 0).any()  # users first seen later keep an empty row


@pytest.mark.slow
def test_embed_users_cli_writes_represent_of_those_rows(loaded, dupn_run, tmp_path, capsys):
    import polars as pl

    from seqrec.cli import main
    from seqrec.families.dupn_users import read_user_vectors, user_rows
    from seqrec.serve.index import file_sha256

    run, data, log = loaded
    out = tmp_path / "users.parquet"
    assert main(["embed-users", str(dupn_run), "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert "users x" in line and str(out) in line and "\n" not in line
    df = pl.read_parquet(out)
    n = data.vocabs["user"].n_known
    assert df.columns == ["user_id", "vector"] and df.height == n and df["user_id"].n_unique() == n
    assert df.schema["vector"] == pl.List(pl.Float32)
    ids, vec, meta = read_user_vectors(out)
    assert meta["seqrec.model_sha256"] == file_sha256(dupn_run / "model.pt")
    rows = user_rows(run, data, log=log)
    assert (ids == rows["user_key"]).all()
    with torch.no_grad():
        ref, _ = run.model.represent(_batch(rows, slice(None)))
    assert vec.shape == tuple(ref.shape) == (n, run.model.repr_dim)
    np.testing.assert_allclose(vec, ref.numpy(), atol=1e-6, rtol=0)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written atomically


@pytest.mark.slow
def test_embed_users_errors_are_one_line(dupn_run, tmp_path, capsys):
    from seqrec.cli import main
    from seqrec.families.dupn_users import embed_users

    with pytest.raises(ConfigError, match="does not exist"):
        embed_users(dupn_run, tmp_path / "missing" / "u.parquet")
    with pytest.raises(CheckpointError, match="not a run directory"):
        embed_users(tmp_path, tmp_path / "u.parquet")
    other = tmp_path / "other"
    other.mkdir()
    cfg = json.loads((dupn_run / "config.json").read_text())
    cfg["model"] = {"name": "mmoe"}
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="not a DUPN run"):
        embed_users(other, tmp_path / "u.parquet")
    assert main(["embed-users", str(other), "--out", str(tmp_path / "u.parquet")]) != 0
    err = capsys.readouterr().err.strip()
    assert "not a DUPN run" in err and "\n" not in err
    assert not (tmp_path / "u.parquet").exists()


@pytest.mark.slow
def test_split_benchmark_reports_equal_logits_and_a_speedup(bench_script, dupn_run, tmp_path):
    mod = bench_script("dupn_split")
    out = tmp_path / "split.json"
    assert mod.main(["--run", str(dupn_run), "--users", "8", "--items", "50", "--repeats", "2",
                     "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["users"] == 8 and r["candidates"] == 50 and r["pairs"] == 400
    assert r["max_abs_diff"] <= 1e-5 and set(r["max_abs_diff_per_task"]) == set(r["tasks"])
    assert len(r["seconds_unsplit"]) == len(r["seconds_split"]) == 2 and r["speedup"] > 0
    assert "dupn_split.py" in r["command"] and r["threads"] >= 1
