"""Test fixture: readers for processed CTR samples in the layouts other projects ship, as
:class:`LabeledSamples`. They live with the tests (not in the library) because they exist to check
that other projects' published samples fit seqrec's schema and train its models; users bring
their own data through ``[data] path`` (:mod:`seqrec.data.own`).

Formats (each folder under ``shared/data/ctr/`` has a README naming the repository, commit and
file path of the staged copies):

* PaddleRec DIN/DIEN text, ``hist_items;hist_cates;item;cate;label``: :func:`read_paddle_din`
  (``PaddlePaddle/PaddleRec`` @ ``656326a``, ``models/rank/din``, ``models/rank/dien``);
* PaddleRec BST ``key:value`` tokens: :func:`read_paddle_bst` (same commit, ``models/rank/bst``);
* PaddleRec DMR Alimama CSV, 267 numeric columns in the ``lvze92/DMR`` ``model.py`` layout:
  :func:`read_dmr_alimama` (same commit, ``models/rank/dmr``);
* PaddleRec DSIN pickles (built the ``shenweichen/DSIN`` ``code/2_gen_dsin_input.py`` way):
  :func:`_ctr_dsin.read_dsin_pickles` (same commit, ``models/rank/dsin``), in
  :mod:`seqrec.data.readers.ctr_dsin`;
* DeepCTR example CSVs: :func:`read_deepctr_criteo`, :func:`read_deepctr_avazu`,
  :func:`read_deepctr_movielens` (``shenweichen/DeepCTR`` @ ``1b5fe40``, ``examples/``).

Rules shared by all readers:

* Ids are remapped per embedding table: the distinct raw values the returned samples hold,
  sorted, get ids 2, 3, ... (0 padding, 1 OOV). ``data.vocabs[table]`` maps raw value -> id and
  ``data.raw_ids(table, ids)`` maps back. Features that name the same thing share a table
  (history items and the target item, ...). Tables are ``dim`` (default 16) wide.
* Histories are left-aligned, oldest first. A history longer than ``max_len`` keeps its most
  recent ``max_len`` behaviours (the files list them oldest first); only kept ids enter tables.
* Blank lines are skipped. Errors: a missing file raises DataNotFoundError, an empty file
  DataValidationError, a malformed line DataValidationError naming file, 1-based line number
  (a CSV header is line 1) and field; a CSV header without a needed column SchemaError.

Per-format decisions:

* DIN: no user ids (``schema.user == ""``); features ``hist_item``, ``hist_cate`` (group
  ``hist``), ``item``, ``cate``.
* BST: ``userid`` is the user column and a sparse feature; ``history``/``cate``/``position``
  become ``hist_item``/``hist_cate``/``hist_position``; ``target``/``target_cate``/
  ``target_position`` become ``item``/``cate``/``position`` (positions are ids of a table).
* DMR: the history mask is 1 for a real behaviour and 0 for padding, and the padding comes
  first (right-aligned histories, the most recent behaviour in the last column, which is what
  DMR's ``deep_match`` reads). The real behaviours are re-left-aligned into ``hist_btag``,
  ``hist_cate``, ``hist_brand``; ``cate_id``/``brand`` share tables with them; profile and ad
  columns and ``pid`` are sparse, ``price`` dense (1 wide). Of the match mask DMR reads only
  the next-to-last position; it is kept as the extra float column ``match_mask`` (N,).
* Criteo: ``I1..I13`` are dense features (1 wide): missing -> 0, then ``log1p`` of values
  >= 0 (negative values, only ``I2 = -1`` in practice, are kept as they are). ``C1..C26`` are
  sparse, one table each; a missing value is its own category (raw value ``""``).
* Avazu: ``click`` is the label, ``id`` (unique per row) is dropped, ``hour`` (YYMMDDHH)
  becomes the hour of day ``"00".."23"``; all other 21 columns are sparse (raw strings).
* MovieLens: ``user_id`` (user column), ``movie_id``, ``gender``, ``age``, ``occupation``,
  ``zip`` sparse; ``genres`` multihot (mean pooled, width = most genres of a sample); label =
  ``rating >= 4`` (DeepCTR's example regresses the rating). Extra columns: ``rating`` float32
  and ``time`` (Unix seconds, float64).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from seqrec.data.samples import LabeledSamples
from seqrec.errors import DataNotFoundError, DataValidationError, SchemaError
from seqrec.schema import Feature, Schema, Table

DIM = 16


@dataclass
class CTRSamples(LabeledSamples):
    """LabeledSamples plus the id mapping of every table: ``vocabs[table][raw value] -> id``."""

    vocabs: dict[str, dict] = field(default_factory=dict)

    def subset(self, idx: np.ndarray, name: str | None = None) -> CTRSamples:
        cols = {k: v[idx] for k, v in self.columns.items()}
        return CTRSamples(self.schema, cols, name or self.name, self.vocabs)

    def raw_ids(self, table: str, ids) -> list:
        """The raw values of ``ids`` in ``table`` (padding 0 and OOV 1 give None)."""
        inverse = [None, None, *self.vocabs[table]]  # dict order = sorted raw values
        return [inverse[int(i)] for i in np.asarray(ids).ravel()]


# -- helpers ---------------------------------------------------------------------------------
def bad_line(path: Path, line: int, msg: str, field: str | None = None) -> DataValidationError:
    where = f"line {line}" + (f", field {field!r}" if field else "")
    return DataValidationError(f"{path}: {where}: {msg}")


def existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: file not found")
    return path


def no_samples(path: Path) -> DataValidationError:
    return DataValidationError(f"{path}: no samples (the file is empty)")


def _decode(raw: bytes, path: Path, no: int, field_of: Callable[[bytes], str | None]) -> str:
    """One line as text; bytes that are not UTF-8 raise an error naming the line and the field
    (``field_of(bytes before the bad byte)``)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_line(path, no, "holds bytes that are not valid UTF-8", field_of(raw[: exc.start])) from None


def _field_by_separator(sep: bytes, names: Callable[[int], str]) -> Callable[[bytes], str]:
    return lambda before: names(before.count(sep))


def _lines(path: Path, field_of: Callable[[bytes], str | None]) -> Iterator[tuple[int, str]]:
    """Non-blank lines (1-based numbers, stripped) of a UTF-8 text file."""
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, 1):
            line = _decode(raw, path, no, field_of).strip()
            if line:
                yield no, line


INT64 = (-(2**63), 2**63 - 1)


def _int(tok: str, path: Path, no: int, field: str) -> int:
    try:
        value = int(tok)
    except ValueError:
        raise bad_line(path, no, f"not an integer id: {tok!r}", field) from None
    if not INT64[0] <= value <= INT64[1]:
        raise bad_line(path, no, f"id {tok.strip()!r} is outside the 64-bit integer range", field)
    return value


def _ints(toks: Iterable[str], path: Path, no: int, field: str) -> list[int]:
    toks = list(toks)
    try:
        out = [int(t) for t in toks]
    except ValueError:
        out = None
    if out is None or any(not INT64[0] <= v <= INT64[1] for v in out):
        return [_int(t, path, no, field) for t in toks]  # raises, naming the bad token
    return out


def _float(tok: str, path: Path, no: int, field: str) -> float:
    try:
        value = float(tok)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise bad_line(path, no, f"not a finite number: {tok!r}", field)
    return value


def _label(tok: str, path: Path, no: int, field: str = "label") -> float:
    if tok.strip() in ("0", "1", "0.0", "1.0"):
        return float(tok)
    raise bad_line(path, no, f"label must be 0 or 1, got {tok!r}", field)


class Builder:
    """Collects tables, features and columns; ``build`` returns checked :class:`CTRSamples`."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.tables: list[Table] = []
        self.features: list[Feature] = []
        self.columns: dict[str, np.ndarray] = {}
        self.vocabs: dict[str, dict] = {}
        self.extras: list[str] = []

    def table(self, name: str, *values: Iterable) -> dict:
        """Table of the distinct raw values in ``values`` (iterables or 1-D arrays), sorted."""
        keys: set = set()
        for v in values:
            keys.update(v.tolist() if isinstance(v, np.ndarray) else v)
        self.vocabs[name] = {k: i for i, k in enumerate(sorted(keys), 2)}
        self.tables.append(Table(name, len(keys) + 2, self.dim))
        return self.vocabs[name]

    def lookup(self, table: str, a: np.ndarray, pad: int | None = None) -> np.ndarray:
        """Vectorised remap of an int array; entries equal to ``pad`` become 0."""
        keys = np.fromiter(self.vocabs[table], np.int64, len(self.vocabs[table]))
        out = np.searchsorted(keys, a).astype(np.int64) + 2
        return out if pad is None else np.where(a == pad, 0, out)

    def sparse(self, name: str, table: str, values, *, own_table: bool = False) -> None:
        if own_table:
            self.table(table, values)
        if isinstance(values, np.ndarray):
            self.columns[name] = self.lookup(table, values)
        else:
            v = self.vocabs[table]
            self.columns[name] = np.fromiter((v[x] for x in values), np.int64, len(values))
        self.features.append(Feature(name, "sparse", table))

    def padded(self, name: str, table: str, seqs: Sequence[list], width: int, **kw) -> None:
        """Sequence (``kw`` = group) or multihot (``kind="multihot"``, pooling) feature."""
        v = self.vocabs[table]
        out = np.zeros((len(seqs), width), np.int64)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = [v[x] for x in s]
        self.array(name, table, out, **kw)

    def array(self, name: str, table: str, ids: np.ndarray, kind: str = "sequence", **kw) -> None:
        self.columns[name] = ids
        self.features.append(Feature(name, kind, table, max_len=ids.shape[1], **kw))

    def dense(self, name: str, values) -> None:
        a = np.asarray(values, np.float32)
        self.columns[name] = a.reshape(len(a), -1)
        self.features.append(Feature(name, "dense", dim=self.columns[name].shape[1]))

    def extra(self, name: str, values: np.ndarray) -> None:
        self.columns[name] = values
        self.extras.append(name)

    def build(self, labels, path: Path, user: str = "") -> CTRSamples:
        self.columns["label"] = np.asarray(labels, np.float32)
        schema = Schema(
            tuple(self.tables), tuple(self.features), user=user, time_columns=tuple(self.extras)
        )
        return CTRSamples(schema, self.columns, str(path), self.vocabs)


# -- PaddleRec text formats ---------------------------------------------------------------------
_DIN_FIELDS = ("hist_items", "hist_cates", "target_item", "target_cate", "label")


def read_paddle_din(path: str | Path, max_len: int = 50, *, dim: int = DIM) -> CTRSamples:
    """PaddleRec DIN/DIEN ``hist_items ; hist_cates ; target_item ; target_cate ; label``."""
    path = existing(path)
    hist_i, hist_c, item, cate, y = [], [], [], [], []
    for no, line in _lines(path, _field_by_separator(b";", lambda k: _DIN_FIELDS[min(k, 4)])):
        f = line.split(";")
        if len(f) != 5:
            raise bad_line(
                path, no, f"expected 5 ';'-separated fields "
                f"(hist_items;hist_cates;item;cate;label), got {len(f)}",
            )  # fmt: skip
        hi = _ints(f[0].split(), path, no, "hist_items")
        hc = _ints(f[1].split(), path, no, "hist_cates")
        if len(hi) != len(hc):
            raise bad_line(path, no, f"{len(hc)} categories for {len(hi)} items", "hist_cates")
        hist_i.append(hi[-max_len:])
        hist_c.append(hc[-max_len:])
        item.append(_int(f[2].strip(), path, no, "target_item"))
        cate.append(_int(f[3].strip(), path, no, "target_cate"))
        y.append(_label(f[4], path, no))
    if not y:
        raise no_samples(path)
    b = Builder(dim)
    b.table("item", chain.from_iterable(hist_i), item)
    b.table("cate", chain.from_iterable(hist_c), cate)
    b.padded("hist_item", "item", hist_i, max_len)
    b.padded("hist_cate", "cate", hist_c, max_len)
    b.sparse("item", "item", item)
    b.sparse("cate", "cate", cate)
    return b.build(y, path)


_BST_SEQ = ("history", "cate", "position")
_BST_ONE = ("userid", "target", "target_cate", "target_position", "label")
_BST_KEYS = ", ".join(_BST_SEQ + _BST_ONE)


def _bst_key(before: bytes) -> str:
    """The key of the ``key:value`` token that holds the byte after ``before``."""
    return before.split(b" ")[-1].partition(b":")[0].decode("utf-8", "replace") or "token"


def read_paddle_bst(path: str | Path, max_len: int = 50, *, dim: int = DIM) -> CTRSamples:
    """PaddleRec BST: ``userid:U history:i.. cate:c.. position:p.. target:T target_cate:C
    target_position:P label:L`` (space-separated ``key:value`` tokens)."""
    path = existing(path)
    rows: dict[str, list] = {k: [] for k in (*_BST_SEQ, *_BST_ONE)}
    for no, line in _lines(path, _bst_key):
        seq: dict[str, list[int]] = {k: [] for k in _BST_SEQ}
        one: dict[str, float] = {}
        for tok in line.split():
            key, sep, val = tok.partition(":")
            if key in seq:
                seq[key].append(_int(val, path, no, key))
            elif key in _BST_ONE and sep and key not in one:
                one[key] = _label(val, path, no) if key == "label" else _int(val, path, no, key)
            else:
                why = "given twice" if key in one else f"is not key:value, key in {_BST_KEYS}"
                raise bad_line(path, no, f"token {tok!r} {why}", key)
        missing = [k for k in _BST_ONE if k not in one]
        if missing:
            raise bad_line(path, no, f"missing token(s) {missing}", missing[0])
        for k in _BST_SEQ[1:]:
            if len(seq[k]) != len(seq["history"]):
                n, m = len(seq[k]), len(seq["history"])
                raise bad_line(path, no, f"{n} {k} tokens for {m} history tokens", k)
        for k in _BST_SEQ:
            rows[k].append(seq[k][-max_len:])
        for k in _BST_ONE:
            rows[k].append(one[k])
    if not rows["label"]:
        raise no_samples(path)
    b = Builder(dim)
    b.sparse("userid", "userid", rows["userid"], own_table=True)
    for k, table, target in (("history", "item", "target"), ("cate", "cate", "target_cate"),
                             ("position", "position", "target_position")):  # fmt: skip
        b.table(table, chain.from_iterable(rows[k]), rows[target])
        b.padded(f"hist_{table}", table, rows[k], max_len)
        b.sparse(table, table, rows[target])
    return b.build(rows["label"], path, user="userid")


_DMR_PROFILE = (
    "userid", "cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
    "shopping_level", "occupation", "new_user_class_level",
)  # fmt: skip
_DMR_AD = ("adgroup_id", "cate_id", "campaign_id", "customer", "brand")
_DMR_TAIL = (*_DMR_PROFILE, *_DMR_AD, "price", "pid", "label")  # columns 250..266
_DMR_BLOCKS = ("btag history", "cate history", "brand history", "history mask", "match mask")


def _dmr_field(j: int) -> str:
    return f"column {j} ({_DMR_BLOCKS[j // 50]} {j % 50})" if j < 250 else _DMR_TAIL[j - 250]


def read_dmr_alimama(path: str | Path, max_len: int = 50, *, dim: int = DIM) -> CTRSamples:
    """PaddleRec DMR ``alimama_sampled`` CSV, 267 columns, no header: 0-49 btag, 50-99 cate,
    100-149 brand histories, 150-199 history mask, 200-249 match mask, 250-258 user profile,
    259-263 ad ids, 264 price, 265 pid, 266 label."""
    path = existing(path)
    hist: dict[str, list] = {"btag": [], "cate": [], "brand": []}
    tail: list[list[int]] = []
    price, match, y = [], [], []
    for no, line in _lines(path, _field_by_separator(b",", lambda k: _dmr_field(min(k, 266)))):
        f = line.split(",")
        if len(f) != 267:
            raise bad_line(path, no, f"expected 267 comma-separated fields, got {len(f)}")
        v = [*f[:264], "0", f[265]]
        try:
            v = [int(t) for t in v]
        except ValueError:
            v = None
        if v is None or any(not INT64[0] <= x <= INT64[1] for x in v):
            v = [_int(f[j], path, no, _dmr_field(j)) if j != 264 else 0 for j in range(266)]
        bad = [j for j in range(150, 250) if v[j] not in (0, 1)]
        if bad:
            raise bad_line(path, no, f"mask must be 0 or 1, got {f[bad[0]]!r}", _dmr_field(bad[0]))
        real = [j for j in range(50) if v[150 + j]]
        for k, block in (("btag", 0), ("cate", 50), ("brand", 100)):
            hist[k].append([v[block + j] for j in real][-max_len:])
        match.append(v[200 + 48])
        tail.append(v[250:266])
        price.append(_float(f[264], path, no, "price"))
        y.append(_label(f[266], path, no))
    if not y:
        raise no_samples(path)
    t = {name: [r[i] for r in tail] for i, name in enumerate(_DMR_TAIL[:-1])}
    b = Builder(dim)
    b.table("btag", chain.from_iterable(hist["btag"]))
    b.table("cate", chain.from_iterable(hist["cate"]), t["cate_id"])
    b.table("brand", chain.from_iterable(hist["brand"]), t["brand"])
    for k in hist:
        b.padded(f"hist_{k}", k, hist[k], max_len)
    for name in (*_DMR_PROFILE, *_DMR_AD, "pid"):
        shared = {"cate_id": "cate", "brand": "brand"}.get(name)
        b.sparse(name, shared or name, t[name], own_table=shared is None)
    b.dense("price", price)
    b.extra("match_mask", np.asarray(match, np.float32))
    return b.build(y, path, user="userid")


# -- DeepCTR example CSVs -----------------------------------------------------------------------
def _read_csv(path: str | Path, columns: Sequence[str]) -> tuple[Path, dict[str, list], list]:
    """Header CSV -> (path, {column: values}, line numbers); checks header and field counts."""
    path = existing(path)
    cols: dict[str, list] = {c: [] for c in columns}
    lines: list[int] = []
    header: list[str] = []

    def column_of(before: bytes) -> str | None:  # the header name of the field a byte is in
        k = before.count(b",")
        return header[k] if k < len(header) else None

    def text() -> Iterator[str]:
        with open(path, "rb") as fh:
            for no, raw in enumerate(fh, 1):
                yield _decode(raw, path, no, column_of if no > 1 else lambda _: None)

    reader = csv.reader(text())
    try:
        header = next(reader, None)
        if header is None:
            raise no_samples(path)
        missing = [c for c in columns if c not in header]
        if missing:
            raise SchemaError(f"{path}: the header lacks column(s) {missing}; header: {header}")
        pos = [(c, header.index(c)) for c in columns]
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                msg = f"expected {len(header)} comma-separated fields, got {len(row)}"
                raise bad_line(path, reader.line_num, msg)
            lines.append(reader.line_num)
            for c, p in pos:
                cols[c].append(row[p])
    except csv.Error as exc:  # an unterminated quote, a NUL byte, an oversized field
        raise bad_line(path, reader.line_num, f"not valid CSV ({exc})") from None
    if not lines:
        raise no_samples(path)
    return path, cols, lines


def _labels(path: Path, values: list[str], lines: list[int], field: str) -> list[float]:
    return [_label(v, path, no, field) for v, no in zip(values, lines, strict=True)]


def _floats(path: Path, values: list[str], lines: list[int], field: str) -> np.ndarray:
    """Numbers of a column; an empty cell is 0."""
    pairs = zip(values, lines, strict=True)
    return np.array([_float(v, path, no, field) if v.strip() else 0.0 for v, no in pairs])


CRITEO_DENSE = tuple(f"I{i}" for i in range(1, 14))
CRITEO_SPARSE = tuple(f"C{i}" for i in range(1, 27))


def read_deepctr_criteo(path: str | Path, *, dim: int = DIM) -> CTRSamples:
    """DeepCTR ``criteo_sample.txt``: ``label, I1..I13`` (counts), ``C1..C26`` (hashed)."""
    path, cols, lines = _read_csv(path, ("label", *CRITEO_DENSE, *CRITEO_SPARSE))
    y = _labels(path, cols["label"], lines, "label")
    b = Builder(dim)
    for c in CRITEO_DENSE:
        x = _floats(path, cols[c], lines, c)
        b.dense(c, np.where(x >= 0, np.log1p(np.maximum(x, 0)), x))
    for c in CRITEO_SPARSE:
        b.sparse(c, c, [v.strip() for v in cols[c]], own_table=True)
    return b.build(y, path)


AVAZU_SPARSE = (
    "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
    "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type",
    "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
)  # fmt: skip


def read_deepctr_avazu(path: str | Path, *, dim: int = DIM) -> CTRSamples:
    """DeepCTR ``avazu_sample.txt``: ``click`` label and 22 categorical columns (``id`` dropped)."""
    path, cols, lines = _read_csv(path, ("click", *AVAZU_SPARSE))
    y = _labels(path, cols["click"], lines, "click")
    for v, no in zip(cols["hour"], lines, strict=True):
        if not (len(v) == 8 and v.isdigit() and int(v[6:]) < 24):
            raise bad_line(path, no, f"hour must be YYMMDDHH, got {v!r}", "hour")
    cols["hour"] = [v[6:] for v in cols["hour"]]
    b = Builder(dim)
    for c in AVAZU_SPARSE:
        b.sparse(c, c, cols[c], own_table=True)
    return b.build(y, path)


ML_SPARSE = ("user_id", "movie_id", "gender", "age", "occupation", "zip")
ML_INT = ("user_id", "movie_id", "age", "occupation")


def read_deepctr_movielens(path: str | Path, *, dim: int = DIM) -> CTRSamples:
    """DeepCTR ``movielens_sample.txt`` (ML-1M ratings joined with users and movies)."""
    path, cols, lines = _read_csv(path, (*ML_SPARSE, "genres", "rating", "timestamp"))
    for c in ML_INT:
        cols[c] = [_int(v, path, no, c) for v, no in zip(cols[c], lines, strict=True)]
    for c in ("rating", "timestamp"):  # required: an empty cell is an error, not 0
        for v, no in zip(cols[c], lines, strict=True):
            if not v.strip():
                raise bad_line(path, no, "empty", c)
    rating = _floats(path, cols["rating"], lines, "rating")
    time = _floats(path, cols["timestamp"], lines, "timestamp")
    genres = [[g for g in v.split("|") if g] for v in cols["genres"]]
    b = Builder(dim)
    for c in ML_SPARSE:
        b.sparse(c, c, cols[c], own_table=True)
    b.table("genre", chain.from_iterable(genres))
    width = max(1, max(len(g) for g in genres))
    b.padded("genres", "genre", genres, width, kind="multihot", pooling="mean")
    b.extra("rating", rating.astype(np.float32))
    b.extra("time", time.astype(np.float64))
    return b.build((rating >= 4).astype(np.float32), path, user="user_id")
