"""PaddleRec DSIN pickles (``PaddlePaddle/PaddleRec`` @ ``656326a``, ``models/rank/dsin``).

The folder holds four pickles built the ``shenweichen/DSIN`` ``code/2_gen_dsin_input.py`` way:

* ``sample_feat_input.pkl``: a pandas DataFrame, one row per sample: ``userid``, ``adgroup_id``,
  ``pid``, user profile and ad columns (label-encoded ints) and ``price`` (float, standardised);
  the column ``'new_user_class_level '`` (trailing space) is read as ``new_user_class_level``;
* ``sample_sess_input.pkl``: int array (N, 2 * S, L): rows ``2k`` / ``2k + 1`` are the
  categories / brands of session ``k``, left-aligned and 0-padded;
* ``sample_session_length.pkl``: int array (N,), the number of non-empty sessions;
* ``sample_label.pkl``: float array (N,), the click label.

Layout here: one flattened history group ``hist`` (what the library's CTR models read):
``hist_cate`` / ``hist_brand`` (S * L = 50 wide) hold the behaviours of the non-empty
sessions, oldest session first and each session's behaviours oldest first, left-aligned;
the extra int64 column ``hist_session`` (N, S * L) gives each position's session, 1 = the
oldest, 0 = padding (what :func:`seqrec.layers.sessions.session_layout` takes, and it gives
back exactly the source's S x L cells). DSIN's ``sess_0`` is the most recent session (it
takes sessions newest first), so the source order of sessions is reversed. Session
cates/brands share the ``cate`` / ``brand`` tables with the ad's ``cate_id`` / ``brand``;
every other DataFrame column is a sparse feature with its own table, ``price`` is dense
(1 wide), ``session_length`` an extra int64 column (N,) and ``userid`` the user column.
Checked: a behaviour has both a cate and a brand, and ``session_length`` equals the number
of non-empty sessions, which come first.

pandas is not needed: the pickles are loaded with an unpickler that resolves only numpy's
array reconstruction (protocols 2-5), ``builtins.slice``, ``_codecs.encode`` and stand-ins for
the few pandas classes a plain DataFrame pickle names (DataFrame, BlockManager, Index,
RangeIndex); every other class is refused, so loading cannot run arbitrary code. The DataFrame
is rebuilt from its block manager state (pandas' ``'0.14.1'`` pickle layout); extension dtypes
(categorical, nullable, Arrow strings) are refused.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np
from _ctr_formats import DIM, Builder, CTRSamples

from seqrec.errors import DataNotFoundError, DataValidationError

FILES = ("feat_input", "sess_input", "session_length", "label")


class _Frame:  # pandas.core.frame.DataFrame: BUILD fills __dict__ (``_mgr``, ``_typ``, ...)
    pass


class _Manager:  # pandas.core.internals.managers.BlockManager
    def __setstate__(self, state: object) -> None:
        self.state = state


class _Index:  # pandas.core.indexes.base.Index
    pass


class _RangeIndex:  # pandas.core.indexes.range.RangeIndex
    pass


def _new_index(cls: type, d: dict) -> object:
    if cls is _RangeIndex:
        return range(d.get("start", 0), d["stop"], d.get("step", 1))
    return np.asarray(d["data"])


_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's own array-unpickling functions
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # (protocol 5 pickles)
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "slice"): slice,
    ("_codecs", "encode"): codecs.encode,  # bytes in protocol 2 pickles
    ("pandas.core.frame", "DataFrame"): _Frame,
    ("pandas.core.internals.managers", "BlockManager"): _Manager,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.base", "Index"): _Index,
    ("pandas.core.indexes.range", "RangeIndex"): _RangeIndex,
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only numpy arrays and plain pandas DataFrames"
        )


def load_data_pickle(path: Path) -> object:
    """Load a pickle of numpy arrays / DataFrames (DataFrames come back as ``_Frame``)."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: file not found")
    try:
        with open(path, "rb") as fh:
            return _DataUnpickler(io.BytesIO(fh.read())).load()
    except Exception as exc:  # truncated or corrupt bytes fail in many ways, all meaning this
        raise DataValidationError(f"{path}: not a readable data pickle ({type(exc).__name__}: {exc})") from exc


def frame_columns(obj: object, path: Path) -> dict[str, np.ndarray]:
    """Columns of an unpickled DataFrame, from its block manager state."""
    try:
        state = obj.__dict__["_mgr"].state
        extra = state[3]["0.14.1"]
        names = [str(n).strip() for n in extra["axes"][0]]
        n = len(extra["axes"][1])
        cols: dict[str, np.ndarray] = {}
        for block in extra["blocks"]:
            values, locs = np.asarray(block["values"]), block["mgr_locs"]
            locs = range(*locs.indices(len(names))) if isinstance(locs, slice) else list(locs)
            for row, j in zip(np.atleast_2d(values), locs, strict=True):
                cols[names[j]] = row
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataValidationError(f"{path}: not a pandas DataFrame pickle ({exc!r})") from exc
    if not cols:
        raise DataValidationError(f"{path}: the DataFrame has no columns")
    if len(cols) != len(names) or any(len(c) != n for c in cols.values()):
        msg = f"the DataFrame blocks do not cover its {len(names)} columns x {n} rows"
        raise DataValidationError(f"{path}: {msg}")
    return cols


def _array(obj: object, path: Path, ndim: int) -> np.ndarray:
    if not isinstance(obj, np.ndarray) or obj.ndim != ndim:
        got = obj.shape if isinstance(obj, np.ndarray) else type(obj).__name__
        raise DataValidationError(f"{path}: expected a {ndim}-d numpy array, got {got}")
    return obj


def _ids(a: np.ndarray, path: Path, name: str) -> np.ndarray:
    what = f"column {name!r}" if name else "the array"
    if a.dtype.kind not in "iu":
        raise DataValidationError(f"{path}: {what} must hold integer ids, got {a.dtype}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        i = np.unravel_index(int(np.argmax(a > np.iinfo(np.int64).max)), a.shape)
        raise DataValidationError(f"{path}: {what} element {tuple(map(int, i))} is {a[i]}, "
                                  "outside the 64-bit integer range")
    return a.astype(np.int64)


def _numbers(a: np.ndarray, path: Path, what: str) -> np.ndarray:
    """A real-valued array with finite values (errors name the element)."""
    if a.dtype.kind not in "biuf":
        raise DataValidationError(f"{path}: {what} must hold numbers, got {a.dtype}")
    bad = ~np.isfinite(a.astype(np.float64))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataValidationError(f"{path}: {what} sample {i} is {a[i]!r}, not a finite number")
    return a


def read_dsin_pickles(directory: str | Path, *, dim: int = DIM) -> CTRSamples:
    """The ``sample_{feat_input,sess_input,session_length,label}.pkl`` files of ``directory``."""
    d = Path(directory)
    if not d.is_dir():
        raise DataNotFoundError(f"{d}: DSIN pickle folder not found")
    p = {k: d / f"sample_{k}.pkl" for k in FILES}
    feat = frame_columns(load_data_pickle(p["feat_input"]), p["feat_input"])
    sess = _ids(_array(load_data_pickle(p["sess_input"]), p["sess_input"], 3), p["sess_input"], "")
    slen = _array(load_data_pickle(p["session_length"]), p["session_length"], 1)
    slen = _ids(slen, p["session_length"], "session_length")
    y = _numbers(_array(load_data_pickle(p["label"]), p["label"], 1), p["label"], "label")
    n, rows, _ = sess.shape
    if n == 0:
        raise DataValidationError(f"{p['sess_input']}: no samples")
    if rows % 2:
        msg = f"{rows} rows per sample, expected cate/brand row pairs"
        raise DataValidationError(f"{p['sess_input']}: {msg}")
    for k, a in (("feat_input", next(iter(feat.values()))), ("session_length", slen), ("label", y)):
        if len(a) != n:
            raise DataValidationError(f"{p[k]}: {len(a)} samples, sample_sess_input.pkl has {n}")
    for c in ("userid", "cate_id", "brand", "price"):
        if c not in feat:
            msg = f"no column {c!r}; columns: {sorted(feat)}"
            raise DataValidationError(f"{p['feat_input']}: {msg}")
    _numbers(np.asarray(feat["price"]), p["feat_input"], "column 'price'")
    bad = np.flatnonzero(~np.isin(y, (0, 1)))
    if bad.size:
        msg = f"label must be 0 or 1; sample {bad[0]} has {y[bad[0]]!r}"
        raise DataValidationError(f"{p['label']}: {msg}")
    bad = np.flatnonzero((slen < 0) | (slen > rows // 2))
    if bad.size:
        msg = f"sample {bad[0]} has {slen[bad[0]]} sessions, at most {rows // 2} allowed"
        raise DataValidationError(f"{p['session_length']}: {msg}")
    cates, brands = sess[:, 0::2], sess[:, 1::2]  # (N, S, L), session 0 = the most recent
    real = cates != 0
    checks = (
        (((brands != 0) != real).any((1, 2)), "a behaviour has a cate but no brand or the reverse"),
        ((real.any(2) != (np.arange(rows // 2) < slen[:, None])).any(1),
         f"its session_length in {p['session_length'].name} is not its number of non-empty "
         "sessions (which must come first)"),
    )  # fmt: skip
    for bad, what in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataValidationError(f"{p['sess_input']}: sample {i}: {what}")
    ids = {c: _ids(v, p["feat_input"], c) for c, v in feat.items() if c != "price"}
    b = Builder(dim)
    b.table("cate", cates[real], ids["cate_id"])
    b.table("brand", brands[real], ids["brand"])
    for c, v in ids.items():
        shared = {"cate_id": "cate", "brand": "brand"}.get(c)
        b.sparse(c, shared or c, v, own_table=shared is None)
    b.dense("price", feat["price"])
    # oldest session first: reverse the session axis, then move real cells to the front
    session = np.where(real, slen[:, None, None] - np.arange(rows // 2)[None, :, None], 0)
    order = np.argsort(~real[:, ::-1].reshape(n, -1), axis=1, kind="stable")
    flat = {k: np.take_along_axis(a[:, ::-1].reshape(n, -1), order, 1)
            for k, a in (("cate", cates), ("brand", brands), ("session", session))}  # fmt: skip
    for table in ("cate", "brand"):
        b.array(f"hist_{table}", table, b.lookup(table, flat[table], pad=0))
    b.extra("hist_session", flat["session"].astype(np.int64))
    b.extra("session_length", slen)
    return b.build(y.astype(np.float32), p["label"].parent, user="userid")
