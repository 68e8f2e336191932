"""benchmarks/tune_gru4rec.py: what a search draws from."""


def test_set_keys_are_held_not_searched(bench_script):
    tg = bench_script("tune_gru4rec")
    full = tg.search_space("bpr-max", False, [])
    assert "model.layers" in full and "loss.bpreg" in full and "data.dwell_bucket" not in full
    held = tg.search_space("bpr-max", True, ["model.layers=[224]", " train.epochs = 10", 'data.train_split="x"'])
    assert "model.layers" not in held and "train.epochs" not in held
    assert "data.dwell_bucket" in held and "loss.bpreg" in held
    assert set(full) - set(held) == {"model.layers", "train.epochs"}
    assert "loss.logq" in tg.search_space("cross-entropy", False, []) and "loss.bpreg" not in tg.search_space(
        "cross-entropy", False, [])
