"""The ``multitask-taobao`` recipe of :mod:`seqrec.prepare.spec` as Spark DataFrame jobs: the rows
:mod:`seqrec.prepare.polars_multitask` builds, histories as array slices of each user's events,
candidates by the shared hash and an anti-join, the gap buckets as integer comparisons in a
higher-order ``transform``."""

from __future__ import annotations

import numpy as np

from seqrec.data.vocab import Vocab
from seqrec.errors import DataValidationError
from seqrec.prepare.hashing import mix_spark
from seqrec.prepare.polars_multitask import (
    BEHAVIOURS,
    BUY,
    CART,
    CAT_CANDIDATES,
    DAY,
    FAV,
    GAP_THRESHOLDS,
    PV,
    columns,
)
from seqrec.prepare.spark_read import codes
from seqrec.prepare.spec import MT_ATTEMPTS, MT_COIN, MT_CTR, MT_L2R, MT_PREF, Job, Result


def _F():
    from pyspark.sql import functions as F

    return F


def _long(v):
    return _F().lit(v).cast("long")


def read_events(spark, job: Job):
    """``polars_multitask.read_events`` on Spark: the Taobao reader's checks, the test-day cut."""
    import seqrec.prepare.spark_logs as spark_logs
    from seqrec.data.readers.raw_logs import TAOBAO_START

    F = _F()
    end = TAOBAO_START + (job.params["test_day"] + 1) * DAY
    df = spark_logs.read_taobao(spark, job.files[0]).filter(F.col("timestamp") < end)
    btype = F.lit(None).cast("long")
    for i, b in enumerate(BEHAVIOURS):
        btype = F.when(F.col("event_type") == b, _long(i + 2)).otherwise(btype)
    return df.select("user_id", "item_id", "category_id", btype.alias("btype"), "timestamp",
                     F.floor((F.col("timestamp") - TAOBAO_START) / DAY).cast("long").alias("day"), "_rowno")


def _first_seen(df, col: str) -> list:
    """The distinct values of ``col`` in order of first appearance by (time, user, file row)."""
    F = _F()
    rows = df.groupBy(col).agg(F.min(F.struct("timestamp", "user_id", "_rowno")).alias("o")).orderBy("o").collect()
    return [r[0] for r in rows]


def _gap_bucket(gaps):
    F = _F()

    def bucket(x):
        out = _long(2)
        for t in GAP_THRESHOLDS:
            out = out + F.when(x >= t, _long(1)).otherwise(_long(0))
        return out

    return F.transform(gaps, bucket)


def _histories(rows, lists, max_len: int):
    """``rows`` (user_id, pos = the cut, _cut_time) with their history lists and user index."""
    F = _F()
    t = rows.join(lists, on="user_id").withColumn("_n", F.least(F.col("pos"), _long(max_len)))
    h = F.slice("L", F.col("pos") - F.col("_n") + 1, F.col("_n"))
    t = t.withColumn("_h", h)
    return (t.withColumns({"hist_item": F.col("_h").getField("item"), "hist_cate": F.col("_h").getField("cate"),
                           "hist_btype": F.col("_h").getField("btype"),
                           "hist_gap": _gap_bucket(F.transform(F.col("_h").getField("timestamp"),
                                                               lambda x: F.col("_cut_time") - x))})
            .drop("_h", "_n", "L"))


def _pool_draw(spark, keys, pool, group: list[str], refused, seed: int, stream: int):
    """``polars_multitask._pool_draw``: the first accepted of MT_ATTEMPTS hashed pool candidates
    (one aggregation of the accepted tries, ``min((attempt, item))`` per key)."""
    from pyspark.sql import Window

    F = _F()
    pool = pool.distinct().withColumn("_r", (F.row_number().over(Window.partitionBy(*group).orderBy("item_id")) - 1)
                                      .cast("long"))
    sizes = pool.groupBy(*group).agg(F.count("*").cast("long").alias("_size"))
    tries = (keys.select("user_id", "pos", *group).join(sizes, on=group)
             .crossJoin(F.broadcast(spark.range(MT_ATTEMPTS).withColumnRenamed("id", "_a")))
             .withColumn("_r", mix_spark(seed, stream, F.col("user_id"), F.col("pos"), F.col("_a")) % F.col("_size"))
             .join(pool, on=[*group, "_r"]))
    ok = tries.join(refused, on=["user_id", "item_id"], how="left_anti")
    return ok.groupBy("user_id", "pos").agg(F.min(F.struct("_a", "item_id")).getField("item_id").alias("neg"))


def _viewed_draw(keys, ev, engaged, seed: int):
    """``polars_multitask._viewed_draw``: the hashed one of the same-day earlier unengaged views."""
    from pyspark.sql import Window

    F = _F()
    views = ev.filter(F.col("btype") == PV).select("user_id", "day", "item_id", F.col("pos").alias("_cpos"))
    by = Window.partitionBy("user_id", "pos")
    cand = (keys.select("user_id", "pos", "day").join(views, on=["user_id", "day"]).filter(F.col("_cpos") < F.col("pos"))
            .join(engaged, on=["user_id", "item_id"], how="left_anti")
            .withColumn("_k", (F.row_number().over(by.orderBy("_cpos")) - 1).cast("long"))
            .withColumn("_n", F.count("*").over(by)))
    pick = mix_spark(seed, MT_PREF, F.col("user_id"), F.col("pos")) % F.col("_n")
    return cand.filter(F.col("_k") == pick).select("user_id", "pos", F.col("item_id").alias("neg"))


OUT = ["user_id", "user", "hist_item", "hist_cate", "hist_btype", "hist_gap", "query", "day", "item", "cate", "task",
       "label", "pos", "_sub"]


def multitask_taobao(spark, job: Job) -> Result:
    """The ``taobao_multitask`` rows of :mod:`seqrec.prepare.spec`."""
    from pyspark.sql import Window

    from seqrec.data.readers.raw_logs import TAOBAO_START

    F = _F()
    p = job.params
    tasks, test_day, seed, max_len = tuple(p["tasks"]), p["test_day"], p["seed"], p["max_len"]
    df = read_events(spark, job).cache()
    known = df.filter(F.col("day") < test_day)
    if known.limit(1).count() == 0:
        raise DataValidationError("taobao: no event before the test day; nothing to build a vocabulary from")
    vocabs = {k: Vocab(name=k).fit(_first_seen(known, c))
              for k, c in (("item", "item_id"), ("cate", "category_id"), ("user", "user_id"))}
    w = Window.partitionBy("user_id").orderBy("timestamp", "_rowno")
    ev = df.withColumn("pos", (F.row_number().over(w) - 1).cast("long"))
    for k, raw in (("item", "item_id"), ("cate", "category_id"), ("user", "user_id")):
        ev = ev.join(F.broadcast(codes(spark, vocabs[k].ids_, raw, k)), on=raw, how="left").withColumn(
            k, F.coalesce(F.col(k), _long(1)))
    ev = ev.cache()
    items = ev.groupBy("item_id").agg(F.first("item").alias("item"),
                                      F.max_by("cate", F.struct("user_id", "pos")).alias("icate")).cache()
    known_items = items.filter(F.col("item") > 1).select("item", "icate").collect()
    item_cate = np.ones(len(vocabs["item"]), dtype=np.int64)
    item_cate[0] = 0
    item_cate[np.asarray([r[0] for r in known_items], np.int64)] = np.asarray([r[1] for r in known_items], np.int64)
    lists = ev.groupBy("user_id").agg(F.first("user").alias("user"), F.sort_array(F.collect_list(
        F.struct("pos", "item", "cate", "btype", "timestamp"))).alias("L")).cache()
    clicked = ev.filter(F.col("btype") == PV).select("user_id", "item_id").distinct().cache()
    engaged = ev.filter(F.col("btype") != PV).select("user_id", "item_id").distinct().cache()
    clicks = ev.filter((F.col("btype") == PV) & (F.col("pos") >= 1)).withColumn(
        "_coin", mix_spark(seed, MT_COIN, F.col("user_id"), F.col("pos")) % 2).cache()
    cand_items = F.broadcast(items.select("item_id", "item", F.col("icate").alias("cate")))
    icate = F.broadcast(items.select("item_id", "icate"))
    keyed = []
    for task in ("ctr", "l2r", "pref"):
        if task not in tasks:
            continue
        if task == "ctr":
            keys = clicks.filter(F.col("_coin") == 0).select("user_id", "pos", "day", "item_id", "timestamp")
            neg = _pool_draw(spark, keys, ev.select("day", "item_id"), ["day"], clicked, seed, MT_CTR)
        elif task == "l2r":
            keys = clicks.filter(F.col("_coin") == 1).select("user_id", "pos", "day", "item_id", "timestamp")
            keys = keys.join(icate, on="item_id")
            neg = _pool_draw(spark, keys, ev.select("day", "item_id").join(icate, on="item_id"), ["day", "icate"],
                             clicked, seed, MT_L2R)
        else:
            keys = ev.filter(F.col("btype").isin(CART, FAV) & (F.col("pos") >= 1)).select(
                "user_id", "pos", "day", "item_id", "timestamp")
            neg = _viewed_draw(keys, ev, engaged, seed)
        if task != "l2r":
            keys = keys.join(icate, on="item_id")
        keyed.append(keys.join(neg, on=["user_id", "pos"], how="left").select(
            "user_id", "pos", "day", "item_id", "neg", (F.col("icate") if task == "l2r" else _long(0)).alias("query"),
            _long(tasks.index(task)).alias("task"), F.col("timestamp").alias("_cut_time")))
    if "buy" in tasks or "cat_buy" in tasks:  # day rows: task -1 until they are split into buy / cat_buy
        keyed.append(_day_cuts(spark, ev, test_day, TAOBAO_START))
    rows = keyed[0]
    for k in keyed[1:]:
        rows = rows.unionByName(k)
    hist = _histories(rows, lists, max_len).cache()
    counts = {r[0]: (r[1], r[2]) for r in hist.groupBy("task").agg(F.count("*"), F.count("neg")).collect()}
    dropped = {t: counts[tasks.index(t)][0] - counts[tasks.index(t)][1] for t in ("ctr", "l2r", "pref") if t in tasks}
    two = F.array(F.struct(F.col("_p").alias("item_id"), F.lit(1.0).cast("float").alias("label"),
                           _long(0).alias("_sub")),
                  F.struct(F.col("neg").alias("item_id"), F.lit(0.0).cast("float").alias("label"),
                           _long(1).alias("_sub")))
    pairs = (hist.filter((F.col("task") >= 0) & F.col("neg").isNotNull()).withColumnRenamed("item_id", "_p")
             .select("*", F.explode(two).alias("_x")).select("*", "_x.*").drop("_x", "_p", "neg")
             .join(cand_items, on="item_id"))
    parts = [pairs.select(*OUT)]
    if "buy" in tasks or "cat_buy" in tasks:
        parts += _day_rows(ev, hist.filter(F.col("task") < 0), tasks)
    rows = parts[0]
    for r in parts[1:]:
        rows = rows.unionByName(r)
    rows = rows.withColumns({f"label_{t}": F.when(F.col("task") == k, F.col("label")).otherwise(F.lit(-1.0))
                             .cast("float") for k, t in enumerate(tasks)})
    rows = rows.withColumnRenamed("user_id", "user_key").select(*columns(tasks), "_sub").cache()
    counts = {r[0]: r[1] for r in rows.groupBy("day").count().collect()}  # materialises the cache
    for frame in (df, ev, items, lists, clicked, engaged, clicks, hist):  # the writes read ``rows`` alone
        frame.unpersist()
    parts = {"train": (F.col("day") < test_day - 1) & (F.col("day") >= p["train_from_day"]),
             "valid": F.col("day") == test_day - 1, "test": F.col("day") == test_day}
    have = {"train": sum(n for d, n in counts.items() if p["train_from_day"] <= d < test_day - 1),
            "valid": counts.get(test_day - 1, 0), "test": counts.get(test_day, 0)}
    for part in parts:
        if not have[part]:
            raise DataValidationError(f"{job.dataset}: the day split leaves no {part} rows (test_day = {test_day})")
    info = {"tasks": list(tasks), "test_day": test_day, "train_from_day": p["train_from_day"],
            "rows_without_negative": dropped}
    return Result({k: rows.filter(c) for k, c in parts.items()}, vocabs, item_cate, info)


def _day_cuts(spark, ev, test_day: int, day0: float):
    """The keys of the day rows: (user, day d in 1..test_day) with the user's events before d (pos =
    their number, the cut), in the columns of the event rows' keys (task -1)."""
    F = _F()
    per_day = ev.groupBy("user_id", "day").agg(F.count("*").cast("long").alias("_c"))
    days = spark.range(1, test_day + 1).withColumnRenamed("id", "_d")
    cuts = (per_day.crossJoin(days).filter(F.col("day") < F.col("_d")).groupBy("user_id", "_d")
            .agg(F.sum("_c").cast("long").alias("pos")).withColumnRenamed("_d", "day"))
    return cuts.select("user_id", "pos", "day", F.lit(None).cast("long").alias("item_id"),
                       F.lit(None).cast("long").alias("neg"), _long(0).alias("query"), _long(-1).alias("task"),
                       (F.lit(float(day0)) + F.col("day").cast("double") * DAY).alias("_cut_time"))


def _day_rows(ev, base, tasks) -> list:
    """``polars_multitask._day_rows`` from the day rows' histories ``base``: buy rows per (user,
    day) and cat_buy rows per recent category."""
    F = _F()
    out = []
    if "buy" in tasks:
        bought = ev.filter(F.col("btype") == BUY).select("user_id", "day").distinct().withColumn("_b", F.lit(True))
        buy = (base.join(bought, on=["user_id", "day"], how="left")
               .withColumns({"label": F.coalesce(F.col("_b"), F.lit(False)).cast("float"), "query": _long(0),
                             "item": _long(0), "cate": _long(0), "task": _long(tasks.index("buy")), "_sub": _long(0)}))
        out.append(buy.select(*OUT))
    if "cat_buy" in tasks:
        bought = (ev.filter((F.col("btype") == BUY) & (F.col("cate") > 1)).select("user_id", "day", "cate")
                  .distinct().withColumn("_b", F.lit(True)))
        recent = F.slice(F.array_distinct(F.filter(F.reverse("hist_cate"), lambda x: x > 1)), 1, CAT_CANDIDATES)
        cat = (base.select("*", F.posexplode(recent).alias("_sub", "cate"))
               .withColumns({"query": F.col("cate"), "item": _long(0), "task": _long(tasks.index("cat_buy")),
                             "_sub": F.col("_sub").cast("long")})
               .join(bought, on=["user_id", "day", "cate"], how="left")
               .withColumn("label", F.coalesce(F.col("_b"), F.lit(False)).cast("float")))
        out.append(cat.select(*OUT))
    return out
