"""The counter-based hash both engines evaluate bit for bit: negatives, hold-outs and shards.

A prepared directory must not depend on which engine wrote it, so nothing in it may come
from a random generator whose state depends on row order or partitioning. Every "random"
choice is instead a pure function of integers: ``mix(seed, a, b, c)``. One round is

    r_k(x) = (((x XOR (x >> 15)) mod P) * A_k + B_k) mod P,   P = 2^31 - 1 (prime)

with ``A_k, B_k < P``, and ``mix`` folds its arguments in one round each
(``h = r_0(seed); h = r_1(h + a); ...; h = r_last(h)``). Every intermediate value is below
2^62, so the 64-bit integer arithmetic of numpy, polars and Spark (which raises on overflow
in its ANSI mode) gives the same result; the XOR-shift breaks the linearity that affine maps
alone would have (a composition of affine maps mod P is affine: consecutive counters would
give candidates a fixed stride apart). Arguments must be non-negative integers below 2^62.

``mix_np`` is the reference; ``mix_pl`` (polars expressions) and ``mix_spark`` (Spark
columns) are checked against it in tests/prepare/test_hashing.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

P = 2_147_483_647  # 2^31 - 1, prime
# (A, B) of each round: odd constants below P, fixed forever (changing them changes every negative)
ROUNDS = ((1_103_515_245, 12_345), (1_664_525, 1_013_904_223), (2_147_001_325, 715_136_305),
          (1_812_433_253, 1_442_695_041), (1_566_083_941, 69_069), (1_219_280_947, 2_891_336_453 % P))
SHIFT = 15
SHARD_SALT = 7_919  # the seed of the shard hash (independent of the run's seed)
HOLDOUT_SALT = 104_729  # salt of the retrieval validation hold-out


def _round_np(x: np.ndarray, k: int) -> np.ndarray:
    a, b = ROUNDS[k % len(ROUNDS)]
    x = np.bitwise_xor(x, x >> SHIFT) % P
    return (x * a + b) % P


def mix_np(seed: int, *args: Any) -> np.ndarray:
    """Reference hash of ``seed`` and integer arrays ``args`` (broadcast), in [0, P)."""
    h = _round_np(np.asarray(seed % P, dtype=np.int64), 0)
    for k, a in enumerate(args, 1):
        h = _round_np(h + np.asarray(a, dtype=np.int64) % P, k)
    return _round_np(h, len(args) + 1)


def _round_pl(x, k: int):
    a, b = ROUNDS[k % len(ROUNDS)]
    x = x.xor(x // (1 << SHIFT)) % P  # x >= 0, so x // 2^15 is x >> 15
    return (x * a + b) % P


def mix_pl(seed: int, *args: Any):
    """:func:`mix_np` as a polars Int64 expression of expressions (or ints) ``args``."""
    import polars as pl

    def lit(v):
        return pl.lit(v, pl.Int64) if isinstance(v, int) else v.cast(pl.Int64)

    h = _round_pl(lit(seed % P), 0)
    for k, a in enumerate(args, 1):
        h = _round_pl(h + lit(a) % P, k)
    return _round_pl(h, len(args) + 1)


def _round_spark(x, k: int):
    from pyspark.sql import functions as F

    a, b = ROUNDS[k % len(ROUNDS)]
    x = x.bitwiseXOR(F.shiftright(x, SHIFT)) % F.lit(P).cast("long")
    return (x * F.lit(a).cast("long") + F.lit(b).cast("long")) % F.lit(P).cast("long")


def mix_spark(seed: int, *args: Any):
    """:func:`mix_np` as a Spark long column of columns (or ints) ``args``."""
    from pyspark.sql import functions as F

    def lit(v):
        return F.lit(v).cast("long") if isinstance(v, int) else v.cast("long")

    h = _round_spark(lit(seed % P), 0)
    for k, a in enumerate(args, 1):
        h = _round_spark(h + lit(a) % F.lit(P).cast("long"), k)
    return _round_spark(h, len(args) + 1)


def shard_np(key: np.ndarray, shards: int) -> np.ndarray:
    """The shard of every row key (a user index, a session id): ``mix(SHARD_SALT, key) mod shards``."""
    return mix_np(SHARD_SALT, key) % shards
