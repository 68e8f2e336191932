"""``seqrec serve`` and ``seqrec replay`` as a user runs them: a real uvicorn process, a reload, a
kill -9 and a restart on the last good version; the offline A/B replay on real data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from seqrec.cli import main

pytestmark = pytest.mark.slow


def _pipeline_toml(path, runs, state, variants) -> None:
    lines = ['[pipeline]', 'name = "cli-test"', f'state_dir = "{state}"', ""]
    for name, share, ranker in variants:
        lines += ["[[variants]]", f'name = "{name}"', f"share = {share}", f'retriever = "{runs["retriever"]}"',
                  f'ranker = "{ranker}"', "candidates = 300", ""]
    lines += ["[session]", f'run = "{runs["session"]}"']
    path.write_text("\n".join(lines) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(port, path, body=None, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json",
                                          **({"authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _start(toml, port, env):
    proc = subprocess.Popen([sys.executable, "-m", "seqrec", "serve", str(toml), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if _call(port, "/ready")["ready"]:
                return proc
        except OSError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
    proc.kill()
    raise AssertionError("the server did not become ready")


def test_serve_reload_kill_and_restart_on_the_last_good_version(serve_runs, tmp_path):
    v2 = tmp_path / "din_v2"
    shutil.copytree(serve_runs["ranker"], v2)
    toml = tmp_path / "pipeline.toml"
    _pipeline_toml(toml, serve_runs, tmp_path / "state", [("main", 1.0, serve_runs["ranker"])])
    env = {**os.environ, "SEQREC_ADMIN_TOKEN": "t0ken"}
    port = _free_port()
    proc = _start(toml, port, env)
    try:
        out = _call(port, "/recommend", {"user_id": "1", "k": 5})
        assert len(out["items"]) == 5 and out["model_versions"]["ranker"].startswith("din@")
        clicked = _call(port, "/session/s/click", {"item_id": "214821026"})
        assert clicked["clicks"] == 1
        r = _call(port, "/admin/reload", {"variants": {"main": {"ranker": str(v2)}}}, token="t0ken")
        assert r["reloaded"]
        assert _call(port, "/recommend", {"user_id": "1", "k": 5})["model_versions"]["ranker"].startswith("din_v2@")
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean shutdown
        proc.wait()
    port = _free_port()
    proc = _start(toml, port, env)
    try:
        assert _call(port, "/ready")["restored_last_good"] is True
        assert _call(port, "/version")["main"]["ranker"].startswith("din_v2@")
    finally:
        proc.terminate()
        proc.wait()


def test_serve_with_a_bad_pipeline_file_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "p.toml"
    bad.write_text("[pipeline]\nname = 'x'\nport = 1\n")
    assert main(["serve", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port" in err


def test_replay_reports_each_variant_with_intervals_and_the_lift(serve_runs, tmp_path, capsys):
    toml = tmp_path / "ab.toml"
    _pipeline_toml(toml, serve_runs, tmp_path / "state", [("retrieval", 0.5, ""), ("din", 0.5, serve_runs["ranker"])])
    out = tmp_path / "replay.json"
    assert main(["replay", str(toml), "--data", "amazon_beauty", "--users", "300", "--n-boot", "200",
                 "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "hitrate lift vs retrieval" in text
    res = json.loads(out.read_text())
    a, b = res["variants"]["retrieval"], res["variants"]["din"]
    assert a["users"] + b["users"] == 300 and 100 < a["users"] < 200
    for v in (a, b):
        lo, hi = v["hitrate_ci95"]
        assert 0 <= lo <= v["hitrate@20"] <= hi <= 1
    lift = b["lift_vs_retrieval"]["hitrate"]
    if lift["lift"] is not None:
        assert lift["ci95"][0] <= lift["lift"] <= lift["ci95"][1]
    assert main(["replay", str(toml), "--data", "no_such_dataset", "--no-progress"]) == 2
