"""Thread pools of a seqrec process, and the settings that let it share the CPU.

The pools of a training process (torch 2.13 CPU wheel, numba 0.68, polars 2.1):

* OpenMP: torch's intra-op threads run on GNU OpenMP, the ``libgomp.so.1``
  bundled with torch (``torch.__config__.parallel_info()``: "ATen parallel
  backend: OpenMP"; MKL's BLAS uses the same runtime). numba's
  ``parallel=True`` kernels use its ``omp`` threading layer (no TBB here),
  whose library asks for the system ``libgomp.so.1.0.0``; but torch loads its
  copy into the global symbol scope first, so numba's ``GOMP_parallel`` and
  ``omp_set_num_threads`` bind to torch's runtime (``LD_DEBUG=bindings``).
  There is one OpenMP runtime, and what is set for it applies to both.
* torch's inter-op pool: used only by ``torch.jit.fork`` and the like, which
  seqrec never calls; its threads are never started.
* polars' (rayon) pool: busy while a dataset is read and converted, before
  the timed training; its workers then sleep (0-3 CPU ticks each over a
  whole GRU4Rec or DIN training run, from ``/proc/self/task/*/stat``).

What goes wrong beside another job: a libgomp worker that has finished its
share of a parallel region *spins* (``GOMP_SPINCOUNT`` = 300,000 iterations
by default) before it sleeps, and a region ends only when all of its threads
have finished. With the cores busy elsewhere, the spinning thread burns the
time slice its partner needs to finish. Reported in issue #21 (DIN, one epoch,
beside one other 2-thread training job on this 2-core machine): 1,387 train
samples/s with the defaults, 8,411 with ``OMP_WAIT_POLICY=PASSIVE``, 12,538
with ``train.threads = 1``, ~19,000 alone.

Choices, and the measurements behind them (this 2-core machine while other
jobs kept it at a load average of 4-11, so the quiet case could not be
measured; each variant a fresh process, alternated, 2 rounds; GRU4Rec:
``configs/gru4rec_yoochoose_100k_bpr-max.toml``, one epoch, events/s; DIN and
DIEN: the amazon_beauty configs, the first 150 / 80 batches, samples/s):

* ``OMP_WAIT_POLICY=PASSIVE`` (set at ``import seqrec`` **when the CPU is busy then**,
  :func:`cpu_is_busy`: another runnable task per four cores in ``/proc/loadavg``): waiting
  OpenMP threads sleep at once. On an idle machine it is not set: sleeping threads must be
  woken for every parallel region, and alone that cost GRU4Rec 28% (12,736 against 17,740
  events/s) and DIN 33% (13,136 against 19,493 samples/s) in ``benchmarks/cpu_sharing.py``'s
  quiet runs (2026-12-07). The policy changes no result, only waiting, so choosing it from
  the load is safe; a run started alone keeps spinning if a job arrives later (set
  ``OMP_WAIT_POLICY=PASSIVE`` yourself on a shared machine). GRU4Rec 393 / 1,097 with the previous defaults
  against 5,356 / 5,284; DIN 327 / 691 against 8,437 / 14,695; DIEN 345 /
  642 against 5,335 / 3,414. Results do not change (one epoch of GRU4Rec
  and of DIN gave the same test metrics before and after).
* Not a short spin instead (``GOMP_SPINCOUNT``, libgomp's counterpart of
  Intel OpenMP's ``KMP_BLOCKTIME``; the ``KMP_*`` variables do nothing here,
  no Intel OpenMP is loaded). A spin iteration is a ``pause`` of ~25 ns on
  this CPU, so the default 300,000 is ~7.5 ms. ``GOMP_SPINCOUNT=10000`` gave
  GRU4Rec 2,402 / 1,549 events/s against 5,356 / 5,284 without spinning; for
  DIEN (5th percentile of 400 steps' times, load ~3.6) 1,000 and 3,000 spins
  took 40.2 and 64.9 ms a step, no spinning 27.9, the previous defaults 38.5
  (and ``train.threads = 1`` 25.4).
* The cost: a thread that sleeps must be woken for the next parallel region.
  Every torch matmul opens one (4 context switches per product, even a
  (256 x 18) x (18 x 54) one whose work stays on one thread), and DIEN runs
  hundreds of such small products a step (~25,000 sleeps per thread over
  100 training steps and the evaluation).
  In the one lightly loaded moment available (load ~1.7), 150 DIEN steps ran
  at 9,098 (5,529-10,797) samples/s with the previous defaults against 7,489
  (7,429-7,740) without spinning; the other models' quiet figures were all
  taken under load. ``benchmarks/cpu_sharing.py`` on a quiet machine settles
  it; to spin again on a machine of your own, set ``OMP_WAIT_POLICY=ACTIVE``
  or ``GOMP_SPINCOUNT`` (either one stops seqrec from setting the policy).
* numba's threads follow torch's, and its pool is started *before* torch's
  count is set: starting it calls ``omp_set_num_threads(NUMBA_NUM_THREADS)``
  in torch's runtime, so ``torch.set_num_threads(1)`` followed by the first
  numba kernel left torch on 2 threads. That is why ``train.threads = 1``
  used to need ``NUMBA_NUM_THREADS=1`` as well (benchmarks/README.md): GRU4Rec
  with ``train.threads = 1`` under the same load ran at 804 events/s, its
  metrics saying 2 threads and a second thread with 22.8 s of CPU time;
  with :func:`configure_threads` 7,194 events/s on one thread.
* ``train.threads = 0`` keeps one thread per core: fewer threads help under
  contention (with the wait policy above, 1 thread against 2: DIN 12,545 /
  18,411 against 8,437 / 14,695, DIEN 7,053 / 3,803 against 5,335 / 3,414,
  GRU4Rec 5,373 / 4,133 against 5,356 / 5,284) but cost about a quarter
  alone (GRU4Rec: 10,472 events/s on 1 thread on an idle machine in
  benchmarks/README.md; ``seqrec train`` on 2 threads, 3 epochs, 13,791 here
  in a quiet moment), and a count chosen from the load at start would make a
  run's numbers depend on the machine's load (DIN's test AUC differs in the
  7th digit between 1 and 2 threads; GRU4Rec's metrics are the same). Sharing a machine for long, set
  ``train.threads`` to the free cores.
* Inter-op and polars pools: left alone by default (idle; see above).

A user's own ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is kept (no policy is set then);
``train.threads = N > 0`` gives every pool N threads (polars only if it is not
imported yet: its pool size is fixed at import). libgomp reads the environment
when it is loaded, so :func:`set_env_defaults` runs from ``seqrec/__init__.py``,
before anything imports torch; a program that imports torch before seqrec
keeps libgomp's default spinning. ``benchmarks/cpu_sharing.py`` measures
training throughput alone and beside a 2-thread job, before and after
(``docs/performance.md``, "Sharing the CPU").
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

#: Environment defaults applied at ``import seqrec`` (a value already in the environment wins).
ENV_DEFAULTS: dict[str, str] = {
    # libgomp (torch's copy, which numba's kernels use too): waiting threads sleep, not spin
    "OMP_WAIT_POLICY": "PASSIVE",
}


#: Variables by which a user already chose how OpenMP threads wait: then no policy is set.
USER_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def others_running(samples: int = 5, pause: float = 0.004) -> float:
    """Runnable tasks on the machine besides this process, now (median of a few reads of the
    instantaneous count in ``/proc/loadavg``; 0 where there is no such file)."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                running = int(fh.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        counts.append(running - 1)  # this process is one of them
        if i + 1 < samples:
            time.sleep(pause)
    return float(sorted(counts)[len(counts) // 2])


def cpu_is_busy() -> bool:
    """Another job holds a share of the cores: at least one runnable task per four cores (so
    one on a 2-core machine). Decided once, at start: libgomp reads its policy when loaded."""
    return others_running() >= max(1.0, (os.cpu_count() or 1) / 4)


def set_env_defaults(environ: dict | None = None, busy: bool | None = None) -> dict[str, str]:
    """Put :data:`ENV_DEFAULTS` into ``environ`` (``os.environ``) unless the user chose already
    or the CPU is idle (``busy`` = :func:`cpu_is_busy` when None); returns what was set."""
    environ = os.environ if environ is None else environ
    applied = {}
    for key, value in ENV_DEFAULTS.items():
        if key == "OMP_WAIT_POLICY" and any(k in environ for k in USER_WAIT_SETTINGS):
            continue
        if key == "OMP_WAIT_POLICY" and not (cpu_is_busy() if busy is None else busy):
            continue  # alone on the machine: libgomp's spinning is the faster default
        if key not in environ:
            environ[key] = value
            applied[key] = value
    return applied


def configure_threads(n: int = 0) -> int:
    """Set the process's thread pools for ``train.threads = n``; returns torch's thread count.

    ``n > 0``: torch's intra-op pool, its inter-op pool (if not started yet),
    numba's kernels and (if polars is not imported yet) polars' pool all get
    ``n`` threads. ``n == 0``: torch keeps its count (default: one per core)
    and numba's kernels get the same.
    """
    import numba
    import torch

    if n < 0:
        raise ValueError(f"threads must be >= 0, got {n}")
    want = n if n > 0 else torch.get_num_threads()
    # numba's pool starts on first use and then calls omp_set_num_threads(NUMBA_NUM_THREADS), which
    # binds to torch's OpenMP runtime and so undoes an earlier torch.set_num_threads: start it first
    numba.set_num_threads(max(1, min(want, numba.config.NUMBA_NUM_THREADS)))
    torch.set_num_threads(want)
    if n > 0:
        with contextlib.suppress(RuntimeError):  # already set or started: it stays as it is
            torch.set_num_interop_threads(n)
        if "polars" not in sys.modules:
            os.environ["POLARS_MAX_THREADS"] = str(n)
    return torch.get_num_threads()
