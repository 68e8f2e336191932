"""Contract of the multi-task models (Shared-Bottom, MMoE, PLE, ESMM) and their losses, on the
real census-income samples: shapes, determinism, padding / batch independence in eval mode (the
BatchNorm pitfall), gates are distributions, ESMM's entire-space loss by hand, overfitting a batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.config import load_run_config
from seqrec.families.multitask import build_model
from seqrec.registry import model_names
from seqrec.train.multitask_trainer import batches, evaluate_multitask, multitask_loss

# the census-income models; DUPN and the single-task DINs read behaviour histories
# (tests/models/test_dupn_contract.py)
CONTRACT_MODELS = [m for m in model_names("multitask") if m not in ("dupn", "single_din")]
MODELS = CONTRACT_MODELS


@pytest.fixture(scope="module")
def census(data_root):
    from seqrec.data.registry import get_dataset, require_files
    from seqrec.data.tasks.multitask import census_task

    entry = get_dataset("census_income", "multitask")
    return census_task("census_income", require_files(entry, str(data_root)), seed=0)


def _model(name, data, *over):
    cfg = load_run_config(f"configs/{name}_census_income.toml", list(over))
    torch.manual_seed(0)
    return build_model(cfg, data.schema, data.tasks), cfg


def _batch(data, n=256, part="valid"):
    return next(batches(data.split(part), n))


def test_census_recipe_splits_60_20_20_by_the_seed(census, data_root):
    from seqrec.data.registry import get_dataset, require_files
    from seqrec.data.tasks.multitask import census_task

    s = census.summary()
    assert (s["train"]["samples"], s["valid"]["samples"], s["test"]["samples"]) == (59857, 19952, 19953)
    total_income = sum(s[p]["positives_income"] for p in ("train", "valid", "test"))
    total_married = sum(s[p]["positives_never_married"] for p in ("train", "valid", "test"))
    assert (total_income, total_married) == (6186, 43143)  # the README's counts
    other = census_task("census_income", require_files(get_dataset("census_income"), str(data_root)), seed=1)
    assert not np.array_equal(other.train["age" if "age" in other.train else "dense"], census.train["dense"])
    assert census.train["dense"].min() >= 0 and census.train["dense"].max() <= 1
    assert "marital_stat" not in census.train and "instance_weight" not in census.train


@pytest.mark.parametrize("name", MODELS)
def test_shapes_determinism_and_batch_independence(census, name):
    m, _ = _model(name, census, "model.batch_norm=true")
    m.train()
    for _ in range(3):  # move the BatchNorm running statistics away from their start
        m(_batch(census, 512, "train"))
    m.eval()
    b = _batch(census, 256)
    with torch.no_grad():
        out = m(b).logits
        assert out.shape == (256, 2) and torch.isfinite(out).all()
        assert torch.equal(out, m(b).logits)
        half = m({k: v[:100] for k, v in b.items()}).logits  # another batch composition
    assert torch.allclose(out[:100], half, atol=1e-6)


def test_mmoe_gates_are_distributions(census):
    m, _ = _model("mmoe", census)
    with torch.no_grad():
        g = m.gate_weights(m.inp(_batch(census)))
    assert g.shape == (256, 2, 8)
    assert torch.allclose(g.sum(-1), torch.ones(256, 2)) and (g >= 0).all()


def test_esmm_loss_is_the_entire_space_objective(census):
    m, _ = _model("esmm", census)
    b = _batch(census, 64)
    logits = torch.randn(64, 2, dtype=torch.float32)
    loss = multitask_loss(m, logits, b).item()
    p_ctr = 1 / (1 + np.exp(-logits[:, 1].numpy().astype(np.float64)))
    p_cvr = 1 / (1 + np.exp(-logits[:, 0].numpy().astype(np.float64)))
    y_click = b["label_never_married"].numpy()
    y_conv = b["label_income"].numpy()

    def bce(y, p):
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    want = bce(y_click, p_ctr) + bce(y_click * y_conv, p_ctr * p_cvr)
    assert math.isclose(loss, want, rel_tol=1e-5)


def test_summed_bce_for_the_other_models(census):
    m, _ = _model("mmoe", census)
    b = _batch(census, 64)
    logits = torch.randn(64, 2)
    want = sum(torch.nn.functional.binary_cross_entropy_with_logits(logits[:, k], b[f"label_{t}"])
               for k, t in enumerate(census.tasks))
    assert torch.allclose(multitask_loss(m, logits, b), want)


@pytest.mark.parametrize("name", MODELS)
def test_overfits_one_batch(census, name):
    m, _ = _model(name, census, "model.init_std=0.1")
    b = _batch(census, 128, "train")
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    first = multitask_loss(m, m(b).logits, b).item()
    for _ in range(150):
        loss = multitask_loss(m, m(b).logits, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.25 * first


def test_evaluate_reports_every_task(census):
    m, _ = _model("esmm", census)
    r = evaluate_multitask(m, census.valid)
    assert {"income", "never_married", "ctcvr", "mean_auc"} <= set(r)
    assert 0 <= r["income"]["auc"] <= 1


def test_contract_covers_the_multitask_family():
    assert {"shared_bottom", "mmoe", "ple", "esmm"} <= set(CONTRACT_MODELS)


@pytest.mark.slow
def test_cli_train_then_evaluate_reproduces_the_metrics(data_root, tmp_path, capsys):
    import json

    from seqrec.cli import main

    out = tmp_path / "run"
    assert main(["train", "configs/mmoe_census_income.toml", "--out", str(out), "--no-progress",
                 "--set", "train.epochs=1"]) == 0
    assert "test auc income=" in capsys.readouterr().out
    saved = json.loads((out / "metrics.json").read_text())["test"]
    assert main(["evaluate", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    for t in ("income", "never_married"):
        assert again[t]["auc"] == saved[t]["auc"]  # the checkpoint reproduces the scores exactly
    assert main(["train", "configs/mmoe_census_income.toml", "--out", str(tmp_path / "x"), "--no-progress",
                 "--set", "data.dataset=amazon_beauty"]) == 2  # no multitask recipe: one error line
