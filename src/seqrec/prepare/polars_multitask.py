"""The ``multitask-taobao`` recipe of :mod:`seqrec.prepare.spec` as polars frames (DUPN's tasks on
the Taobao sample): the rows of :mod:`seqrec.data.tasks.taobao_multitask` built as joins over the
event table (histories as list slices of each user's events, candidates by the shared hash and
an anti-join) instead of numpy index arithmetic and a random generator.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from seqrec.data.tasks.ctr import BEHAVIOURS, DAY
from seqrec.data.vocab import Vocab
from seqrec.errors import DataValidationError
from seqrec.prepare.hashing import mix_pl
from seqrec.prepare.spec import MT_ATTEMPTS, MT_COIN, MT_CTR, MT_L2R, MT_PREF, Job, Result

PV, CART, FAV, BUY = 2, 3, 4, 5
CAT_CANDIDATES = 5
# hist_gap = 2 + #{k in 1..14: gap >= GAP_THRESHOLDS[k - 1]}: 2 + min(floor(log2(minutes + 1)), 14)
GAP_THRESHOLDS = tuple(60 * (2 ** k - 1) for k in range(1, 15))
HIST = ("hist_item", "hist_cate", "hist_btype", "hist_gap")


def columns(tasks) -> list[str]:
    """The columns of every split, in the in-memory recipe's order (then ``pos``)."""
    return ["user", "user_key", *HIST, "query", "day", "item", "cate", "task", *(f"label_{t}" for t in tasks),
            "pos"]


def read_events(job: Job) -> pl.DataFrame:
    """The log up to the end of the test day: user_id, item_id, category_id, btype (2..5),
    timestamp, day, _row (file order) - the local reader's checks and errors."""
    from seqrec.data.readers.raw_logs import TAOBAO_START, in_taobao_window, read_taobao_raw

    path = job.files[0]
    end = TAOBAO_START + (job.params["test_day"] + 1) * DAY
    df = in_taobao_window(read_taobao_raw(path), path).with_row_index("_row").filter(pl.col("timestamp") < end)
    return df.select(pl.col("user_id").cast(pl.Int64), pl.col("item_id").cast(pl.Int64),
                     pl.col("category_id").cast(pl.Int64),
                     btype=pl.col("event_type").replace_strict({b: i + 2 for i, b in enumerate(BEHAVIOURS)},
                                                               return_dtype=pl.Int64),
                     timestamp=pl.col("timestamp").cast(pl.Float64),
                     day=((pl.col("timestamp") - TAOBAO_START) // DAY).cast(pl.Int64), _row=pl.col("_row").cast(pl.Int64))


def gap_bucket(gap: pl.Expr) -> pl.Expr:
    """The bucket of a list of gaps (seconds), exact in comparisons (no floating-point log)."""
    return gap.list.eval(pl.sum_horizontal(*[(pl.element() >= t).cast(pl.Int64) for t in GAP_THRESHOLDS]) + 2)


def _codes(vocab: Vocab, raw: str, idx: str) -> pl.DataFrame:
    return pl.DataFrame({raw: pl.Series(vocab.ids_, dtype=pl.Int64), idx: np.arange(2, len(vocab), dtype=np.int64)})


def _encode(df: pl.DataFrame, vocab: Vocab, raw: str, idx: str) -> pl.DataFrame:
    return df.join(_codes(vocab, raw, idx), on=raw, how="left", maintain_order="left").with_columns(
        pl.col(idx).fill_null(1))


def _histories(rows: pl.DataFrame, lists: pl.DataFrame, max_len: int) -> pl.DataFrame:
    """``rows`` (user_id, pos = the cut, _cut_time) with the most recent ``max_len`` events before
    the cut: item, category, behaviour and gap bucket lists (oldest first) and the user index."""
    t = rows.join(lists, on="user_id").with_columns(_n=pl.min_horizontal(pl.col("pos"), max_len))
    start = pl.col("pos") - pl.col("_n")
    t = t.with_columns(hist_item=pl.col("L_item").list.slice(start, pl.col("_n")),
                       hist_cate=pl.col("L_cate").list.slice(start, pl.col("_n")),
                       hist_btype=pl.col("L_btype").list.slice(start, pl.col("_n")),
                       _gap=pl.col("_cut_time") - pl.col("L_time").list.slice(start, pl.col("_n")))
    return t.with_columns(hist_gap=gap_bucket(pl.col("_gap"))).drop("_gap", "_n", "L_item", "L_cate", "L_btype",
                                                                     "L_time")


def _pool_draw(keys: pl.DataFrame, pool: pl.DataFrame, group: list[str], refused: pl.DataFrame, seed: int,
               stream: int) -> pl.DataFrame:
    """keys (user_id, pos, *group) -> (user_id, pos, neg): the first of MT_ATTEMPTS hashed
    candidates ``pool[mix(seed, stream, user, pos, a) mod len(pool)]`` of the key's pool
    (``group`` columns; pool rows ranked ``_r`` by raw id) not in ``refused`` (user_id, item_id);
    keys without one are left out."""
    sizes = pool.group_by(group).agg(_size=pl.len().cast(pl.Int64))
    tries = (keys.select("user_id", "pos", *group).join(sizes, on=group).join(pl.DataFrame({"_a": np.arange(MT_ATTEMPTS, dtype=np.int64)}),
                                             how="cross")
             .with_columns(_r=mix_pl(seed, stream, pl.col("user_id"), pl.col("pos"), pl.col("_a")) % pl.col("_size"))
             .join(pool, on=[*group, "_r"]))
    ok = tries.join(refused, on=["user_id", "item_id"], how="anti")
    first = ok.group_by("user_id", "pos").agg(pl.col("_a").min())
    return ok.join(first, on=["user_id", "pos", "_a"]).select("user_id", "pos", neg="item_id")


def _ranked(df: pl.DataFrame, group: list[str]) -> pl.DataFrame:
    return df.unique().sort(*group, "item_id").with_columns(_r=pl.int_range(pl.len()).over(group).cast(pl.Int64))


def _viewed_draw(keys: pl.DataFrame, ev: pl.DataFrame, engaged: pl.DataFrame, seed: int) -> pl.DataFrame:
    """keys (user_id, pos, day) -> (user_id, pos, neg): candidate ``mix(seed, MT_PREF, user, pos)
    mod n`` (in event order) of the n views earlier that day of an item its user never carted,
    faved or bought; keys without one are left out."""
    views = ev.filter(pl.col("btype") == PV).select("user_id", "day", "item_id", _cpos="pos")
    cand = (keys.select("user_id", "pos", "day").join(views, on=["user_id", "day"]).filter(pl.col("_cpos") < pl.col("pos"))
            .join(engaged, on=["user_id", "item_id"], how="anti").sort("user_id", "pos", "_cpos")
            .with_columns(_k=pl.int_range(pl.len()).over("user_id", "pos"), _n=pl.len().over("user_id", "pos")))
    pick = mix_pl(seed, MT_PREF, pl.col("user_id"), pl.col("pos")) % pl.col("_n")
    return cand.filter(pl.col("_k") == pick).select("user_id", "pos", neg="item_id")


def multitask_taobao(job: Job) -> Result:
    """The ``taobao_multitask`` rows (see :mod:`seqrec.prepare.spec`)."""
    from seqrec.data.readers.raw_logs import TAOBAO_START

    p = job.params
    tasks, test_day, seed, max_len = tuple(p["tasks"]), p["test_day"], p["seed"], p["max_len"]
    df = read_events(job)
    known = df.filter(pl.col("day") < test_day).sort("timestamp", "user_id", "_row")
    if known.height == 0:
        raise DataValidationError("taobao: no event before the test day; nothing to build a vocabulary from")
    vocabs = {k: Vocab(name=k).fit(known[c].unique(maintain_order=True))
              for k, c in (("item", "item_id"), ("cate", "category_id"), ("user", "user_id"))}
    ev = df.sort("user_id", "timestamp", "_row").with_columns(pos=pl.int_range(pl.len()).over("user_id").cast(pl.Int64))
    ev = _encode(_encode(_encode(ev, vocabs["item"], "item_id", "item"), vocabs["cate"], "category_id", "cate"),
                 vocabs["user"], "user_id", "user")
    items = ev.group_by("item_id", maintain_order=True).agg(pl.col("item").first(), icate=pl.col("cate").last())
    item_cate = np.ones(len(vocabs["item"]), dtype=np.int64)
    item_cate[0] = 0
    kn = items.filter(pl.col("item") > 1)
    item_cate[kn["item"].to_numpy()] = kn["icate"].to_numpy()
    lists = ev.group_by("user_id", maintain_order=True).agg(
        pl.col("user").first(), L_item="item", L_cate="cate", L_btype="btype", L_time="timestamp")
    clicked = ev.filter(pl.col("btype") == PV).select("user_id", "item_id").unique()
    engaged = ev.filter(pl.col("btype") != PV).select("user_id", "item_id").unique()
    pairs, dropped = [], {}
    clicks = ev.filter((pl.col("btype") == PV) & (pl.col("pos") >= 1)).with_columns(
        _coin=mix_pl(seed, MT_COIN, pl.col("user_id"), pl.col("pos")) % 2)
    ev_icate = ev.join(items.select("item_id", "icate"), on="item_id")
    for task in ("ctr", "l2r", "pref"):
        if task not in tasks:
            continue
        if task == "ctr":
            keys = clicks.filter(pl.col("_coin") == 0).select("user_id", "pos", "day", "item_id", "timestamp")
            neg = _pool_draw(keys, _ranked(ev.select("day", "item_id"), ["day"]), ["day"], clicked, seed, MT_CTR)
        elif task == "l2r":
            keys = (clicks.filter(pl.col("_coin") == 1).select("user_id", "pos", "day", "item_id", "timestamp")
                    .join(items.select("item_id", "icate"), on="item_id"))
            pool = _ranked(ev_icate.select("day", "icate", "item_id"), ["day", "icate"])
            neg = _pool_draw(keys, pool, ["day", "icate"], clicked, seed, MT_L2R)
        else:
            keys = ev.filter(pl.col("btype").is_in([CART, FAV]) & (pl.col("pos") >= 1)).select(
                "user_id", "pos", "day", "item_id", "timestamp")
            neg = _viewed_draw(keys, ev, engaged, seed)
        dropped[task] = keys.height - neg.height
        rows = keys.join(neg, on=["user_id", "pos"]).join(items.select("item_id", "icate"), on="item_id")
        rows = rows.with_columns(query=pl.col("icate") if task == "l2r" else pl.lit(0, pl.Int64),
                                 task=pl.lit(tasks.index(task), pl.Int64), _cut_time=pl.col("timestamp"))
        rows = _histories(rows, lists, max_len)
        cand = items.select("item_id", "item", cate="icate")
        both = [rows.join(cand, on="item_id").with_columns(label=pl.lit(1.0, pl.Float32), _sub=pl.lit(0, pl.Int64)),
                rows.drop("item_id").rename({"neg": "item_id"}).join(cand, on="item_id")
                .with_columns(label=pl.lit(0.0, pl.Float32), _sub=pl.lit(1, pl.Int64))]
        pairs += [b.select(_out_columns()) for b in both]
    if "buy" in tasks or "cat_buy" in tasks:
        pairs += _day_rows(ev, lists, tasks, test_day, TAOBAO_START, max_len)
    rows = pl.concat(pairs)
    rows = rows.with_columns(**{f"label_{t}": pl.when(pl.col("task") == k).then(pl.col("label"))
                                .otherwise(pl.lit(-1.0, pl.Float32)).cast(pl.Float32) for k, t in enumerate(tasks)})
    rows = rows.rename({"user_id": "user_key"}).select(*columns(tasks), "_sub")
    day = pl.col("day")
    splits = {"train": rows.filter((day < test_day - 1) & (day >= p["train_from_day"])),
              "valid": rows.filter(day == test_day - 1), "test": rows.filter(day == test_day)}
    for part, frame in splits.items():
        if frame.height == 0:
            raise DataValidationError(f"{job.dataset}: the day split leaves no {part} rows (test_day = {test_day})")
    info = {"tasks": list(tasks), "test_day": test_day, "train_from_day": p["train_from_day"],
            "rows_without_negative": dropped}
    return Result(splits, vocabs, item_cate, info)


def _out_columns() -> list[str]:
    return ["user_id", "user", *HIST, "query", "day", "item", "cate", "task", "label", "pos", "_sub"]


def _day_rows(ev: pl.DataFrame, lists: pl.DataFrame, tasks, test_day: int, day0: float,
              max_len: int) -> list[pl.DataFrame]:
    """``buy`` rows (user, day d in 1..test_day with earlier events; cut = the events before d)
    and ``cat_buy`` rows (each of the most recent distinct known categories of that history)."""
    per_day = ev.group_by("user_id", "day").agg(_c=pl.len())
    days = pl.DataFrame({"_d": np.arange(1, test_day + 1, dtype=np.int64)})
    cuts = (per_day.join(days, how="cross").filter(pl.col("day") < pl.col("_d"))
            .group_by("user_id", "_d").agg(pos=pl.col("_c").sum().cast(pl.Int64)).rename({"_d": "day"}))
    base = _histories(cuts.with_columns(_cut_time=day0 + pl.col("day").cast(pl.Float64) * DAY), lists, max_len)
    out = []
    if "buy" in tasks:
        bought = ev.filter(pl.col("btype") == BUY).select("user_id", "day").unique().with_columns(_b=pl.lit(True))
        buy = (base.join(bought, on=["user_id", "day"], how="left")
               .with_columns(label=pl.col("_b").fill_null(False).cast(pl.Float32), query=pl.lit(0, pl.Int64),
                             item=pl.lit(0, pl.Int64), cate=pl.lit(0, pl.Int64),
                             task=pl.lit(tasks.index("buy"), pl.Int64), _sub=pl.lit(0, pl.Int64)))
        out.append(buy.select(_out_columns()))
    if "cat_buy" in tasks:
        bought = (ev.filter((pl.col("btype") == BUY) & (pl.col("cate") > 1)).select("user_id", "day", "cate")
                  .unique().with_columns(_b=pl.lit(True)))
        recent = pl.col("hist_cate").list.reverse().list.eval(pl.element().filter(pl.element() > 1))
        cat = (base.with_columns(_rc=recent.list.unique(maintain_order=True).list.head(CAT_CANDIDATES))
               .filter(pl.col("_rc").list.len() > 0)
               .with_columns(_sub=pl.int_ranges(0, pl.col("_rc").list.len())).explode("_rc", "_sub")
               .with_columns(cate=pl.col("_rc"), query=pl.col("_rc"), item=pl.lit(0, pl.Int64),
                             task=pl.lit(tasks.index("cat_buy"), pl.Int64))
               .join(bought, on=["user_id", "day", "cate"], how="left")
               .with_columns(label=pl.col("_b").fill_null(False).cast(pl.Float32), _sub=pl.col("_sub").cast(pl.Int64)))
        out.append(cat.select(_out_columns()))
    return out
