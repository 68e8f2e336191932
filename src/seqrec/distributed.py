"""Multi-process data-parallel training: ``torchrun --nproc-per-node N -m seqrec train CONFIG --out RUN``.

torchrun starts N copies of the command and tells each its place through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` / ``MASTER_PORT``);
:func:`session` joins them into one process group and :func:`context` says, anywhere in the
package, which rank this process is. Without those variables (or with ``WORLD_SIZE=1``) the
context is a no-op: one process trains exactly as before, with no process group.

What N ranks do (the trainers' shared step loop is :mod:`seqrec.train.steps`):

* **Batches.** ``train.batch_size`` is the *global* batch. For in-memory data every rank
  builds the same seeded global batch and keeps a contiguous slice of its rows
  (:func:`shard_rows`; a short last batch is split as evenly as possible, so every rank runs
  the same number of steps). Streamed prepared data gives each rank its own shards
  (:func:`local_batches`): ranks then agree each step whether all of them still have a
  batch and stop together when one runs out.
* **Gradients.** The loss is computed inside a :class:`~torch.nn.parallel.DistributedDataParallel`
  wrapper, which all-reduces the gradients of the dense parameters; the sparse gradients of
  ``nn.Embedding(sparse=True)`` tables are averaged by :class:`Replicated` itself (one
  all-gather of the rows each rank used), because DDP's own sparse reduction gives wrong
  gradients here on the CTR models' shape, a sparse table looked up twice next to a second sparse
  table (``benchmarks/ddp_sparse_check.py``; ours is tested against one process in
  ``tests/distributed``). The tables stay replicated: TorchRec, which would shard them, does
  not load against torch 2.13. Each rank's loss is scaled by
  ``local rows * world / global rows``, so DDP's average equals the gradient of the global
  batch's mean loss also when the slices differ in size.
* **Decisions.** The step's loss is all-reduced (``loss x rows``, ``rows``), so the log, the
  divergence check and ``train.max_steps`` see the global figure on every rank; validation
  runs on rank 0 and its score is broadcast (:func:`on_main`), so early stopping decides the
  same everywhere; rank 0 alone writes the run directory and evaluates the test split.
* **A dead peer.** The group has a finite timeout (``SEQREC_DIST_TIMEOUT`` seconds, default
  300; it must exceed the longest work one rank does alone, validation on rank 0), and a
  SIGTERM from torchrun (sent to the survivors when a rank dies) becomes
  :class:`StopRequested`, so a survivor ends with one line naming the epoch, the step and the
  last checkpoint (:class:`PeerStopped`) instead of hanging or dying silently.

Backend: gloo on CPU, nccl when CUDA is used; ``SEQREC_DIST_BACKEND`` overrides.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from seqrec.errors import SeqrecError

DEFAULT_TIMEOUT_S = 300.0
# words in the errors gloo / nccl raise when a peer's connection breaks or a collective times out
_PEER_WORDS = ("gloo", "nccl", "connection reset", "connection closed", "broken pipe", "timed out",
               "timeout", "pair.cc", "peer")


class StopRequested(BaseException):
    """SIGTERM arrived (torchrun stops the surviving ranks this way when one fails). A
    BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it."""


class PeerStopped(SeqrecError):
    """Another rank of the job stopped (died, or the launcher stopped this one because it did)."""


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; the default is one process alone."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    backend: str = ""

    @property
    def active(self) -> bool:
        """True when there are other ranks (a process group exists)."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run directory and evaluates."""
        return self.rank == 0


_CTX = DistContext()


def context() -> DistContext:
    """The current process's context (one process alone outside :func:`session`)."""
    return _CTX


def env_context(environ: dict | None = None) -> DistContext:
    """The context torchrun's environment describes (no process group is created)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError as exc:
        raise SeqrecError(f"torchrun's environment is malformed: {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise SeqrecError(f"torchrun's environment is inconsistent: RANK={rank}, WORLD_SIZE={world}")
    return DistContext(rank, world, local_rank, max(local_world, 1))


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a process alone (before or after :func:`session`)."""
    return _CTX.is_main if _CTX.active else env_context().is_main


def _backend(cuda: bool) -> str:
    return os.environ.get("SEQREC_DIST_BACKEND") or ("nccl" if cuda else "gloo")


def _timeout() -> datetime.timedelta:
    raw = os.environ.get("SEQREC_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        secs = float(raw)
    except ValueError:
        secs = -1.0
    if secs <= 0:
        raise SeqrecError(f"SEQREC_DIST_TIMEOUT must be a positive number of seconds, got {raw!r}")
    return datetime.timedelta(seconds=secs)


def _on_sigterm(signum, frame) -> None:
    raise StopRequested("SIGTERM from the launcher")


@contextlib.contextmanager
def session(cuda: bool = False) -> Iterator[DistContext]:
    """Join the torchrun job described by the environment for the ``with`` block (a no-op
    context for one process): process group with a finite timeout, SIGTERM turned into
    :class:`StopRequested`, the group destroyed at the end."""
    global _CTX
    ctx = env_context()
    if ctx.world == 1:
        yield _CTX
        return
    import torch.distributed as dist

    backend = _backend(cuda)
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        dist.init_process_group(backend, timeout=_timeout())
    except StopRequested:
        signal.signal(signal.SIGTERM, old)
        raise
    except Exception as exc:  # a peer that never came, a bad address: one line
        signal.signal(signal.SIGTERM, old)
        raise SeqrecError(f"rank {ctx.rank}: cannot join the torchrun job ({backend}): {exc}") from exc
    _CTX = DistContext(ctx.rank, ctx.world, ctx.local_rank, ctx.local_world, backend)
    try:
        yield _CTX
    finally:
        _CTX = DistContext()
        with contextlib.suppress(Exception):  # a broken group cannot always be torn down cleanly
            dist.destroy_process_group()
        signal.signal(signal.SIGTERM, old)


def is_peer_failure(exc: BaseException) -> bool:
    """True for the errors a collective raises when another rank is gone (or for SIGTERM)."""
    if isinstance(exc, StopRequested):
        return True
    dist_error = getattr(torch.distributed, "DistError", ())
    if dist_error and isinstance(exc, dist_error):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _PEER_WORDS)


def peer_detail(exc: BaseException) -> str:
    """A short reason for :class:`PeerStopped` messages, from the backend's long error text."""
    if isinstance(exc, StopRequested):
        return "stopped by the launcher with SIGTERM"
    text = str(exc).strip()
    low = text.lower()
    for words, short in (("connection reset", "connection reset by peer"),
                         ("connection closed", "connection closed by peer"),
                         ("broken pipe", "broken pipe to peer"), ("timed out", "collective timed out"),
                         ("timeout", "collective timed out")):
        if words in low:
            return short
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 120 else first[:117] + "..."


# -- collectives (identities for one process) ---------------------------------------------------

def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over the ranks (float64)."""
    if not _CTX.active:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def barrier() -> None:
    if _CTX.active:
        import torch.distributed as dist

        dist.barrier()


def broadcast_from_main(obj):
    """Rank 0's ``obj`` on every rank (picklable)."""
    if not _CTX.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], object]):
    """``fn()`` computed on rank 0 only and its result broadcast, so every rank takes the same
    decision from it (validation scores) while the work is done once."""
    if not _CTX.active:
        return fn()
    return broadcast_from_main(fn() if _CTX.is_main else None)


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """The ranks' ``t`` (any leading size) concatenated in rank order, without gradient: the
    global batch's rows from the local slices (ids of in-batch negatives)."""
    if not _CTX.active:
        return t
    import torch.distributed as dist

    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(_CTX.world)]
    dist.all_gather(sizes, torch.tensor([t.shape[0]], dtype=torch.int64))
    n = [int(s) for s in sizes]
    pad = t.new_zeros((max(n), *t.shape[1:]))
    pad[:t.shape[0]] = t
    parts = [torch.empty_like(pad) for _ in n]
    dist.all_gather(parts, pad.contiguous())
    return torch.cat([p[:k] for p, k in zip(parts, n, strict=True)])


# -- sharding -------------------------------------------------------------------------------------

def shard_range(n: int, rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` that ``rank`` keeps: contiguous slices, sizes differing by at
    most one (the first ``n % world`` ranks take one more)."""
    rank = _CTX.rank if rank is None else rank
    world = _CTX.world if world is None else world
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def shard_rows(batch, shared_keys: tuple[str, ...] = ()):
    """This rank's contiguous slice of a global batch: a dict of tensors (every tensor whose
    leading size is the batch's row count, ``shared_keys`` excepted: negatives shared by the
    whole batch) or a :class:`~seqrec.data.samples.SampleBatch` (columns, label, user)."""
    from seqrec.data.samples import SampleBatch

    if isinstance(batch, SampleBatch):
        lo, hi = shard_range(batch.size)
        return SampleBatch({k: v[lo:hi] for k, v in batch.columns.items()}, batch.label[lo:hi],
                           None if batch.user is None else batch.user[lo:hi])
    n = batch_rows(batch, shared_keys)
    lo, hi = shard_range(n)
    return {k: v[lo:hi] if k not in shared_keys and torch.is_tensor(v) and v.dim() and v.shape[0] == n else v
            for k, v in batch.items()}


def batch_rows(batch, shared_keys: tuple[str, ...] = ()) -> int:
    """Rows of a batch: a SampleBatch's size, or the leading size of a dict's first per-row tensor."""
    if hasattr(batch, "label") and hasattr(batch, "columns"):
        return len(batch.label)
    for k, v in batch.items():
        if k not in shared_keys and torch.is_tensor(v) and v.dim():
            return int(v.shape[0])
    raise SeqrecError("a training batch has no per-row tensor to split across ranks")


def sharded(batches: Iterable, size_fn: Callable, shared_keys: tuple[str, ...] = ()) -> Iterator[tuple]:
    """``(local slice, global size)`` of in-memory global batches (size in ``size_fn``'s unit:
    rows, or predicted positions). A batch with fewer rows than ranks is skipped by every rank
    alike (only a last batch can be that short), so no rank ever runs a step alone."""
    for b in batches:
        if _CTX.active and batch_rows(b, shared_keys) < _CTX.world:
            continue
        local = shard_rows(b, shared_keys) if _CTX.active else b
        yield local, size_fn(b)


def local_batches(batches: Iterable, size_fn: Callable) -> Iterator[tuple]:
    """``(batch, global size)`` of batches each rank reads from its own shards: before every
    step the ranks all-reduce (has a batch, its size); the epoch ends for all of them as soon as
    one has none, so DDP never waits for a rank that ran out."""
    it = iter(batches)
    while True:
        b = next(it, None)
        has, size = all_sum([1.0 if b is not None else 0.0, float(size_fn(b)) if b is not None else 0.0])
        if has < _CTX.world:
            return
        yield b, size


class Replicated:
    """A loss module replicated on every rank, its gradients averaged over the ranks after each
    backward: the dense parameters through DistributedDataParallel (bucketed all-reduce during
    the backward pass), the ``nn.Embedding(sparse=True)`` tables by :meth:`reduce_sparse`
    (one all-gather of every table's used rows and their gradients, then divided by the world
    size: DDP's average). DDP is told to ignore the tables: with gloo on torch 2.13 its own
    reduction of sparse gradients is wrong when a sparse table is looked up twice next to a second
    sparse table (the shared table's and the dense gradients come back halved:
    ``benchmarks/ddp_sparse_check.py``; ``tests/distributed`` checks ours against one process)."""

    def __init__(self, module: torch.nn.Module, find_unused: bool = False) -> None:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        self.module = module
        tables = {id(m.weight) for m in module.modules()
                  if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag) and m.sparse and m.weight.requires_grad}
        self.sparse = [p for p in module.parameters() if id(p) in tables]
        with torch.no_grad():
            for p in self.sparse:  # DDP broadcasts the rest of rank 0's state when it is built
                dist.broadcast(p.data, src=0)
        dense = [n for n, p in module.named_parameters() if p.requires_grad and id(p) not in tables]
        self.ddp = None
        if dense:
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                module, [n for n, p in module.named_parameters() if id(p) in tables])
            dev = next(p.device for p in module.parameters())
            self.ddp = DistributedDataParallel(module, device_ids=[dev.index] if dev.type == "cuda" else None,
                                               find_unused_parameters=find_unused)

    def __call__(self, batch):
        return (self.ddp if self.ddp is not None else self.module)(batch)

    def reduce_sparse(self) -> None:
        """Replace every sparse table's gradient by the ranks' average (rows used by any rank;
        a table no rank used keeps no gradient, as in one process)."""
        if not self.sparse:
            return
        import torch.distributed as dist

        world = _CTX.world
        grads = [p.grad.coalesce() if p.grad is not None else None for p in self.sparse]
        nnz = torch.tensor([g._nnz() if g is not None else -1 for g in grads], dtype=torch.int64)
        every = [torch.empty_like(nnz) for _ in range(world)]
        dist.all_gather(every, nnz)
        # one float32 buffer per rank: for each table its row indices (int64, as bits) then values
        parts = []
        for g in grads:
            if g is not None and g._nnz():
                parts += [g.indices()[0].contiguous().view(torch.float32), g.values().float().reshape(-1)]
        local = torch.cat(parts) if parts else torch.zeros(0)
        lens = [sum(self._width(p, int(k)) for p, k in zip(self.sparse, e.tolist(), strict=True)) for e in every]
        padded = torch.zeros(max(lens))
        padded[:len(local)] = local
        bufs = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(bufs, padded)
        for j, p in enumerate(self.sparse):
            if all(int(e[j]) < 0 for e in every):
                continue  # no rank used this table in this step
            rows, vals = [], []
            for buf, e in zip(bufs, every, strict=True):
                off = sum(self._width(q, int(k)) for q, k in zip(self.sparse[:j], e[:j].tolist(), strict=True))
                k = max(int(e[j]), 0)
                rows.append(buf[off:off + 2 * k].clone().view(torch.int64))  # (clone: 8-byte aligned)
                vals.append(buf[off + 2 * k:off + 2 * k + k * p.shape[1]].view(k, p.shape[1]))
            idx = torch.cat(rows)[None, :]  # (1, R)
            val = torch.cat(vals).to(p.dtype) / world  # (R, D)
            p.grad = torch.sparse_coo_tensor(idx, val, p.shape, check_invariants=False).coalesce()

    @staticmethod
    def _width(p: torch.Tensor, nnz: int) -> int:
        """float32 slots a table's rows take in the buffer: 2 per index (int64 bits) + the row."""
        return 0 if nnz <= 0 else nnz * (2 + p.shape[1])


def wrap_ddp(module: torch.nn.Module, find_unused: bool = False):
    """``module`` replicated for data-parallel training under torchrun (:class:`Replicated`),
    itself for one process. ``find_unused``: dense parameters some batches do not reach
    (multi-task heads); sparse tables need no such flag."""
    if not _CTX.active:
        return module
    return Replicated(module, find_unused)


def reduce_gradients(module) -> None:
    """After ``backward``: average the sparse tables' gradients over the ranks (DDP has
    already done the dense ones); nothing for one process."""
    if isinstance(module, Replicated):
        module.reduce_sparse()


def default_threads(cores: int | None = None) -> int:
    """Threads per rank for ``train.threads = 0`` under torchrun: the cores shared evenly by
    the ranks of this machine (0 = torch's default for one process alone)."""
    ctx = env_context()
    if ctx.world == 1:
        return 0
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, cores // ctx.local_world)


def test_kill_hook(epoch: int, step: int) -> None:
    """Test-only: with ``SEQREC_TEST_KILL_RANK=r`` and ``SEQREC_TEST_KILL_STEP=e:s`` rank r
    SIGKILLs itself before step s of epoch e (1-based) — how ``tests/distributed`` kills a rank
    mid-epoch. Never set these outside tests."""
    rank = os.environ.get("SEQREC_TEST_KILL_RANK")
    if rank is None or int(rank) != env_context().rank:
        return
    e, s = (int(x) for x in os.environ.get("SEQREC_TEST_KILL_STEP", "0:0").split(":"))
    if epoch + 1 == e and step == s:
        os.kill(os.getpid(), signal.SIGKILL)


def seed_ranks(seed: int) -> None:
    """Once the model is built (the same on every rank, from ``seed``): ranks > 0 reseed torch
    with ``seed + rank``, so their dropout masks and torch-drawn negatives are their own, not
    copies of rank 0's; rank 0 keeps the stream one process would have. No-op for one process."""
    if _CTX.active and _CTX.rank > 0:
        torch.manual_seed(seed + _CTX.rank)
