"""seqrec.data.download against a local HTTP server on the loopback address: a good file, a
wrong checksum, a transfer cut off and resumed, a server that ignores ranges, a dead host."""

from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seqrec.data.download import fetch
from seqrec.errors import DownloadError

PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    cut_after: int | None = None  # bytes sent before the connection is dropped (first request)
    ranges = True
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng and self.ranges else 0
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        cut = type(self).cut_after
        if cut is not None:
            type(self).cut_after = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    class H(_Handler):
        requests = []

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, H, f"http://127.0.0.1:{srv.server_address[1]}/data.bin"
    srv.shutdown()
    srv.server_close()


def test_good_file_is_verified_and_renamed(server, tmp_path):
    _, _, url = server
    dest = fetch(url, tmp_path / "d" / "data.bin", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "d" / "data.bin.part").exists()


def test_existing_good_file_is_not_fetched_again(server, tmp_path):
    _, handler, url = server
    (tmp_path / "data.bin").write_bytes(PAYLOAD)
    fetch(url, tmp_path / "data.bin", SHA, progress=False)
    assert handler.requests == []


def test_wrong_checksum_leaves_nothing_behind(server, tmp_path):
    _, _, url = server
    with pytest.raises(DownloadError, match="does not match the pinned") as e:
        fetch(url, tmp_path / "data.bin", "0" * 64, progress=False)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path):
    _, handler, url = server
    handler.cut_after = 300_000
    with pytest.raises(DownloadError, match="broke off after 300,000"):
        fetch(url, tmp_path / "data.bin", SHA, progress=False)
    assert not (tmp_path / "data.bin").exists()
    assert (tmp_path / "data.bin.part").stat().st_size == 300_000
    fetch(url, tmp_path / "data.bin", SHA, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert handler.requests == [None, "bytes=300000-"]


def test_server_ignoring_ranges_starts_over(server, tmp_path):
    _, handler, url = server
    handler.ranges = False
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes")
    fetch(url, tmp_path / "data.bin", SHA, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_unreachable_host_is_one_line(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach the host") as e:
        fetch(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", SHA, timeout=5, progress=False)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_one_line(server, tmp_path):
    srv, handler, url = server
    handler.do_GET = lambda self: self.send_error(404)  # type: ignore[method-assign]
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(url, tmp_path / "data.bin", SHA, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_command_fetches_a_registered_dataset(server, tmp_path, monkeypatch, capsys):
    """``seqrec download NAME`` through the CLI, its source pointed at the loopback server."""
    from seqrec.cli import main
    from seqrec.data import sources

    _, _, url = server
    monkeypatch.setitem(sources.SOURCES, "diginetica_raw_sample",
                        (("sample_train-item-views.csv", url, SHA),))
    rc = main(["download", "diginetica_raw_sample", "--data-dir", str(tmp_path), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    got = tmp_path / "session" / "diginetica_raw_sample" / "sample_train-item-views.csv"
    assert got.read_bytes() == PAYLOAD
    assert capsys.readouterr().out.strip() == str(got)


@pytest.mark.parametrize(("name", "needle"), [("nope", "unknown dataset"),
                                              ("taobao", "no pinned public copy")])
def test_download_command_errors_are_one_line(name, needle, tmp_path, capsys):
    from seqrec.cli import main

    rc = main(["download", name, "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_pinned_sources_match_the_staged_files(data_root):
    """Every pinned SHA-256 is that of the staged copy (so a download reproduces it)."""
    from seqrec.data.download import sha256_of
    from seqrec.data.registry import DATASETS
    from seqrec.data.sources import SOURCES

    for name, files in SOURCES.items():
        folder = data_root / DATASETS[name].subdir
        assert {f for f, _, _ in files} == set(DATASETS[name].files), name
        for fname, url, sha in files:
            assert url.startswith("https://raw.githubusercontent.com/"), url
            assert sha256_of(folder / fname) == sha, (name, fname)
