"""The Spark engine of ``seqrec prepare``: the stages of :mod:`seqrec.prepare.spec` as Spark
DataFrame jobs (``--master local[2]``, ``spark://...``, ``yarn``), written in the same layout as
the polars engine (:mod:`seqrec.prepare.layout`).

Vocabularies are collected on the driver (they are written as one JSON file each anyway) and
joined back as broadcast tables. Shards: rows get ``_shard = mix(SHARD_SALT, key) mod N``, are
repartitioned by it, sorted inside partitions by (``_shard``, the family's sort key) and written
with ``partitionBy("_shard")``, so each shard is exactly one file, which is then renamed to
``part-0000s.parquet``; a shard without rows becomes an empty file with the split's columns.
The CTR recipes are in :mod:`seqrec.prepare.spark_ctr`, the log readers in
:mod:`seqrec.prepare.spark_logs`.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import seqrec.prepare.layout as layout
from seqrec.data.vocab import Vocab
from seqrec.errors import ConfigError, DataValidationError
from seqrec.prepare.hashing import SHARD_SALT, mix_spark
from seqrec.prepare.spark_read import codes, sorted_distinct
from seqrec.prepare.spec import Job, Result, n_train_sessions, srgnn_tables


def get_session(master: str = "local[2]"):
    """A SparkSession for ``master`` (UI off, UTC, few shuffle partitions for small local data)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(f"--engine spark needs pyspark (pip install pyspark) and Java 17+: {exc}") from None
    b = (SparkSession.builder.master(master).appName("seqrec-prepare").config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.session.timeZone", "UTC"))
    if master.startswith("local"):
        b = b.config("spark.sql.shuffle.partitions", "4").config("spark.driver.memory", "2g")
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run(job: Job, root: Path, shards: int, *, master: str = "local[2]", spark=None) -> dict:
    """Build ``job`` with Spark and write it under ``root``; stops the session it started."""
    t0 = time.perf_counter()
    own = spark is None
    if own:
        spark = get_session(master)
    started = time.perf_counter() - t0
    try:
        import seqrec.prepare.spark_ctr as spark_ctr
        import seqrec.prepare.spark_multitask as spark_multitask

        build = {"session-given": session_given, "ctr-amazon": spark_ctr.ctr_amazon, "ctr-log": spark_ctr.ctr_log,
                 "retrieval-bars": retrieval_bars, "multitask-taobao": spark_multitask.multitask_taobao}[job.kind]
        res = build(spark, job)
        write_result(root, job.family, res, shards)
    finally:
        if own:
            spark.stop()
    res.info.update(spark_master=master, session_start_seconds=round(started, 3) if own else 0.0)
    return res.info


def write_result(root: Path, family: str, res: Result, shards: int) -> None:
    layout.write_result(root, family, res, shards, write_split)


def polars_type(t):
    """The polars dtype of a Spark type (for the empty shards' schema)."""
    import polars as pl
    from pyspark.sql import types as T

    simple = {T.LongType: pl.Int64, T.IntegerType: pl.Int32, T.DoubleType: pl.Float64, T.FloatType: pl.Float32,
              T.StringType: pl.String, T.BooleanType: pl.Boolean}
    if isinstance(t, T.ArrayType):
        return pl.List(polars_type(t.elementType))
    return simple[type(t)]


def write_split(df, root: Path, split: str, family: str, shards: int) -> None:
    from pyspark.sql import functions as F

    key = layout.SHARD_KEYS.get(family, "user")
    sort, desc = layout.sort_order(family)
    order = [F.col(c).desc() if d else F.col(c) for c, d in zip(sort, desc, strict=True)]
    df = df.withColumn("_shard", (mix_spark(SHARD_SALT, F.col(key)) % shards).cast("int"))
    keep = [c for c in df.columns if not c.startswith("_")]
    tmp = root / f"_spark_{split}"
    (df.repartition(shards, "_shard").sortWithinPartitions(F.col("_shard"), *order)
     .select(*keep, "_shard").write.partitionBy("_shard").parquet(str(tmp)))
    out = root / split
    out.mkdir(parents=True, exist_ok=True)
    schema = {f.name: polars_type(f.dataType) for f in df.select(*keep).schema.fields}
    for s in range(shards):
        d = tmp / f"_shard={s}"
        files = sorted(d.glob("*.parquet")) if d.is_dir() else []
        if len(files) > 1:
            raise RuntimeError(f"spark wrote {len(files)} files for shard {s} of {split}; expected one")
        if files:
            os.replace(files[0], out / layout.part_name(s))
        else:
            layout.write_empty_shard(out / layout.part_name(s), schema)
    shutil.rmtree(tmp)


# -- session: SR-GNN given splits ----------------------------------------------------------------------


def session_given(spark, job: Job) -> Result:
    """The SR-GNN split of :mod:`seqrec.prepare.spec` as DataFrame jobs (pickles read on the driver)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    p = job.params
    tf_pl, te_pl = srgnn_tables(job.folder)
    tf = spark.createDataFrame(tf_pl.to_arrow()).cache()
    te = spark.createDataFrame(te_pl.to_arrow())
    by_session = Window.partitionBy("session_id")
    sess = tf.groupBy("session_id").agg(F.min("_row").alias("_f"))
    n_train = n_train_sessions(sess.count(), p["valid_fraction"])
    thr = sess.orderBy("_f").limit(n_train).agg(F.max("_f")).collect()[0][0] if n_train else -1
    tfx = tf.withColumn("_f", F.min("_row").over(by_session))
    train, held = tfx.filter(F.col("_f") <= thr).drop("_f"), tfx.filter(F.col("_f") > thr).drop("_f")
    min_len = p["min_session_length"]

    def long_enough(df):
        if min_len <= 1:
            return df
        return df.withColumn("_n", F.count("*").over(by_session)).filter(F.col("_n") >= min_len).drop("_n")

    train = long_enough(train)
    valid = long_enough(held.join(train.select("item_id").distinct(), on="item_id", how="left_semi"))
    tables = {"train": train, "valid": valid, "test": te, "train_full": tf}
    tables = {k: v.withColumn("_start", F.min("timestamp").over(by_session))
              .withColumn("_first", F.min("_row").over(by_session)).cache() for k, v in tables.items()}
    for part, df in tables.items():
        if df.limit(1).count() == 0:
            raise DataValidationError(f"{job.dataset}: the given split leaves no {part} events; "
                                      "change [data.split] (more test days / a larger fraction)")
    first = (tables[p["train_split"]].groupBy("item_id").agg(F.min(F.struct("_start", "_first", "_row")).alias("o"))
             .orderBy("o").select("item_id").collect())
    vocab = Vocab(name="item").fit([r[0] for r in first])
    code = F.broadcast(codes(spark, vocab.ids_, "item_id", "item"))
    out = {k: v.join(code, on="item_id", how="left").withColumn("item", F.coalesce(F.col("item"), F.lit(1).cast("long")))
           .select("session_id", "item_id", "item", "timestamp", "_start", "_first", "_row")
           for k, v in tables.items()}
    return Result(out, {"item": vocab}, info={"vocab_from": p["train_split"]})


# -- retrieval: BARS ------------------------------------------------------------------------------------


def user_lines(spark, path: Path):
    """``read_user_lines`` as a DataFrame (_line, user_raw, item_raw), with its errors."""
    from pyspark.sql import functions as F

    import seqrec.prepare.spark_read as sr

    if not Path(path).is_file():
        raise DataValidationError(f"{path}: file not found")
    lines = sr.read_text_lines(spark, path)
    s = sr.strip(F.col("value"))
    lines = lines.withColumn("tok", F.when(s == "", F.array().cast("array<string>")).otherwise(F.split(s, r"\s+")))
    lines = lines.filter(F.size("tok") > 0).cache()
    ex = lines.select("_rowno", F.posexplode("tok").alias("tpos", "t"))
    bad = ~F.col("t").rlike(r"^-?[0-9]+$") | F.expr("try_cast(t as bigint)").isNull()
    l_bad = ex.filter(bad).agg(F.min("_rowno")).collect()[0][0]
    l_short = lines.filter(F.size("tok") < 2).agg(F.min("_rowno")).collect()[0][0]
    hit = min([x for x in (l_bad, l_short) if x is not None], default=None)
    if hit is not None and hit == l_bad:
        tok = ex.filter(bad & (F.col("_rowno") == hit)).orderBy("tpos").first()["t"]
        raise DataValidationError(f"{path}: row {hit}: {tok!r} is not an integer id")
    if hit is not None:
        line = sr.value_at(lines, "value", hit)
        raise DataValidationError(f"{path}: row {hit}: expected 'user item ...' with at least 1 item(s), got {line!r}")
    if lines.limit(1).count() == 0:
        raise DataValidationError(f"{path}: no users (the file is empty)")
    ex = ex.withColumn("v", F.col("t").cast("long"))
    users = ex.filter(F.col("tpos") == 0).select("_rowno", F.col("v").alias("user_raw"))
    return (ex.filter(F.col("tpos") > 0).join(users, on="_rowno")
            .select(F.col("_rowno").alias("_line"), "user_raw", F.col("v").alias("item_raw")))


def retrieval_bars(spark, job: Job) -> Result:
    """The ``bars_task`` lists of :mod:`seqrec.prepare.spec` as DataFrame jobs."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from seqrec.prepare.hashing import HOLDOUT_SALT

    p = job.params
    if p["train_split"] not in ("train", "train_full"):
        raise ConfigError(f"data.train_split must be 'train' or 'train_full', got {p['train_split']!r}")
    tr_path, te_path = job.files
    tr, te = user_lines(spark, tr_path).cache(), user_lines(spark, te_path).cache()
    if tr.select("_line", "user_raw").distinct().groupBy("user_raw").count().filter("count > 1").limit(1).count():
        raise DataValidationError(f"{tr_path}: a user appears on two lines")
    users = Vocab(name="user").fit(sorted_distinct(tr.unionByName(te), "user_raw"))
    items = Vocab(name="item").fit(sorted_distinct(tr.unionByName(te), "item_raw"))
    uc = F.broadcast(codes(spark, users.ids_, "user_raw", "user", base=0))
    ic = F.broadcast(codes(spark, items.ids_, "item_raw", "item", base=1))
    tr = tr.join(uc, on="user_raw").join(ic, on="item_raw").select("_line", "user", "item").distinct()
    te = te.join(uc, on="user_raw").join(ic, on="item_raw").select("_line", "user", "item").distinct()
    clash = te.join(tr.select("user", "item"), on=["user", "item"], how="left_semi").agg(F.min("_line")).collect()[0][0]
    if clash is not None:
        u = te.filter(F.col("_line") == clash).first()["user"]
        raise DataValidationError(f"{te_path}: user {users.ids_[u]} has test items that are also train items "
                                  "(BARS splits never do)")
    tr = tr.drop("_line")
    valid = tr.limit(0)
    if p["train_split"] == "train":
        by_user = Window.partitionBy("user")
        tr = tr.withColumn("_h", mix_spark(p["seed"], HOLDOUT_SALT, F.col("user"), F.col("item")) * (1 << 31)
                           + F.col("item"))
        n = F.count("*").over(by_user)
        hold = F.greatest(F.bround(n * p["valid_fraction"], 0).cast("long"), F.lit(1).cast("long"))
        tr = tr.withColumn("_held", (n >= 2) & (F.row_number().over(by_user.orderBy("_h")) <= hold))
        valid, tr = tr.filter("_held").drop("_h", "_held"), tr.filter(~F.col("_held")).drop("_h", "_held")
    every = spark.range(users.n_known).select(F.col("id").alias("user"), F.lit(0).cast("long").alias("_line"))

    def lists(df, all_users: bool):
        if "_line" not in df.columns:
            df = df.withColumn("_line", F.lit(0).cast("long"))
        g = df.groupBy("user", "_line").agg(F.array_sort(F.collect_list("item")).alias("items"))
        if all_users:
            g = every.join(g, on=["user", "_line"], how="left").withColumn(
                "items", F.coalesce(F.col("items"), F.array().cast("array<bigint>")))
        return g.select("user", "items", "_line")

    splits = {"train": lists(tr, True), "valid": lists(valid, False), "test": lists(te, False)}
    info = {"train_split": p["train_split"], "index_base": {"item": 1, "user": 0}}
    return Result(splits, {"item": items, "user": users}, info=info)
