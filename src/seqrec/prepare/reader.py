"""Training from a prepared directory: CTR samples streamed from its Parquet shards.

:class:`PreparedSamples` is what the CTR trainer needs of a split without holding its rows:
``schema``, ``len()`` (from the Parquet footers), ``labels()`` / ``users()`` (those columns
only) and the streaming contract of the trainers (``streamed = True`` and
:meth:`PreparedSamples.batches`: this rank's shards ``shards[rank::world]``, one row group at a
time, shuffled by the seed). Histories are padded to the schema's ``max_len`` left-aligned with
0, the in-memory recipe's layout (:mod:`seqrec.data.samples`). :func:`load_prepared_ctr` builds
a CTRTask whose train split streams and whose valid / test splits are read into memory (they
are evaluated whole, in row order). :func:`load_prepared_multitask` reads a ``multitask-taobao``
directory whole into the multi-task family's MultiTaskData (the retrieval family's reader is
:mod:`seqrec.prepare.retrieval_reader`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seqrec.data.samples import LabeledSamples, SampleBatch
from seqrec.data.vocab import Vocab
from seqrec.errors import ConfigError
from seqrec.prepare.layout import open_prepared, read_item_cate, read_manifest
from seqrec.prepare.spec import schema_of

SKIP = ("pos",)  # stored as the row key, not a sample column


def _pad(col, width: int, dtype) -> np.ndarray:
    """A pyarrow list column -> (N, width) array, values left-aligned, 0 after them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    lens = pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(dtype)
    out = np.zeros((len(lens), width), dtype=dtype)
    rows = np.repeat(np.arange(len(lens)), lens)
    starts = np.repeat(np.cumsum(lens) - lens, lens)
    out[rows, np.arange(len(flat)) - starts] = flat
    return out


def table_columns(table, max_len: int) -> dict[str, np.ndarray]:
    """A pyarrow table of prepared rows -> the in-memory recipe's columns: lists padded to
    ``max_len`` (:func:`_pad`), ``label*`` as float32, the row key ``pos`` dropped."""
    import pyarrow as pa

    out = {}
    for name in table.column_names:
        if name in SKIP:
            continue
        col = table.column(name)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            dt = np.float64 if pa.types.is_floating(col.type.value_type) else np.int64
            out[name] = _pad(col, max_len, dt)
        else:
            out[name] = col.to_numpy().astype(np.float32) if name.startswith("label") else col.to_numpy()
    return out


def read_columns(files: list[Path], max_len: int) -> dict[str, np.ndarray]:
    """Every row of ``files`` (one split's shards, in order) as :func:`table_columns` columns."""
    import pyarrow.parquet as pq

    parts = [table_columns(pq.read_table(f), max_len) for f in files]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class PreparedSamples:
    """One split of a prepared CTR directory, read shard by shard (see module docstring)."""

    streamed = True

    def __init__(self, root: str | os.PathLike, split: str, schema=None) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        if split not in self.manifest["splits"]:
            raise ConfigError(f"{root}: no split {split!r}; it has {sorted(self.manifest['splits'])}")
        self.split = split
        self.files = [self.root / f for f in self.manifest["splits"][split]["files"]]
        self.max_len = int(self.manifest["max_len"])
        self.schema = schema
        self.name = f"{self.manifest['dataset']} {split} (prepared)"

    def __len__(self) -> int:
        import pyarrow.parquet as pq

        return int(sum(pq.read_metadata(f).num_rows for f in self.files))

    def _column(self, name: str) -> np.ndarray:
        import pyarrow.parquet as pq

        return np.concatenate([pq.read_table(f, columns=[name]).column(name).to_numpy() for f in self.files])

    def labels(self) -> np.ndarray:
        return self._column("label").astype(np.float32)

    def users(self) -> np.ndarray | None:
        return self._column("user") if self.schema is None or self.schema.user else None

    def to_memory(self) -> LabeledSamples:
        """Every row as :class:`LabeledSamples` (checked like any in-memory samples)."""
        return LabeledSamples(self.schema, read_columns(self.files, self.max_len), self.name)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, rank: int = 0,
                world: int = 1) -> Iterator[SampleBatch]:
        """Mini-batches of this rank's shards (``files[rank::world]``), one row group in memory at
        a time; with ``shuffle`` the shard order and the rows of each row group are permuted by
        ``seed``. A row group's last partial batch is carried into the next one."""
        import pyarrow.parquet as pq

        rng = np.random.default_rng(seed)
        files = self.files[rank::world]
        if shuffle:
            files = [files[i] for i in rng.permutation(len(files))]
        carry: dict[str, np.ndarray] | None = None
        for f in files:
            pf = pq.ParquetFile(f)
            groups = list(range(pf.num_row_groups))
            if shuffle:
                groups = [groups[i] for i in rng.permutation(len(groups))]
            for g in groups:
                cols = table_columns(pf.read_row_group(g), self.max_len)
                n = len(cols["label"])
                order = rng.permutation(n) if shuffle else np.arange(n)
                cols = {k: v[order] for k, v in cols.items()}
                if carry is not None:
                    cols = {k: np.concatenate([carry[k], v]) for k, v in cols.items()}
                    n = len(cols["label"])
                full = n - n % batch_size
                for s in range(0, full, batch_size):
                    yield SampleBatch.of(self.schema, {k: v[s:s + batch_size] for k, v in cols.items()})
                carry = {k: v[full:] for k, v in cols.items()} if full < n else None
        if carry is not None:
            yield SampleBatch.of(self.schema, carry)


def load_prepared_ctr(cfg):
    """The CTRTask of ``cfg.data.prepared``: train streamed, valid / test in memory; a ConfigError
    when it was prepared with other data settings or seed (:func:`open_prepared`)."""
    from seqrec.data.tasks.ctr import CTRTask
    from seqrec.prepare.spec import Job

    root, m = open_prepared(cfg, "ctr")
    vocabs = {k: Vocab.load(root / f"vocab_{k}.json") for k in ("item", "cate", "user")}
    schema = schema_of(Job("ctr", m["recipe"], m["dataset"], None, {"max_len": int(m["max_len"])}, {}), vocabs)
    train = PreparedSamples(root, "train", schema)
    valid, test = (PreparedSamples(root, s, schema).to_memory() for s in ("valid", "test"))
    return CTRTask(m["dataset"], train, valid, test, vocabs=vocabs, item_cate=read_item_cate(root))


def load_prepared_multitask(cfg):
    """The MultiTaskData of ``cfg.data.prepared`` (``multitask-taobao``), every split in memory (the
    in-memory recipe's columns; rows in shard order, not the recipe's task-major order); a
    ConfigError when it was prepared with other data settings or seed (:func:`open_prepared`)."""
    from seqrec.data.tasks.multitask import MultiTaskData
    from seqrec.data.tasks.taobao_multitask import schema_of as multitask_schema

    root, m = open_prepared(cfg, "multitask")
    vocabs = {k: Vocab.load(root / f"vocab_{k}.json") for k in ("item", "cate", "user")}
    max_len = int(m["max_len"])
    splits = {s: read_columns([root / f for f in m["splits"][s]["files"]], max_len) for s in ("train", "valid", "test")}
    schema = multitask_schema(len(vocabs["item"]), len(vocabs["cate"]), len(vocabs["user"]), max_len)
    data = MultiTaskData(m["dataset"], schema, tuple(m["tasks"]), splits["train"], splits["valid"], splits["test"])
    data.vocabs, data.item_cate = vocabs, read_item_cate(root)
    return data

