"""The polars engine of ``seqrec prepare`` (the default): the stages of :mod:`seqrec.prepare.spec`
as polars frames, on one machine.

Where the local pipeline already has a polars stage (the readers with their one-line errors,
the sessionizer, the split stage of SR-GNN folders) this engine calls it, so its output is the
in-memory recipe's by construction; the CTR samples and the BARS lists are built here as frame
joins (list slices for histories, an anti-join for negatives) instead of numpy index arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

import seqrec.prepare.layout as layout
from seqrec.data.tasks.ctr import BEHAVIOURS, DAY, log_behaviours
from seqrec.data.vocab import Vocab
from seqrec.errors import DataValidationError
from seqrec.prepare.hashing import SHARD_SALT, mix_pl
from seqrec.prepare.spec import (
    NEG_ATTEMPTS,
    Job,
    Result,
    amazon_attributes,
    amazon_item_cate,
    n_train_sessions,
    srgnn_tables,
)


def run(job: Job, root: Path, shards: int) -> dict:
    """Build ``job`` and write its splits, vocabularies and ``item_cate`` under ``root``."""
    if job.kind == "multitask-taobao":
        from seqrec.prepare.polars_multitask import multitask_taobao as build
    else:
        build = {"session-given": session_given, "ctr-amazon": ctr_amazon, "ctr-log": ctr_log,
                 "retrieval-bars": retrieval_bars}[job.kind]
    res = build(job)
    write_result(root, job.family, res, shards)
    return res.info


def write_result(root: Path, family: str, res: Result, shards: int) -> None:
    def write(frame, root: Path, split: str, family: str, shards: int) -> None:
        write_split(frame.lazy().collect() if isinstance(frame, pl.LazyFrame) else frame, root, split, family,
                    shards)

    layout.write_result(root, family, res, shards, write)


def write_split(df: pl.DataFrame, root: Path, split: str, family: str, shards: int) -> None:
    """Shard ``df`` by its key's hash, sort each shard, drop helper columns (``_*``), write."""
    key = layout.SHARD_KEYS.get(family, "user")
    sort, desc = layout.sort_order(family)
    df = df.with_columns(_shard=mix_pl(SHARD_SALT, pl.col(key)) % shards)
    keep = [c for c in df.columns if not c.startswith("_")]
    (root / split).mkdir(parents=True, exist_ok=True)
    parts = {k[0]: v for k, v in df.partition_by("_shard", as_dict=True).items()}
    for s in range(shards):
        part = parts.get(s)
        path = root / split / layout.part_name(s)
        if part is None:
            df.head(0).select(keep).write_parquet(path)
        else:
            part.sort(sort, descending=desc, maintain_order=True).select(keep).write_parquet(path)


# -- session: SR-GNN given splits ----------------------------------------------------------------------


def _first_seen_vocab(df: pl.DataFrame, column: str, name: str) -> Vocab:
    return Vocab(name=name).fit(df[column].unique(maintain_order=True))


def session_given(job: Job) -> Result:
    """The SR-GNN split (see :mod:`seqrec.prepare.spec`) with the local split stage's own code."""
    from seqrec.data.split import restrict_to_train

    p = job.params
    tf, te = srgnn_tables(job.folder)
    starts = tf["session_id"] != tf["session_id"].shift(1)
    rank = starts.fill_null(True).cast(pl.Int64).cum_sum() - 1
    n_train = n_train_sessions(int(rank.max()) + 1, p["valid_fraction"])
    train, valid = restrict_to_train(tf.filter(rank < n_train), tf.filter(rank >= n_train),
                                     p["min_session_length"])
    tables = {"train": train, "valid": valid, "test": te, "train_full": tf}
    for part, df in tables.items():
        if df.height == 0:
            raise DataValidationError(f"{job.dataset}: the given split leaves no {part} events; "
                                      "change [data.split] (more test days / a larger fraction)")
    tables = {k: _canonical(v) for k, v in tables.items()}
    vocab = _first_seen_vocab(tables[p["train_split"]], "item_id", "item")
    codes = pl.DataFrame({"item_id": pl.Series(vocab.ids_, dtype=tf.schema["item_id"]),
                          "item": np.arange(2, len(vocab), dtype=np.int64)})
    out = {k: v.join(codes, on="item_id", how="left", maintain_order="left")
           .with_columns(pl.col("item").fill_null(1))
           .select("session_id", "item_id", "item", "timestamp", "_start", "_first", "_row")
           for k, v in tables.items()}
    info = {"rows": {k: v.height for k, v in out.items()}, "vocab_from": p["train_split"]}
    return Result(out, {"item": vocab}, info=info)


def _canonical(df: pl.DataFrame) -> pl.DataFrame:
    """Sessions by first event time then first row, rows in order inside (``order_sessions``)."""
    df = df.with_columns(_start=pl.col("timestamp").min().over("session_id"),
                         _first=pl.col("_row").min().over("session_id"))
    return df.sort(["_start", "_first", "_row"])


# -- CTR samples -----------------------------------------------------------------------------------------


def _lines(path: Path) -> pl.DataFrame:
    """``user item item ...`` lines: (line, user, pos, item) with pos 0-based in the line's items."""
    text = Path(path).read_text().splitlines()
    df = pl.DataFrame({"line": pl.Series(text, dtype=pl.String)}).with_row_index("lineno", offset=1)
    df = df.with_columns(tok=pl.col("line").str.extract_all(r"\S+"))
    short = df.filter(pl.col("tok").list.len() < 2)
    if short.height:
        r = short.row(0, named=True)
        raise DataValidationError(f"{path}:{r['lineno']}: expected 'user item item ...', got {r['line']!r}")
    ev = (df.with_columns(tpos=pl.int_ranges(0, pl.col("tok").list.len()))
          .explode("tok", "tpos").with_columns(v=pl.col("tok").cast(pl.Int64, strict=False)))
    bad = ev.filter(pl.col("v").is_null())
    if bad.height:
        r = bad.row(0, named=True)
        raise DataValidationError(f"{path}:{r['lineno']}: {r['tok']!r} is not an integer id")
    users = ev.filter(pl.col("tpos") == 0).select("lineno", user_raw="v")
    dup = users.filter(pl.col("user_raw").is_duplicated() & ~pl.col("user_raw").is_first_distinct())
    if dup.height:
        r = dup.row(0, named=True)
        raise DataValidationError(f"{path}:{r['lineno']}: user {r['user_raw']} is on an earlier line too; "
                                  "give each user one line")
    return (ev.filter(pl.col("tpos") > 0).join(users, on="lineno")
            .select("lineno", "user_raw", pos=(pl.col("tpos") - 1).cast(pl.Int64), item_raw="v"))


def _codes(vocab: Vocab, raw: str, idx: str, dtype=pl.Int64) -> pl.DataFrame:
    return pl.DataFrame({raw: pl.Series(vocab.ids_, dtype=dtype),
                         idx: np.arange(2, len(vocab), dtype=np.int64)})


def _negatives(keys: pl.DataFrame, touched: pl.DataFrame, n_items: int, seed: int, stream: int) -> pl.DataFrame:
    """(user, pos) -> (neg, fallback): the first of NEG_ATTEMPTS hashed candidates not in
    ``touched`` (user, item); the last candidate when every one is."""
    if n_items <= 2:
        raise DataValidationError("could not draw negatives: the catalogue has no item")

    def cand(a):
        return 2 + mix_pl(seed, stream, pl.col("user"), pl.col("pos"), a) % (n_items - 2)

    tries = keys.join(pl.DataFrame({"_a": np.arange(NEG_ATTEMPTS, dtype=np.int64)}), how="cross")
    tries = tries.with_columns(item=cand(pl.col("_a")))
    ok = (tries.join(touched, on=["user", "item"], how="anti")
          .group_by("user", "pos").agg(pl.col("_a").min()))
    out = keys.join(ok, on=["user", "pos"], how="left")
    return out.select("user", "pos", neg=cand(pl.col("_a").fill_null(NEG_ATTEMPTS - 1)),
                      fallback=pl.col("_a").is_null())


def _samples(ev: pl.DataFrame, targets: pl.DataFrame, touched: pl.DataFrame, item_cate: np.ndarray,
             job: Job, seq_cols: tuple[str, ...]) -> tuple[pl.DataFrame, int]:
    """Label-1 and label-0 rows of every target (user, pos): histories are list slices of the
    user's events (the most recent ``max_len`` before pos), negatives hashed (module spec)."""
    max_len, seed, n_items = job.params["max_len"], job.params["seed"], len(item_cate)
    ic = pl.DataFrame({"item": np.arange(n_items, dtype=np.int64), "icate": np.asarray(item_cate, np.int64)})
    evneg = _negatives(ev.select("user", "pos"), touched, n_items, seed, 1)
    ev = (ev.join(evneg.select("user", "pos", "neg"), on=["user", "pos"])
          .join(ic.rename({"item": "neg", "icate": "neg_cate"}), on="neg"))
    lists = ev.sort("user", "pos").group_by("user", maintain_order=True).agg(
        *[pl.col(c).alias(f"L_{c}") for c in (*seq_cols, "neg", "neg_cate")])
    t = targets.join(lists, on="user").with_columns(_n=pl.min_horizontal(pl.col("pos"), max_len))
    start = pl.col("pos") - pl.col("_n")
    hist = {f"hist_{c}": pl.col(f"L_{c}").list.slice(start, pl.col("_n")) for c in seq_cols}
    hist.update(neg_hist_item=pl.col("L_neg").list.slice(start, pl.col("_n")),
                neg_hist_cate=pl.col("L_neg_cate").list.slice(start, pl.col("_n")))
    t = t.with_columns(**hist, hist_len=pl.col("_n").cast(pl.Int64)).drop([c for c in t.columns if c[:2] == "L_"])
    neg = _negatives(targets.select("user", "pos"), touched, n_items, seed, 0)
    fallback = int(neg["fallback"].sum())
    negrows = (t.join(neg.select("user", "pos", "neg"), on=["user", "pos"])
               .join(ic.rename({"item": "neg"}), on="neg")
               .with_columns(item=pl.col("neg"), cate=pl.col("icate"), label=pl.lit(0.0, pl.Float32))
               .drop("neg", "icate"))
    pos = t.with_columns(label=pl.lit(1.0, pl.Float32))
    return pl.concat([pos, negrows.select(pos.columns)]), fallback


AMAZON_COLUMNS = ("user", "item", "cate", "label", "pos", "hist_item", "hist_cate", "hist_len",
                  "neg_hist_item", "neg_hist_cate")
LOG_COLUMNS = ("user", "item", "cate", "label", "pos", "hist_item", "hist_cate", "hist_btype", "hist_session",
               "hist_time", "time", "hist_len", "neg_hist_item", "neg_hist_cate")


def ctr_amazon(job: Job) -> Result:
    """The ``amazon_ctr`` samples (see :mod:`seqrec.prepare.spec`)."""
    seq_path, attr_path = job.files
    attrs = amazon_attributes(attr_path)
    ev = _lines(seq_path)
    item_vocab = Vocab(name="item").fit(sorted(set(attrs) | set(ev["item_raw"].unique().to_list())))
    cate_vocab = Vocab(name="cate").fit(sorted({v for v in attrs.values() if v is not None}))
    user_vocab = Vocab(name="user").fit(ev["user_raw"].unique().sort())
    item_cate = amazon_item_cate(item_vocab, cate_vocab, attrs)
    ic = pl.DataFrame({"item": np.arange(len(item_cate), dtype=np.int64), "cate": item_cate})
    ev = (ev.join(_codes(item_vocab, "item_raw", "item"), on="item_raw")
          .join(_codes(user_vocab, "user_raw", "user"), on="user_raw")
          .join(ic, on="item").select("user", "pos", "item", "cate")
          .with_columns(_nu=pl.len().over("user")))
    targets = ev.filter(pl.col("pos") >= 1)
    rows, fallback = _samples(ev, targets, ev.select("user", "item").unique(), item_cate, job, ("item", "cate"))
    from_end = pl.col("_nu") - pl.col("pos")
    splits = {"test": rows.filter(from_end == 1), "valid": rows.filter(from_end == 2),
              "train": rows.filter(from_end > 2)}
    splits = {k: v.select(*AMAZON_COLUMNS) for k, v in splits.items()}
    info = {"rows": {k: v.height for k, v in splits.items()}, "negatives_touched": fallback}
    return Result(splits, {"item": item_vocab, "cate": cate_vocab, "user": user_vocab}, item_cate, info)


def read_log(job: Job) -> pl.DataFrame:
    """The behaviour log of a ``ctr-log`` job with the local readers (their errors are the spec's)."""
    if job.own is not None:
        from seqrec.data.own import user_log

        return user_log(job.own, "CTR")
    from seqrec.data.readers.raw_logs import in_taobao_window, read_taobao_raw

    return in_taobao_window(read_taobao_raw(job.files[0]))


def ctr_log(job: Job) -> Result:
    """The ``log_ctr`` samples (see :mod:`seqrec.prepare.spec`)."""
    from seqrec.data.sessionize import sessionize

    p, name = job.params, job.dataset
    df = log_behaviours(read_log(job), name)
    df = sessionize(df, gap_seconds=p["session_gap"])  # sorted by (user, time, input row)
    vocabs = {k: Vocab(name=k).fit(df[c].unique().sort())
              for k, c in (("item", "item_id"), ("cate", "category_id"), ("user", "user_id"))}
    ev = (df.with_columns(pos=pl.int_range(pl.len()).over("user_id").cast(pl.Int64), _o=pl.int_range(pl.len()))
          .join(_codes(vocabs["item"], "item_id", "item", df.schema["item_id"]), on="item_id")
          .join(_codes(vocabs["cate"], "category_id", "cate", df.schema["category_id"]), on="category_id")
          .join(_codes(vocabs["user"], "user_id", "user", df.schema["user_id"]), on="user_id")
          .sort("_o")
          .select("user", "pos", "item", "cate",
                  btype=pl.col("btype").replace_strict({b: i + 2 for i, b in enumerate(BEHAVIOURS)},
                                                       return_dtype=pl.Int64),
                  session=pl.col("session_id").cast(pl.Int64), time="timestamp"))
    last = ev.group_by("item").agg(pl.col("cate").last())  # ev is in (user, time, row) order
    item_cate = np.ones(len(vocabs["item"]), dtype=np.int64)
    item_cate[0] = 0
    item_cate[last["item"].to_numpy()] = last["cate"].to_numpy()
    targets = ev.filter((pl.col("pos") >= 1) & (pl.col("btype") == 2))
    if targets.height == 0:
        raise DataValidationError(f"{name}: no click has an earlier behaviour of its user; nothing to learn")
    clicked = ev.filter(pl.col("btype") == 2).select("user", "item").unique()
    rows, fallback = _samples(ev, targets, clicked, item_cate, job, ("item", "cate", "btype", "session", "time"))
    times = df["timestamp"]
    day0 = float(times.min()) if p["day0"] is None else p["day0"]
    width = p["test_days"] * DAY
    period = ((pl.col("time") - day0) / width).floor()
    last_p = float(np.floor((float(times.max()) - day0) / width))
    splits = {"test": rows.filter(period >= last_p), "valid": rows.filter((period < last_p) & (period >= last_p - 1)),
              "train": rows.filter(period < last_p - 1)}
    for part in ("train", "valid", "test"):
        if splits[part].height == 0:
            raise DataValidationError(f"{name}: the time split leaves no {part} samples "
                                      f"(test_days = {p['test_days']:g}); the log spans too few days")
    splits = {k: v.select(*LOG_COLUMNS) for k, v in splits.items()}
    info = {"rows": {k: v.height for k, v in splits.items()}, "negatives_touched": fallback, "day0": day0}
    return Result(splits, vocabs, item_cate, info)


# -- retrieval: BARS ------------------------------------------------------------------------------------


def _user_lines(path: Path) -> pl.DataFrame:
    """``read_user_lines`` as a frame: (line, user_raw, item_raw) in file order, its errors."""
    from seqrec.data.tasks.retrieval import read_user_lines

    users, rows = read_user_lines(path)
    lens = np.fromiter((len(r) for r in rows), np.int64, len(rows))
    return pl.DataFrame({"_line": np.repeat(np.arange(len(rows), dtype=np.int64), lens),
                         "user_raw": np.repeat(users, lens), "item_raw": np.concatenate(rows)})


def retrieval_bars(job: Job) -> Result:
    """The ``bars_task`` lists (see :mod:`seqrec.prepare.spec`)."""
    from seqrec.errors import ConfigError
    from seqrec.prepare.hashing import HOLDOUT_SALT

    p = job.params
    if p["train_split"] not in ("train", "train_full"):
        raise ConfigError(f"data.train_split must be 'train' or 'train_full', got {p['train_split']!r}")
    tr_path, te_path = job.files
    tr, te = _user_lines(tr_path), _user_lines(te_path)
    if tr.select("_line", "user_raw").unique()["user_raw"].is_duplicated().any():
        raise DataValidationError(f"{tr_path}: a user appears on two lines")
    users = Vocab(name="user").fit(pl.concat([tr["user_raw"], te["user_raw"]]).unique().sort())
    items = Vocab(name="item").fit(pl.concat([tr["item_raw"], te["item_raw"]]).unique().sort())
    uc = pl.DataFrame({"user_raw": users.ids_, "user": np.arange(users.n_known, dtype=np.int64)})
    ic = pl.DataFrame({"item_raw": items.ids_, "item": np.arange(1, items.n_known + 1, dtype=np.int64)})
    tr = tr.join(uc, on="user_raw").join(ic, on="item_raw").select("_line", "user", "item").unique()
    te = te.join(uc, on="user_raw").join(ic, on="item_raw").select("_line", "user", "item").unique()
    clash = te.join(tr.select("user", "item"), on=["user", "item"], how="semi")
    if clash.height:
        line = int(clash["_line"].min())
        raw = te.filter(pl.col("_line") == line).join(uc, on="user")["user_raw"][0]
        raise DataValidationError(f"{te_path}: user {raw} has test items that are also train items "
                                  "(BARS splits never do)")
    tr = tr.drop("_line")
    valid = tr.head(0)
    if p["train_split"] == "train":
        n = pl.len().over("user")
        hold = pl.max_horizontal((n * p["valid_fraction"]).round(0, mode="half_to_even").cast(pl.Int64), 1)
        rank = pl.col("_h").rank("ordinal").over("user")
        tr = tr.with_columns(_h=mix_pl(p["seed"], HOLDOUT_SALT, pl.col("user"), pl.col("item")) * (1 << 31)
                             + pl.col("item"))
        held = (n >= 2) & (rank <= hold)
        valid, tr = tr.filter(held).drop("_h"), tr.filter(~held).drop("_h")
    every = pl.DataFrame({"user": np.arange(users.n_known, dtype=np.int64), "_line": 0})

    def lists(df: pl.DataFrame, all_users: bool) -> pl.DataFrame:
        df = df.with_columns(_line=pl.col("_line") if "_line" in df.columns else pl.lit(0, pl.Int64))
        g = df.sort("item").group_by("user", "_line").agg(items=pl.col("item"))
        if all_users:
            g = every.join(g, on=["user", "_line"], how="left").with_columns(
                pl.col("items").fill_null(pl.lit([], pl.List(pl.Int64))))
        return g.select("user", "items", "_line")

    splits = {"train": lists(tr, True), "valid": lists(valid, False), "test": lists(te, False)}
    info = {"rows": {k: v.height for k, v in splits.items()}, "train_split": p["train_split"],
            "index_base": {"item": 1, "user": 0}}
    return Result(splits, {"item": items, "user": users}, info=info)
