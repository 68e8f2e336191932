"""Malformed files for every reader and format (hypothesis): a correct read or a SeqrecError.

Each format starts from a small valid file (or folder) written here, and hypothesis mutates
one thing: a cell (bad times, ids beyond 64 bits, negative ids, text in a number column,
empty cells, bytes that are not UTF-8), the separator, a row's field count, the file's end,
a header cell, or the whole file (empty, header only). The reader must then either return a
correct result (as many rows as the file holds) or raise a :class:`~seqrec.errors.SeqrecError`
whose message names the file; when the mutated cell is invalid on its own (not UTF-8, not a
number in a number column, an unparseable time, ...) the message must also name that cell's
column and row (``column 'Time' row 17``; the CTR and CDNOW readers count ``line N`` of the
file, header included, and name the field). Pickle formats (SR-GNN, DSIN) get element and
byte mutations; their errors name the file and the index of the bad element.

``SEQREC_FUZZ_EXAMPLES=500`` explores more (random seeds) than the quick deterministic default.
"""

from __future__ import annotations

import copy
import gzip
import math
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _ctr_dsin import read_dsin_pickles
from _ctr_formats import (
    read_deepctr_avazu,
    read_deepctr_criteo,
    read_deepctr_movielens,
    read_dmr_alimama,
    read_paddle_bst,
    read_paddle_din,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqrec.data.readers.generic import read_events
from seqrec.data.readers.gru4rec_tsv import read_gru4rec_tsv
from seqrec.data.readers.purchase import read_cdnow, read_instacart, read_tafeng, read_taobao
from seqrec.data.readers.raw_logs import (
    read_diginetica_views,
    read_retailrocket_sessions,
    read_taobao_userbehavior,
)
from seqrec.data.readers.srgnn import augment_sessions, read_retailrocket, read_srgnn_folder
from seqrec.data.registry import data_dir
from seqrec.data.split import SplitSpec, split_events
from seqrec.errors import SeqrecError

EXAMPLES = int(os.environ.get("SEQREC_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    derandomize="SEQREC_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip

# -- cell values and what makes one invalid on its own, per kind of column ------------------------
TEXTS = [
    "", " ", "abc", "x1", "yes", "1.5", "-1", "0", "7", "24", "-42", "1e3", "1e400", "nan", "inf",
    "2014-13-45", "2014-04-01", "2014-04-01T10:00:00", "12:61", "19971312", "14102199",
    "99999999999999999999", "-99999999999999999999", "18446744073709551616",
    "9223372036854775807", "3000000000", "1511600000",
]  # fmt: skip
NOT_UTF8 = [b"\xff", b"\xc3\x28", b"ab\xfe", b"\x801"]
ISO_OK = {"2014-04-01", "2014-04-01T10:00:00"}


def _int(v: str) -> int | None:
    v = v.strip()
    return int(v) if re.fullmatch(r"[+-]?\d+", v) else None


def _float(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _in64(v: int | None) -> bool:
    return v is not None and -(2**63) <= v < 2**63


def _int_bad(lo: int | None = None, hi: int | None = None) -> Callable[[str], bool]:
    def bad(v: str) -> bool:
        i = _int(v)
        return not _in64(i) or (lo is not None and i < lo) or (hi is not None and i > hi)

    return bad


def _float_bad(v: str) -> bool:
    f = _float(v)
    return f is None or not math.isfinite(f)


def _generic_id_bad(v: str) -> bool:  # ints, whole floats ("1e3"); text ids only if row 1 is text
    if _in64(_int(v)):
        return False
    f = _float(v)
    return not (f is not None and math.isfinite(f) and f == round(f) and abs(f) < 2**63)


def _time_bad(v: str) -> bool:  # Unix seconds or ISO 8601 (a column's first value picks which)
    return v not in ISO_OK and _float_bad(v)


def _ints_bad(v: str) -> bool:  # a space-separated id list (may be empty)
    return any(not _in64(_int(t)) for t in v.split())


KINDS: dict[str, Callable[[str], bool]] = {
    "ignored": lambda v: False,
    "text": lambda v: not v.strip(),
    "int": _int_bad(),
    "int>=0": _int_bad(lo=0),
    "int>=1": _int_bad(lo=1),
    "dow": _int_bad(0, 6),
    "hour": _int_bad(0, 23),
    "unix": _int_bad(0, 4_102_444_800),
    "float": _float_bad,
    "float?>=0": lambda v: bool(v.strip()) and (_float_bad(v) or float(v) < 0),
    "float?": lambda v: bool(v.strip()) and _float_bad(v),
    "gid": _generic_id_bad,
    "time": _time_bad,
    "date": lambda v: not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", v.strip()),
    "yyyymmdd": lambda v: not re.fullmatch(r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])", v.strip()),
    "btype": lambda v: v.strip() not in ("pv", "buy", "cart", "fav"),
    "label": lambda v: v.strip() not in ("0", "1", "0.0", "1.0"),
    "ints": _ints_bad,
    "mask": lambda v: _int(v) not in (0, 1),
    "yymmddhh": lambda v: not (len(v) == 8 and v.isdigit() and int(v[6:]) < 24),
}


# -- text formats ------------------------------------------------------------------------------
@dataclass
class Table:
    """One text file of a format: its valid content and how errors point into it."""

    name: str
    header: list[str] | None
    rows: list[list[str]]
    kinds: list[str]
    sep: str = ","
    gz: bool = False
    style: str = "row"  # "row": column 'X' row N (data rows); "line": line N, field 'X'
    word: str = "column"  # what "line" style errors call a column
    names: list[str] | None = None  # column names in messages (default: the header)
    prefix: list[str] | None = None  # fixed text before each cell (BST's "key:")

    def label(self, c: int) -> str:
        return (self.names or self.header)[c]

    def line(self, r: int) -> int:
        return r + (1 if self.header is not None else 0)

    def cell_marks(self, r: int, c: int) -> list[str]:
        """Regexes an error about cell (r, c) must match (r 1-based over data rows)."""
        name = re.escape(repr(self.label(c)))
        if self.style == "row":
            return [rf"column {name} row {r}\b"]
        return [rf"\bline {self.line(r)}\b", rf"{self.word} {name}"]

    def row_marks(self, r: int) -> list[str]:
        return [rf"\brow {r}\b"] if self.style == "row" else [rf"\bline {self.line(r)}\b"]


@dataclass
class Format:
    id: str
    tables: list[Table]
    read: Callable[[Path], object]  # folder -> result
    count: Callable[[object], int] | None = None  # result -> rows it holds
    expect: Callable[[dict[str, int]], int] | None = None  # data rows per file -> rows wanted
    at_most: bool = False  # rows may be dropped on purpose (a time window)
    whitespace: bool = False  # fields split on runs of blanks: an empty cell is a missing field


@dataclass
class Mutation:
    table: int
    kind: str  # cell | header | sep | fields | cut | empty | header_only
    row: int = 0  # 1-based data row
    col: int = 0
    value: str | bytes = ""
    extra: object = None


def _encode(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode()


def render(t: Table, m: Mutation | None) -> tuple[bytes, int]:
    """The file's bytes with ``m`` applied (when it targets this table) and its data rows."""
    header = list(t.header) if t.header is not None else None
    rows: list[list[bytes]] = [[_encode(v) for v in r] for r in t.rows]
    pre = [_encode(p) for p in t.prefix] if t.prefix else None
    sep = t.sep
    if m is not None:
        if m.kind == "cell":
            rows[m.row - 1][m.col] = _encode(m.value)
        elif m.kind == "header" and header is not None:
            header[m.col] = m.value if isinstance(m.value, str) else "?"
        elif m.kind == "sep":
            sep = m.extra
        elif m.kind == "fields":  # drop the last k fields (k > 0) or add one (k < 0)
            k = m.extra
            rows[m.row - 1] = rows[m.row - 1][:-k] if k > 0 else rows[m.row - 1] + [b"5"]
    lines = []
    if header is not None and not (m is not None and m.kind == "empty"):
        lines.append(sep.join(header).encode())
    if m is None or m.kind not in ("empty", "header_only"):
        for r in rows:
            cells = [(pre[j] if pre and j < len(pre) else b"") + v for j, v in enumerate(r)]
            lines.append(sep.encode().join(cells))
    data = b"".join(line + b"\n" for line in lines)
    if m is not None and m.kind == "cut":
        data = data[: m.extra]
    n_data = sum(1 for line in data.split(b"\n") if line.strip()) - (1 if header is not None else 0)
    return (gzip.compress(data, mtime=0) if t.gz else data), max(n_data, 0)


def write(fmt: Format, folder: Path, m: Mutation | None) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i, t in enumerate(fmt.tables):
        data, n = render(t, m if m is not None and m.table == i else None)
        (folder / t.name).write_bytes(data)
        counts[t.name] = n
    return counts


@st.composite
def mutations(draw, fmt: Format) -> Mutation:
    i = draw(st.integers(0, len(fmt.tables) - 1))
    t = fmt.tables[i]
    kinds = ["cell"] * 6 + ["fields", "cut", "sep", "empty"]
    if t.header is not None:
        kinds += ["header", "header_only"]
    kind = draw(st.sampled_from(kinds))
    r = draw(st.integers(1, len(t.rows)))
    c = draw(st.integers(0, len(t.rows[0]) - 1))
    if kind in ("cell", "header"):
        value = draw(st.sampled_from(TEXTS) | st.sampled_from(NOT_UTF8) if kind == "cell" else st.sampled_from(TEXTS))
        return Mutation(i, kind, r, c, value)
    if kind == "sep":
        return Mutation(i, kind, extra=draw(st.sampled_from([s for s in (",", ";", "\t", "|", " ") if s != t.sep])))
    if kind == "fields":
        return Mutation(i, kind, r, extra=draw(st.sampled_from([-1, 1, 2])))
    if kind == "cut":
        size = len(render(t, None)[0]) if not t.gz else len(gzip.decompress(render(t, None)[0]))
        return Mutation(i, kind, extra=draw(st.integers(0, size - 1)))
    return Mutation(i, kind)


def check_text(fmt: Format, folder: Path, m: Mutation) -> None:
    counts = write(fmt, folder, m)
    t = fmt.tables[m.table]
    try:
        out = fmt.read(folder)
    except SeqrecError as exc:
        msg = str(exc)
        assert t.name in msg, f"{m}: the error does not name {t.name}: {msg}"
        marks: list[str] = []
        if m.kind == "cell":
            blank = fmt.whitespace and not m.value.strip() if isinstance(m.value, str) else False
            if isinstance(m.value, bytes) or (not blank and KINDS[t.kinds[m.col]](m.value)):
                marks = t.cell_marks(m.row, m.col)
            elif blank:
                marks = t.row_marks(m.row)
        elif m.kind == "fields" and _affects_read(t, m):
            marks = t.row_marks(m.row)
        for mark in marks:
            assert re.search(mark, msg), f"{m}: the error does not match {mark!r}: {msg}"
        return
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{fmt.id} {m}: raw {type(exc).__name__} instead of a SeqrecError: {exc}")
    assert not (m.kind == "cell" and isinstance(m.value, bytes)), f"{m}: bytes that are not UTF-8 were read"
    assert m.kind not in ("empty", "header_only"), f"{m}: an empty file was read"
    if fmt.count is not None and fmt.expect is not None:
        got, want = fmt.count(out), fmt.expect(counts)
        assert (got <= want) if fmt.at_most else (got == want), f"{m}: {got} rows read, the files hold {want}"


def _affects_read(t: Table, m: Mutation) -> bool:
    """A missing or extra field must be reported at its row, unless the fields lost are ones
    that may be empty (a missing trailing cell reads as an empty one)."""
    return m.extra < 0 or any(KINDS[k]("") for k in t.kinds[len(t.kinds) - m.extra:])


def n_rows(out) -> int:
    return out.height if isinstance(out, pl.DataFrame) else len(out)


def total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def only(name: str) -> Callable[[dict[str, int]], int]:
    return lambda counts: counts[name]


EVENTS = [["1", "10", "100", "7", "9.5"], ["1", "11", "160", "7", "1"], ["1", "10", "200", "7", "2.25"],
          ["2", "12", "300", "8", "0"], ["2", "13", "360", "8", "3"], ["3", "10", "400", "7", "4"]]  # fmt: skip
GENERIC_COLS = {"session_id": "sid", "item_id": "item", "timestamp": "t", "user_id": "user"}
ISO = [["a", "x1", "2020-01-01T00:00:00"], ["a", "x2", "2020-01-01T00:01:00"],
       ["b", "x1", "2020-01-02T00:00:00"], ["b", "x3", "2020-01-02T00:00:30"]]  # fmt: skip
YC = [["3", "214716935", "1396437466.94"], ["3", "214832672", "1396438212.318"],
      ["8", "214838855", "1396766998.728"], ["8", "214838855", "1396767132.647"]]  # fmt: skip
DIGI = [["1", "NA", "81766", "526309", "2016-05-09"], ["1", "NA", "31331", "1031018", "2016-05-09"],
        ["2", "NA", "32118", "243569", "2016-05-09"], ["2", "5", "9654", "1006", "2016-05-10"]]  # fmt: skip
TAOBAO = [["1", "2268318", "2520377", "pv", "1511544070"], ["1", "2333346", "2520771", "buy", "1511561733"],
          ["2", "2576651", "149192", "cart", "1511572885"], ["2", "3830808", "4181361", "fav", "1511593493"]]  # fmt: skip
TAOBAO_KINDS = ["int", "int", "int", "text", "unix"]
RR = [["1442004589", "0", "285930", "0"], ["1442004759", "0", "357564", "0"],
      ["1442005000", "1", "67045", "1"], ["1442005100", "2", "67045", "1"]]  # fmt: skip
INSTACART_HEAD = ["", "order_id", "user_id", "order_number", "order_dow", "order_hour_of_day",
                  "days_since_prior_order", "product_id", "add_to_cart_order", "reordered"]  # fmt: skip
INSTACART = [["0", "2539329", "1", "1", "2", "8", "", "196", "1.0", "0.0"],
             ["1", "2539329", "1", "1", "2", "8", "", "14084", "2.0", "0.0"],
             ["2", "2398795", "1", "2", "3", "7", "15.0", "196", "1.0", "1.0"],
             ["3", "473747", "2", "1", "3", "12", "", "12427", "1.0", "0.0"]]  # fmt: skip
PRODUCTS = [["196", "Soda", "77", "7"], ["14084", "Organic Milk", "91", "16"], ["12427", "Bars", "23", "19"]]
CDNOW = [["00001", "19970101", "1", "11.77"], ["00002", "19970112", "1", "12.00"],
         ["00002", "19970112", "5", "77.00"], ["00003", "19970102", "2", "20.76"]]  # fmt: skip
TAFENG_H = [["00046855  ", "1", "0"], ["00046855  ", "1", "1"], ["00046855  ", "2", "6"], ["01", "1", "3"]]
TAFENG_F = [["00046855  ", "1", "6"], ["01", "1", "369"]]

DIN_FIELDS = ["hist_items", "hist_cates", "target_item", "target_cate", "label"]
DIN = [["1 2", "5 6", "3", "7", "1"], ["", "", "3", "7", "0"], ["4", "6", "2", "5", "1"]]
BST_KEYS = ["userid", "history", "history", "cate", "cate", "position", "position", "target",
            "target_cate", "target_position", "label"]  # fmt: skip
BST = [["1", "5", "6", "2", "3", "9", "0", "7", "2", "0", "1"],
       ["2", "7", "5", "3", "2", "1", "1", "6", "3", "1", "0"]]  # fmt: skip


def _dmr_row(label: str) -> list[str]:
    f = ["1"] * 50 + ["8"] * 50 + ["9"] * 50 + ["0"] * 10 + ["1"] * 40 + ["1"] * 50
    return f + ["100", "1", "2", "1", "3", "0", "1", "0", "2", "11", "8", "12", "13", "9", "0.5", "1", label]


DMR_BLOCKS = ("btag history", "cate history", "brand history", "history mask", "match mask")
DMR_TAIL = ("userid", "cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
            "shopping_level", "occupation", "new_user_class_level", "adgroup_id", "cate_id",
            "campaign_id", "customer", "brand", "price", "pid", "label")  # fmt: skip
DMR_NAMES = [f"column {j} ({DMR_BLOCKS[j // 50]} {j % 50})" for j in range(250)] + list(DMR_TAIL)
DMR_KINDS = ["int"] * 150 + ["mask"] * 100 + ["int"] * 14 + ["float", "int", "label"]
CRITEO_HEAD = ["label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]
CRITEO = [["1", *["2"] * 13, *["ab"] * 26], ["0", *["", "-1"] + ["3"] * 11, *["cd"] * 26]]
AVAZU_HEAD = ["id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category",
              "app_id", "app_domain", "app_category", "device_id", "device_ip", "device_model",
              "device_type", "device_conn_type", *(f"C{i}" for i in range(14, 22))]  # fmt: skip
AVAZU = [["7", "0", "14102105", *["x"] * 21], ["8", "1", "14102123", *["y"] * 21]]
ML_HEAD = ["user_id", "movie_id", "rating", "timestamp", "title", "genres", "gender", "age", "occupation", "zip"]
ML = [["1", "2", "5", "978300760", "Toy Story (1995)", "Animation|Comedy", "F", "1", "10", "48067"],
      ["2", "3", "3", "978300761", "Heat (1995)", "Action", "M", "25", "7", "55117"]]  # fmt: skip
ML_KINDS = ["int", "int", "float", "float", "ignored", "ignored", "ignored", "int", "int", "ignored"]

TEXT_FORMATS = [
    Format("generic-csv", [Table("events.csv", ["sid", "item", "t", "user", "price"], EVENTS,
                                 ["gid", "gid", "time", "gid", "ignored"])],
           lambda d: read_events(d / "events.csv", columns=GENERIC_COLS), n_rows, only("events.csv")),
    Format("generic-tsv-iso", [Table("events.tsv", ["SessionId", "ItemId", "Time"], ISO,
                                     ["gid", "gid", "time"], sep="\t")],
           lambda d: read_events(d / "events.tsv"), n_rows, only("events.tsv")),
    Format("generic-no-header", [Table("nh.csv", None, [r[:3] for r in EVENTS], ["gid", "gid", "time"],
                                       names=["column_1", "column_2", "column_3"])],
           lambda d: read_events(d / "nh.csv", has_header=False, columns={
               "session_id": "column_1", "item_id": "column_2", "timestamp": "column_3"}),
           n_rows, only("nh.csv")),
    Format("gru4rec-tsv", [Table("clicks.txt", ["SessionId", "ItemId", "Time"], YC, ["gid", "gid", "time"],
                                 sep="\t")],
           lambda d: read_gru4rec_tsv(d / "clicks.txt"), n_rows, only("clicks.txt")),
    Format("diginetica-views", [Table("views.csv", ["session_id", "user_id", "item_id", "timeframe", "eventdate"],
                                      DIGI, ["int", "ignored", "int", "int>=0", "date"], sep=";")],
           lambda d: read_diginetica_views(d / "views.csv"), n_rows, only("views.csv")),
    Format("taobao-userbehavior", [Table("UserBehavior_head.csv", None, TAOBAO, TAOBAO_KINDS,
                                         names=["user_id", "item_id", "category_id", "event_type", "timestamp"])],
           lambda d: read_taobao_userbehavior(d / "UserBehavior_head.csv"), n_rows,
           only("UserBehavior_head.csv"), at_most=True),
    Format("retailrocket-sessions", [Table("sample_retailrocket.csv", ["timestamp", "user_id", "item_id", "session_id"],
                                           RR, ["time", "gid", "gid", "gid"], sep="\t")],
           lambda d: read_retailrocket_sessions(d / "sample_retailrocket.csv"), n_rows,
           only("sample_retailrocket.csv")),
    Format("instacart", [
        Table("df_sample.csv.gz", INSTACART_HEAD, INSTACART,
              ["ignored", "int", "int", "int>=1", "dow", "hour", "float?>=0", "int", "ignored", "ignored"], gz=True),
        Table("products.csv", ["product_id", "product_name", "aisle_id", "department_id"], PRODUCTS,
              ["int", "ignored", "int", "int"]),
        Table("aisles.csv", ["aisle_id", "aisle"], [["77", "soft drinks"], ["91", "milk"], ["23", "bars"]],
              ["int", "text"]),
        Table("departments.csv", ["department_id", "department"], [["7", "beverages"], ["16", "dairy"], ["19", "snacks"]],
              ["int", "text"]),
    ], read_instacart, n_rows, only("df_sample.csv.gz")),
    # the purchase recipe reads the file through the same parse as the session and CTR ones
    Format("taobao-purchase", [Table("UserBehavior_head.csv", None, TAOBAO, TAOBAO_KINDS,
                                     names=["user_id", "item_id", "category_id", "event_type", "timestamp"])],
           read_taobao, n_rows, only("UserBehavior_head.csv")),
    Format("cdnow", [Table("CDNOW_master.txt", ["customer_id", "date", "number_of_cds", "dollar_value"], CDNOW,
                           ["text", "yyyymmdd", "float", "float"], sep=" ", style="line")],
           read_cdnow, n_rows, only("CDNOW_master.txt"), whitespace=True),
    Format("tafeng", [
        Table("TaFang_history.csv", ["CUSTOMER_ID", "ORDER_NUMBER", "MATERIAL_NUMBER"], TAFENG_H,
              ["text", "int>=1", "int"]),
        Table("TaFang_future.csv", ["CUSTOMER_ID", "ORDER_NUMBER", "MATERIAL_NUMBER"], TAFENG_F,
              ["text", "int>=1", "int"]),
    ], read_tafeng, n_rows, total),
    Format("paddle-din", [Table("din.txt", None, DIN, ["ints", "ints", "int", "int", "label"], sep=";",
                                style="line", word="field", names=DIN_FIELDS)],
           lambda d: read_paddle_din(d / "din.txt"), n_rows, only("din.txt")),
    Format("paddle-bst", [Table("bst.txt", None, BST, ["int"] * 10 + ["label"], sep=" ", style="line",
                                word="field", names=BST_KEYS, prefix=[k + ":" for k in BST_KEYS])],
           lambda d: read_paddle_bst(d / "bst.txt"), n_rows, only("bst.txt")),
    Format("dmr-alimama", [Table("dmr.txt", None, [_dmr_row("0"), _dmr_row("1")], DMR_KINDS, style="line",
                                 word="field", names=DMR_NAMES)],
           lambda d: read_dmr_alimama(d / "dmr.txt"), n_rows, only("dmr.txt")),
    Format("deepctr-criteo", [Table("criteo.txt", CRITEO_HEAD, CRITEO,
                                    ["label", *["float?"] * 13, *["ignored"] * 26], style="line", word="field")],
           lambda d: read_deepctr_criteo(d / "criteo.txt"), n_rows, only("criteo.txt")),
    Format("deepctr-avazu", [Table("avazu.txt", AVAZU_HEAD, AVAZU, ["ignored", "label", "yymmddhh", *["ignored"] * 21],
                                   style="line", word="field")],
           lambda d: read_deepctr_avazu(d / "avazu.txt"), n_rows, only("avazu.txt")),
    Format("deepctr-movielens", [Table("ml.txt", ML_HEAD, ML, ML_KINDS, style="line", word="field")],
           lambda d: read_deepctr_movielens(d / "ml.txt"), n_rows, only("ml.txt")),
]


@pytest.mark.parametrize("fmt", TEXT_FORMATS, ids=lambda f: f.id)
def test_valid_base_files_read(fmt, tmp_path):
    """The unmutated files read, with every row: mutations start from a correct file."""
    counts = write(fmt, tmp_path, None)
    assert n_rows(fmt.read(tmp_path)) == fmt.expect(counts) > 0 or fmt.at_most


@pytest.mark.parametrize("fmt", TEXT_FORMATS, ids=lambda f: f.id)
def test_malformed_text_files(fmt, tmp_path_factory):
    @FUZZ
    @given(m=mutations(fmt))
    def run(m):
        check_text(fmt, tmp_path_factory.mktemp(fmt.id), m)

    run()


# -- SR-GNN pickle folders ------------------------------------------------------------------------
TRAIN_SEQS = [[1 + i % 5, 6 + i % 3, 9 + i % 4] for i in range(20)]
TEST_SEQS = [[1, 6, 9], [2, 7], [3, 8, 10, 11]]
TIMED = [[(i, 1_500_000_000 + 60 * k + 3600 * s) for k, i in enumerate(seq)] for s, seq in enumerate(TEST_SEQS)]
BAD_ELEMENTS = [2**70, -(2**64), "12", 1.5, None, True, [1], (1, 2)]
OK_ELEMENTS = [-3, 0, 12, 2**63 - 1]


def srgnn_objects(name: str) -> dict[str, object]:
    test = ("all_test_seq_time.txt", TIMED) if name == "retailrocket" else ("test.txt", augment_sessions(TEST_SEQS))
    return copy.deepcopy({"all_train_seq.txt": TRAIN_SEQS, test[0]: test[1]})


@st.composite
def pickle_mutations(draw, name: str):
    """(file, kind, detail): element, session, whole-object or byte mutations of one pickle."""
    objs = srgnn_objects(name)
    fname = draw(st.sampled_from(sorted(objs)))
    kind = draw(st.sampled_from(["element", "element", "element", "session", "whole", "cut", "bytes"]))
    obj = objs[fname]
    if kind in ("element", "session"):
        if fname == "test.txt":
            part = draw(st.sampled_from([0, 1]))  # prefixes or labels
            i = draw(st.integers(0, len(obj[part]) - 1))
            j = draw(st.integers(0, len(obj[0][i]) - 1)) if part == 0 else None
        else:
            part, i = None, draw(st.integers(0, len(obj) - 1))
            j = draw(st.integers(0, len(obj[i]) - 1))
        if kind == "session":
            value = draw(st.sampled_from([[], "x", 5, None, [[1]]]))
            j = None
        else:
            value = draw(st.sampled_from(BAD_ELEMENTS + OK_ELEMENTS))
        sub = draw(st.integers(0, 1)) if fname == "all_test_seq_time.txt" else None
        return fname, kind, (part, i, j, sub, value)
    if kind == "whole":
        return fname, kind, draw(st.sampled_from([{}, 5, [], "text", (1,), ([1], [2, 3]), ([[1]], [2], [3])]))
    size = len(pickle.dumps(obj, protocol=4))
    if kind == "cut":
        return fname, kind, draw(st.integers(0, size - 1))
    return fname, kind, draw(st.sampled_from([b"", b"not a pickle\n", b"\x80\x04\x95", b"\xff" * 9]))


def apply_pickle(name: str, folder: Path, mutation) -> tuple[str | None, int]:
    """Write the folder; returns (the index text a must-fail error names, train events)."""
    objs = srgnn_objects(name)
    events = sum(len(s) for s in objs["all_train_seq.txt"])
    fname, kind, detail = mutation
    must = None
    data = {}
    for f, obj in objs.items():
        if f != fname or kind == "none":
            data[f] = pickle.dumps(obj, protocol=4)
            continue
        if kind in ("element", "session"):
            part, i, j, sub, value = detail
            seqs = obj[part] if part is not None else obj
            bad = (kind == "session" and part != 1) or not (type(value) is int and -(2**63) <= value < 2**63)
            if part == 1:  # a label
                seqs[i] = value
                word = "label"
            elif kind == "session":
                seqs[i] = value
                word = "session" if f == "all_test_seq_time.txt" else "element"
            elif f == "all_test_seq_time.txt":
                e = list(seqs[i][j])
                e[sub] = value
                seqs[i][j] = tuple(e)
                word = "session"
            else:
                seqs[i][j] = value
                word = "element"
            must = f"{word} {i}" if bad else None
            obj = (obj[0], obj[1]) if part is not None else obj
            data[f] = pickle.dumps(obj, protocol=4)
        elif kind == "whole":
            data[f] = pickle.dumps(detail, protocol=4)
        elif kind == "cut":
            data[f] = pickle.dumps(obj, protocol=4)[:detail]
        else:
            data[f] = detail
    folder.mkdir(parents=True, exist_ok=True)
    for f, b in data.items():
        (folder / f).write_bytes(b)
    return must, events


def _given(name: str, read):
    """The reader, then the split stage as the registry applies it (valid = last 10% of train)."""
    return lambda folder: split_events(name, read(folder), SplitSpec("given", valid_fraction=0.1),
                                       has_time=False, has_users=False, how="fuzz")


SRGNN_READERS = {"diginetica": _given("diginetica", read_srgnn_folder),
                 "retailrocket": _given("retailrocket", read_retailrocket)}


@pytest.mark.parametrize("name", sorted(SRGNN_READERS))
def test_valid_srgnn_folders_read(name, tmp_path):
    _, events = apply_pickle(name, tmp_path, ("all_train_seq.txt", "none", None))
    splits = SRGNN_READERS[name](tmp_path)
    assert splits.train_full.height == events == 60 and splits.valid.height > 0


@pytest.mark.parametrize("name", sorted(SRGNN_READERS))
def test_malformed_srgnn_pickles(name, tmp_path_factory):
    @FUZZ
    @given(m=pickle_mutations(name))
    def run(m):
        folder = tmp_path_factory.mktemp(name)
        must, events = apply_pickle(name, folder, m)
        try:
            splits = SRGNN_READERS[name](folder)
        except SeqrecError as exc:
            msg = str(exc)
            assert m[0] in msg, f"{m}: the error does not name {m[0]}: {msg}"
            if must is not None:
                assert re.search(rf"\b{must}\b", msg), f"{m}: the error does not name {must}: {msg}"
            return
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"{name} {m}: raw {type(exc).__name__} instead of a SeqrecError: {exc}")
        assert must is None, f"{m}: a bad element was read"
        assert m[1] not in ("whole", "cut", "bytes"), f"{m}: a broken pickle was read"
        assert splits.train_full.height == events

    run()


# -- DSIN pickles (the staged PaddleRec sample is the valid start) ---------------------------------
DSIN_DIR = data_dir() / "ctr" / "alimama_ad_click_sample" / "dsin_sample_pkl"
DSIN_FILES = ("feat_input", "sess_input", "session_length", "label")


@st.composite
def dsin_mutations(draw):
    """(file, kind, detail): an element of an array, its dtype or shape, or the file's bytes."""
    f = draw(st.sampled_from(DSIN_FILES))
    kinds = ["cut", "bytes"] + (["element"] * 4 + ["dtype", "shape"] if f != "feat_input" else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "element":
        i = draw(st.integers(0, 511))
        if f == "label":
            return f, kind, (i, draw(st.sampled_from([2.0, -1.0, 0.5, math.nan, math.inf, 1.0, 0.0])))
        if f == "session_length":
            return f, kind, (i, draw(st.sampled_from([-1, 99, 0, 1, 3, 5])))
        return f, kind, ((i, draw(st.integers(0, 9)), draw(st.integers(0, 9))),
                         draw(st.sampled_from([0, 5, -7, 2**40])))
    if kind == "dtype":
        return f, kind, draw(st.sampled_from(["float64", "U3", "object", "uint64-huge", "bool"]))
    if kind == "shape":
        return f, kind, draw(st.sampled_from(["flat", "short", "2d", "empty"]))
    if kind == "cut":
        return f, kind, draw(st.integers(0, (DSIN_DIR / f"sample_{f}.pkl").stat().st_size - 1))
    return f, kind, draw(st.sampled_from([b"", b"not a pickle", b"\x80\x04\x95", pickle.dumps({"a": 1})]))


def apply_dsin(folder: Path, m) -> tuple[str | None, bool]:
    """Write the folder; returns (index text an error must name, whether an error is required)."""
    f, kind, detail = m
    folder.mkdir(parents=True, exist_ok=True)
    for g in DSIN_FILES:
        (folder / f"sample_{g}.pkl").write_bytes((DSIN_DIR / f"sample_{g}.pkl").read_bytes())
    path = folder / f"sample_{f}.pkl"
    if kind == "cut":
        path.write_bytes(path.read_bytes()[:detail])
        return None, True
    if kind == "bytes":
        path.write_bytes(detail)
        return None, True
    a = pickle.loads(path.read_bytes())
    must, required = None, True
    if kind == "element":
        idx, value = detail
        old = a[idx]
        a[idx] = value
        i = idx if f != "sess_input" else idx[0]
        must = f"sample {i}"
        if f == "label":
            required = value not in (0.0, 1.0)
        elif f == "session_length":  # the count of non-empty sessions, which come first
            required = value != old
        else:  # a cell of the session array: an error, if any, is about this sample
            required = False
    elif kind == "dtype":
        if detail == "uint64-huge":
            a = a.astype(np.uint64)
            a.flat[7] = 2**63 + 5
        else:
            a = a.astype(detail)
        required = not (f == "label" and detail in ("float64", "bool"))  # 0/1 labels stay 0/1
    else:
        a = {"flat": a.reshape(-1), "short": a[:-1], "2d": a.reshape(len(a), -1), "empty": a[:0]}[detail]
        required = not (detail == "flat" and f != "sess_input")  # 1-d arrays stay the same
    path.write_bytes(pickle.dumps(a, protocol=4))
    return must, required


@pytest.mark.skipif(not DSIN_DIR.is_dir(), reason=f"staged DSIN sample not found at {DSIN_DIR}")
def test_malformed_dsin_pickles(tmp_path_factory):
    @FUZZ
    @given(m=dsin_mutations())
    def run(m):
        folder = tmp_path_factory.mktemp("dsin")
        must, required = apply_dsin(folder, m)
        try:
            out = read_dsin_pickles(folder)
        except SeqrecError as exc:
            msg = str(exc)
            assert f"sample_{m[0]}.pkl" in msg, f"{m}: the error does not name sample_{m[0]}.pkl: {msg}"
            if must is not None:
                assert re.search(rf"\b{must}\b", msg), f"{m}: the error does not name {must}: {msg}"
            return
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"dsin {m}: raw {type(exc).__name__} instead of a SeqrecError: {exc}")
        assert not required, f"{m}: read without an error"
        assert len(out) == 512

    run()


# -- Parquet (typed columns: the bad cells are nulls, NaN, ids beyond int64, unparseable text) -----
PQ_BASE = {"SessionId": [1, 1, 1, 2, 2], "ItemId": [10, 11, 10, 12, 13], "Time": [1.0, 2.0, 3.0, 4.0, 5.0]}


@st.composite
def parquet_mutations(draw):
    kind = draw(st.sampled_from(["cell", "cell", "cell", "type", "cut", "bytes", "no_rows"]))
    if kind == "cell":
        col = draw(st.sampled_from(sorted(PQ_BASE)))
        row = draw(st.integers(1, 5))
        values = {"SessionId": [None, 2**63 + 3, 1.5, math.nan, -4, "abc"],
                  "ItemId": [None, 2**64 - 1, 2.5, math.inf, -4, "x7"],
                  "Time": [None, math.nan, -math.inf, "2014-13-45", "2014-04-01", 0.5]}[col]
        return kind, col, row, draw(st.sampled_from(values))
    if kind == "type":
        return kind, draw(st.sampled_from(sorted(PQ_BASE))), 0, draw(st.sampled_from(["bool", "list", "date"]))
    if kind == "cut":
        return kind, None, 0, draw(st.integers(0, 400))
    return kind, None, 0, draw(st.sampled_from([b"", b"PAR1", b"not parquet at all"]))


def _pq_column(col: str, row: int, value) -> pl.Series:
    vals = list(PQ_BASE[col])
    vals[row - 1] = value
    if isinstance(value, str):
        return pl.Series(col, [v if i == row - 1 else str(v) for i, v in enumerate(vals)], dtype=pl.Utf8)
    if value is None or isinstance(value, float):
        return pl.Series(col, vals, dtype=pl.Float64 if col == "Time" or isinstance(value, float) else pl.Int64)
    return pl.Series(col, vals, dtype=pl.UInt64 if value >= 2**63 else pl.Int64)


@FUZZ
@given(m=parquet_mutations())
def test_malformed_parquet(m, tmp_path_factory):
    kind, col, row, value = m
    path = tmp_path_factory.mktemp("pq") / "events.parquet"
    df = pl.DataFrame(PQ_BASE)
    must, required = None, kind != "cell"
    if kind == "cell":
        df = df.with_columns(_pq_column(col, row, value))
        text = isinstance(value, str)
        ok_id = (type(value) is int and -(2**63) <= value < 2**63
                 or isinstance(value, float) and math.isfinite(value) and value == round(value))
        ok = ok_id if col != "Time" else (value is not None and not text and math.isfinite(value)) or value == "2014-04-01"
        if col != "Time" and text:  # a text id column: the first value decides text vs numbers
            ok = row == 1
        if not ok:
            must = f"column '{col}' row {row}"
        required = not ok
    elif kind == "type":
        new = {"bool": pl.Series(col, [True] * 5), "list": pl.Series(col, [[1]] * 5),
               "date": pl.Series(col, ["2020-01-01"] * 5).str.to_date()}[value]
        df = df.with_columns(new)
        required = not (col == "Time" and value == "date")
    if kind in ("cell", "type", "no_rows"):
        (df.head(0) if kind == "no_rows" else df).write_parquet(path)
    else:
        pl.DataFrame(PQ_BASE).write_parquet(path)
        path.write_bytes(path.read_bytes()[:value] if kind == "cut" else value)
    try:
        out = read_events(path)
    except SeqrecError as exc:
        msg = str(exc)
        assert "events.parquet" in msg, f"{m}: the error does not name the file: {msg}"
        if must is not None:
            assert must in msg, f"{m}: the error does not name {must}: {msg}"
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"parquet {m}: raw {type(exc).__name__} instead of a SeqrecError: {exc}")
    assert not required, f"{m}: read without an error"
    assert out.height == 5
