"""DUPN's daily update on the real Taobao sample: a version warm-started from the day before keeps
the known ids' rows (and Adam's moments) bit for bit and gives the new ids fresh rows; and
benchmarks/dupn_incremental.py runs end to end on one day."""

from __future__ import annotations

import json

import pytest
import torch

from seqrec.config import load_run_config
from seqrec.errors import CheckpointError
from seqrec.families.multitask import MultiTaskRun, build_model, load_task
from seqrec.train.checkpoint import save_json, save_tensors
from seqrec.train.multitask_trainer import batches, multitask_loss
from seqrec.train.warm_start import warm_start

CONFIG = "configs/dupn_taobao.toml"
TABLES = ("item", "cate", "user", "query")


def _cfg(test_day: int, *extra: str):
    return load_run_config(CONFIG, [f"data.multitask.test_day={test_day}", "train.threads=1", *extra])


@pytest.fixture(scope="module")
def days(data_root):
    """The day-5 and day-6 versions' configs and data (vocabularies of days 0..4 and 0..5)."""
    return {d: (_cfg(d), load_task(_cfg(d))) for d in (5, 6)}


def _old_run(tmp_path, cfg, data):
    """A 'finished' day-5 run: a model after two Adam steps on real rows, its model.pt and the
    trainer state with Adam's moments (what fit_resumable writes)."""
    torch.manual_seed(1)
    model = build_model(cfg, data.schema, data.tasks)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _, batch in zip(range(2), batches(data.train, 256, shuffle=True), strict=False):
        opt.zero_grad()
        multitask_loss(model, model(batch).logits, batch).backward()
        opt.step()
    run = tmp_path / "v5"
    run.mkdir()
    save_tensors(run / "model.pt", model.state_dict())
    save_tensors(run / "train_state.pt", {"model": model.state_dict(), "trainer": {"optimizer": opt.state_dict()}})
    save_json(run / "config.json", cfg.to_dict())
    save_json(run / "schema.json", data.schema.to_dict())
    save_json(run / "tasks.json", {"tasks": list(data.tasks)})
    return run, model, opt


def test_vocabularies_of_later_days_extend_earlier_ones(days):
    (_, d5), (_, d6) = days[5], days[6]
    for name in ("item", "cate", "user"):
        old, new = d5.vocabs[name].ids_, d6.vocabs[name].ids_
        assert len(new) > len(old) and new[:len(old)] == old
    rows5 = {t.name: t.rows for t in d5.schema.tables}
    rows6 = {t.name: t.rows for t in d6.schema.tables}
    assert all(rows6[t] > rows5[t] for t in TABLES)
    assert all(rows6[t] == rows5[t] for t in ("btype", "gap"))


def test_warm_start_grows_tables_and_carries_adam_state(days, tmp_path):
    (cfg5, d5), (cfg6, d6) = days[5], days[6]
    run, old, old_opt = _old_run(tmp_path, cfg5, d5)
    old_sd = {k: v.clone() for k, v in old.state_dict().items()}
    torch.manual_seed(2)
    new = build_model(cfg6, d6.schema, d6.tasks)
    fresh = {k: v.clone() for k, v in new.state_dict().items()}
    opt = torch.optim.Adam(new.parameters(), lr=1e-3)
    info = warm_start(new, run, opt)

    rows5 = {t.name: t.rows for t in d5.schema.tables}
    rows6 = {t.name: t.rows for t in d6.schema.tables}
    assert info["grown"] == {f"emb.tables.{t}.weight": [rows5[t], rows6[t]] for t in TABLES}
    assert info["new"] == [] and info["optimizer_state"] is True
    sd = new.state_dict()
    for name, v in old_sd.items():
        if name in info["grown"]:
            n = v.shape[0]
            assert torch.equal(sd[name][:n], v)  # known ids: bit for bit
            assert torch.equal(sd[name][n:], fresh[name][n:])  # new ids: this model's own N(0, std) init
            assert sd[name][n:].abs().sum() > 0 and not torch.equal(sd[name][n:n + 1], v[:1])
        else:
            assert torch.equal(sd[name], v), name

    # Adam: the old moments in the known rows, zero rows for the new ids, the old step count
    params = dict(new.named_parameters())
    old_state = {n: old_opt.state[p] for n, p in old.named_parameters()}
    for name, p in params.items():
        st, ost = opt.state[p], old_state[name]
        assert torch.equal(st["step"], ost["step"])
        for k in ("exp_avg", "exp_avg_sq"):
            assert st[k].shape == p.shape
            n = ost[k].shape[0]
            assert torch.equal(st[k][:n], ost[k])
            if name in info["grown"]:
                assert not st[k][n:].any()

    # the grown model trains: a step on day-5 rows (ids first seen that day) moves those new rows
    # from their fresh init; a new row no row uses stays put (zero moments, zero gradient)
    new.train()
    item, n_old = "emb.tables.item.weight", rows5["item"]
    batch = next(batches({k: v[:2048] for k, v in d6.valid.items()}, 2048))
    used = torch.unique(torch.cat([batch["item"], batch["hist_item"].flatten()]))
    used_new = used[used >= n_old]
    unused_new = torch.tensor(sorted(set(range(n_old, rows6["item"])) - set(used_new.tolist())))
    assert len(used_new) > 0 and len(unused_new) > 0
    before = params[item].detach().clone()
    opt.zero_grad()
    multitask_loss(new, new(batch).logits, batch).backward()
    opt.step()
    after = params[item].detach()
    assert torch.isfinite(after).all()
    assert (after[used_new] != before[used_new]).any(1).all()
    assert torch.equal(after[unused_new], before[unused_new])

    # the saved run itself loads as a finished run
    assert MultiTaskRun(run).tasks == tuple(d5.tasks)


def test_warm_start_rejects_other_shape_changes(days, tmp_path):
    (cfg5, d5), (cfg6, d6) = days[5], days[6]
    run, _, _ = _old_run(tmp_path, cfg5, d5)
    other = build_model(_cfg(6, "model.lstm_hidden=32"), d6.schema, d6.tasks)  # the LSTM's shape differs
    with pytest.raises(CheckpointError, match="lstm"):
        warm_start(other, run)
    # a table may only grow: the day-6 run cannot start a day-5 model
    big = tmp_path / "v6"
    big.mkdir()
    save_tensors(big / "model.pt", build_model(cfg6, d6.schema, d6.tasks).state_dict())
    with pytest.raises(CheckpointError, match="only a table may grow"):
        warm_start(build_model(cfg5, d5.schema, d5.tasks), big)
    with pytest.raises(CheckpointError, match="no model.pt"):
        warm_start(build_model(cfg5, d5.schema, d5.tasks), tmp_path / "nowhere")


@pytest.mark.slow
def test_dupn_incremental_script_runs_one_day(bench_script, data_root, tmp_path):
    """Base = day 3 (trained on days 0..1), one update for day 4: the smallest chain (~75 s)."""
    mod = bench_script("dupn_incremental")
    out = tmp_path / "multitask.json"
    other = {"dataset": "census_income", "model": "mmoe", "task": "income", "library": "seqrec", "metrics": {}}
    stale = {"dataset": "taobao", "model": "dupn-incremental", "task": "ctr", "library": "seqrec",
             "day": "2017-11-29", "metrics": {"auc": -1}}
    out.write_text(json.dumps([other, stale]))
    runs = tmp_path / "runs"
    assert mod.main(["--base-day", "3", "--last-day", "4", "--epochs", "1", "--update-epochs", "1",
                     "--runs", str(runs), "--out", str(out)]) == 0
    recs = json.loads(out.read_text())
    assert other in recs and stale not in recs  # others' records stay, its own are replaced
    mine = [r for r in recs if r["dataset"] == "taobao"]
    tasks = ("ctr", "l2r", "pref", "buy")
    assert sorted((r["model"], r["day"], r["task"]) for r in mine) == sorted(
        [("dupn-full-retrain", "2017-11-28", t) for t in tasks]
        + [(m, "2017-11-29", t) for m in ("dupn-full-retrain", "dupn-incremental") for t in tasks])
    for r in mine:
        assert r["library"] == "seqrec" and 0 < r["metrics"]["auc"] < 1 and "gauc" in r["metrics"]
        assert r["wall_seconds"] > r["train_seconds"] > 0 and r["train_samples_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert "seqrec train" in r["command"] and f"test_day={r['day_index']}" in r["command"]
    inc = [r for r in mine if r["model"] == "dupn-incremental"]
    assert all(r["init_from"] == str(runs / "v3-full") and r["optimizer_state_carried"] for r in inc)
    assert all(r["rows_added"]["item"] > 0 and r["rows_added"]["user"] >= 0 for r in inc)
    assert all("train_from_day=2" in r["command"] for r in inc)
    full4 = next(r for r in mine if r["model"] == "dupn-full-retrain" and r["day"] == "2017-11-29")
    assert inc[0]["train_samples"] < full4["train_samples"]
    for name in ("v3-full", "v4-incremental", "v4-full"):
        assert MultiTaskRun(runs / name).tasks == tasks
    md = (tmp_path / "dupn_incremental.md").read_text()
    assert "2017-11-29 (day 4)" in md and "incr./full" in md and "loads with `MultiTaskRun`" in md


def test_report_flags_the_must_show_and_the_noise_floor(bench_script):
    mod = bench_script("dupn_incremental")

    def fake(auc, wall, seed=42, warm=None):
        test = {t: {"auc": auc, "gauc": auc} for t in ("ctr", "l2r", "pref", "buy")}
        return {"tasks": ["ctr", "l2r", "pref", "buy"], "test": {**test, "mean_auc": auc}, "wall_seconds": wall,
                "process_seconds": wall + 10, "train_seconds": wall / 2, "train_samples": 100, "epochs": 2,
                "best_epoch": 1, "seed": seed, "warm": warm}

    warm = {"from": "v5", "grown": {"emb.tables.item.weight": [10, 15], "emb.tables.user.weight": [3, 4]},
            "optimizer_state": True}
    res = {(mod.FULL, 5): fake(0.6, 100), (mod.INC, 6): fake(0.603, 20, warm=warm), (mod.FULL, 6): fake(0.6, 100),
           (mod.INC, 7): fake(0.59, 20, warm=warm), (mod.FULL, 7): fake(0.6, 100)}
    noise = {"seed": 1, mod.INC: fake(0.58, 20, 1), mod.FULL: fake(0.61, 100, 1)}
    text = mod.report(res, 5, 7, {}, "cmd", {}, noise)
    day6 = next(ln for ln in text.splitlines() if ln.startswith("| 2017-12-01 (day 6)"))
    day7 = next(ln for ln in text.splitlines() if ln.startswith("| 2017-12-02 (day 7)"))
    assert "+0.0030" in day6 and "20.0%" in day6 and day6.rstrip(" |").endswith("yes")
    assert "-0.0100" in day7 and day7.rstrip(" |").endswith("**no**")
    assert "| 2017-12-01 | v5 | 5 | 0 | 1 | 0 |" in text
    assert "Full retrain seed 1 - seed 42: +0.0100" in text
    assert mod.growth(warm) == {"item": 5, "user": 1} and mod.growth(None) == {}


def test_warm_start_keeps_this_runs_optimiser_settings(tmp_path):
    """The old run's Adam state comes in, its hyper-parameters do not (weight decay 0 there)."""
    import torch

    from seqrec.train.checkpoint import save_tensors
    from seqrec.train.warm_start import warm_start

    old = torch.nn.Linear(3, 2)
    opt_old = torch.optim.Adam(old.parameters(), lr=1e-3, weight_decay=0.0)
    old(torch.randn(4, 3)).sum().backward()
    opt_old.step()
    save_tensors(tmp_path / "model.pt", old.state_dict())
    save_tensors(tmp_path / "train_state.pt", {"trainer": {"optimizer": opt_old.state_dict()}})
    new = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(new.parameters(), lr=5e-3, weight_decay=0.1)
    rep = warm_start(new, tmp_path, opt)
    assert rep["optimizer_state"]
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.param_groups[0]["lr"] == 5e-3
    assert torch.equal(opt.state[new.weight]["exp_avg"], opt_old.state[old.weight]["exp_avg"])
