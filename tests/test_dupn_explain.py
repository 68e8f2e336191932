"""``seqrec explain`` and the attention-by-behaviour-type analysis of a DUPN run (Ni et al. KDD
2018, sec. 6): the weights reported are the model's, the figure and the CLI output, the errors,
and the per-task masses against a naive per-row loop. One shared one-epoch run (``dupn_run``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

PNG = b"\x89PNG\r\n\x1a\n"
BEHAVIOURS = ("pv", "cart", "fav", "buy")


@pytest.fixture(scope="module")
def loaded(dupn_run):
    """The run and its data, loaded here independently of the module under test."""
    from seqrec.families.multitask import MultiTaskRun, load_task

    run = MultiTaskRun(dupn_run)
    return run, load_task(run.config)


def _latest_row(cols, user, k):
    idx = np.flatnonzero((cols["user_key"] == user) & (cols["task"] == k))
    if not len(idx):
        return None
    day = cols["day"][idx].max()
    return int(idx[cols["day"][idx] == day][-1])


def _weights(model, cols, i):
    batch = {c: torch.from_numpy(np.ascontiguousarray(v[i:i + 1])) for c, v in cols.items()}
    with torch.no_grad():
        return model.represent(batch)[1][0].numpy().astype(np.float64)


@pytest.mark.slow
def test_reported_weights_are_the_models(dupn_run, loaded, tmp_path):
    from seqrec.families.dupn_explain import explain_user

    run, data = loaded
    cols, k = data.test, run.tasks.index("l2r")
    user = int(cols["user_key"][np.flatnonzero(cols["task"] == k)[-1]])
    res = explain_user(dupn_run, str(user), task="l2r", top=5, out=tmp_path / "w.png")
    i = _latest_row(cols, user, k)
    assert (res["task"], res["user"], res["split"], res["row"], res["day"]) == ("l2r", user, "test", i,
                                                                                int(cols["day"][i]))
    assert res["query"] == data.vocabs["cate"].decode([cols["query"][i]])[0] and res["query"] is not None
    w = _weights(run.model, cols, i)
    n = int((cols["hist_item"][i] != 0).sum())
    assert n > 0 and res["history_length"] == n and len(res["behaviours"]) == n
    assert np.all(w[n:] == 0)
    for p, b in enumerate(res["behaviours"]):
        assert b["position"] == p and abs(b["weight"] - w[p]) <= 1e-6
        assert b["item"] == data.vocabs["item"].decode([cols["hist_item"][i, p]])[0]
        assert b["cate"] == data.vocabs["cate"].decode([cols["hist_cate"][i, p]])[0]
        assert b["behaviour"] == BEHAVIOURS[cols["hist_btype"][i, p] - 2]
        assert b["gap_bucket"] == cols["hist_gap"][i, p]
    assert sum(b["weight"] for b in res["behaviours"]) == pytest.approx(1.0, abs=1e-5)
    top = [b["weight"] for b in res["top"]]
    assert len(top) == 5 and top == sorted(top, reverse=True)
    assert np.allclose(top, np.sort(w[:n])[::-1][:5], atol=1e-6)
    assert all(res["behaviours"][b["position"]] == b for b in res["top"])
    # default task: the run's first; its row is the user's latest of that task, test split first
    res = explain_user(dupn_run, user, out=tmp_path / "d.png")
    assert res["task"] == run.tasks[0] and res["query"] is None
    split, j = next((s, j) for s in ("test", "valid", "train")
                    if (j := _latest_row(data.split(s), user, 0)) is not None)
    assert (res["split"], res["row"]) == (split, j)
    assert np.allclose([b["weight"] for b in res["behaviours"]],
                       _weights(run.model, data.split(split), j)[:res["history_length"]], atol=1e-6)


@pytest.mark.slow
def test_falls_back_to_valid_when_the_user_has_no_test_row(dupn_run, loaded, tmp_path):
    from seqrec.families.dupn_explain import explain_user

    run, data = loaded
    k = run.tasks.index("pref")
    in_test = set(data.test["user_key"][data.test["task"] == k].tolist())
    cand = [u for u in data.valid["user_key"][data.valid["task"] == k].tolist() if u not in in_test]
    if not cand:
        pytest.skip("every user with a valid pref row has a test one")
    res = explain_user(dupn_run, cand[0], task="pref", out=tmp_path / "v.png")
    i = _latest_row(data.valid, cand[0], k)
    assert res["split"] == "valid" and res["row"] == i
    w = _weights(run.model, data.valid, i)
    assert np.allclose([b["weight"] for b in res["behaviours"]], w[:res["history_length"]], atol=1e-6)


@pytest.mark.slow
def test_cli_writes_the_figure_and_prints_its_path(dupn_run, loaded, tmp_path, capsys):
    from seqrec.cli import main

    run, data = loaded
    user = str(int(data.test["user_key"][0]))
    fig = tmp_path / "figs" / "one.png"
    assert main(["explain", str(dupn_run), "--user", user, "--task", run.tasks[0],
                 "--top", "3", "--out", str(fig)]) == 0
    out = capsys.readouterr().out
    assert f"figure: {fig}" in out and "weight" in out
    assert fig.read_bytes()[:8] == PNG and fig.stat().st_size < 200_000
    assert [p.name for p in fig.parent.iterdir()] == ["one.png"]  # no temp file left behind
    # --json: one parsable document; the default figure path is in the run directory
    assert main(["explain", str(dupn_run), "--user", user, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    default = dupn_run / f"explain_{user}_{run.tasks[0]}.png"
    assert res["figure"] == str(default) and default.read_bytes()[:8] == PNG
    assert len(res["top"]) == min(10, res["history_length"]) and res["user"] == int(user)


@pytest.mark.slow
def test_errors_are_one_line(dupn_run, loaded, tmp_path, capsys):
    from seqrec.cli import main

    run, data = loaded

    def err_of(argv):
        assert main(["explain", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("seqrec explain: error:")
        return err

    err = err_of([str(dupn_run), "--user", "987654321987"])
    assert "987654321987" in err and "taobao" in err and str(dupn_run) in err
    err = err_of([str(dupn_run), "--user", "1", "--task", "nope"])
    assert "'nope'" in err and all(t in err for t in run.tasks)
    fake = tmp_path / "mmoe_run"
    fake.mkdir()
    (fake / "config.json").write_text(json.dumps({"model": {"name": "mmoe"}}))
    assert "not a DUPN run" in err_of([str(fake), "--user", "1"])
    assert "config.json" in err_of([str(tmp_path / "missing"), "--user", "1"])
    assert "--top" in err_of([str(dupn_run), "--user", "1", "--top", "0"])
    # a known user without a row of the task
    k = run.tasks.index("pref")
    users = set(np.concatenate([data.split(s)["user_key"] for s in ("train", "valid", "test")]).tolist())
    with_pref = set(np.concatenate([data.split(s)["user_key"][data.split(s)["task"] == k]
                                    for s in ("train", "valid", "test")]).tolist())
    if users - with_pref:
        u = min(users - with_pref)
        err = err_of([str(dupn_run), "--user", str(u), "--task", "pref"])
        assert f"user {u} has no pref row" in err


def _subset(cols, rows):
    return {c: v[rows] for c, v in cols.items()}


@pytest.mark.slow
def test_attention_by_type_masses_and_a_naive_loop(loaded):
    from seqrec.families.dupn_explain import attention_by_type

    run, data = loaded
    res = attention_by_type(run.model, data.test, run.tasks, 4096)
    assert list(res) == list(run.tasks)
    for t, a in res.items():
        assert a["rows"] == int((data.test["task"] == run.tasks.index(t)).sum()) and a["rows_with_history"] > 0
        assert a["mass_total"] == pytest.approx(1.0, abs=1e-6)
        assert sum(a["mass"].values()) == pytest.approx(1.0, abs=1e-6)
        assert sum(a["share"].values()) == pytest.approx(1.0, abs=1e-9)
        for b in BEHAVIOURS:
            assert a["mass"][b] >= 0
            if a["share"][b] > 0:
                assert a["relative"][b] == pytest.approx(a["mass"][b] / a["share"][b])
    # a few rows per task, one of them with its history removed (it is skipped), batches of 2
    rows = np.concatenate([np.flatnonzero(data.test["task"] == k)[:3] for k in range(len(run.tasks))])
    sub = _subset(data.test, rows)
    for c in ("hist_item", "hist_cate", "hist_btype", "hist_gap"):
        sub[c] = sub[c].copy()
        sub[c][0] = 0
    got = attention_by_type(run.model, sub, run.tasks, 2)
    for k, t in enumerate(run.tasks):
        mass, share, n = np.zeros(4), np.zeros(4), 0
        for i in np.flatnonzero(sub["task"] == k):
            w = _weights(run.model, sub, i)
            length = int((sub["hist_item"][i] != 0).sum())
            if length == 0:
                continue
            n += 1
            for p in range(length):
                b = int(sub["hist_btype"][i, p]) - 2
                mass[b] += w[p]
                share[b] += 1 / length
        g = got[t]
        assert g["rows"] == 3 and g["rows_with_history"] == n == (2 if k == 0 else 3)
        for j, b in enumerate(BEHAVIOURS):
            assert abs(g["mass"][b] - mass[j] / n) <= 1e-6 and abs(g["share"][b] - share[j] / n) <= 1e-12


@pytest.mark.slow
def test_benchmark_script_writes_json_and_figure(bench_script, dupn_run, tmp_path, capsys):
    mod = bench_script("dupn_attention")
    out = tmp_path / "att.json"
    assert mod.main(["--run", str(dupn_run), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["split"] == "test" and set(rec["attention"]) == set(rec["tasks"]) and rec["model"] == "dupn"
    assert all(a["mass_total"] == pytest.approx(1.0, abs=1e-6) for a in rec["attention"].values())
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == PNG and png.stat().st_size < 200_000
    assert "| pref |" in capsys.readouterr().out
