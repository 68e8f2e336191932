"""``seqrec prepare``'s driver: resolve the config's job, run an engine, write the directory
atomically with its manifest (:mod:`seqrec.prepare.layout`)."""

from __future__ import annotations

import time
from pathlib import Path

from seqrec.errors import ConfigError
from seqrec.prepare.spec import NEG_ATTEMPTS, resolve


def prepare(cfg, out: str | Path, *, engine: str = "polars", shards: int = 8, master: str = "local[2]",
            spark=None) -> dict:
    """Run the configured job with ``engine`` and write the prepared directory ``out`` atomically;
    returns the manifest. ``spark``: an existing SparkSession to use (tests share one)."""
    from seqrec.prepare.layout import atomic_dir, write_manifest

    if engine not in ("polars", "spark"):
        raise ConfigError(f"--engine must be 'polars' or 'spark', got {engine!r}")
    if not isinstance(shards, int) or shards < 1:
        raise ConfigError(f"--shards must be an integer >= 1, got {shards!r}")
    job = resolve(cfg)
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp:
        if engine == "polars":
            import seqrec.prepare.polars_engine as eng

            info = eng.run(job, tmp, shards)
        else:
            import seqrec.prepare.spark_engine as eng

            info = eng.run(job, tmp, shards, master=master, spark=spark)
        manifest = {"family": job.family, "recipe": job.kind, "dataset": job.dataset, "data": job.data_config,
                    "max_len": job.params["max_len"], "seed": job.params["seed"], "shards": shards,
                    "neg_attempts": NEG_ATTEMPTS, "engine": engine,
                    "seconds": round(time.perf_counter() - t0, 3), **info}
        write_manifest(tmp, manifest)
    return manifest
