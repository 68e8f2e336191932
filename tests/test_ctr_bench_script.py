"""benchmarks/ctr.py: run order, speed ratios and the named differences."""

from seqrec.config import load_run_config


def test_runs_alternate_libraries_seed_by_seed(bench_script):
    ctr = bench_script("ctr")
    plan = ctr.plan_runs(["amazon_beauty"], ["din-paper", "dlrm"], ["seqrec", "deepctr-torch"], [0, 1, 2])
    libs = [(m, lib, s) for _, m, lib, s in plan]
    assert libs[:6] == [("din-paper", "seqrec", 0), ("din-paper", "deepctr-torch", 0),
                        ("din-paper", "deepctr-torch", 1), ("din-paper", "seqrec", 1),
                        ("din-paper", "seqrec", 2), ("din-paper", "deepctr-torch", 2)]
    assert [x for x in libs if x[0] == "dlrm"] == [("dlrm", "seqrec", s) for s in (0, 1, 2)]  # no peer


def test_speed_ratio_pairs_only_runs_of_one_invocation(bench_script):
    ctr = bench_script("ctr")

    def rec(lib, seed, sps, inv):
        return {"model": "din-paper", "library": lib, "seed": seed, "train_samples_per_s": sps, "invocation": inv}

    recs = [rec("seqrec", 0, 300.0, "a"), rec("deepctr-torch", 0, 100.0, "a"),
            rec("seqrec", 1, 400.0, "b"), rec("deepctr-torch", 1, 100.0, "c")]
    assert ctr.speed_ratios(recs, "din-paper") == [(0, 3.0)]


def test_paper_configs_leave_only_structural_differences(bench_script):
    ctr = bench_script("ctr")
    for ds in ("amazon_beauty", "amazon_sports"):
        for model in ctr.PEER:
            mc = load_run_config(ctr.config_path(model, ds)).model
            d = " ".join(ctr.differences(model, mc))
            for word in ("logit bias", "Σ e_t", "MLP activation", "init", "lazy Adam", "bilinear"):
                assert word not in d, (model, ds, word)
    extras = load_run_config(raw={"model": {"name": "din", "item_bias": True, "sparse_grad": True,
                                               "mlp_act": "dice"}}).model
    d = " ".join(ctr.differences("din-paper", extras))
    assert "logit bias" in d and "lazy Adam" in d and "MLP activation" in d


def test_render_numbers_the_footnotes(bench_script):
    ctr = bench_script("ctr")
    base = {"dataset": "amazon_beauty", "epochs": 1, "batch_size": 256, "embedding_dim": 18, "threads": 2,
            "date": "2026-12-06T10:00:00", "metrics": {"auc": 0.7, "gauc": 0.7, "logloss": 0.6},
            "valid_metrics": {"auc": 0.71}, "train_samples_per_s": 100.0, "infer_samples_per_s": 10.0,
            "peak_rss_mb": 1.0, "invocation": "x", "seed": 0, "model": "din-paper"}
    recs = [dict(base, library="seqrec", differences=["one", "two"], train_samples_per_s=400.0),
            dict(base, library="deepctr-torch", differences=["one", "two"])]
    md = ctr.render(recs)
    assert "din-paper [1,2] | seqrec" in md and "**4.0×** (4.0)" in md
    assert "\n1. one\n2. two" in md
