"""Open-loop load test of ``seqrec serve`` (issue #23, "Serving", part "Load test").

    python benchmarks/serve_load.py                                 # 50, 100, 200, 400 req/s, 30 s each
    python benchmarks/serve_load.py --rates 20 --duration 3         # smoke run
    python benchmarks/serve_load.py --workers 2 --stages --label workers2

What it does:

1. Draws ``--users`` test users (seed ``--seed``) from the test split of the pipeline's first
   variant's retriever run (``RetrievalRun(run).task.test``) and turns each history into raw item
   ids. Each request sends the **last ``--history-len`` (default 50) items** of one history
   (the models read the last 50; ``--history-len 0`` sends the whole history, capped at the
   pipeline's ``limits.max_history``), with ``k = --k`` (default 20); requests cycle through the
   drawn histories in their drawn order.
2. Starts the server as a child process (``python -m seqrec serve PIPELINE --host 127.0.0.1
   --port FREE --workers N``, own process group, working directory = the repository root) with
   the environment this script started with (taken before ``import seqrec``, which may set
   ``OMP_WAIT_POLICY`` for itself), and waits for ``GET /ready``. It serves a temporary copy of
   the pipeline file whose ``state_dir`` is a temporary directory (so the load test's impression
   log lands neither in the pipeline's own log nor in later replays, and no earlier hot reload's
   ``active.json`` changes what is served; ``--keep-state-dir`` serves the file as it is). It is
   stopped at the end with SIGTERM to its process group (SIGKILL after 10 s), also after an
   error, Ctrl-C or SIGTERM, and gets SIGTERM from the kernel if this script is killed.
3. Per rate: an asyncio + aiohttp client fires request i at ``t0 + i / rate`` (``--arrivals
   uniform``, the default) or at the cumulative sum of exponential gaps of mean ``1 / rate``
   (``--arrivals poisson``, seeded), whether or not earlier requests have returned (open loop:
   no coordinated omission), over one keep-alive connection pool (``--connections``, default
   256; a request that finds every connection busy waits in the pool, and that wait counts).
   Latency runs from the request's **scheduled** send time to the end of its response body, so
   a late client or a queue anywhere counts. The first ``--warmup`` seconds (default 3) run at
   the same rate in the same schedule and are not counted; then ``--duration`` seconds (default
   30) are measured. After the last send the client waits for every answer (at most
   ``--timeout`` + 5 s; a request still open then counts as an error, ``unfinished``).

Per rate it records latency p50 / p95 / p99 / max over the 200 answers (ms), achieved
throughput (200 answers of the measured window / seconds from the window's start to its last
answer), errors by kind (``http_<status>`` and exception class names; never in the
percentiles), the mean per-stage times the server reports in ``timings_ms`` (retrieve, rank, and
total = the handler's pipeline call) and the time outside it (latency - total: client, HTTP,
uvicorn / FastAPI parsing, validation and serialisation, and every queue; mean ms and share of
mean latency), how late the client's sends were (send lag, ms), the server's RSS (sum over its
process and children, sampled every 0.25 s: peak over the rate, and at its end), and CPU use of
the server tree and of this client process (CPU seconds / wall seconds, in cores: the load
generator shares the machine with the server). ``--stages`` also scrapes ``GET /metrics`` at the
start of each measured window and after its drain and stores the difference of the server's
``seqrec_stage_seconds`` and ``seqrec_request_seconds`` histograms (sum, count, mean, bucket
counts, a bucket-bound p99), plus the cumulative histograms at the end. With ``--workers`` > 1
each worker keeps its own metrics and a scrape answers from one of them.

Results go into ``--out`` (default ``benchmarks/results/serving.json``) under the key
``"load"``, as ``{label: record}`` (``--label``, default ``workers<N>``); only that label of that
key is replaced, other keys (other scripts' results) are kept. Each record holds the machine,
the date, the settings, one entry per rate and ``highest_rate_p99_under_20ms``: the highest
tested rate with p99 < 20 ms and no errors (null if none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
_START_ENV = dict(os.environ)  # before seqrec is imported (it may set OMP_WAIT_POLICY for itself)
P99_TARGET_MS = 20.0
THREAD_ENV = re.compile(r"^(OMP_|GOMP_|KMP_|MKL_NUM_THREADS$|NUMBA_NUM_THREADS$)")


# -- histories -------------------------------------------------------------------------------
def load_histories(pipeline: Path, users: int, seed: int, history_len: int) -> tuple[list[bytes], dict]:
    """Request bodies (JSON bytes) from test-split histories of the pipeline's first retriever."""
    from seqrec.families.retrieval import RetrievalRun
    from seqrec.serve.config import load_pipeline_config

    cfg = load_pipeline_config(pipeline)
    run_dir = cfg.variants[0].retriever
    run = RetrievalRun(run_dir if Path(run_dir).is_absolute() else ROOT / run_dir)
    test = run.task.test
    n_all = len(test.users)
    rng = np.random.default_rng(seed)
    pick = rng.choice(n_all, size=min(users, n_all), replace=False)
    cap = cfg.limits.max_history
    keep = min(history_len, cap) if history_len > 0 else cap
    hists, full = [], []
    for i in pick.tolist():
        row = test.history.row(int(i))
        full.append(len(row))
        hists.append([run.item_ids[int(j) - 1] for j in row[-keep:]])
    lens = np.array([len(h) for h in hists])
    info = {"source": f"test split of {run_dir}", "test_users": n_all, "drawn": len(hists), "seed": seed,
            "sent": f"last {keep} items" if history_len > 0 else f"whole history (capped at {cap})",
            "sent_len_mean": float(lens.mean()), "sent_len_max": int(lens.max()),
            "full_len_mean": float(np.mean(full)), "full_len_max": int(np.max(full)),
            "truncated_share": float(np.mean(np.array(full) > keep))}
    del run
    return hists, info


# -- the server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if this script dies without cleaning up (SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    def __init__(self, pipeline: Path, workers: int, startup_timeout: float, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.cmd = [sys.executable, "-m", "seqrec", "serve", str(pipeline), "--host", "127.0.0.1",
                    "--port", str(self.port), "--workers", str(workers)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=_START_ENV, stdin=subprocess.DEVNULL,
                                     stdout=fd, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        os.close(fd)  # the child holds its own copy
        self.stopped = None
        try:
            self._wait_ready(startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0

    def _wait_ready(self, timeout: float) -> None:
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with code {self.proc.returncode} before it was ready:\n"
                                 + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                    if r.status == 200 and json.loads(r.read()).get("ready"):
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"the server was not ready after {timeout:.0f} s:\n" + self.log_tail())

    def log_tail(self, n: int = 3000) -> str:
        p = Path(self.log_path)
        return p.read_text(errors="replace")[-n:] if p.exists() else ""

    def refresh(self) -> None:
        """Find the server's process tree (uvicorn's workers are started once); sampling it later
        reads only /proc/PID files, not the whole process table."""
        import psutil

        try:
            p = psutil.Process(self.proc.pid)
            self._tree = [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            self._tree = []

    def processes(self):
        if getattr(self, "_tree", None) is None:
            self.refresh()
        return self._tree

    def rss(self) -> int:
        import psutil

        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_by_process(self) -> list[dict]:
        """RSS of each process of the tree (MB; shared pages count in each)."""
        import psutil

        out = []
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                cmd = " ".join(p.cmdline()[1:4])
                out.append({"pid": p.pid, "cmd": cmd[:80], "rss_mb": p.memory_info().rss / 2**20})
        return out

    def stop(self) -> None:
        """SIGTERM to the server's process group (uvicorn shuts down gracefully), SIGKILL after 10 s."""
        if self.stopped is not None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own group (start_new_session)
                self.proc.wait(10)
                self.stopped = "SIGTERM"
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                self.stopped = "SIGKILL"
            except ProcessLookupError:
                self.stopped = "gone"
        else:
            self.stopped = f"exited early ({self.proc.returncode})"


def pipeline_with_state_dir(pipeline: Path, state_dir: Path, dest: Path) -> Path:
    """A copy of the pipeline TOML whose ``[pipeline] state_dir`` is ``state_dir`` (the load test's
    impression log and active.json go there, not into the pipeline's own state directory);
    checked by parsing: everything else must be unchanged."""
    import tomllib

    text = pipeline.read_text(encoding="utf-8")
    line = f"state_dir = {json.dumps(str(state_dir))}"
    section = re.search(r"(?ms)^\[pipeline\][^\n]*\n(.*?)(?=^\s*\[)", text + "\n[end]")
    if section is None:
        new = f"[pipeline]\n{line}\n" + text
    elif re.search(r"(?m)^state_dir\s*=.*$", section.group(1)):
        body = re.sub(r"(?m)^state_dir\s*=.*$", line.replace("\\", "\\\\"), section.group(1), count=1)
        new = text[:section.start(1)] + body + text[section.end(1):]
    else:
        new = text[:section.start(1)] + line + "\n" + text[section.start(1):]
    want = tomllib.loads(text)
    want.setdefault("pipeline", {})["state_dir"] = str(state_dir)
    if tomllib.loads(new) != want:
        raise SystemExit(f"could not point {pipeline}'s state_dir elsewhere; use --keep-state-dir")
    dest.write_text(new, encoding="utf-8")
    return dest


# -- /metrics --------------------------------------------------------------------------------
_LINE = re.compile(r"^(seqrec_(?:stage|request)_seconds)_(bucket|sum|count)\{([^}]*)\}\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_metrics(text: str) -> dict:
    """{"stage": {name: {sum, count, buckets{le: cumulative}}}, "request": {endpoint: ...}}."""
    out: dict = {"stage": {}, "request": {}}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name, part, labels, value = m.groups()
        lab = dict(_LABEL.findall(labels))
        kind, key = ("stage", lab.get("stage")) if name == "seqrec_stage_seconds" else ("request", lab.get("endpoint"))
        h = out[kind].setdefault(key, {"sum": 0.0, "count": 0.0, "buckets": {}})
        if part == "bucket":
            h["buckets"][lab["le"]] = float(value)
        else:
            h[part] = float(value)
    return out


def metrics_delta(before: dict, after: dict) -> dict:
    """The histograms' growth between two scrapes, with mean and a bucket-bound p50 / p99."""
    out: dict = {}
    for kind in ("stage", "request"):
        out[kind] = {}
        for key, a in after[kind].items():
            b = before.get(kind, {}).get(key, {"sum": 0.0, "count": 0.0, "buckets": {}})
            n = a["count"] - b["count"]
            if n <= 0:
                continue
            buckets = {le: a["buckets"][le] - b["buckets"].get(le, 0.0) for le in a["buckets"]}
            out[kind][key] = {"count": int(n), "sum_s": a["sum"] - b["sum"],
                              "mean_ms": 1e3 * (a["sum"] - b["sum"]) / n,
                              "p50_le_ms": _bucket_bound(buckets, n, 0.50),
                              "p99_le_ms": _bucket_bound(buckets, n, 0.99),
                              "buckets": {le: int(c) for le, c in buckets.items()}}
    return out


def _bucket_bound(buckets: dict, n: float, q: float):
    """The upper bound (ms) of the first bucket holding the q-quantile (None: the +Inf bucket)."""
    for le, c in sorted(((float(k), v) for k, v in buckets.items())):
        if c >= q * n:
            return None if le == float("inf") else 1e3 * le
    return None


def cumulative(m: dict) -> dict:
    return {kind: {k: {"count": int(h["count"]), "sum_s": h["sum"],
                       "mean_ms": 1e3 * h["sum"] / h["count"] if h["count"] else None}
                   for k, h in m[kind].items()} for kind in m}


# -- the load --------------------------------------------------------------------------------
def schedule(rate: float, seconds: float, arrivals: str, seed: int) -> np.ndarray:
    """Send times (s from t0) of every request in [0, seconds)."""
    if arrivals == "uniform":
        return np.arange(int(round(rate * seconds))) / rate
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate, size=int(rate * seconds * 1.5) + 100)
    t = np.cumsum(gaps) - gaps[0]  # the first at t0
    return t[t < seconds]


async def run_rate(server: Server, bodies: list[bytes], rate: float, args, offset: int) -> dict:
    import aiohttp
    import psutil

    sched = schedule(rate, args.warmup + args.duration, args.arrivals, args.seed + int(rate))
    server.refresh()
    n = len(sched)
    measured = sched >= args.warmup
    lat = np.full(n, np.nan)
    lag = np.full(n, np.nan)
    sent = np.full(n, np.nan)
    status = np.zeros(n, np.int32)
    t_end = np.full(n, np.nan)
    stages: list[dict | None] = [None] * n
    short = 0
    errors: dict[str, int] = {}
    rss = {"peak": 0, "end": 0}
    marks: dict = {}
    url = server.url + "/recommend"
    headers = {"content-type": "application/json"}
    me = psutil.Process()

    connector = aiohttp.TCPConnector(limit=args.connections, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, t_sched: float) -> None:
            nonlocal short
            sent[i] = time.perf_counter()
            lag[i] = sent[i] - t_sched
            try:
                async with session.post(url, data=bodies[(offset + i) % len(bodies)], headers=headers) as resp:
                    payload = await resp.read()
                    done = time.perf_counter()
                    code = resp.status
            except asyncio.TimeoutError:
                errors["timeout"] = errors.get("timeout", 0) + measured[i]
                return
            except (aiohttp.ClientError, OSError) as exc:
                kind = type(exc).__name__
                errors[kind] = errors.get(kind, 0) + measured[i]
                return
            status[i], t_end[i], lat[i] = code, done, done - t_sched
            if code != 200:
                errors[f"http_{code}"] = errors.get(f"http_{code}", 0) + measured[i]
                return
            try:
                body = json.loads(payload)
                stages[i] = body["timings_ms"]
            except (ValueError, KeyError, TypeError):
                status[i] = -1  # a 200 without a JSON body holding timings_ms: not an answer
                errors["bad_body"] = errors.get("bad_body", 0) + measured[i]
                return
            if measured[i] and len(body.get("items", ())) < args.k:
                short += 1

        async def sample_rss() -> None:
            while True:
                rss["end"] = server.rss()
                rss["peak"] = max(rss["peak"], rss["end"])
                await asyncio.sleep(0.25)

        async def scrape() -> dict | None:
            """The server's /metrics, or None when an overloaded server does not answer in time."""
            try:
                async with session.get(server.url + "/metrics", timeout=aiohttp.ClientTimeout(total=60)) as r:
                    return parse_metrics(await r.text())
            except (asyncio.TimeoutError, aiohttp.ClientError):
                return None

        async def window_start() -> None:
            marks["t_window"] = time.perf_counter()
            marks["cpu_server"] = server.cpu_seconds()
            t = me.cpu_times()
            marks["cpu_client"] = t.user + t.system
            if args.stages:
                marks["metrics"] = await scrape()

        sampler = asyncio.create_task(sample_rss())
        pending: set[asyncio.Task] = set()
        t0 = time.perf_counter() + 0.05
        first_measured = int(np.argmax(measured)) if measured.any() else n
        i = 0
        while i < n:
            now = time.perf_counter()
            while i < n and t0 + sched[i] <= now:
                if i == first_measured:
                    pending.add(asyncio.create_task(window_start()))
                task = asyncio.create_task(one(i, t0 + sched[i]))
                pending.add(task)
                task.add_done_callback(pending.discard)
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, t0 + sched[i] - time.perf_counter()))
        t_last_send = time.perf_counter()
        unfinished = 0
        if pending:
            done, still = await asyncio.wait(set(pending), timeout=args.timeout + 5)
            for t in still:
                t.cancel()
            unfinished = len(still)
        if unfinished:
            errors["unfinished"] = unfinished
        t_drained = time.perf_counter()
        t = me.cpu_times()
        cpu_client = t.user + t.system - marks["cpu_client"]
        cpu_server = server.cpu_seconds() - marks["cpu_server"]
        sampler.cancel()
        rss["end"] = server.rss()
        stage_delta = None
        if args.stages:
            end = await scrape()
            stage_delta = metrics_delta(marks["metrics"], end) if end and marks["metrics"] else None

    ok = measured & (status == 200)
    lat_ms = 1e3 * lat[ok]
    wall = t_drained - marks["t_window"]
    span = (np.nanmax(t_end[ok]) - marks["t_window"]) if ok.any() else float("nan")
    st = [stages[j] for j in np.flatnonzero(ok)]
    keys = sorted({k for s in st for k in s})
    stage_ms = {k: float(np.mean([s[k] for s in st if k in s])) for k in keys}
    lat_mean = float(lat_ms.mean()) if ok.any() else None
    outside = None
    if ok.any() and "total" in keys:
        tot = np.array([s.get("total", np.nan) for s in st])
        outside = float(np.nanmean(lat_ms - tot))
    lag_ms = 1e3 * lag[measured & ~np.isnan(lag)]
    from_send_ms = 1e3 * (t_end[ok] - sent[ok])

    def pct(q):
        return float(np.percentile(lat_ms, q)) if ok.any() else None

    rec = {
        "rate": rate, "scheduled": int(measured.sum()), "warmup_requests": int((~measured).sum()),
        "ok": int(ok.sum()), "errors": {k: int(v) for k, v in errors.items() if v},
        "error_count": int(sum(errors.values())), "short_responses": short,
        "throughput_per_s": float(ok.sum() / span) if ok.any() and span > 0 else 0.0,
        "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99),
                       "max": float(lat_ms.max()) if ok.any() else None, "mean": lat_mean},
        "latency_from_send_ms": {"p50": float(np.percentile(from_send_ms, 50)),
                                 "p99": float(np.percentile(from_send_ms, 99))} if ok.any() else None,
        "server_stage_ms_mean": stage_ms,
        "outside_handler_ms_mean": outside,
        "outside_handler_share": outside / lat_mean if outside is not None and lat_mean else None,
        "client_send_lag_ms": {"p50": float(np.percentile(lag_ms, 50)), "p99": float(np.percentile(lag_ms, 99)),
                               "max": float(lag_ms.max())} if len(lag_ms) else None,
        "server_rss_mb": {"peak": rss["peak"] / 2**20, "end": rss["end"] / 2**20},
        "server_cpu_cores": cpu_server / wall, "client_cpu_cores": cpu_client / wall,
        "window_s": wall, "send_phase_s": t_last_send - t0,
    }
    if stage_delta is not None:
        rec["server_metrics"] = stage_delta
    return rec


# -- output ----------------------------------------------------------------------------------
COLUMNS = ["rate", "ok", "err", "thr/s", "p50", "p95", "p99", "max", "retr", "rank", "total", "outside",
           "lag99", "srvCPU", "cliCPU", "RSSpk"]


def row(r: dict) -> list[str]:
    def f(v, spec=".1f"):
        return "-" if v is None else format(v, spec)

    L, S = r["latency_ms"], r["server_stage_ms_mean"]
    share = r["outside_handler_share"]
    return [f(r["rate"], "g"), str(r["ok"]), str(r["error_count"]), f(r["throughput_per_s"]),
            f(L["p50"], ".2f"), f(L["p95"], ".2f"), f(L["p99"], ".2f"), f(L["max"], ".1f"),
            f(S.get("retrieve"), ".2f"), f(S.get("rank"), ".2f"), f(S.get("total"), ".2f"),
            "-" if share is None else f"{100 * share:.0f}%",
            f((r["client_send_lag_ms"] or {}).get("p99"), ".2f"),
            f(r["server_cpu_cores"], ".2f"), f(r["client_cpu_cores"], ".2f"), f(r["server_rss_mb"]["peak"], ".0f")]


def table(rows: list[list[str]], header: bool = True) -> str:
    w = [max(len(c), 7) for c in COLUMNS]
    lines = [" ".join(c.rjust(w[i]) for i, c in enumerate(COLUMNS))] if header else []
    lines += [" ".join(x.rjust(w[i]) for i, x in enumerate(r)) for r in rows]
    return "\n".join(lines)


def save(out: Path, label: str, record: dict) -> None:
    """``record`` under ``load.<label>`` of the results object, other keys and labels kept."""
    from _common import read_result_object, update_result_key

    load = read_result_object(out).get("load")
    if not isinstance(load, dict) or "rates" in load:  # absent, or an older single-record layout
        load = {}
    update_result_key(out, "load", {**load, label: record})


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", default="configs/serve/amazon_beauty.toml")
    p.add_argument("--rates", default="50,100,200,400", help="requests/s, comma-separated (default 50,100,200,400)")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds per rate (default 30)")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds at the rate first (default 3)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    p.add_argument("--arrivals", choices=["uniform", "poisson"], default="uniform",
                   help="uniform: request i at t0 + i/rate (default); poisson: seeded exponential gaps")
    p.add_argument("--users", type=int, default=2000, help="test users drawn for the request histories")
    p.add_argument("--history-len", type=int, default=50,
                   help="send the last N items of each history (default 50; 0 = the whole history)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--connections", type=int, default=256, help="keep-alive connection pool size (default 256)")
    p.add_argument("--timeout", type=float, default=10.0, help="client timeout per request, s (default 10)")
    p.add_argument("--pause", type=float, default=2.0, help="idle seconds between rates (default 2)")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--stages", action="store_true", help="also store the server's /metrics stage histograms")
    p.add_argument("--label", default=None, help="the record's name under 'load' (default workers<N>)")
    p.add_argument("--out", default="benchmarks/results/serving.json")
    p.add_argument("--keep-state-dir", action="store_true",
                   help="serve with the pipeline's own state_dir (its impression log grows); default: a "
                        "temporary copy of the pipeline pointing at a temporary state_dir")
    p.add_argument("--no-save", action="store_true", help="print only (smoke runs)")
    return p.parse_args(argv)


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    pipeline = Path(args.pipeline)
    pipeline = (pipeline if pipeline.is_absolute() else ROOT / pipeline).resolve()
    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    label = args.label or f"workers{args.workers}"
    if not rates or min(rates) * args.duration < 1 or args.warmup < 0:
        raise SystemExit("every rate x --duration must give at least one request; --warmup >= 0")
    signal.signal(signal.SIGTERM, _sigterm)

    load0 = os.getloadavg()
    bodies_hist, hist_info = load_histories(pipeline, args.users, args.seed, args.history_len)
    bodies = [json.dumps({"history": h, "k": args.k}).encode() for h in bodies_hist]
    from seqrec import __version__
    from seqrec.serve.config import load_pipeline_config

    cfg = load_pipeline_config(pipeline)
    print(f"{len(bodies)} histories ({hist_info['sent']}, mean {hist_info['sent_len_mean']:.1f} items); "
          f"load average {load0[0]:.2f}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="serve_load_"))
    try:
        served = pipeline if args.keep_state_dir else \
            pipeline_with_state_dir(pipeline, workdir / "state", workdir / pipeline.name)
        server = Server(served, args.workers, args.startup_timeout, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    results: list[dict] = []
    final_metrics = None
    log_tail = ""
    try:
        server.refresh()
        rss_idle = server.rss() / 2**20
        rss_procs = server.rss_by_process()
        print(f"server pid {server.proc.pid} on {server.url}: ready in {server.startup_s:.1f} s, "
              f"RSS {rss_idle:.0f} MB", flush=True)
        print(table([]), flush=True)
        offset = 0
        for rate in rates:
            rec = asyncio.run(run_rate(server, bodies, rate, args, offset))
            offset += rec["scheduled"] + rec["warmup_requests"]
            results.append(rec)
            print(table([row(rec)], header=False), flush=True)
            if rec["errors"]:
                print(f"    errors at {rate:g}/s: {rec['errors']}", flush=True)
            if server.proc.poll() is not None:
                raise SystemExit(f"the server died (code {server.proc.returncode}):\n" + server.log_tail())
            time.sleep(args.pause)
        if args.stages:
            with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
                final_metrics = cumulative(parse_metrics(r.read().decode()))
    except KeyboardInterrupt:
        print("interrupted: stopping the server", file=sys.stderr)
        return 130
    finally:
        server.stop()
        log_tail = server.log_tail(1500).strip()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(table([row(r) for r in results]))
    print("latency ms from the scheduled send to the response end (200s only); retr / rank / total: mean "
          "server timings_ms; outside: share of mean latency outside the handler; lag99: client send lag p99 "
          "ms; CPU in cores; RSS MB (server tree, peak)")
    good = [r["rate"] for r in results
            if r["error_count"] == 0 and r["latency_ms"]["p99"] is not None and r["latency_ms"]["p99"] < P99_TARGET_MS]
    best = max(good) if good else None
    print(f"highest rate with p99 < {P99_TARGET_MS:g} ms and no errors: {best if best is not None else 'none'}")
    print(f"server stopped with {server.stopped}")
    if log_tail:
        print("server log (tail):\n" + log_tail)

    v = cfg.variants[0]
    record = {
        "label": label,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "seqrec_version": __version__,
                    "loadavg_at_start": list(load0), "loadavg_at_end": list(os.getloadavg())},
        "settings": {
            "pipeline": str(pipeline.relative_to(ROOT)) if pipeline.is_relative_to(ROOT) else str(pipeline),
            "variant": {"retriever": v.retriever, "ranker": v.ranker, "candidates": v.candidates,
                        "index": v.index, "ranker_backend": v.ranker_backend},
            "torch_threads": cfg.pipeline.torch_threads, "workers": args.workers, "rates": rates,
            "duration_s": args.duration, "warmup_s": args.warmup, "arrivals": args.arrivals, "seed": args.seed,
            "k": args.k, "connections": args.connections, "client_timeout_s": args.timeout,
            "client": f"aiohttp {_version('aiohttp')}, asyncio, same machine",
            "server": f"uvicorn {_version('uvicorn')} ({_uvicorn_impl()}), fastapi {_version('fastapi')}",
            "state_dir": ("the pipeline's own" if args.keep_state_dir else
                          "a temporary one (impression log written, then deleted)"),
            "server_thread_env": {k: v for k, v in _START_ENV.items() if THREAD_ENV.match(k)},
            "latency": "scheduled send time -> response body read, 200 answers only",
            "command": " ".join(["python", "benchmarks/serve_load.py", *(argv if argv is not None else sys.argv[1:])]),
        },
        "histories": hist_info,
        "server": {"startup_s": server.startup_s, "rss_idle_mb": rss_idle,
                   "rss_idle_by_process": rss_procs, "stopped_with": server.stopped},
        "rates": results,
        "highest_rate_p99_under_20ms": best,
    }
    if final_metrics is not None:
        record["server_metrics_cumulative"] = final_metrics
    if not args.no_save:
        save(out, label, record)
        print(f"wrote {out} (load.{label})")
    return 0


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _uvicorn_impl() -> str:
    """What uvicorn's 'auto' picks: uvloop / httptools when installed, else asyncio / h11."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"loop {loop}, http {http}"


if __name__ == "__main__":
    sys.exit(main())
