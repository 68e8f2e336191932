"""Retrieve, then rank: a loaded pipeline of variants, A/B assignment, and versioned hot reload.

A request is served by one :class:`Variant`: its retriever takes the user's history (raw item ids,
or a known user's history from the retriever's data) to ``candidates`` items through the faiss
index, its ranker scores them with the model split, and the top ``k`` are returned. A user with
no usable history gets the most popular items (the retriever's training counts), and the response
says so. Unknown ids are skipped and listed in the notes.

**A/B**: with two or more variants, a user goes to a variant by a stable hash of the pipeline's
name and the user id (sticky: the same user always gets the same variant, across restarts and
workers); requests without a user id hash the session id, and with neither go to the first
variant. Every response names its variant; the app logs each impression with it.

**Versions and hot reload** (:class:`PipelineHolder`): a loaded :class:`Pipeline` never changes.
A reload builds a new one beside the serving one (all its runs loaded, the index read, every
variant answering a smoke request) and swaps the reference in one assignment; a request holds the
pipeline it started with, so in-flight requests finish on the old version. A new version that
fails to load or to answer is rejected and the old one keeps serving. The versions in service are
written (atomically) to ``state_dir/active.json``, so a killed server restarts on the last good
version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqrec.errors import ConfigError, SeqrecError
from seqrec.io import atomic_write_text
from seqrec.serve.config import PipelineConfig, VariantConfig
from seqrec.serve.stages import Ranker, Retriever, SessionModel

log = logging.getLogger("seqrec.serve")


class DeadlineExceeded(SeqrecError):
    """The request's time budget ran out between two stages."""


@dataclass
class Deadline:
    start: float  # time.perf_counter() at arrival
    budget: float  # seconds

    def check(self, stage: str) -> None:
        spent = time.perf_counter() - self.start
        if spent > self.budget:
            raise DeadlineExceeded(f"timeout: {1e3 * spent:.0f} ms spent before {stage} "
                                   f"(limits.timeout_ms = {1e3 * self.budget:.0f})")


@dataclass
class Result:
    items: list[dict]
    notes: list[str] = field(default_factory=list)
    variant: str = ""
    versions: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # stage -> seconds
    candidates: list[dict] | None = None  # the retrieved candidates (explain)


def version_of(stage) -> str:
    """``<run dir name>@<first 12 hex of model.pt's SHA-256>``."""
    return f"{stage.dir.name}@{stage.checksums.get('model.pt', '')[:12]}"


def bucket(pipeline: str, key: str) -> float:
    """A stable number in [0, 1) for ``key``: the A/B split (sha256, not Python's salted hash)."""
    h = hashlib.sha256(f"{pipeline}\0{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def make_ranker(cfg: VariantConfig) -> Ranker:
    """The ranker of a variant: a CTR run (:class:`Ranker`) or a DUPN run
    (:class:`seqrec.serve.dupn_ranker.DUPNRanker`, scoring with ``ranker_task``'s head)."""
    from seqrec.train.checkpoint import load_json

    path = Path(cfg.ranker) / "config.json"
    family = load_json(path).get("family") if path.is_file() else None
    if family == "multitask":
        from seqrec.serve.dupn_ranker import DUPNRanker

        if cfg.ranker_backend != "eager":
            raise ConfigError(f"variant {cfg.name!r}: a DUPN ranker runs eager (no onnx export)")
        return DUPNRanker(cfg.ranker, cfg.ranker_task)
    if cfg.ranker_task:
        raise ConfigError(f"variant {cfg.name!r}: ranker_task applies to multi-task (DUPN) rankers only")
    return Ranker(cfg.ranker, backend=cfg.ranker_backend)


class Variant:
    """One retriever (+ ranker) with the settings of a :class:`VariantConfig`."""

    def __init__(self, cfg: VariantConfig, long_history: int = 0, long_threads: int = 0) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.long_history, self.long_threads = long_history, long_threads
        self.retriever = Retriever(cfg.retriever, use_index=cfg.index)
        self.retriever.load_data()
        self.ranker = make_ranker(cfg) if cfg.ranker else None
        if self.ranker is not None:  # retriever index -> ranker row (1 = unknown to the ranker)
            self.to_ranker = np.concatenate([[0], self.ranker.rows(self.retriever.item_ids.tolist())])
        self.versions = {"variant": self.name, "retriever": version_of(self.retriever)}
        if self.ranker is not None:
            self.versions["ranker"] = version_of(self.ranker)

    def checksums(self) -> dict:
        out = {"retriever": {"run": str(self.retriever.dir), **self.retriever.checksums}}
        if self.ranker is not None:
            out["ranker"] = {"run": str(self.ranker.dir), "backend": self.ranker.backend, **self.ranker.checksums}
        return out

    def history(self, user: str | None, items: list[str] | None, notes: list[str]) -> np.ndarray:
        """The request's history as retriever item indices (unknown ids noted)."""
        if items is None and user is not None:
            h = self.retriever.history_of(user)
            if h is None:
                notes.append(f"unknown user {user!r}: no stored history")
                return np.zeros(0, np.int64)
            return np.asarray(h, np.int64)
        hist, unknown = self.retriever.encode_items(items or [])
        if unknown:
            notes.append(f"unknown item ids skipped: {unknown[:20]}" + (" ..." if len(unknown) > 20 else ""))
        return hist

    def popular(self, k: int, exclude: np.ndarray) -> list[dict]:
        pop = self.retriever.popularity
        if pop is None:
            return []
        keep = pop[~np.isin(pop, exclude)][:k]
        return [{"id": i} for i in self.retriever.raw(keep)]

    def recommend(self, *, user: str | None, items: list[str] | None, k: int, exclude_seen: bool,
                  explain: bool, deadline: Deadline) -> Result:
        res = Result(items=[], variant=self.name, versions=self.versions)
        hist = self.history(user, items, res.notes)
        seen = hist if exclude_seen else np.zeros(0, np.int64)
        if len(hist) == 0:
            res.items = self.popular(k, seen)
            res.notes.append("no usable history: popularity fallback")
            return res
        t0 = time.perf_counter()
        n = max(k, self.cfg.candidates) if self.ranker is not None else k
        idx, scores = self.retriever.retrieve(hist, n, seen)
        t1 = time.perf_counter()
        res.timings["retrieve"] = t1 - t0
        if self.ranker is None:
            res.items = [{"id": i, "score": float(s)} for i, s in zip(self.retriever.raw(idx[:k]), scores[:k],
                                                                       strict=True)]
            return res
        deadline.check("ranking")
        rows = self.to_ranker[idx]
        known = rows != 1
        if not known.all():
            res.notes.append(f"{int((~known).sum())} retrieved candidate(s) unknown to the ranker were dropped")
            idx, scores, rows = idx[known], scores[known], rows[known]
        hist_rows = self.to_ranker[hist]
        hist_rows = hist_rows[hist_rows != 1]
        long = self.long_history and min(len(hist_rows), self.ranker.max_len) >= self.long_history
        logits, att = self.ranker.score(hist_rows, user, rows, explain=explain,
                                        threads=self.long_threads if long else 0)
        order = np.argsort(-logits, kind="stable")[:k]
        res.timings["rank"] = time.perf_counter() - t1
        raw = self.retriever.raw(idx[order])
        prob = 1.0 / (1.0 + np.exp(-logits[order].astype(np.float64)))
        res.items = [{"id": i, "score": float(p), "retrieval_score": float(s)}
                     for i, p, s in zip(raw, prob, scores[order], strict=True)]
        if explain:
            self._explain(res, hist, hist_rows, rows, order, att, idx, scores)
        return res

    def _explain(self, res, hist, hist_rows, rows, order, att, idx, scores) -> None:
        """Item attributes, the retrieved candidates, and the history items each top item's
        attention weighed most (DIN / DIEN)."""
        rk = self.ranker
        hist_raw = self.retriever.raw(hist[self.to_ranker[hist] != 1])[-rk.max_len:]
        for j, item in zip(order, res.items, strict=True):
            item["attributes"] = rk.attributes(int(rows[j]))
            if att is not None and att.shape[1]:  # (C, n): the real behaviours, oldest first
                w = att[j]
                top = np.argsort(-w, kind="stable")[:5]
                item["attention"] = [{"id": hist_raw[t], "weight": float(w[t])} for t in top]
        res.candidates = [{"id": i, "score": float(s)} for i, s in zip(self.retriever.raw(idx[:100]), scores[:100],
                                                                       strict=True)]

    def score(self, *, user: str | None, items: list[str] | None, candidates: list[str]) -> Result:
        if self.ranker is None:
            raise ConfigError(f"variant {self.name!r} has no ranker: /score needs one")
        res = Result(items=[], variant=self.name, versions=self.versions)
        hist = self.history(user, items, res.notes)
        hist_rows = self.to_ranker[hist]
        hist_rows = hist_rows[hist_rows != 1]
        rows = self.ranker.rows(candidates)
        unknown = [c for c, r in zip(candidates, rows, strict=True) if r == 1]
        if unknown:
            res.notes.append(f"unknown candidate ids skipped: {unknown[:20]}")
        keep = np.flatnonzero(rows != 1)
        if len(keep) == 0:
            return res
        logits, _ = self.ranker.score(hist_rows, user, rows[keep])
        order = np.argsort(-logits, kind="stable")
        prob = 1.0 / (1.0 + np.exp(-logits[order].astype(np.float64)))
        res.items = [{"id": candidates[keep[j]], "score": float(p)} for j, p in zip(order, prob, strict=True)]
        return res


class Pipeline:
    """Every variant of a config loaded, plus the session model; immutable once built."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        ps = cfg.pipeline
        self.variants = {v.name: Variant(v, ps.long_history, ps.long_threads) for v in cfg.variants}
        self.session = SessionModel(cfg.session.run) if cfg.session.run else None
        self.loaded_at = time.time()
        self.smoke_test()

    def smoke_test(self) -> None:
        """Every variant answers one request (a broken version fails here, before it serves)."""
        for v in self.variants.values():
            pop = v.retriever.popularity
            items = v.retriever.raw(pop[:3]) if pop is not None else v.retriever.item_ids[:3].tolist()
            res = v.recommend(user=None, items=items, k=5, exclude_seen=True, explain=False,
                              deadline=Deadline(time.perf_counter(), 60.0))
            if not res.items:
                raise ConfigError(f"variant {v.name!r} returned nothing for a smoke request")
            if any(not np.isfinite(i.get("score", 0.0)) for i in res.items):
                raise ConfigError(f"variant {v.name!r} returned non-finite scores (a broken model?)")

    def assign(self, user: str | None, session: str | None) -> Variant:
        vs = list(self.variants.values())
        key = user if user is not None else session
        if len(vs) == 1 or key is None:
            return vs[0]
        x, acc = bucket(self.cfg.pipeline.name, key), 0.0
        for v in vs:
            acc += v.cfg.share
            if x < acc:
                return v
        return vs[-1]

    def versions(self) -> dict:
        out = {name: {**v.versions, "checksums": v.checksums()} for name, v in self.variants.items()}
        if self.session is not None:
            out["session"] = {"version": version_of(self.session),
                              "checksums": {"run": str(self.session.dir), **self.session.checksums}}
        return out


class PipelineHolder:
    """The pipeline in service, swapped atomically on reload; the last good versions on disk."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.base = cfg
        self.state_file = Path(cfg.pipeline.state_dir) / "active.json" if cfg.pipeline.state_dir else None
        self._lock = threading.Lock()  # one reload at a time
        self.restored = False
        self.restore_error: str | None = None
        self._checked = time.monotonic()
        self._written = 0.0
        self.current = self._start()
        self._written = self._mtime()

    def _start(self) -> Pipeline:
        saved = self._saved_config()
        if saved is not None:
            try:
                p = Pipeline(saved)
                self.restored = True
                return p
            except SeqrecError as exc:  # the saved versions no longer load: start from the pipeline file
                self.restore_error = str(exc)
                log.warning("the last good versions in %s do not load (%s); serving the pipeline file's runs",
                            self.state_file, exc)
        p = Pipeline(self.base)
        self._persist(p.cfg)
        return p

    def follow(self, every: float = 1.0) -> None:
        """Pick up a reload made by another worker process (``active.json`` rewritten since this
        pipeline was loaded); checked at most once per ``every`` seconds, called per request."""
        now = time.monotonic()
        if self.state_file is None or now - self._checked < every:
            return
        self._checked = now
        try:
            mtime = self.state_file.stat().st_mtime
        except OSError:
            return
        if mtime <= self._written or not self._lock.acquire(blocking=False):
            return
        try:
            saved = self._saved_config()
            if saved is not None and saved.variants != self.current.cfg.variants:
                self.current = Pipeline(saved)
            self._written = mtime
        except SeqrecError as exc:
            self._written = mtime  # the other worker's version does not load here: keep serving
            log.warning("the versions another worker wrote to %s do not load here (%s); keeping the current "
                        "ones", self.state_file, exc)
        finally:
            self._lock.release()

    def _saved_config(self) -> PipelineConfig | None:
        if self.state_file is None or not self.state_file.is_file():
            return None
        try:
            saved = json.loads(self.state_file.read_text())
            variants = tuple(dataclasses.replace(self.base.variant(v["name"]), retriever=v["retriever"],
                                                 ranker=v["ranker"]) for v in saved["variants"])
        except (ValueError, KeyError, TypeError, SeqrecError):
            return None
        return dataclasses.replace(self.base, variants=variants)

    def _mtime(self) -> float:
        try:
            return self.state_file.stat().st_mtime if self.state_file is not None else 0.0
        except OSError:
            return 0.0

    def _persist(self, cfg: PipelineConfig) -> None:
        if self.state_file is None:
            return
        payload = {"pipeline": cfg.pipeline.name, "saved_at": time.time(),
                   "variants": [{"name": v.name, "retriever": v.retriever, "ranker": v.ranker}
                                for v in cfg.variants]}
        atomic_write_text(self.state_file, json.dumps(payload, indent=2) + "\n")

    def reload(self, changes: dict[str, dict[str, str]] | None = None) -> Pipeline:
        """Load a new version beside the serving one and swap it in. ``changes``: variant name ->
        {"retriever": run dir, "ranker": run dir} (None = the same run directories, re-read from
        disk: a run updated in place). Raises (and keeps the old version) when it fails."""
        with self._lock:
            cur = self.current.cfg
            variants = list(cur.variants)
            for name, ch in (changes or {}).items():
                v = cur.variant(name)
                bad = set(ch) - {"retriever", "ranker"}
                if bad:
                    raise ConfigError(f"reload: unknown field(s) {sorted(bad)}; allowed: retriever, ranker")
                variants[variants.index(v)] = dataclasses.replace(v, **ch)
            new = Pipeline(dataclasses.replace(cur, variants=tuple(variants)))
            self.current = new  # the swap: one reference assignment
            self._persist(new.cfg)
            self._written = self._mtime()
            return new
