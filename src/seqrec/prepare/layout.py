"""The on-disk layout of a prepared directory, the same whichever engine wrote it.

::

    DIR/prepared.json                 manifest (see :func:`manifest`)
    DIR/vocab_<name>.json             vocabularies, written by Vocab.save (runs read them as today)
    DIR/item_cate.parquet             CTR: the category index of every item index (item, cate)
    DIR/<split>/part-00000.parquet    the split's rows, in ``shards`` files part-00000 .. part-{N-1}

A row goes to shard ``mix(SHARD_SALT, key) mod N`` (:mod:`seqrec.prepare.hashing`), its key
being the user index (CTR, retrieval), the raw user id (multitask) or the session id (session), so one user's or one
session's rows stay in one file; inside a file rows are sorted by the family's sort key
(``SORT_KEYS``). A shard without rows is an empty file with the split's columns. Sequences
(histories, item lists) are Parquet ``list<int64>`` (``list<double>`` for times) of variable
length, oldest first, most recent last; readers pad them as the in-memory recipes do.

The manifest records the engine and the wall seconds; :func:`compare_prepared` ignores those
two and compares everything else, the rows included, so the rest of the pipeline cannot tell
the engines apart. The directory is written whole into ``DIR.tmp-<random>`` and renamed over
``DIR`` at the end (:func:`atomic_dir`): a crash leaves the old directory or none, never half
of one. An existing ``DIR`` that is not a prepared directory is refused, never deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from seqrec.errors import ConfigError

FORMAT_VERSION = 1
MANIFEST = "prepared.json"
SPLITS = {"session": ("train", "valid", "test", "train_full"), "ctr": ("train", "valid", "test"),
          "retrieval": ("train", "valid", "test"), "multitask": ("train", "valid", "test")}
# rows inside a shard are sorted by these columns (all present in the split's files)
SORT_KEYS = {"session": ("_start", "_first", "_row"), "ctr": ("user", "pos", "label"),
             "retrieval": ("user",), "multitask": ("user_key", "task", "day", "pos", "_sub")}
SORT_DESC = {"ctr": (False, False, True)}  # the positive (label 1) before its negative
# the shard key of a family's rows ("user" when not listed); multitask: the raw user, since users
# first seen on the test day share the OOV user index
SHARD_KEYS = {"session": "session_id", "multitask": "user_key"}


def sort_order(family: str) -> tuple[list[str], list[bool]]:
    """(columns, descending flags) that order the rows of one of ``family``'s shards."""
    keys = list(SORT_KEYS[family])
    return keys, list(SORT_DESC.get(family, (False,) * len(keys)))
IGNORED = ("engine", "seconds", "spark_master", "session_start_seconds")


def part_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def split_files(root: Path, split: str, shards: int) -> list[Path]:
    return [root / split / part_name(s) for s in range(shards)]


@contextmanager
def atomic_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``out``; on success it replaces ``out``.

    ``out`` may be absent or a prepared directory (it has ``prepared.json``); anything else
    is a ConfigError before any work."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and (out / MANIFEST).is_file()):
        what = "a file" if not out.is_dir() else ("not empty" if any(out.iterdir()) else "empty")
        if not (out.is_dir() and what == "empty"):
            raise ConfigError(f"--out {out}: exists and is not a prepared directory ({what}); "
                              "choose another path or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.with_name(f"{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(root: Path, info: dict) -> None:
    from seqrec.io import atomic_write_text

    atomic_write_text(root / MANIFEST, json.dumps({"format_version": FORMAT_VERSION, **info}, indent=2,
                                                  sort_keys=True, default=str))


_NOT_COMPARED = ("prepared", "data_dir")  # where the directory and the raw files are, not what was built


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def open_prepared(cfg, family: str, *, seeded: bool = True) -> tuple[Path, dict]:
    """(root, manifest) of ``cfg.data.prepared``, checked against the config it is trained with: a
    ConfigError when the directory is missing, was prepared for another family, with another
    ``[data]`` setting (every one the manifest records, the dataset, max_len, splits and task
    settings included) or, when ``seeded`` (hashed negatives or hold-out), another ``train.seed``."""
    import dataclasses

    root = Path(cfg.data.prepared).expanduser()
    m = read_manifest(root)
    if m["family"] != family:
        raise ConfigError(f"data.prepared {root}: prepared for the {m['family']} family, not {family}")
    have = _flat(m["data"])
    want = _flat(json.loads(json.dumps(dataclasses.asdict(cfg.data), default=str)))
    for k in sorted(set(have) | set(want)):
        if k not in _NOT_COMPARED and have.get(k) != want.get(k):
            raise ConfigError(f"data.prepared {root}: prepared with data.{k} = {have.get(k)!r}, the config has "
                              f"{want.get(k)!r}; prepare again with this config")
    if seeded and int(m["seed"]) != cfg.train.seed:
        raise ConfigError(f"data.prepared {root}: its random draws used seed {m['seed']}, the config's train.seed "
                          f"is {cfg.train.seed}; prepare again with this config")
    return root, m


def read_item_cate(root: Path):
    """The category index of every item index (``item_cate.parquet``), int64."""
    import numpy as np
    import pyarrow.parquet as pq

    return np.array(pq.read_table(root / "item_cate.parquet", columns=["cate"]).column("cate").to_numpy(),
                      dtype=np.int64)


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a prepared directory; a ConfigError naming the path when there is none."""
    p = Path(root) / MANIFEST
    if not p.is_file():
        raise ConfigError(f"{root}: not a prepared directory (no {MANIFEST}); "
                          "write one with seqrec prepare CONFIG --out DIR")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: corrupt manifest ({exc})") from None
    if m.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{p}: format version {m.get('format_version')!r}, this seqrec reads "
                          f"{FORMAT_VERSION}; prepare the directory again")
    return m


def write_empty_shard(path: Path, schema: dict[str, pl.DataType]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(schema=schema).write_parquet(path)


def column_types(df_schema: dict) -> dict[str, str]:
    """``{column: type}`` as the manifest writes it (the same strings from both engines)."""
    return {k: str(v) for k, v in df_schema.items()}


def read_split(root: str | os.PathLike, split: str) -> pl.DataFrame:
    """All shards of ``split`` in shard order (a test / comparison helper: it loads every row)."""
    m = read_manifest(root)
    files = [Path(root) / f for f in m["splits"][split]["files"]]
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


def _same_frames(a: pl.DataFrame, b: pl.DataFrame) -> str | None:
    if a.columns != b.columns:
        return f"columns {a.columns} != {b.columns}"
    if a.height != b.height:
        return f"{a.height} rows != {b.height} rows"
    for c in a.columns:
        if a.schema[c] != b.schema[c]:
            return f"column {c!r}: type {a.schema[c]} != {b.schema[c]}"
        diff = ~(a[c] == b[c]).fill_null(False) & ~(a[c].is_null() & b[c].is_null())
        if diff.any():
            i = int(diff.arg_max())
            return f"column {c!r} row {i}: {a[c][i]!r} != {b[c][i]!r}"
    return None


def compare_prepared(a: str | os.PathLike, b: str | os.PathLike) -> list[str]:
    """What differs between two prepared directories (empty = equal): the manifests without
    ``IGNORED`` keys, the file lists, every vocabulary and every shard, row for row."""
    a, b = Path(a), Path(b)
    out: list[str] = []
    ma, mb = read_manifest(a), read_manifest(b)
    for k in sorted(set(ma) | set(mb)):
        if k not in IGNORED and ma.get(k) != mb.get(k):
            out.append(f"manifest {k}: {ma.get(k)!r} != {mb.get(k)!r}")
    fa = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    fb = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    if fa != fb:
        out.append(f"files: only in {a}: {sorted(set(fa) - set(fb))}; only in {b}: {sorted(set(fb) - set(fa))}")
    for rel in sorted(set(fa) & set(fb)):
        pa, pb = a / rel, b / rel
        if rel == MANIFEST:
            continue
        if rel.endswith(".json"):
            if json.loads(pa.read_text()) != json.loads(pb.read_text()):
                out.append(f"{rel}: contents differ")
        elif rel.endswith(".parquet"):
            why = _same_frames(pl.read_parquet(pa), pl.read_parquet(pb))
            if why:
                out.append(f"{rel}: {why}")
    return out


def split_info(root: Path, split: str, shards: int) -> dict:
    """Rows (from the Parquet footers, no row is read), files and column types of one split."""
    import pyarrow.parquet as pq

    files = split_files(root, split, shards)
    rows = [pq.read_metadata(f).num_rows for f in files]
    schema = pl.read_parquet_schema(files[0])
    return {"rows": int(sum(rows)), "shard_rows": rows, "files": [str(f.relative_to(root)) for f in files],
            "columns": column_types(schema)}


def write_result(root: Path, family: str, res, shards: int, write_split) -> None:
    """Write an engine's :class:`~seqrec.prepare.spec.Result` under ``root``: the vocabularies,
    ``item_cate.parquet``, every split through the engine's ``write_split(frame, root, split,
    family, shards)``, and the splits' shard files and row counts into ``res.info``."""
    import numpy as np

    for name, v in res.vocabs.items():
        v.save(root / f"vocab_{name}.json")
    if res.item_cate is not None:
        ic = np.asarray(res.item_cate, np.int64)
        pl.DataFrame({"item": np.arange(len(ic), dtype=np.int64), "cate": ic}).write_parquet(root / "item_cate.parquet")
    for split, frame in res.splits.items():
        write_split(frame, root, split, family, shards)
    res.info["splits"] = {s: split_info(root, s, shards) for s in res.splits}
    res.info["rows"] = {s: res.info["splits"][s]["rows"] for s in res.splits}
