"""The split stage: canonical event tables in, :class:`SessionSplits` out.

Readers (:mod:`seqrec.data.readers`) only read; every hold-out is made here.
:func:`split_events` applies a :class:`SplitSpec` (a registered dataset's recipe, or
``[data.split]`` of a config for your own data) to what a reader returned: one table
(``time`` / ``tail`` splits) or :class:`GivenSplit` (files that come split).

Both hold-out rules follow GRU4Rec / SR-GNN practice: after choosing the held-out
sessions, train sessions shorter than ``min_session_length`` are dropped, then
held-out events on items that do not occur in the (filtered) train part are
dropped, then held-out sessions left shorter than ``min_session_length`` are
dropped. So every held-out item occurs in the train part. Row order is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from seqrec.data.events import OPTIONAL, REQUIRED, validate_events
from seqrec.data.readers.common import order_sessions
from seqrec.errors import ConfigError, DataValidationError, SchemaError

DAY = 86400.0


def _need(df: pl.DataFrame, cols: tuple[str, ...], fn: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(f"{fn}: missing column(s) {missing}; have {df.columns}")


def _min_length(df: pl.DataFrame, min_session_length: int) -> pl.DataFrame:
    if min_session_length <= 1:
        return df
    return df.filter(pl.len().over("session_id") >= min_session_length)


def restrict_to_train(
    train: pl.DataFrame, held: pl.DataFrame, min_session_length: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Length-filter ``train``, keep held-out events on train items, length-filter them."""
    train = _min_length(train, min_session_length)
    held = held.filter(pl.col("item_id").is_in(train["item_id"].unique().implode()))
    return train, _min_length(held, min_session_length)


def time_split(
    df: pl.DataFrame, *, test_days: float, min_session_length: int = 2
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """GRU4Rec-style split: a session is test if its last event is within ``test_days``.

    "Within" means ``last_event_time >= max_time - test_days * 86400`` (as in
    GRU4Rec's ``split_data_org``). Returns ``(train, test)``.
    """
    _need(df, ("session_id", "item_id", "timestamp"), "time_split")
    if not test_days > 0:
        raise ConfigError(f"time_split: test_days must be > 0, got {test_days!r}")
    if min_session_length < 1:
        raise ConfigError(f"min_session_length must be >= 1, got {min_session_length!r}")
    cutoff = df["timestamp"].max() - test_days * DAY
    is_test = pl.col("timestamp").max().over("session_id") >= cutoff
    train, test = df.filter(~is_test), df.filter(is_test)
    return restrict_to_train(train, test, min_session_length)


def tail_sessions_split(
    df: pl.DataFrame, fraction: float, min_session_length: int = 2
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hold out the last ``fraction`` of sessions in row order (for data without real time).

    The first ``round(n_sessions * (1 - fraction))`` sessions stay in train, as in
    SR-GNN's ``split_validation``. Sessions must be contiguous (canonical tables are).
    Returns ``(train, held_out)``.
    """
    _need(df, ("session_id", "item_id"), "tail_sessions_split")
    if not 0 < fraction < 1:
        raise ConfigError(f"tail_sessions_split: fraction must be in (0, 1), got {fraction!r}")
    if min_session_length < 1:
        raise ConfigError(f"min_session_length must be >= 1, got {min_session_length!r}")
    starts = (pl.col("session_id") != pl.col("session_id").shift(1)).fill_null(True)
    rank = starts.cast(pl.Int64).cum_sum() - 1
    n_sessions = int(df.select(starts.sum()).item()) if df.height else 0
    n_train = int(round(n_sessions * (1.0 - fraction)))
    is_held = rank >= n_train
    train, held = df.filter(~is_held), df.filter(is_held)
    return restrict_to_train(train, held, min_session_length)


@dataclass(frozen=True)
class SplitSpec:
    """How a dataset is held out. ``kind``: ``time`` (test = sessions ending in the last
    ``test_days``, valid = the same rule inside the rest with ``valid_days`` or test_days),
    ``tail`` (no real time: the last ``test_fraction`` of sessions, then the last
    ``valid_fraction`` of the rest) or ``given`` (the reader's :class:`GivenSplit`; valid =
    the last ``valid_fraction`` of train_full when the files give no validation part)."""

    kind: str
    test_days: float = 1.0
    valid_days: float = 0.0
    test_fraction: float = 0.1
    valid_fraction: float = 0.1
    min_session_length: int = 2


@dataclass
class GivenSplit:
    """What a reader of pre-split files returns: ``train_full`` and ``test`` (and, when the
    files hold them, ``train`` / ``valid``), plus anything the split keeps in ``extra``."""

    train_full: pl.DataFrame
    test: pl.DataFrame
    train: pl.DataFrame | None = None
    valid: pl.DataFrame | None = None
    extra: dict = field(default_factory=dict)


def split_events(name: str, events: pl.DataFrame | GivenSplit, spec: SplitSpec, *, has_time: bool,
                 has_users: bool, how: str) -> SessionSplits:
    """The split stage: apply ``spec`` to a reader's output; validated :class:`SessionSplits`."""
    extra: dict = {}
    if spec.kind == "given":
        if not isinstance(events, GivenSplit):
            raise ConfigError(f"{name}: split kind 'given' needs files that come split (e.g. an SR-GNN folder)")
        train_full, test, extra = events.train_full, events.test, events.extra
        if events.train is not None and events.valid is not None:
            train, valid = events.train, events.valid
        else:
            train, valid = tail_sessions_split(train_full, spec.valid_fraction, spec.min_session_length)
    else:
        if isinstance(events, GivenSplit):
            raise ConfigError(f"{name}: these files come split; use split kind 'given'")
        if spec.kind == "time":
            if not has_time:
                raise ConfigError(f"{name}: split kind 'time' needs real timestamps; use 'tail'")
            valid_days = spec.valid_days or spec.test_days
            train_full, test = time_split(events, test_days=spec.test_days,
                                          min_session_length=spec.min_session_length)
            train, valid = time_split(train_full, test_days=valid_days,
                                      min_session_length=spec.min_session_length)
        elif spec.kind == "tail":
            train_full, test = tail_sessions_split(events, spec.test_fraction, spec.min_session_length)
            train, valid = tail_sessions_split(train_full, spec.valid_fraction, spec.min_session_length)
        else:
            raise ConfigError(f"{name}: unknown split kind {spec.kind!r}; choose time, tail or given")
    for part, df in (("train", train), ("valid", valid), ("test", test)):
        if df.height == 0:
            raise DataValidationError(f"{name}: the {spec.kind} split leaves no {part} events; "
                                      "change [data.split] (more test days / a larger fraction)")
    return make_splits(name, train=train, valid=valid, test=test, train_full=train_full,
                       has_time=has_time, has_users=has_users, how=how, extra=extra)


@dataclass
class SessionSplits:
    """Canonical event tables of one dataset, split for next-item evaluation.

    ``train`` + ``valid`` = ``train_full``; ``valid`` is carved from the training
    period the same way ``test`` was carved from the whole data, so tuning never
    sees ``test``. ``note`` states how the split was made (shown in the README and
    ``seqrec datasets``).
    """

    name: str
    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    train_full: pl.DataFrame
    has_time: bool
    has_users: bool
    note: str = ""
    extra: dict = field(default_factory=dict)

    def get(self, split: str) -> pl.DataFrame:
        try:
            return {"train": self.train, "valid": self.valid, "test": self.test,
                    "train_full": self.train_full}[split]
        except KeyError:
            from seqrec.errors import ConfigError

            raise ConfigError(
                f"unknown split {split!r}; choose train, valid, test or train_full"
            ) from None

    def counts(self) -> dict:
        """Events / sessions / items per split (for README tables and logs)."""
        out = {}
        for name in ("train", "valid", "test", "train_full"):
            df = self.get(name)
            out[name] = {
                "events": df.height,
                "sessions": df["session_id"].n_unique() if df.height else 0,
                "items": df["item_id"].n_unique() if df.height else 0,
            }
        return out


def format_counts(splits: SessionSplits) -> str:
    """``train 1,234 events / 300 sessions / 99 items; valid ...`` for split notes."""
    parts = []
    for name, c in splits.counts().items():
        parts.append(
            f"{name} {c['events']:,} events / {c['sessions']:,} sessions / {c['items']:,} items"
        )
    return "; ".join(parts) + "."


def _canonical_columns(df: pl.DataFrame) -> pl.DataFrame:
    """Canonical columns first in their documented order (others kept for validation)."""
    first = [c for c in (*REQUIRED, *OPTIONAL) if c in df.columns]
    return df.select(first + [c for c in df.columns if c not in first])


def make_splits(
    name: str,
    *,
    train: pl.DataFrame,
    valid: pl.DataFrame,
    test: pl.DataFrame,
    train_full: pl.DataFrame,
    has_time: bool,
    has_users: bool,
    how: str,
    extra: dict | None = None,
) -> SessionSplits:
    """Validate every table, check session ids are disjoint, append counts to the note.

    Sessions are (re)ordered by first event time: split filters can drop a
    session's first events and so move its start.
    """
    tables = {"train": train, "valid": valid, "test": test, "train_full": train_full}
    checked = {
        k: validate_events(order_sessions(_canonical_columns(v)), f"{name}/{k}")
        for k, v in tables.items()
    }
    if has_users:
        for k, df in checked.items():
            n_users = df.group_by("session_id").agg(pl.col("user_id").n_unique())["user_id"]
            if n_users.max() > 1:
                raise DataValidationError(f"{name}/{k}: some sessions belong to several users")
    for a, b in (("train", "valid"), ("train_full", "test"), ("train", "test")):
        shared = set(checked[a]["session_id"].unique().to_list()) & set(
            checked[b]["session_id"].unique().to_list()
        )
        if shared:
            raise DataValidationError(
                f"{name}: {len(shared)} session id(s) occur in both {a} and {b}, "
                f"e.g. {sorted(shared, key=str)[:3]}"
            )
    splits = SessionSplits(
        name=name,
        has_time=has_time,
        has_users=has_users,
        extra=dict(extra or {}),
        **checked,
    )
    splits.note = f"{how.strip()} Counts: {format_counts(splits)}"
    return splits
