"""benchmarks/README.md's tables are copied from benchmarks/results by benchmarks/readme_tables.py;
the top-level README is a front page."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_render_drops_title_and_nests_headings(bench_script, tmp_path):
    mod = bench_script("readme_tables")
    (tmp_path / "purchase.md").write_text("# Purchase\n\nintro\n\n## a\n\n### a.1\n\n| x |\n")
    readme = "top\n<!-- purchase:start -->\nold\n<!-- purchase:end -->\nbottom\n"
    out = mod.render(readme, tmp_path)
    assert out == (
        "top\n<!-- purchase:start -->\nintro\n\n#### a\n\n##### a.1\n\n| x |\n"
        "<!-- purchase:end -->\nbottom\n"
    )
    assert mod.render(out, tmp_path) == out  # idempotent


def test_missing_markers_is_an_error(bench_script, tmp_path):
    mod = bench_script("readme_tables")
    (tmp_path / "ctr.md").write_text("# CTR\n\n## a\n")
    with pytest.raises(SystemExit, match="ctr:start"):
        mod.render("no markers here\n", tmp_path)


def test_readme_matches_committed_results(bench_script):
    mod = bench_script("readme_tables")
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert mod.render(readme, ROOT / "benchmarks" / "results") == readme, (
        "benchmarks/README.md tables are stale: run python benchmarks/readme_tables.py"
    )


def test_front_page_stays_a_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert text.index("make demo") < 300 and "make test" in text[:400]
    assert ":start -->" not in text  # generated tables live in benchmarks/README.md
