"""Prometheus metrics of the service (prometheus_client, one registry per app).

``seqrec_requests_total{endpoint, status}``, ``seqrec_request_seconds{endpoint}`` and
``seqrec_stage_seconds{stage}`` (retrieve, rank, total, session_step) histograms,
``seqrec_impressions_total{variant}``, ``seqrec_reloads_total{result}`` and the
``seqrec_sessions`` gauge. With several uvicorn workers each process counts its own requests
(``/metrics`` answers from the worker that took the scrape).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._requests = Counter("seqrec_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                 registry=r)
        self._latency = Histogram("seqrec_request_seconds", "request latency by endpoint", ["endpoint"],
                                  buckets=BUCKETS, registry=r)
        self._stage = Histogram("seqrec_stage_seconds", "time per pipeline stage", ["stage"], buckets=BUCKETS,
                                registry=r)
        self._impressions = Counter("seqrec_impressions", "recommendation lists served, by A/B variant",
                                    ["variant"], registry=r)
        self._reloads = Counter("seqrec_reloads", "hot reloads by result", ["result"], registry=r)
        self._sessions = Gauge("seqrec_sessions", "sessions with a stored GRU state", registry=r)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self._requests.labels(endpoint, str(status)).inc()
        self._latency.labels(endpoint).observe(seconds)

    def stage(self, stage: str, seconds: float) -> None:
        self._stage.labels(stage).observe(seconds)

    def impression(self, variant: str) -> None:
        self._impressions.labels(variant).inc()

    def reload(self, ok: bool) -> None:
        self._reloads.labels("ok" if ok else "rejected").inc()

    def sessions(self, n: int) -> None:
        self._sessions.set(n)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
