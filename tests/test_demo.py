"""``make demo`` without the shared data: it downloads the dataset, or says in one line why it cannot.

No real network: the dataset's source is pointed at a loopback port nobody listens on, or the
download is replaced by a stub.
"""

from __future__ import annotations

import socket

import pytest

from seqrec import demo
from seqrec.data import sources
from seqrec.data.registry import DATASETS


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_DATA", str(tmp_path))

    def no_training(*a, **kw):
        raise AssertionError("the demo trained without its data")

    monkeypatch.setattr(demo, "train_run", no_training)
    return tmp_path


def _dead_url() -> str:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/x.txt"


def test_no_network_is_one_line_and_exit_code_2(empty_root, monkeypatch, capsys):
    files = DATASETS[demo.DATASET].files
    monkeypatch.setitem(sources.SOURCES, demo.DATASET, tuple((f, _dead_url(), "0" * 64) for f in files))
    rc = demo.main([])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    folder = empty_root / DATASETS[demo.DATASET].subdir
    assert "could not be downloaded (no network?)" in lines[0] and "cannot reach the host" in lines[0]
    assert f"in {folder}/" in lines[0] and files[0] in lines[0]
    assert "Traceback" not in err


def test_dataset_without_a_public_copy_is_one_line(empty_root, monkeypatch, capsys):
    monkeypatch.delitem(sources.SOURCES, demo.DATASET, raising=False)
    rc = demo.main([])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "no registered public copy" in err and str(empty_root) in err


def test_missing_files_are_downloaded(empty_root, monkeypatch):
    calls = []

    def fake_download(name, root=None, **kw):
        calls.append(name)
        folder = empty_root / DATASETS[name].subdir
        folder.mkdir(parents=True, exist_ok=True)
        for f in DATASETS[name].files:
            (folder / f).write_text("x")

    monkeypatch.setitem(sources.SOURCES, demo.DATASET, ())
    monkeypatch.setattr(sources, "download_dataset", fake_download)
    assert demo.ensure_data() == empty_root / DATASETS[demo.DATASET].subdir
    assert calls == [demo.DATASET]
    assert demo.ensure_data() and calls == [demo.DATASET]  # present now: not fetched again


def test_present_data_is_not_downloaded(empty_root, monkeypatch):
    folder = empty_root / DATASETS[demo.DATASET].subdir
    folder.mkdir(parents=True)
    for f in DATASETS[demo.DATASET].files:
        (folder / f).write_text("x")
    monkeypatch.setattr(sources, "download_dataset", lambda *a, **kw: pytest.fail("downloaded"))
    assert demo.ensure_data() == folder
