"""A DUPN run's user representations, computed once per user (``seqrec embed-users``).

DUPN (Ni et al. KDD 2018, "Perceive Your Users in Depth: Learning Universal User Representations
from Multiple E-commerce Tasks") learns one representation r of a user for several tasks; sec. 4.2
of the paper serves it split: r is computed once per user (and query) and reused by every task
head and any other consumer (here: the look-alike model, :mod:`seqrec.lookalike`).

**Which history.** :func:`user_rows` builds one row per *known* user (every id of the run's user
vocabulary, i.e. seen before the test day) from the raw log the run's data was built from (the
Taobao sample up to the end of the run's test day), with

* the user's last ``max_len`` behaviours **before the start of day** ``before_day`` (default: the
  day after the test day, i.e. the whole log the run saw, test day included), with the time gaps
  measured to that cut, as the multi-task rows measure them to theirs;
* no query (``query`` = 0), no candidate (``item`` = ``cate`` = 0): r is the query-free
  representation, the one every query-free task (ctr, pref, buy) starts from.

The default is the freshest representation the data supports (what a service would publish). It
has seen the test day: use ``before_day`` = the test day (or earlier) wherever the vectors feed an
evaluation on the test day (the look-alike benchmark does). A user without behaviour before the cut
keeps a row with an empty history (r = [0; user embedding]).

The rows take each user's first event and cut from the user's own segment of the log (a cut past
a user's last event is the index of the *next* user's first event, so neither is read at the cut).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from seqrec.errors import CheckpointError, ConfigError

BATCH = 4096


def run_test_day(run) -> int:
    """The run's test day index (0 = 2017-11-25)."""
    from seqrec.data.tasks.taobao_multitask import resolve_test_day

    return resolve_test_day(run.config.data.multitask.test_day)


def check_dupn(run_dir: str | os.PathLike, data_dir: str | None = None):
    """The run at ``run_dir`` loaded (:class:`MultiTaskRun`), or a one-line error if it is not a
    finished DUPN run on the Taobao sample."""
    from seqrec.families.multitask import MultiTaskRun
    from seqrec.train.checkpoint import load_json

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (config.json is missing)")
    cfg = load_json(run_dir / "config.json")
    name = (cfg.get("model") or {}).get("name")
    if name != "dupn":
        raise ConfigError(f"{run_dir} is a {name!r} run, not a DUPN run (seqrec train configs/dupn_taobao.toml)")
    run = MultiTaskRun(run_dir, data_dir)
    if run.config.data.dataset != "taobao":
        raise ConfigError(f"{run_dir}: user rows are built from the Taobao log; the run's dataset is "
                          f"{run.config.data.dataset!r}")
    return run


def read_log(run):
    """The encoded log the run's data was built from (the Taobao sample up to the end of the run's
    test day, the vocabularies of the days before it)."""
    from seqrec.data.registry import get_dataset, require_files
    from seqrec.data.tasks.taobao_multitask import load_log

    cfg = run.config
    folder = require_files(get_dataset(cfg.data.dataset, "multitask"), cfg.data.data_dir or None)
    return load_log(folder, run_test_day(run))


def user_rows(run, data=None, *, before_day: int | None = None, log=None) -> dict[str, np.ndarray]:
    """One row per known user (vocabulary order): history before the start of day ``before_day``
    (default: the end of the run's log), query 0, item / cate 0 (see the module docstring).

    ``data`` (the run's :class:`MultiTaskData`, optional) is checked against the rebuilt log's
    vocabularies; ``log`` reuses an already read log (:func:`read_log`)."""
    from seqrec.data.readers.raw_logs import TAOBAO_START
    from seqrec.data.tasks.ctr import DAY

    log = read_log(run) if log is None else log
    vocabs = getattr(data, "vocabs", None)
    if vocabs is not None and any(vocabs[k].ids_ != log.vocabs[k].ids_ for k in ("user", "item", "cate")):
        raise CheckpointError("the run's data and the raw log disagree on the vocabularies")
    before_day = run_test_day(run) + 1 if before_day is None else before_day
    cut_time = TAOBAO_START + before_day * DAY
    max_len = next(f.max_len for f in run.schema.features if f.name == "hist_item")
    n = log.vocabs["user"].n_known
    known = log.users[log.user_first] >= 2  # users first seen on the test day have no row
    first = log.user_first[known]
    # each user's cut: its first event + its events before the cut (events are sorted by user, time)
    cut = first + np.add.reduceat((log.times < cut_time).astype(np.int64), log.user_first)[known]
    rows = log.rows(cut, np.full(len(cut), cut_time), max_len, first)
    order = np.argsort(rows["user"])  # vocabulary order: row i is user index i + 2
    rows = {k: v[order] for k, v in rows.items()}
    if len(order) != n or not (rows["user"] == np.arange(2, n + 2)).all():
        raise CheckpointError("the raw log does not hold every user of the run's vocabulary")
    zeros = np.zeros(n, np.int64)
    return {**rows, "query": zeros, "item": zeros.copy(), "cate": zeros.copy()}


@torch.no_grad()
def represent_rows(model, rows: dict[str, np.ndarray], batch: int = BATCH) -> np.ndarray:
    """r (N, R) float32 of ``rows`` by ``model.represent``, in batches, in eval mode."""
    was = model.training
    model.eval()
    names = ("user", "query", "item", "cate", "hist_item", "hist_cate", "hist_btype", "hist_gap")
    n = len(rows["user"])
    out = []
    try:
        for s in range(0, n, batch):
            b = {k: torch.as_tensor(rows[k][s:s + batch]) for k in names}
            out.append(model.represent(b)[0].float().numpy())
    finally:
        model.train(was)
    return np.concatenate(out) if out else np.zeros((0, model.repr_dim), np.float32)


def _write_parquet(path: Path, user_id: np.ndarray, vectors: np.ndarray, meta: dict[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from seqrec.io import atomic_write

    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1), type=pa.float32())
    vec = pa.ListArray.from_arrays(pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32)), flat)
    table = pa.table({"user_id": pa.array(user_id, type=pa.int64()), "vector": vec})
    table = table.replace_schema_metadata({f"seqrec.{k}": str(v) for k, v in meta.items()})
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def embed_users(run_dir: str | os.PathLike, out: str | os.PathLike, data_dir: str | None = None, *,
                before_day: int | None = None) -> dict:
    """Write every known user's representation r of the DUPN run at ``run_dir`` to the Parquet
    file ``out`` (columns ``user_id``: raw id, ``vector``: list of float32; the file's key-value
    metadata holds ``seqrec.model_sha256`` of ``model.pt``, the run and the history cut), atomically.
    Returns {"users", "dim", "seconds", "path", "model_sha256", "before_day"}."""
    from seqrec.serve.index import file_sha256

    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the directory {out.parent} does not exist")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a Parquet file name")
    run = check_dupn(run_dir, data_dir)
    log = read_log(run)
    before_day = run_test_day(run) + 1 if before_day is None else before_day
    t0 = time.perf_counter()
    rows = user_rows(run, before_day=before_day, log=log)
    vec = represent_rows(run.model, rows, run.config.eval.batch_size or BATCH)
    seconds = time.perf_counter() - t0
    sha = file_sha256(Path(run_dir) / "model.pt")
    _write_parquet(out, rows["user_key"], vec, {"model_sha256": sha, "run_dir": Path(run_dir).resolve(),
                                                "before_day": before_day, "query": 0})
    return {"users": int(vec.shape[0]), "dim": int(vec.shape[1]), "seconds": seconds, "path": str(out),
            "model_sha256": sha, "before_day": before_day}


def read_user_vectors(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """(user_id (N,), vectors (N, R) float32, metadata) of an ``embed-users`` file."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
    vec = t.column("vector").combine_chunks()
    dim = len(vec[0]) if len(vec) else 0
    flat = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return t.column("user_id").to_numpy(), flat.reshape(len(vec), dim), meta


def embed_users_cli(args: argparse.Namespace) -> int:
    r = embed_users(args.run_dir, args.out, getattr(args, "data_dir", None))
    print(f"{r['users']:,} users x {r['dim']} dims written to {r['path']} in {r['seconds']:.2f}s "
          f"(history before day {r['before_day']}, no query; model.pt sha256 {r['model_sha256'][:12]})")
    return 0
