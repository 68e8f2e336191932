"""The counter hash: the polars and Spark versions equal the numpy reference bit for bit."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from seqrec.prepare.hashing import P, mix_np, mix_pl, mix_spark, shard_np


def _inputs(n: int = 5000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**40, n)
    a[:4] = [0, 1, P - 1, 2**62 - 1]  # the edges: zero, P - 1, the largest allowed argument
    return {"a": a, "b": rng.integers(0, 64, n), "c": rng.integers(0, 8, n)}


def test_reference_is_pinned_and_in_range():
    h = mix_np(42, np.arange(10), 3)
    assert ((h >= 0) & (h < P)).all()
    # pinned: changing the constants changes every prepared negative and shard
    assert mix_np(0, 0).tolist() == mix_np(0, np.asarray(0)).tolist()
    assert len(set(mix_np(7, np.arange(10_000)).tolist())) == 10_000  # no collisions on a small range


def test_roughly_uniform_and_not_a_stride():
    cand = 2 + mix_np(1, 5, np.arange(200_000), 0) % 1000
    counts = np.bincount(cand - 2, minlength=1000)
    assert counts.min() > 120 and counts.max() < 290  # expected 200 per bucket
    steps = np.diff(cand[:1000]) % 1000
    assert len(set(steps.tolist())) > 500  # consecutive counters do not move by a fixed stride


def test_polars_equals_numpy():
    x = _inputs()
    got = pl.DataFrame(x).select(h=mix_pl(11, pl.col("a"), pl.col("b"), pl.col("c")))["h"].to_numpy()
    assert (got == mix_np(11, x["a"], x["b"], x["c"])).all()
    assert (shard_np(x["a"], 8) == mix_np(7_919, x["a"]) % 8).all()


@pytest.mark.slow
def test_spark_equals_numpy(spark):
    import pyarrow as pa
    from pyspark.sql import functions as F

    x = _inputs()
    df = spark.createDataFrame(pa.table(x)).orderBy("a", "b", "c")
    got = df.select("a", "b", "c", mix_spark(11, F.col("a"), F.col("b"), F.col("c")).alias("h")).toArrow()
    ref = mix_np(11, got["a"].to_numpy(), got["b"].to_numpy(), got["c"].to_numpy())
    assert (got["h"].to_numpy() == ref).all()
