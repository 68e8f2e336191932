"""The package's structure: no import cycles inside ``src/seqrec`` (module-level or inside
functions), and no model that imports from the data layer, the trainers or the drivers."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# No cycle is tolerated (the per-family drivers' one went with the family modules, issue #21).
KNOWN_CYCLES: list[set[str]] = []


def import_graph() -> dict[str, set[str]]:
    mods = {}
    for p in (SRC / "seqrec").rglob("*.py"):
        parts = p.relative_to(SRC).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            graph[m] |= {n for n in names if n in mods and n != m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.add(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_but_the_known_one():
    found = cycles(import_graph())
    assert [c for c in found if c not in KNOWN_CYCLES] == []


def test_models_do_not_import_data_train_or_drivers():
    graph = import_graph()
    bad = sorted((m, d) for m, deps in graph.items() if m.startswith("seqrec.models.") for d in deps
                 if d.startswith(("seqrec.data", "seqrec.train", "seqrec.experiment")))
    assert bad == []


def test_numba_only_in_the_kernels_package():
    """Every compiled kernel lives in ``seqrec.kernels`` (issue #21): no other module mentions numba,
    but ``seqrec.threads``, which sizes numba's thread pool with the others' (and compiles nothing)."""
    outside = sorted(str(p.relative_to(SRC)) for p in (SRC / "seqrec").rglob("*.py")
                     if "numba" in p.read_text() and p.parent.name != "kernels")
    assert outside == ["seqrec/threads.py"]
    assert "njit" not in (SRC / "seqrec" / "threads.py").read_text()
