"""Property-based: any value of any type for any key of any shipped config either loads or
is refused with one :class:`~seqrec.errors.ConfigError` line; never another exception."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqrec.config import (
    LOSS_MODELS,
    DataConfig,
    EvalConfig,
    LossConfig,
    TrainConfig,
    load_run_config,
)
from seqrec.errors import ConfigError
from seqrec.registry import get_model_entry

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))

VALUES = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.booleans(),
    st.lists(st.integers(-3, 300), max_size=3),
    st.lists(st.floats(allow_nan=True), max_size=2),
)


def _keys(raw: dict) -> list[tuple[str, ...]]:
    """(section, key) and (section, table, key) for every field the config could set."""
    entry = get_model_entry(raw["model"]["name"])
    out = [("model", f.name) for f in dataclasses.fields(entry.config_cls)]
    sections = [("train", TrainConfig), ("eval", EvalConfig), ("data", DataConfig)]
    if raw["model"]["name"] in LOSS_MODELS:
        sections.append(("loss", LossConfig))
    for section, cls in sections:
        for f in dataclasses.fields(cls):
            nested = f.default_factory if dataclasses.is_dataclass(f.default_factory) else None
            if nested:  # a table inside the section, e.g. [data.purchase]
                out += [(section, f.name, g.name) for g in dataclasses.fields(nested)]
            else:
                out.append((section, f.name))
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_loads_or_is_one_config_error(path, data):
    raw = tomllib.loads(path.read_text())
    key = data.draw(st.sampled_from(_keys(raw)), label="key")
    value = data.draw(VALUES, label="value")
    node = raw
    for k in key[:-1]:
        node = node.setdefault(k, {})
    node[key[-1]] = value
    try:
        load_run_config(raw=raw)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
