"""Copy the benchmark tables from ``benchmarks/results/*.md`` into benchmarks/README.md.

Each results file goes between a pair of HTML comment markers in that file
(``<!-- results:start -->`` ... ``<!-- results:end -->`` and so on). The file's
own ``# Title`` line is dropped and its headings are pushed down so that they
nest under the section that holds them. (The top-level README is a front page and holds
no generated tables.)

    python benchmarks/readme_tables.py          # rewrite benchmarks/README.md in place
    python benchmarks/readme_tables.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from _common import ROOT, write_text

# results file -> (marker name, heading level its "##" sections get in the README)
SECTIONS = {
    "session.md": ("results", 3),
    "ctr.md": ("ctr", 3),
    "purchase.md": ("purchase", 4),
    "retrieval_quality.md": ("retrieval-quality", 4),
    "dupn.md": ("dupn", 4),
    "dupn_incremental.md": ("dupn-incremental", 4),
}


def _body(md_text: str, level: int) -> str:
    """The results markdown without its title, headings moved to ``level``."""
    lines = md_text.strip("\n").splitlines()
    if lines and re.match(r"#\s", lines[0]):
        lines = lines[1:]
    heads = [len(m.group(1)) for line in lines if (m := re.match(r"(#+)\s", line))]
    shift = level - min(heads) if heads else 0
    out = []
    for line in lines:
        m = re.match(r"(#+)(\s.*)", line)
        out.append("#" * (len(m.group(1)) + shift) + m.group(2) if m else line)
    return "\n".join(out).strip("\n")


def render(readme: str, results_dir: Path) -> str:
    for name, (marker, level) in SECTIONS.items():
        path = results_dir / name
        if not path.exists():
            continue
        start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        if start not in readme or end not in readme:
            raise SystemExit(f"markers {start} / {end} not found")
        head, rest = readme.split(start, 1)
        _, tail = rest.split(end, 1)
        body = _body(path.read_text(encoding="utf-8"), level)
        readme = f"{head}{start}\n{body}\n{end}{tail}"
    return readme


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only report whether README is stale")
    p.add_argument("--readme", default=str(ROOT / "benchmarks" / "README.md"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    readme_path = Path(args.readme)
    old = readme_path.read_text(encoding="utf-8")
    new = render(old, Path(args.results))
    if args.check:
        if new != old:
            print(f"{readme_path} tables differ from benchmarks/results; run "
                  "python benchmarks/readme_tables.py")
            return 1
        return 0
    if new != old:
        write_text(readme_path, new)
        print(f"updated {readme_path}")
    else:
        print(f"{readme_path} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
