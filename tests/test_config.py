"""Typed run configs: unknown keys/sections rejected by name, types checked, --set overrides,
and every shipped TOML under configs/ loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.config import LossConfig, RunConfig, load_run_config, parse_override
from seqrec.data.registry import data_dir
from seqrec.errors import ConfigError
from seqrec.models.gru4rec import GRU4RecConfig
from seqrec.models.hrnn import HRNNConfig
from seqrec.registry import get_model_entry, model_names

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
DATA_PRESENT = (data_dir() / "purchase").is_dir()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.toml"
    p.write_text(text)
    return p


BASE = """
[data]
dataset = "yoochoose_100k"

[model]
name = "gru4rec"
layers = [32]

[loss]
name = "bpr-max"
n_sample = 64

[train]
epochs = 2
lr = 0.1
"""


def test_loads_typed_frozen_config(tmp_path):
    cfg = load_run_config(_write(tmp_path, BASE))
    assert isinstance(cfg, RunConfig) and isinstance(cfg.model, GRU4RecConfig)
    assert cfg.model_name == "gru4rec"
    assert cfg.model.layers == (32,) and cfg.loss == LossConfig(name="bpr-max", n_sample=64)
    assert cfg.train.epochs == 2 and cfg.train.lr == 0.1 and isinstance(cfg.train.lr, float)
    assert cfg.data.dataset == "yoochoose_100k"
    with pytest.raises(AttributeError):
        cfg.train.lr = 1.0  # frozen
    # round trip through to_dict (what config.json holds)
    again = load_run_config(raw=cfg.to_dict())
    assert again == cfg


def test_unknown_model_key_names_the_key_and_allowed(tmp_path):
    p = _write(tmp_path, BASE.replace("layers = [32]", "layers = [32]\nhiden_size = 3"))
    with pytest.raises(ConfigError) as exc:
        load_run_config(p)
    msg = str(exc.value)
    assert "hiden_size" in msg and "[model]" in msg
    assert "allowed" in msg and "layers" in msg and "final_act" in msg
    # the loss settings left the model's section: the old key names it as unknown there
    with pytest.raises(ConfigError, match=r"\[model\]: unknown key\(s\) \['n_sample'\]"):
        load_run_config(raw={"model": {"name": "gru4rec", "n_sample": 8}})


def test_unknown_key_in_other_sections(tmp_path):
    with pytest.raises(ConfigError, match=r"\[train\].*'epoch'"):
        load_run_config(_write(tmp_path, BASE.replace("epochs = 2", "epoch = 2")))
    with pytest.raises(ConfigError, match=r"\[data\].*'datset'"):
        load_run_config(_write(tmp_path, BASE.replace("dataset =", "datset =")))
    with pytest.raises(ConfigError, match=r"\[loss\]: unknown key\(s\) \['n_samples'\]"):
        load_run_config(_write(tmp_path, BASE.replace("n_sample =", "n_samples =")))


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_run_config(_write(tmp_path, BASE + "\n[optimizer]\nlr = 0.1\n"))
    assert "optimizer" in str(exc.value) and "allowed" in str(exc.value)


@pytest.mark.parametrize(
    ("old", "new", "key", "what"),
    [
        ("layers = [32]", 'layers = "x"', "layers", "list"),
        ("layers = [32]", 'layers = ["a"]', "layers", "integer"),
        ("lr = 0.1", 'lr = "fast"', "lr", "number"),
        ("epochs = 2", "epochs = 2.5", "epochs", "integer"),
        ("epochs = 2", "epochs = true", "epochs", "integer"),
        ('name = "bpr-max"', "name = 3", "[loss].name", "string"),
    ],
)
def test_wrong_types(tmp_path, old, new, key, what):
    with pytest.raises(ConfigError) as exc:
        load_run_config(_write(tmp_path, BASE.replace(old, new)))
    assert key in str(exc.value) and what in str(exc.value)


def test_invalid_values_become_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"\[loss\]: name must be one of"):
        load_run_config(_write(tmp_path, BASE.replace('"bpr-max"', '"hinge"')))
    with pytest.raises(ConfigError, match="embedding"):
        load_run_config(_write(tmp_path, BASE), ["model.embedding=bag"])
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_run_config(_write(tmp_path, "[model\nname = 1"))
    with pytest.raises(ConfigError, match="not found"):
        load_run_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="needs a 'name'"):
        load_run_config(raw={"model": {"layers": [8]}})


def test_unknown_model_name():
    with pytest.raises(ConfigError) as exc:
        load_run_config(raw={"model": {"name": "no-such-model"}})
    assert "no-such-model" in str(exc.value)
    for name in ("gru4rec", "hrnn", "pop", "item-knn", "sknn"):
        assert name in str(exc.value)
    assert model_names() == sorted(model_names()) and "gru4rec" in model_names()
    assert get_model_entry("hrnn").config_cls is HRNNConfig


def test_parse_override():
    assert parse_override("train.lr=0.1") == ("train", "lr", 0.1)
    assert parse_override("model.layers=[32]") == ("model", "layers", [32])
    assert parse_override("data.dataset=diginetica") == (
        "data",
        "dataset",
        "diginetica",
    )  # bare word
    assert parse_override('data.dataset="diginetica"') == ("data", "dataset", "diginetica")
    assert parse_override("train.progress=false") == ("train", "progress", False)
    assert parse_override("model.final_act=elu-0.5") == ("model", "final_act", "elu-0.5")
    assert parse_override("model.session.layers=[8]") == ("model", "session.layers", [8])
    for bad in ("trainlr=0.1", "train.lr", "lr=0.1", "=3"):
        with pytest.raises(ConfigError, match="section.key=value"):
            parse_override(bad)


def test_overrides_apply_on_top_of_the_file(tmp_path):
    cfg = load_run_config(
        _write(tmp_path, BASE),
        ["train.lr=0.2", "model.layers=[16, 8]", "data.dataset=diginetica", "eval.ks=[1, 20]"],
    )
    assert cfg.train.lr == 0.2
    assert cfg.model.layers == (16, 8)
    assert cfg.data.dataset == "diginetica"
    assert cfg.eval.ks == (1, 20)
    assert cfg.train.epochs == 2  # untouched keys keep the file's value
    with pytest.raises(ConfigError, match="nosuchkey"):
        load_run_config(_write(tmp_path, BASE), ["train.nosuchkey=1"])
    with pytest.raises(ConfigError, match="number"):
        load_run_config(_write(tmp_path, BASE), ["train.lr=fast"])


def test_nested_hrnn_session_config():
    cfg = load_run_config(raw={"model": {"name": "hrnn", "user_size": 8, "session": {"layers": [16]}}})
    assert isinstance(cfg.model, HRNNConfig) and cfg.model.session.layers == (16,)
    assert cfg.model_session is cfg.model.session
    assert cfg.loss == LossConfig(name="top1")  # HRNN's default loss is the paper's TOP1
    with pytest.raises(ConfigError, match="session.*'hidden'"):
        load_run_config(raw={"model": {"name": "hrnn", "session": {"hidden": 3}}})
    with pytest.raises(ConfigError, match=r"\[model\].session: unknown key\(s\) \['loss'\]"):
        load_run_config(raw={"model": {"name": "hrnn", "session": {"loss": "top1"}}})
    # --set reaches into the nested session table
    cfg = load_run_config(
        raw={"model": {"name": "hrnn"}, "loss": {"name": "bpr-max"}},
        overrides=["model.session.layers=[32]", "loss.n_sample=64", "model.user_size=16"],
    )
    assert cfg.model.session.layers == (32,) and cfg.loss.n_sample == 64
    assert cfg.loss.name == "bpr-max" and cfg.model.user_size == 16
    assert load_run_config(raw=cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="not a table"):
        load_run_config(
            raw={"model": {"name": "gru4rec", "layers": [8]}}, overrides=["model.layers.x=1"]
        )


def test_baseline_configs():
    cfg = load_run_config(raw={"model": {"name": "pop", "count": "sessions"}})
    assert cfg.model.count == "sessions"
    with pytest.raises(ConfigError, match="count"):
        load_run_config(raw={"model": {"name": "pop", "count": "clicks"}})


def test_there_are_shipped_configs():
    assert CONFIGS, "configs/ holds no TOML file"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    cfg = load_run_config(path)
    assert cfg.model is not None
    from seqrec.data.registry import get_dataset

    family = cfg.family
    get_dataset(cfg.data.dataset, family)  # names a registered dataset with a recipe for the family
    if family == "ctr":
        assert path.name == f"{cfg.model_name}_{cfg.data.dataset}.toml"
    elif family == "purchase":
        from seqrec.data.tasks.purchase import (
            check_category,
            purchase_dataset,
            read_purchase_log,
            resolve,
        )

        assert path.name == f"purchase_{cfg.model_name}_{cfg.data.dataset}.toml"
        spec = resolve(purchase_dataset(cfg.data.dataset), cfg.data.purchase)
        if spec.column is not None and DATA_PRESENT:  # the category exists in the data
            check_category(read_purchase_log(cfg.data.dataset), spec)
    assert load_run_config(raw=cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"model": {"name": "din", "init_std": float("inf")}}, "[model].init_std: must be a finite number"),
        ({"model": {"name": "din", "mlp_hidden": [200, 0]}}, "[model].mlp_hidden: must be >= 1"),
        ({"model": {"name": "dien", "aux_weight": -0.5}}, "[model].aux_weight: must be >= 0"),
        ({"model": {"name": "gru4rec", "layers": [-1]}}, "[model]"),
        ({"model": {"name": "gru4rec"}, "data": {"max_len": 0}}, "[data].max_len: must be >= 1, got 0"),
        ({"model": {"name": "gru4rec"}, "train": {"lr_schedule": "step"}}, "[train].lr_schedule: 'step'"),
        ({"model": {"name": "gru4rec"}, "eval": {"ties": "random"}}, "[eval].ties: 'random'"),
        ({"model": {"name": "gru4rec"}, "loss": {"sample_alpha": 1.5}}, "[loss].sample_alpha: must be in [0, 1]"),
        ({"model": {"name": "hrnn"}, "loss": {"n_sample": -1}}, "[loss].n_sample: must be >= 0, got -1"),
        ({"model": {"name": "gru4rec"}, "loss": {"bpreg": float("nan")}}, "[loss].bpreg: must be a finite number"),
    ],
)
def test_values_are_checked_in_every_section(raw, needle):
    with pytest.raises(ConfigError) as e:
        load_run_config(raw=raw)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["din", "pop", "cnn_lstm", "xgboost"])
def test_loss_section_is_for_session_models_only(name):
    """A non-empty [loss] for a model that is not a session model is an error naming the section;
    an absent (or empty) one is fine, and such a run's config.json has no [loss]."""
    with pytest.raises(ConfigError, match=r"\[loss\]: the \[loss\] section applies to the session models"):
        load_run_config(raw={"model": {"name": name}, "loss": {"name": "bpr-max"}})
    cfg = load_run_config(raw={"model": {"name": name}, "loss": {}})
    assert cfg.loss is None and "loss" not in cfg.to_dict()
    assert load_run_config(raw=cfg.to_dict()) == cfg


def test_loss_section_defaults_and_json_round_trip():
    cfg = load_run_config(raw={"model": {"name": "gru4rec"}})
    assert cfg.loss == LossConfig()
    d = cfg.to_dict()
    assert list(d) == ["family", "data", "model", "loss", "train", "eval"] and d["family"] == "session"
    assert set(d["loss"]) == {"name", "n_sample", "sample_alpha", "bpreg", "logq", "sample_cache"}
    import json

    assert load_run_config(raw=json.loads(cfg.to_json())) == cfg
