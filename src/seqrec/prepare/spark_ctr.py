"""The CTR recipes of :mod:`seqrec.prepare.spec` as Spark DataFrame jobs (``ctr-amazon``,
``ctr-log``): the same rows as :mod:`seqrec.prepare.polars_engine` builds, histories as array
slices of each user's events, negatives by the shared hash and an anti-join."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqrec.data.vocab import Vocab
from seqrec.errors import DataValidationError
from seqrec.prepare.hashing import mix_spark
from seqrec.prepare.polars_engine import AMAZON_COLUMNS, BEHAVIOURS, DAY, LOG_COLUMNS
from seqrec.prepare.spark_read import codes, sorted_distinct
from seqrec.prepare.spec import NEG_ATTEMPTS, Job, Result, amazon_attributes, amazon_item_cate


def _F():
    from pyspark.sql import functions as F

    return F


def negatives(spark, keys, touched, n_items: int, seed: int, stream: int):
    """(user, pos) -> (neg, fallback): the first hashed candidate not in ``touched`` (user, item)."""
    F = _F()
    if n_items <= 2:
        raise DataValidationError("could not draw negatives: the catalogue has no item")

    def cand(a):
        return F.lit(2).cast("long") + mix_spark(seed, stream, F.col("user"), F.col("pos"), a) % (n_items - 2)

    tries = keys.crossJoin(spark.range(NEG_ATTEMPTS).withColumnRenamed("id", "_a"))
    tries = tries.withColumn("item", cand(F.col("_a")))
    ok = tries.join(touched, on=["user", "item"], how="left_anti").groupBy("user", "pos").agg(F.min("_a").alias("_a"))
    out = keys.join(ok, on=["user", "pos"], how="left")
    return out.select("user", "pos", cand(F.coalesce(F.col("_a"), F.lit(NEG_ATTEMPTS - 1).cast("long"))).alias("neg"),
                      F.col("_a").isNull().alias("fallback"))


def samples(spark, ev, targets, touched, item_cate: np.ndarray, job: Job, seq_cols: tuple[str, ...]):
    """Label-1 and label-0 rows of every target (see ``polars_engine._samples``); (rows, fallbacks)."""
    import pyarrow as pa

    F = _F()
    max_len, seed, n_items = job.params["max_len"], job.params["seed"], len(item_cate)
    ic = F.broadcast(spark.createDataFrame(pa.table({"item": np.arange(n_items, dtype=np.int64),
                                                     "icate": np.asarray(item_cate, np.int64)})))
    evneg = negatives(spark, ev.select("user", "pos"), touched, n_items, seed, 1)
    ev = (ev.join(evneg.select("user", "pos", "neg"), on=["user", "pos"])
          .join(ic.withColumnRenamed("item", "neg").withColumnRenamed("icate", "neg_cate"), on="neg"))
    lists = ev.groupBy("user").agg(F.sort_array(F.collect_list(F.struct("pos", *seq_cols, "neg", "neg_cate"))).alias("L"))
    t = targets.join(lists, on="user").withColumn("_n", F.least(F.col("pos"), F.lit(max_len).cast("long")))
    t = t.withColumn("_h", F.slice("L", F.col("pos") - F.col("_n") + 1, F.col("_n")))
    hist = {f"hist_{c}": F.col("_h").getField(c) for c in seq_cols}
    hist.update(neg_hist_item=F.col("_h").getField("neg"), neg_hist_cate=F.col("_h").getField("neg_cate"),
                hist_len=F.col("_n").cast("long"))
    t = t.withColumns(hist).drop("L", "_h")
    neg = negatives(spark, targets.select("user", "pos"), touched, n_items, seed, 0).cache()
    fallback = neg.filter("fallback").count()
    negrows = (t.join(neg.select("user", "pos", "neg"), on=["user", "pos"]).join(ic.withColumnRenamed("item", "neg"), on="neg")
               .withColumn("item", F.col("neg")).withColumn("cate", F.col("icate"))
               .withColumn("label", F.lit(0.0).cast("float")).drop("neg", "icate"))
    pos = t.withColumn("label", F.lit(1.0).cast("float"))
    return pos.unionByName(negrows.select(*pos.columns)), int(fallback)


def ctr_amazon(spark, job: Job) -> Result:
    """The ``amazon_ctr`` samples of :mod:`seqrec.prepare.spec`."""
    from pyspark.sql import Window

    import seqrec.prepare.spark_read as sr

    F = _F()
    seq_path, attr_path = job.files
    attrs = amazon_attributes(attr_path)
    if not Path(seq_path).is_file():
        raise DataValidationError(f"{seq_path}: file not found")
    lines = sr.read_text_lines(spark, seq_path)
    lines = lines.withColumn("tok", F.split(sr.strip(F.col("value")), r"\s+")).cache()
    short = lines.filter(F.size("tok") < 2).agg(F.min("_rowno")).collect()[0][0]
    if short is not None:
        raise DataValidationError(f"{seq_path}:{short}: expected 'user item item ...', got "
                                  f"{sr.value_at(lines, 'value', short)!r}")
    ex = lines.select("_rowno", F.posexplode("tok").alias("tpos", "t"))
    bad = ~F.col("t").rlike(sr.INT_RE) | F.expr("try_cast(t as bigint)").isNull()
    first = ex.filter(bad).orderBy("_rowno", "tpos").first()
    if first is not None:
        raise DataValidationError(f"{seq_path}:{first['_rowno']}: {first['t']!r} is not an integer id")
    ex = ex.withColumn("v", F.col("t").cast("long"))
    users = ex.filter(F.col("tpos") == 0).select("_rowno", F.col("v").alias("user_raw"))
    dup = (users.groupBy("user_raw").agg(F.count("*").alias("n"), F.array_sort(F.collect_list("_rowno")).alias("r"))
           .filter("n > 1").select("user_raw", F.element_at("r", 2).alias("row")).orderBy("row").first())
    if dup is not None:
        raise DataValidationError(f"{seq_path}:{dup['row']}: user {dup['user_raw']} is on an earlier line too; "
                                  "give each user one line")
    ev = (ex.filter(F.col("tpos") > 0).join(users, on="_rowno")
          .select("user_raw", (F.col("tpos") - 1).cast("long").alias("pos"), F.col("v").alias("item_raw"))).cache()
    item_vocab = Vocab(name="item").fit(sorted(set(attrs) | set(sorted_distinct(ev, "item_raw"))))
    cate_vocab = Vocab(name="cate").fit(sorted({v for v in attrs.values() if v is not None}))
    user_vocab = Vocab(name="user").fit(sorted_distinct(ev, "user_raw"))
    item_cate = amazon_item_cate(item_vocab, cate_vocab, attrs)
    import pyarrow as pa

    ic = spark.createDataFrame(pa.table({"item": np.arange(len(item_cate), dtype=np.int64), "cate": item_cate}))
    ev = (ev.join(F.broadcast(codes(spark, item_vocab.ids_, "item_raw", "item")), on="item_raw")
          .join(F.broadcast(codes(spark, user_vocab.ids_, "user_raw", "user")), on="user_raw")
          .join(F.broadcast(ic), on="item").select("user", "pos", "item", "cate")
          .withColumn("_nu", F.count("*").over(Window.partitionBy("user")))).cache()
    targets = ev.filter(F.col("pos") >= 1)
    rows, fallback = samples(spark, ev, targets, ev.select("user", "item").distinct(), item_cate, job,
                             ("item", "cate"))
    rows = rows.cache()
    from_end = F.col("_nu") - F.col("pos")
    splits = {"test": rows.filter(from_end == 1), "valid": rows.filter(from_end == 2), "train": rows.filter(from_end > 2)}
    splits = {k: v.select(*AMAZON_COLUMNS) for k, v in splits.items()}
    return Result(splits, {"item": item_vocab, "cate": cate_vocab, "user": user_vocab}, item_cate,
                  {"negatives_touched": fallback})


def _sessionize(df, gap: float):
    """``sessionize`` as window jobs: events in (user, time, row) order, ``pos`` within the user,
    global ``session`` ids in that order (user offsets from a window over the per-user counts)."""
    from pyspark.sql import Window

    F = _F()
    w = Window.partitionBy("user_id").orderBy("timestamp", "_rowno")
    prev = F.lag("timestamp").over(w)
    df = (df.withColumn("_new", (prev.isNull() | ((F.col("timestamp") - prev) > gap)).cast("long"))
          .withColumn("pos", (F.row_number().over(w) - 1).cast("long"))
          .withColumn("_local", F.sum("_new").over(w.rowsBetween(Window.unboundedPreceding, Window.currentRow))))
    per_user = df.groupBy("user_id").agg(F.max("_local").alias("_k"))
    per_user = per_user.withColumn("_off", F.coalesce(F.sum("_k").over(
        Window.orderBy("user_id").rowsBetween(Window.unboundedPreceding, -1)), F.lit(0).cast("long")))
    return (df.join(per_user.select("user_id", "_off"), on="user_id")
            .withColumn("session", F.col("_off") + F.col("_local") - 1).drop("_new", "_local", "_off"))


def ctr_log(spark, job: Job) -> Result:
    """The ``log_ctr`` samples of :mod:`seqrec.prepare.spec` from the Taobao file or your own log."""
    from pyspark.sql import Window

    import seqrec.prepare.spark_logs as spark_logs

    F = _F()
    p, name = job.params, job.dataset
    df = spark_logs.read_own(spark, job.own) if job.own is not None else spark_logs.read_taobao(spark, job.files[0])
    if "event_type" not in df.columns:
        df = df.withColumn("event_type", F.lit("pv"))
    if "category_id" not in df.columns:
        df = df.withColumn("category_id", F.lit(0).cast("long"))
    df = _sessionize(df.select("user_id", "item_id", "category_id", "event_type", "timestamp", "_rowno"),
                     p["session_gap"]).cache()
    bad = df.filter(~F.col("event_type").isin(*BEHAVIOURS))
    if bad.limit(1).count():
        if job.own is None:  # the file's order
            order = [F.col("_rowno")]
        else:  # read_events' order: sessions by first event time, then (user, time, row)
            by_s = Window.partitionBy("session")
            bad = bad.withColumn("_s", F.min("timestamp").over(by_s))
            order = [F.col("_s"), F.col("user_id"), F.col("timestamp"), F.col("_rowno")]
        raise DataValidationError(f"{name}: behaviour type must be one of {BEHAVIOURS}; got "
                                  f"{bad.orderBy(*order).first()['event_type']!r}")
    vocabs = {k: Vocab(name=k).fit(sorted_distinct(df, c))
              for k, c in (("item", "item_id"), ("cate", "category_id"), ("user", "user_id"))}
    btype = F.lit(None).cast("long")
    for i, b in enumerate(BEHAVIOURS):
        btype = F.when(F.col("event_type") == b, F.lit(i + 2).cast("long")).otherwise(btype)
    ev = (df.join(F.broadcast(codes(spark, vocabs["item"].ids_, "item_id", "item")), on="item_id")
          .join(F.broadcast(codes(spark, vocabs["cate"].ids_, "category_id", "cate")), on="category_id")
          .join(F.broadcast(codes(spark, vocabs["user"].ids_, "user_id", "user")), on="user_id")
          .select("user", "pos", "item", "cate", btype.alias("btype"), "session", F.col("timestamp").alias("time"))
          ).cache()
    last = ev.groupBy("item").agg(F.max_by("cate", F.struct("user", "pos")).alias("cate")).collect()
    item_cate = np.ones(len(vocabs["item"]), dtype=np.int64)
    item_cate[0] = 0
    item_cate[np.asarray([r[0] for r in last], np.int64)] = np.asarray([r[1] for r in last], np.int64)
    targets = ev.filter((F.col("pos") >= 1) & (F.col("btype") == 2))
    if targets.limit(1).count() == 0:
        raise DataValidationError(f"{name}: no click has an earlier behaviour of its user; nothing to learn")
    clicked = ev.filter(F.col("btype") == 2).select("user", "item").distinct()
    rows, fallback = samples(spark, ev, targets, clicked, item_cate, job, ("item", "cate", "btype", "session", "time"))
    tmin, tmax = df.agg(F.min("timestamp"), F.max("timestamp")).collect()[0]
    day0 = float(tmin) if p["day0"] is None else p["day0"]
    width = p["test_days"] * DAY
    last_p = float(np.floor((float(tmax) - day0) / width))
    period = F.floor((F.col("time") - day0) / width).cast("double")
    rows = rows.withColumn("_which", F.when(period >= last_p, 2).when(period >= last_p - 1, 1).otherwise(0)).cache()
    counts = {r[0]: r[1] for r in rows.groupBy("_which").count().collect()}
    names = ("train", "valid", "test")
    for i, part in enumerate(names):
        if not counts.get(i):
            raise DataValidationError(f"{name}: the time split leaves no {part} samples "
                                      f"(test_days = {p['test_days']:g}); the log spans too few days")
    splits = {part: rows.filter(F.col("_which") == i).select(*LOG_COLUMNS) for i, part in enumerate(names)}
    splits = {k: splits[k] for k in ("test", "valid", "train")}
    return Result(splits, vocabs, item_cate, {"negatives_touched": fallback, "day0": day0})
