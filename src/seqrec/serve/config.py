"""The pipeline file ``seqrec serve PIPELINE.toml`` reads: stages, variants, limits, threads.

Example (``configs/serve/amazon_beauty.toml``)::

    [pipeline]
    name = "beauty"
    state_dir = "runs/serve/beauty"    # last good versions (active.json), impression logs

    [[variants]]                       # one or more; two or more = an A/B test
    name = "control"
    share = 0.5                        # traffic share, by a stable hash of the user id
    retriever = "runs/final/amazon_beauty/youtube_dnn"   # a retrieval run (with ``seqrec index``)
    ranker = "runs/final/amazon_beauty/din"              # a CTR run, or "" for retrieval only
    candidates = 1000                  # retrieved and passed to the ranker

    [session]                          # optional: POST /session/{id}/click
    run = "runs/bench/yoochoose_100k/gru4rec-bpr-max"

    [limits]                           # every violation is a 4xx naming the field
    max_history = 200

Relative run paths are resolved against the current directory (like ``seqrec train --out``). Every
key is checked: an unknown key or a value out of range is a ConfigError naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from seqrec.config_values import from_dict, read_toml
from seqrec.errors import ConfigError


@dataclass(frozen=True)
class VariantConfig:
    name: str = "default"
    share: float = 1.0
    retriever: str = ""
    ranker: str = ""  # "" = the retriever's order is final
    candidates: int = 1000
    index: bool = True  # serve through the retriever's faiss index (exact scoring without one)
    ranker_backend: str = "eager"  # eager (torch, model split) | onnx (an exported ranker.onnx)
    ranker_task: str = ""  # a multi-task (DUPN) ranker: the task head that scores ("" = its first task)

    def __post_init__(self) -> None:
        if not self.retriever:
            raise ValueError(f"variant {self.name!r}: retriever (a retrieval run directory) is required")
        if not 0 < self.share <= 1:
            raise ValueError(f"variant {self.name!r}: share must be in (0, 1], got {self.share}")
        if self.candidates < 1:
            raise ValueError(f"variant {self.name!r}: candidates must be >= 1, got {self.candidates}")
        if self.ranker_backend not in ("eager", "onnx"):
            raise ValueError(f"variant {self.name!r}: ranker_backend must be eager or onnx")


@dataclass(frozen=True)
class SessionConfig:
    run: str = ""  # a GRU4Rec run; "" = no session endpoint
    max_sessions: int = 100_000  # memory bound: LRU eviction beyond it
    ttl_seconds: float = 1800.0  # a session idle this long is forgotten

    def __post_init__(self) -> None:
        if self.max_sessions < 1 or self.ttl_seconds <= 0:
            raise ValueError("session: max_sessions must be >= 1 and ttl_seconds > 0")


@dataclass(frozen=True)
class LimitsConfig:
    max_history: int = 200  # items in a request's history
    max_k: int = 200
    max_candidates: int = 2000  # ids in a /score request
    max_body_bytes: int = 65536
    timeout_ms: float = 1000.0  # per request, checked between stages and on arrival

    def __post_init__(self) -> None:
        if min(self.max_history, self.max_k, self.max_candidates, self.max_body_bytes) < 1 or self.timeout_ms <= 0:
            raise ValueError("limits: every limit must be positive")


@dataclass(frozen=True)
class PipelineSection:
    name: str = "seqrec"
    state_dir: str = ""  # "" = no persistence (no restart on the last good version, no impression log)
    torch_threads: int = 1  # per worker process; faiss uses the same
    # a ranker request whose history has >= long_history items scores with long_threads torch
    # threads (0 = off, the default). Alone, 2 threads cut a 50-item history's ranking from 14.6 to
    # 9.2 ms; under load with 2 workers on 2 cores the threads fight the other worker and the p99 at
    # 200 req/s rose from 21 to 38 ms (benchmarks/README.md, Serving)
    long_history: int = 0
    long_threads: int = 2
    admin_token_env: str = "SEQREC_ADMIN_TOKEN"  # POST /admin/reload needs this token (unset = disabled)
    k: int = 20  # default k of /recommend


@dataclass(frozen=True)
class PipelineConfig:
    pipeline: PipelineSection = field(default_factory=PipelineSection)
    variants: tuple[VariantConfig, ...] = ()
    session: SessionConfig = field(default_factory=SessionConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError("at least one [[variants]] table (retriever, optional ranker) is required")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"variant shares must add up to 1, got {total:g}")

    def variant(self, name: str) -> VariantConfig:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"no variant {name!r}; variants: {[v.name for v in self.variants]}")


def load_pipeline_config(path: str | os.PathLike) -> PipelineConfig:
    """Read and check a pipeline TOML file."""
    return from_dict(PipelineConfig, read_toml(path, "pipeline file"), str(path))
