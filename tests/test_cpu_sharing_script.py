"""benchmarks/cpu_sharing.py without training: options, run order, the table and the doc section."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cs(bench_script):
    return bench_script("cpu_sharing")


def test_options(cs):
    a = cs.parse_args([])
    assert a.models == ["gru4rec", "din", "dien"] and a.repeats == 2 and a.before_rev is None
    a = cs.parse_args(["--models", "din, dien", "--repeats", "3", "--before-rev", "abc", "--out", "x.json"])
    assert (a.models, a.repeats, a.before_rev, a.out) == (["din", "dien"], 3, "abc", "x.json")
    for bad in (["--models", "sasrec"], ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            cs.parse_args(bad)


def test_before_and_after_alternate_in_every_condition(cs):
    plan = cs.plan_runs(["din", "gru4rec"], 2)
    assert len(plan) == 2 * 2 * 2 * 2
    assert plan[:4] == [(0, "din", "quiet", "before"), (0, "din", "quiet", "after"),
                        (0, "din", "contended", "before"), (0, "din", "contended", "after")]
    assert plan[8:10] == [(1, "din", "quiet", "after"), (1, "din", "quiet", "before")]  # order flips


def test_runs_get_no_thread_variables(cs, monkeypatch, tmp_path):
    for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_NUM_THREADS", "POLARS_MAX_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(k, "1")
    monkeypatch.setenv("HOME_LIKE", "kept")
    env = cs.child_env(tmp_path / "src", "/data")
    assert not any(k in env for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_NUM_THREADS",
                                      "POLARS_MAX_THREADS", "MKL_NUM_THREADS"))
    assert env["HOME_LIKE"] == "kept" and env["PYTHONPATH"] == str(tmp_path / "src")
    assert env["SEQREC_DATA"] == "/data"


def _records():
    recs = []
    for v, q, c in (("before", 19000.0, 1400.0), ("after", 18000.0, 9000.0)):
        for rep, jitter in enumerate((0.0, 200.0, -200.0)):
            recs.append({"model": "din", "version": v, "condition": "quiet", "repeat": rep, "value": q + jitter})
            recs.append({"model": "din", "version": v, "condition": "contended", "repeat": rep, "value": c + jitter})
    return recs


def test_summary_and_table(cs):
    rows = cs.summarise(_records(), ["din", "dien"])
    din, dien = rows
    assert (din["before_quiet"], din["before_contended"]) == (19000.0, 1400.0)
    assert din["after_ratio"] == pytest.approx(0.5)
    assert dien["after_quiet"] is None and dien["after_ratio"] is None
    table = cs.format_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| model | unit | before quiet | before contended | after quiet | after contended")
    assert lines[2] == "| din | samples/s | 19,000 | 1,400 | 18,000 | 9,000 | 7% | 50% |"
    assert lines[3] == "| dien | samples/s | – | – | – | – | – | – |"


def test_doc_section_is_created_then_replaced(cs, tmp_path):
    meta = {"command": "python benchmarks/cpu_sharing.py", "date": "2026-12-07", "machine": "2 cores (x)",
            "before_rev": "aaa", "after_rev": "bbb", "repeats": 2, "epochs": None}
    doc = Path(tmp_path) / "docs" / "performance.md"
    cs.write_doc(doc, cs.markdown_section(cs.summarise(_records(), ["din"]), meta))
    text = doc.read_text()
    assert "## Sharing the CPU" in text and "2 cores (x)" in text and "| din | samples/s |" in text
    doc.write_text("# Performance notes\n\nintro\n\n" + text.split("\n", 1)[1] + "\n## Other\n\nkept\n")
    rows = cs.summarise([dict(r, value=r["value"] * 2) for r in _records()], ["din"])
    cs.write_doc(doc, cs.markdown_section(rows, meta))
    text = doc.read_text()
    assert text.count("## Sharing the CPU") == 1 and "38,000" in text and "19,000 " not in text
    assert "intro" in text and "## Other\n\nkept" in text
