"""Typed, frozen configs loaded from TOML; unknown keys are rejected by name.

A run config has the sections ``[data]``, ``[model]`` (``name`` picks the
model; the other keys fill that model's config dataclass), ``[loss]`` (the session
models' sampled loss and negatives: gru4rec and hrnn only), ``[train]`` and
``[eval]``. ``--set section.key=value`` overrides are parsed as TOML values
(``--set train.lr=0.1``, ``--set model.layers=[224]``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from seqrec.config_values import from_dict, read_toml
from seqrec.errors import ConfigError

PURCHASE_PROTOCOLS = ("article-1to1", "deployment")  # see seqrec.data.tasks.purchase


@dataclass(frozen=True)
class MultiTaskDataConfig:
    """``[data.multitask]``: which tasks and days a multi-task dataset builds
    (:mod:`seqrec.data.tasks.taobao_multitask`; census-income has its two tasks only)."""

    tasks: tuple[str, ...] = ()  # () = the dataset's default tasks
    test_day: int = -1  # Taobao: the test day (0 = 2017-11-25); valid = the day before; -1 = the last
    train_from_day: int = 0  # Taobao: drop training rows before this day (a daily update trains on one)

    def __post_init__(self) -> None:
        if self.train_from_day < 0:
            raise ValueError(f"train_from_day must be >= 0, got {self.train_from_day}")


@dataclass(frozen=True)
class PurchaseTaskConfig:
    """``[data.purchase]``: who buys from ``category`` in the window after a cut-off.

    See :mod:`seqrec.data.tasks.purchase`. Empty / negative values take the dataset's
    default (``seqrec.data.readers.purchase.PURCHASE_DATASETS``)."""

    category: str = "any"  # a category name at ``level``, or "any" (any purchase)
    level: str = ""  # department | aisle | category | product ("" = the dataset's default)
    window: float = 0.0  # prediction window in the dataset's unit (days or orders); 0 = default
    observation: float = -1.0  # observation window before the cut-off; 0 = whole history; -1 = default
    negatives: str = ""  # "no-need" (the article) | "non-buyers"; "" = the dataset's default
    # "article-1to1": the article's samples (negatives by ``negatives``, 1:1 in every split);
    # "deployment": every active user at the natural base rate, no selection by label
    protocol: str = "article-1to1"
    shift: tuple[int, ...] = ()  # shift augmentation of training samples: drop the last n purchases
    valid_frac: float = 0.2  # users in validation
    test_frac: float = 0.2  # users in test (article-1to1; deployment tests every active user)

    def __post_init__(self) -> None:
        if self.negatives not in ("", "no-need", "non-buyers"):
            raise ValueError(f"negatives must be 'no-need' or 'non-buyers', got {self.negatives!r}")
        if self.protocol not in PURCHASE_PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PURCHASE_PROTOCOLS)}, got {self.protocol!r}")
        if self.protocol == "deployment" and self.negatives == "no-need":
            raise ValueError("negatives = 'no-need' selects users by their label; protocol 'deployment' "
                             "keeps every active user (leave negatives empty or set 'non-buyers')")
        if any(n < 1 for n in self.shift):
            raise ValueError(f"shift values are numbers of purchases to drop (>= 1), got {self.shift}")
        if not (0 < self.valid_frac < 1 and 0 < self.test_frac < 1 and self.valid_frac + self.test_frac < 1):
            raise ValueError("valid_frac and test_frac must be in (0, 1) and sum below 1")
        if self.window < 0:
            raise ValueError(f"window must be positive (0 = the dataset's default), got {self.window}")


DATA_FORMATS = ("csv", "tsv", "parquet", "gru4rec-tsv", "srgnn")  # see seqrec.data.own
SPLIT_KINDS = ("time", "tail", "given")


@dataclass(frozen=True)
class ColumnsConfig:
    """``[data.columns]``: canonical name -> the column of your file ("" = not mapped).

    All empty: columns are recognised from common spellings (``SessionId``, ``ItemId``,
    ``Time``, ``visitorid``, ...). Any one given: only the given ones are read."""

    session_id: str = ""
    item_id: str = ""
    timestamp: str = ""
    user_id: str = ""
    category_id: str = ""
    event_type: str = ""

    def mapping(self) -> dict[str, str] | None:
        given = {k: v for k, v in dataclasses.asdict(self).items() if v}
        return given or None


@dataclass(frozen=True)
class SplitConfig:
    """``[data.split]``: how your own data is held out (``seqrec.data.split``).

    ``time``: test = sessions (CTR: samples; purchase: the window) ending in the last
    ``test_days``; valid = the same rule inside the rest (``valid_days``, 0 = test_days).
    ``tail``: no real time; the last ``test_fraction`` of sessions in file order is test,
    the last ``valid_fraction`` of the rest valid. ``given``: the files are already split
    (an SR-GNN folder: valid = the last ``valid_fraction`` of the train sessions)."""

    kind: str = ""  # time | tail | given; "" = given for srgnn folders, time otherwise
    test_days: float = 1.0
    valid_days: float = 0.0
    test_fraction: float = 0.1
    valid_fraction: float = 0.1
    min_session_length: int = 2

    def __post_init__(self) -> None:
        if self.kind not in ("", *SPLIT_KINDS):
            raise ValueError(f"split.kind must be one of {list(SPLIT_KINDS)}, got {self.kind!r}")
        if not self.test_days > 0 or self.valid_days < 0:
            raise ValueError("split.test_days must be > 0 and split.valid_days >= 0")
        if not (0 < self.test_fraction < 1 and 0 < self.valid_fraction < 1):
            raise ValueError("split.test_fraction and split.valid_fraction must be in (0, 1)")
        if self.min_session_length < 1:
            raise ValueError(f"split.min_session_length must be >= 1, got {self.min_session_length}")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = ""  # a registered dataset (seqrec datasets), or the name of your own data
    data_dir: str = ""  # "" = SEQREC_DATA or ../shared/data
    # your own data instead of a registered dataset (seqrec.data.own): a file or an SR-GNN
    # folder; relative to the config file's folder; written absolute into config.json
    path: str = ""
    format: str = ""  # csv | tsv | parquet | gru4rec-tsv | srgnn; "" = from the suffix / folder
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    session_gap: float = 1800.0  # seconds; cuts sessions per user when there is no session column
    time_format: str = ""  # strptime format of text times ("" = ISO 8601 or numbers)
    train_split: str = "train_full"  # "train" (with validation) or "train_full" (final fit)
    valid_split: str = "valid"  # used for early stopping when training on "train"
    test_split: str = "test"
    dwell_bucket: float = 0.0  # > 0: repeat items by dwell time (seconds per extra copy)
    dwell_max_repeat: int = 10
    max_len: int = 50  # CTR / purchase tasks: behaviours kept in a history (the most recent)
    # a directory written by `seqrec prepare` (seqrec.prepare): the CTR family streams its training
    # samples from its Parquet shards instead of building them in memory; "" = build in memory
    prepared: str = ""
    purchase: PurchaseTaskConfig = field(default_factory=PurchaseTaskConfig)
    multitask: MultiTaskDataConfig = field(default_factory=MultiTaskDataConfig)

    def __post_init__(self) -> None:
        if self.format not in ("", *DATA_FORMATS):
            raise ValueError(f"format must be one of {list(DATA_FORMATS)}, got {self.format!r}")
        if not self.session_gap > 0:
            raise ValueError(f"session_gap must be > 0 seconds, got {self.session_gap}")

    @property
    def name(self) -> str:
        """What reports call the data: the dataset name, or your file's stem."""
        return self.dataset or Path(self.path).stem


LOSS_MODELS = ("gru4rec", "hrnn")  # the models trained with a [loss] section
# the [loss] defaults that differ by family: HRNN is trained with TOP1 in Quadrana et al. (2017)
_LOSS_DEFAULTS: dict[str, dict[str, Any]] = {"hrnn": {"name": "top1"}}


@dataclass(frozen=True)
class LossConfig:
    """``[loss]``: the sampled loss of the session models and its extra negatives.

    Hidasi & Karatzoglou, "Recurrent neural networks with top-k gains for session-based
    recommendations", CIKM 2018: the scores of a mini-batch's B targets against the B
    targets plus ``n_sample`` items drawn once for the whole batch from supp^``sample_alpha``
    go to one of the losses of :mod:`seqrec.losses.sampled`.
    """

    name: str = "bpr-max"  # cross-entropy | bpr | top1 | bpr-max | top1-max
    n_sample: int = 2048  # extra negatives shared by the mini-batch
    sample_alpha: float = 0.75  # popularity exponent of the extra-sample distribution
    bpreg: float = 1.0  # score regularisation of BPR-max
    logq: float = 0.0  # logQ correction strength for cross-entropy
    sample_cache: int = 10_000_000  # number of negatives drawn ahead at once

    def __post_init__(self) -> None:
        from seqrec.losses.sampled import LOSSES

        if self.name not in LOSSES:
            raise ValueError(f"name must be one of {list(LOSSES)}, got {self.name!r}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 80
    # adagrad-momentum (GRU4Rec's Adagrad with momentum) | adagrad (torch's plain Adagrad) | adam
    # | sgd (not for session models); the same meaning in every family (seqrec.train.optim)
    optimizer: str = "adagrad-momentum"
    lr: float = 0.05
    momentum: float = 0.0  # adagrad-momentum only
    lr_schedule: str = "constant"  # constant | linear | cosine
    seed: int = 42
    threads: int = 0  # 0 = torch default
    patience: int = 0  # early stopping on valid recall@20 (0 = off)
    shuffle_sessions: bool = False  # GRU4Rec trains sessions in time order
    log_every: int = 200  # steps between log.csv rows
    fused: bool = True  # GRU4Rec: hand-written backward (see kernels/gru4rec_step.py); False = autograd
    # GRU4Rec fused step: dtype of the output layer's three matrix products (float32 | bfloat16;
    # bfloat16 = inputs rounded to bf16, see kernels/gru4rec_step.py; parameters stay float32)
    matmul_dtype: str = "float32"
    progress: bool = True
    # multi-task family: a finished run whose parameters start this one (transfer, fine-tuning, a
    # daily update); its tables are grown when the vocabulary grew (seqrec.train.warm_start)
    init_from: str = ""
    # CTR, retrieval and multi-task models: stop after this many optimiser steps in total (0 = no
    # limit; the epoch that reaches it is the last); step_log: rank 0 writes steps.csv, the global
    # loss of every step (seqrec.train.steps)
    max_steps: int = 0
    step_log: bool = False

    def __post_init__(self) -> None:
        if self.momentum and self.optimizer in ("adagrad", "adam", "sgd"):  # (unknown names: the choices' error)
            raise ValueError(f"momentum = {self.momentum} applies to optimizer 'adagrad-momentum' only, "
                             f"not {self.optimizer!r}")
        if self.matmul_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"matmul_dtype must be 'float32' or 'bfloat16', got {self.matmul_dtype!r}")


@dataclass(frozen=True)
class EvalConfig:
    ks: tuple[int, ...] = (5, 10, 20)
    batch_size: int = 512
    ties: str = "optimistic"
    # retrieval: False = a tuning run, validation only (the test split is evaluated once per final config)
    test: bool = True


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = None  # the model's own frozen config dataclass
    model_name: str = "gru4rec"
    loss: LossConfig | None = None  # session models (gru4rec, hrnn) only; None for the others
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def model_session(self):
        """The GRU4Rec-level config (the model's own, or HRNN's session GRU config)."""
        return getattr(self.model, "session", self.model)

    @property
    def family(self) -> str:
        """The task family of the model (a module of :mod:`seqrec.families`)."""
        from seqrec.registry import get_model_entry

        return get_model_entry(self.model_name).family

    def to_dict(self) -> dict:
        model = dataclasses.asdict(self.model) if self.model is not None else {}
        loss = {"loss": dataclasses.asdict(self.loss)} if self.loss is not None else {}
        return {
            "family": self.family,
            "data": dataclasses.asdict(self.data),
            "model": {"name": self.model_name, **model},
            **loss,
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` -> (section, key, TOML-parsed value; bare words are strings)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.lr=0.1")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def load_run_config(
    path: str | Path | None = None, overrides: list[str] | None = None, raw: dict | None = None
) -> RunConfig:
    """Load a TOML run config (or a dict ``raw``) and apply ``--set`` overrides."""
    from seqrec.registry import get_model_entry

    if raw is None:
        raw = read_toml(path)
        where = str(path)
    else:
        raw = json.loads(json.dumps(raw))  # deep copy
        where = "config"
    for ov in overrides or []:
        section, key, value = parse_override(ov)
        node = raw.setdefault(section, {})
        *parents, leaf = key.split(".")  # model.session.layers=[32] reaches a nested table
        for k in parents:
            node = node.setdefault(k, {}) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ConfigError(f"--set {ov!r}: {section}.{'.'.join(parents)} is not a table")
        node[leaf] = value
    family = raw.pop("family", None)  # written into config.json by every run
    allowed = {"data", "model", "loss", "train", "eval"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; allowed: {sorted(allowed)}")
    model_raw = dict(raw.get("model", {}))
    name = model_raw.pop("name", None)
    if not name:
        raise ConfigError(f"{where}: [model] needs a 'name'")
    entry = get_model_entry(name)
    if family is not None and family != entry.family:
        raise ConfigError(f"{where}: family = {family!r}, but model {name!r} belongs to family {entry.family!r}")
    loss_raw = raw.get("loss", {})
    if name in LOSS_MODELS:
        if not isinstance(loss_raw, dict):
            raise ConfigError(f"{where} [loss]: expected a table, got {type(loss_raw).__name__}")
        loss = from_dict(LossConfig, {**_LOSS_DEFAULTS.get(name, {}), **loss_raw}, f"{where} [loss]")
    elif loss_raw:
        raise ConfigError(f"{where} [loss]: the [loss] section applies to the session models "
                          f"({', '.join(LOSS_MODELS)}) only; {name!r} has its own objective")
    else:
        loss = None
    train = from_dict(TrainConfig, raw.get("train", {}), f"{where} [train]")
    if train.matmul_dtype != "float32" and name != "gru4rec":
        raise ConfigError(f"{where} [train]: matmul_dtype = {train.matmul_dtype!r} applies to GRU4Rec's fused "
                          f"step only; {name!r} trains in float32")
    data_raw = raw.get("data", {})
    if isinstance(data_raw, dict) and isinstance(data_raw.get("path"), str) and data_raw["path"] and path:
        own = Path(data_raw["path"]).expanduser()  # relative to the config file's folder
        data_raw = {**data_raw, "path": str(own if own.is_absolute() else (Path(path).parent / own).resolve())}
    return RunConfig(
        data=from_dict(DataConfig, data_raw, f"{where} [data]"),
        model=from_dict(entry.config_cls, model_raw, f"{where} [model]"),
        model_name=name,
        loss=loss,
        train=train,
        eval=from_dict(EvalConfig, raw.get("eval", {}), f"{where} [eval]"),
    )
