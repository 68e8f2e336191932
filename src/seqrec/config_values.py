"""Typed config sections from plain dicts: key and type checks, value ranges, choices.

Kept apart from :mod:`seqrec.config` (which needs the model registry) so that any module can
rebuild a saved config dataclass without importing the registry.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from seqrec.errors import ConfigError

# Ranges checked when any config section is loaded, by field name (the same name means the
# same thing in every section): (low, low included, high, high included); None = unbounded.
# Tuples of ints (layer sizes, ks) are checked element by element. Every float must be finite.
_BOUNDS: dict[str, tuple] = {
    "epochs": (1, True, None, False),
    "batch_size": (1, True, None, False),
    "lr": (0, False, None, False),
    "momentum": (0, True, 1, False),
    "threads": (0, True, None, False),
    "patience": (0, True, None, False),
    "log_every": (1, True, None, False),
    "max_steps": (0, True, None, False),
    "seed": (0, True, 2**63 - 1, True),
    "dropout": (0, True, 1, False),
    "dropout_embed": (0, True, 1, False),
    "dropout_hidden": (0, True, 1, False),
    "n_sample": (0, True, None, False),
    "sample_alpha": (0, True, 1, True),
    "sample_cache": (0, True, None, False),
    "bpreg": (0, True, None, False),
    "logq": (0, True, None, False),
    "embedding_dim": (0, True, None, False),
    "init_std": (0, True, None, False),
    "dense_init_std": (0, True, None, False),
    "aux_weight": (0, True, None, False),
    "mba_reg": (0, True, None, False),
    "dwell_bucket": (0, True, None, False),
    "dwell_max_repeat": (1, True, None, False),
    "max_len": (1, True, None, False),
    "ks": (1, True, None, False),
    "layers": (1, True, None, False),
    "mlp_hidden": (1, True, None, False),
    "att_hidden": (1, True, None, False),
    "aux_hidden": (1, True, None, False),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    # the same meaning in every family: adagrad = torch's Adagrad, adagrad-momentum = GRU4Rec's
    # Adagrad with momentum, adam (lazy on embedding rows), sgd (CTR / purchase models only)
    "optimizer": ("adagrad", "adagrad-momentum", "adam", "sgd"),
    "lr_schedule": ("constant", "linear", "cosine"),
    "ties": ("optimistic", "pessimistic"),
    "train_split": ("train", "train_full"),
    "valid_split": ("valid", ""),
    "test_split": ("test", "valid"),
}


def _range_text(lo, lo_in, hi, hi_in) -> str:
    if hi is None:
        return f"{'>=' if lo_in else '>'} {lo}"
    return f"in {'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}"


def check_values(obj: Any, where: str) -> None:
    """Raise ConfigError naming the first field of dataclass ``obj`` that is out of range, not
    finite or not one of its choices (see ``_BOUNDS`` / ``_CHOICES``)."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if f.name in _CHOICES and v not in _CHOICES[f.name]:
            raise ConfigError(f"{where}.{f.name}: {v!r} is not one of {list(_CHOICES[f.name])}")
        items = v if isinstance(v, tuple) else (v,)
        for x in items:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                continue
            if isinstance(x, float) and not math.isfinite(x):
                raise ConfigError(f"{where}.{f.name}: must be a finite number, got {x!r}")
            b = _BOUNDS.get(f.name)
            if b is None:
                continue
            lo, lo_in, hi, hi_in = b
            ok = (x >= lo if lo_in else x > lo) and (hi is None or (x <= hi if hi_in else x < hi))
            if not ok:
                raise ConfigError(f"{where}.{f.name}: must be {_range_text(*b)}, got {v!r}")


def from_dict(cls: type, values: dict, where: str) -> Any:
    """Build dataclass ``cls`` from ``values``; unknown keys and wrong types raise ConfigError."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    for k, v in kwargs.items():  # enums first: a cross-field check in __post_init__ must not mask them
        if k in _CHOICES and v not in _CHOICES[k]:
            raise ConfigError(f"{where}.{k}: {v!r} is not one of {list(_CHOICES[k])}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    check_values(obj, where)
    return obj


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for h in typing.get_args(hint):
            if h is type(None) and value is None:
                return None
            try:
                return _coerce(value, h, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: value {value!r} does not match {hint}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def read_toml(path, what: str = "config file") -> dict:
    """The parsed TOML file at ``path``; ConfigError for a missing file or invalid TOML."""
    from pathlib import Path

    import tomllib

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} not found")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc

