"""benchmarks/purchase.py without training: record keys, old records, table order and content."""

from __future__ import annotations

import json

import pytest


def record(bench, protocol: str, model: str, **metrics) -> dict:
    base = {k: 0.5 for k in bench.METRICS}
    base.update(metrics)
    return {"protocol": protocol, "dataset": "instacart", "category": "household", "window": 3.0, "model": model,
            "shift": False, "max_len": 300, "variant": "", "seeds": [0, 1], "metrics": base,
            "metrics_std": {k: 0.01 for k in base}, "n_test": [593, 593], "n_train": [474, 474],
            "train_seconds": 1.0}


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("purchase")


def test_protocols_and_rules_are_in_the_grid(bench):
    assert bench.PROTOCOLS[0] == "deployment" and set(bench.PROTOCOLS) == {"deployment", "article-1to1"}
    assert set(bench.RULES) == {"bought_before", "recency", "frequency", "rfm_logreg"} <= set(bench.MODELS)
    assert "protocol" in bench.KEY
    for top in ("1%", "5%", "10%"):
        assert {f"precision@top{top}", f"recall@top{top}", f"lift@top{top}"} <= set(bench.METRICS)
    over = bench.overrides("deployment", "babies", 0, False, None, 3, 1)
    assert 'data.purchase.protocol="deployment"' in over and 'data.purchase.category="babies"' in over
    assert not any("protocol" in o for o in bench.overrides("article-1to1", "babies", 0, False, None, 3, 1))
    for model in bench.MODELS:  # every model of the grid has a config per dataset
        for ds in bench.GRID:
            assert bench.config_path(model, ds).is_file(), (model, ds)


def test_old_records_are_article_and_both_protocols_coexist(bench, tmp_path):
    old = record(bench, "article-1to1", "xgboost")
    del old["protocol"]  # a record written before the protocol switch
    (tmp_path / "purchase.json").write_text(json.dumps([old]))
    records = bench.load_records_here(tmp_path / "purchase.json")
    assert records[0]["protocol"] == "article-1to1"
    merged = bench.merge_records(records, [record(bench, "deployment", "xgboost")], bench.KEY)
    assert sorted(r["protocol"] for r in merged) == ["article-1to1", "deployment"]


def test_render_puts_deployment_first_with_rules_in_every_table(bench):
    records = [record(bench, p, m, base_rate=0.317) for p in ("article-1to1", "deployment")
               for m in ("cnn_lstm", "xgboost", "bought_before", "rfm_logreg")]
    md = bench.render(records)
    dep, art = md.index("## Protocol `deployment`"), md.index("## Protocol `article-1to1`")
    assert dep < art
    deployment, article = md[dep:art], md[art:]
    for part in (deployment, article):
        for model in ("cnn_lstm", "xgboost", "bought_before", "rfm_logreg"):
            assert f"| {model} |" in part
    assert "| base rate |" in deployment and "| lift@5% |" in deployment and "| R@1% |" in deployment
    assert "| 0.317 |" in deployment and "| F1 |" in article


def fake_run(bench, value: float, seed: int) -> dict:
    return {"test": {**{k: value for k in bench.METRICS}, "n_samples": 593}, "valid": {"auc": value},
            "threshold": value, "counts": {"train": {"samples": 474}}, "train_seconds": 1.0 + seed,
            "train_samples_per_s": 100.0, "peak_rss_mb": 500.0 + seed, "C": 0.1 * (seed + 1)}


def bench_record(bench, runs: list[dict], seeds: list[int]) -> dict:
    cmd = f"seqrec train configs/purchase_rfm_logreg_cdnow.toml --out RUN_DIR --set 'train.seed={seeds[0]}'"
    return {"protocol": "deployment", "dataset": "cdnow", "category": "any", "window": 90.0, "model": "rfm_logreg",
            "shift": False, "max_len": 50, "variant": "", "seeds": seeds, **bench.aggregate(runs),
            "runs": [bench.per_seed(r, s) for r, s in zip(runs, seeds, strict=True)],
            "chosen_C": [r["C"] for r in runs], "env": {"date": str(seeds)},
            "command": cmd + f"  (seeds {','.join(map(str, seeds))} via --set train.seed=S)"}


def test_add_seeds_combines_exactly_what_three_seeds_give(bench):
    runs = [fake_run(bench, v, s) for s, v in enumerate((0.5, 0.6, 0.8))]
    old = bench_record(bench, runs[:1], [0])
    del old["runs"]  # a one-seed record written before per-seed runs were kept: rebuilt exactly
    combined = bench.add_seeds(old, bench_record(bench, runs[1:], [1, 2]))
    want = bench_record(bench, runs, [0, 1, 2])
    assert combined["seeds"] == [0, 1, 2] and combined["chosen_C"] == want["chosen_C"]
    for k in ("metrics", "metrics_std", "valid_auc", "threshold", "n_test", "n_train", "train_seconds",
              "peak_rss_mb", "command", "runs"):
        assert combined[k] == want[k], k
    with pytest.raises(SystemExit, match="overlapping"):
        bench.add_seeds(want, bench_record(bench, runs[1:], [1, 2]))
    other = bench_record(bench, runs[1:], [1, 2])
    other["command"] = other["command"].replace("cdnow.toml", "cdnow.toml --set 'model.cs=[1.0]'")
    with pytest.raises(SystemExit, match="different command"):
        bench.add_seeds(old, other)
