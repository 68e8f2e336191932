"""The HTTP service (FastAPI): ``seqrec serve PIPELINE.toml``.

Endpoints: ``POST /recommend`` (retrieve -> rank -> top k), ``POST /score`` (rank given
candidates), ``POST /session/{id}/click`` (one GRU4Rec step from the session's stored state),
``GET /health`` (alive), ``GET /ready`` (a pipeline is loaded), ``GET /version`` (model versions
and file checksums), ``GET /metrics`` (Prometheus: requests by endpoint and status, latency
histograms per stage), ``POST /admin/reload`` (token-protected hot reload), ``GET /`` (a page for
people) and ``GET /items`` (item search for the page). The OpenAPI schema is at ``/openapi.json``.

Input limits (``[limits]`` of the pipeline): history length, k, candidate count, body size, and a
per-request time budget. A violation is a 4xx JSON error ``{"error", "field"}``; only a request
that runs out of time (503, ``field: "timeout"``) or a bug (500) gets a 5xx.

Threads: the torch and faiss pools are set to ``pipeline.torch_threads`` (default 1) in each worker
process; the handlers compute inline on the event loop (no thread hand-off per request).
"""

import contextlib
import json
import os
import re
import secrets
import time
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from seqrec.errors import SeqrecError
from seqrec.serve import schemas as S
from seqrec.serve.config import PipelineConfig, load_pipeline_config
from seqrec.serve.pipeline import Deadline, DeadlineExceeded, PipelineHolder, Result
from seqrec.serve.sessions import SessionStore

_ENDPOINT = [(re.compile(r"^/session/[^/]+/click$"), "/session/{id}/click")]
_KNOWN = {"/", "/recommend", "/score", "/health", "/ready", "/version", "/metrics", "/admin/reload", "/items",
          "/openapi.json", "/docs"}


def endpoint_label(path: str) -> str:
    if path in _KNOWN:
        return path
    for rx, label in _ENDPOINT:
        if rx.match(path):
            return label
    return "other"


class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: arrival time, the body-size cap (413 before the body is parsed, also for
    chunked bodies) and the request metrics."""

    def __init__(self, app, max_body: int, metrics) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        scope.setdefault("state", {})["t0"] = t0
        label = endpoint_label(scope["path"])
        status = {"code": 500, "started": False}

        async def send_(msg):
            if msg["type"] == "http.response.start":
                status["code"], status["started"] = msg["status"], True
            await send(msg)

        seen = {"n": 0}

        async def receive_():
            msg = await receive()
            if msg["type"] == "http.request":
                seen["n"] += len(msg.get("body", b""))
                if seen["n"] > self.max_body:
                    raise _TooLarge
            return msg

        try:
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                raise _TooLarge
            await self.app(scope, receive_, send_)
        except _TooLarge:
            if not status["started"]:
                body = json.dumps({"error": f"request body larger than limits.max_body_bytes = {self.max_body}",
                                   "field": "body"}).encode()
                await send_({"type": "http.response.start", "status": 413,
                             "headers": [(b"content-type", b"application/json"),
                                         (b"content-length", str(len(body)).encode())]})
                await send_({"type": "http.response.body", "body": body})
        finally:
            self.metrics.request(label, status["code"], time.perf_counter() - t0)


def _limit(value, cap, field: str, what: str):
    if value is not None and value > cap:
        raise HTTPException(422, {"error": f"{field}: {value}{' ' + what if what else ''} is over the limit of {cap}", "field": field})


def _bad(field: str, msg: str, status: int = 422):
    return HTTPException(status, {"error": f"{field}: {msg}", "field": field})


def _ids(values) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


def create_app(cfg: "PipelineConfig | str | os.PathLike", *, holder: "PipelineHolder | None" = None):
    """The FastAPI app of a pipeline (a config or a pipeline TOML path); loads it now."""
    from seqrec.serve.impressions import ImpressionLog
    from seqrec.serve.metrics import Metrics
    from seqrec.threads import configure_threads

    if not isinstance(cfg, PipelineConfig):
        cfg = load_pipeline_config(cfg)
    configure_threads(cfg.pipeline.torch_threads)
    _faiss_threads(cfg.pipeline.torch_threads)
    holder = holder or PipelineHolder(cfg)
    limits = cfg.limits
    metrics = Metrics()
    sessions = SessionStore(cfg.session.max_sessions, cfg.session.ttl_seconds)
    log = ImpressionLog(Path(cfg.pipeline.state_dir) if cfg.pipeline.state_dir else None)
    token = os.environ.get(cfg.pipeline.admin_token_env, "")

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        log.close()  # flush the impression log

    app = FastAPI(title="seqrec", version=_version(), lifespan=lifespan,
                  description="Two-stage recommendation: retrieve through a faiss index, rank with a CTR model.")
    app.state.holder, app.state.sessions, app.state.metrics = holder, sessions, metrics
    app.state.impressions = log

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        field = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
        return JSONResponse({"error": f"{field}: {err['msg']}", "field": field}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        d = exc.detail if isinstance(exc.detail, dict) else {"error": str(exc.detail), "field": None}
        return JSONResponse(d, status_code=exc.status_code)

    @app.exception_handler(DeadlineExceeded)
    async def _late(request: Request, exc: DeadlineExceeded):
        return JSONResponse({"error": str(exc), "field": "timeout"}, status_code=503)

    @app.exception_handler(SeqrecError)
    async def _seqrec(request: Request, exc: SeqrecError):
        return JSONResponse({"error": str(exc), "field": None}, status_code=422)

    def deadline(request: Request) -> Deadline:
        d = Deadline(request.scope.get("state", {}).get("t0", time.perf_counter()), limits.timeout_ms / 1e3)
        d.check("any work")  # queued past its budget: shed it now
        return d

    def check_common(user, history, k):
        if history is not None:
            _limit(len(history), limits.max_history, "history", "items")
        if k is not None:
            if k < 1:
                raise _bad("k", "must be >= 1")
            _limit(k, limits.max_k, "k", "")
        if user is not None and not str(user):
            raise _bad("user_id", "must not be empty")

    def respond(res: Result) -> JSONResponse:
        """The response, serialised directly: the handlers build it in the documented shape
        (response_model, tested), so FastAPI's second validation pass is skipped."""
        for stage, sec in res.timings.items():
            metrics.stage(stage, sec)
        out = {"items": res.items, "model_versions": res.versions, "notes": res.notes,
               "timings_ms": {k: 1e3 * v for k, v in res.timings.items()}}
        if res.candidates is not None:
            out["candidates"] = res.candidates
        return JSONResponse(out)

    @app.post("/recommend", response_model=S.RecommendResponse, response_model_exclude_none=True,
              responses={413: {"model": S.ErrorResponse}, 422: {"model": S.ErrorResponse},
                         503: {"model": S.ErrorResponse}})
    async def recommend(body: S.RecommendRequest, request: Request):
        dl = deadline(request)
        check_common(body.user_id, body.history, body.k)
        holder.follow()
        p = holder.current  # this request's version, whatever a reload does meanwhile
        user = None if body.user_id is None else str(body.user_id)
        v = p.assign(user, body.session_id)
        t0 = time.perf_counter()
        res = v.recommend(user=user, items=_ids(body.history), k=body.k or cfg.pipeline.k,
                          exclude_seen=body.exclude_seen, explain=body.explain, deadline=dl)
        res.timings["total"] = time.perf_counter() - t0
        log.write(v.name, user, body.session_id, [i["id"] for i in res.items], res.versions)
        metrics.impression(v.name)
        return respond(res)

    @app.post("/score", response_model=S.RecommendResponse, response_model_exclude_none=True,
              responses={413: {"model": S.ErrorResponse}, 422: {"model": S.ErrorResponse}})
    async def score(body: S.ScoreRequest, request: Request):
        deadline(request)
        check_common(body.user_id, body.history, None)
        _limit(len(body.candidates), limits.max_candidates, "candidates", "ids")
        if not body.candidates:
            raise _bad("candidates", "must not be empty")
        p = holder.current
        user = None if body.user_id is None else str(body.user_id)
        v = p.assign(user, body.session_id)
        t0 = time.perf_counter()
        res = v.score(user=user, items=_ids(body.history), candidates=_ids(body.candidates))
        res.timings["rank"] = time.perf_counter() - t0
        return respond(res)

    @app.post("/session/{session_id}/click", response_model=S.ClickResponse, response_model_exclude_none=True,
              responses={404: {"model": S.ErrorResponse}, 422: {"model": S.ErrorResponse}})
    async def click(session_id: str, body: S.ClickRequest, request: Request):
        deadline(request)
        _limit(body.k, limits.max_k, "k", "")
        if body.k is not None and body.k < 1:
            raise _bad("k", "must be >= 1")
        if len(session_id) > 200:
            raise _bad("session_id", "longer than 200 characters")
        model = holder.current.session
        if model is None:
            raise _bad("session_id", "this pipeline has no [session] model", status=404)
        t0 = time.perf_counter()
        notes: list[str] = []
        stored = sessions.get(session_id)
        state, clicks, scores = (stored if stored is not None else (model.init_state(), 0, None))
        row = model.index.get(str(body.item_id))
        if row is None:
            notes.append(f"unknown item id {body.item_id!r} skipped: the session state is unchanged")
        else:
            state, scores = model.step(state, row)
            clicks += 1
            sessions.put(session_id, (state, clicks, scores))
        items: list[dict] = []
        if scores is not None:
            ids, vals = model.top(scores, body.k or cfg.pipeline.k)
            items = [{"id": i, "score": float(s)} for i, s in zip(ids, vals, strict=True)]
        else:
            notes.append("no known click in this session yet")
        metrics.stage("session_step", time.perf_counter() - t0)
        return {"session_id": session_id, "clicks": clicks, "items": items, "notes": notes,
                "model_versions": {"session": holder.current.versions()["session"]["version"]}}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        p = holder.current
        return {"ready": p is not None, "variants": list(p.variants), "loaded_at": p.loaded_at,
                "restored_last_good": holder.restored, "restore_error": holder.restore_error}

    @app.get("/version")
    async def version():
        p = holder.current
        return {"seqrec": _version(), "pipeline": cfg.pipeline.name, "loaded_at": p.loaded_at, **p.versions()}

    @app.get("/metrics")
    async def prom():
        metrics.sessions(len(sessions))
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload", responses={403: {"model": S.ErrorResponse}, 409: {"model": S.ErrorResponse}})
    async def reload(body: S.ReloadRequest, request: Request):
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise _bad("authorization", f"reload is disabled: set {cfg.pipeline.admin_token_env}", status=403)
        if not secrets.compare_digest(given, token):
            raise _bad("authorization", "wrong or missing admin token", status=403)
        try:
            new = holder.reload(body.variants)
        except (SeqrecError, OSError, RuntimeError, ValueError, KeyError) as exc:
            metrics.reload(False)
            raise _bad("variants", f"the new version was rejected, the old one keeps serving: {exc}",
                       status=409) from exc
        metrics.reload(True)
        return {"reloaded": True, "loaded_at": new.loaded_at, **new.versions()}

    @app.get("/items")
    async def items(q: str = "", limit: int = 20):
        if len(q) > 100 or not 1 <= limit <= 100:
            raise _bad("q", "at most 100 characters, limit in [1, 100]")
        v = next(iter(holder.current.variants.values()))
        ids = v.retriever.item_ids
        found = [i for i in ids[:200_000].tolist() if str(i).startswith(q)][:limit] if q else \
            v.retriever.raw(v.retriever.popularity[:limit]) if v.retriever.popularity is not None else []
        attrs = []
        for i in found:
            a = {}
            if v.ranker is not None:
                r = v.ranker.item_index.get(str(i))
                a = v.ranker.attributes(r) if r is not None else {}
            attrs.append({"id": str(i), "attributes": a})
        return {"items": attrs}

    page = resources.files("seqrec.serve").joinpath("static/index.html")

    @app.get("/", response_class=HTMLResponse)
    async def index_page():
        return HTMLResponse(page.read_text(encoding="utf-8"))

    app.add_middleware(Guard, max_body=limits.max_body_bytes, metrics=metrics)
    return app


def _faiss_threads(n: int) -> None:
    try:
        from seqrec.serve.index import set_threads

        set_threads(n)
    except SeqrecError:
        pass  # faiss not installed: retrieval scores every item exactly


def _version() -> str:
    from seqrec import __version__

    return __version__


def app_from_env():
    """uvicorn's factory for ``seqrec serve --workers N``: the pipeline file from ``SEQREC_PIPELINE``."""
    path = os.environ.get("SEQREC_PIPELINE")
    if not path:
        raise SystemExit("SEQREC_PIPELINE is not set (seqrec serve sets it)")
    return create_app(path)


def serve(pipeline: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "warning") -> None:
    """Run the service with uvicorn (``seqrec serve``); the pipeline is checked before it starts."""
    import uvicorn

    load_pipeline_config(pipeline)  # a bad file fails here with one line, not in a worker
    os.environ["SEQREC_PIPELINE"] = str(Path(pipeline).resolve())
    uvicorn.run("seqrec.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False)
