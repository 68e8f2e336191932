"""Mechanics of the service without a model: the session store, the pipeline file, the A/B hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqrec.errors import ConfigError
from seqrec.serve.config import load_pipeline_config
from seqrec.serve.pipeline import bucket
from seqrec.serve.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_session_store_is_an_lru_with_a_ttl():
    clock = Clock()
    s = SessionStore(max_sessions=2, ttl=10.0, clock=clock)
    s.put("a", 1)
    s.put("b", 2)
    assert s.get("a") == 1  # a is now the most recent
    s.put("c", 3)  # over the bound: b (least recently used) goes
    assert s.get("b") is None and s.get("a") == 1 and s.get("c") == 3 and s.evicted == 1
    clock.t = 5.0
    assert s.get("a") == 1  # touching refreshes
    clock.t = 12.0
    assert s.get("c") is None and s.get("a") == 1 and s.expired == 1  # c idle 12 s > 10 s; a idle 7 s
    clock.t = 30.0
    assert len(s) == 1 and s.get("a") is None and len(s) == 0


def test_ab_bucket_is_stable_and_uniform():
    # golden value: sha256("p\0u1")[:8] / 2^64 (a change here moves users between variants)
    assert bucket("p", "u1") == pytest.approx(0.8374264546860258, abs=1e-15)
    xs = [bucket("p", str(i)) for i in range(20000)]
    assert all(0 <= x < 1 for x in xs)
    assert abs(sum(x < 0.25 for x in xs) / len(xs) - 0.25) < 0.01
    assert bucket("q", "u1") != bucket("p", "u1")  # the pipeline name salts the split


GOOD = """
[pipeline]
name = "t"
[[variants]]
name = "a"
share = 0.5
retriever = "runs/x"
[[variants]]
name = "b"
share = 0.5
retriever = "runs/x"
ranker = "runs/y"
"""


def test_pipeline_file_is_checked(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(GOOD)
    cfg = load_pipeline_config(p)
    assert [v.name for v in cfg.variants] == ["a", "b"] and cfg.limits.max_k == 200
    for bad, words in [
        (GOOD.replace('name = "t"', 'name = "t"\ncolour = 1'), "colour"),
        (GOOD.replace("share = 0.5\nretriever", "share = 0.7\nretriever", 1), "add up to 1"),
        (GOOD.replace('name = "b"', 'name = "a"'), "unique"),
        (GOOD + "\n[limits]\nmax_k = 0\n", "positive"),
        (GOOD.replace('ranker = "runs/y"', 'ranker = "runs/y"\nranker_backend = "tf"'), "ranker_backend"),
        ("[pipeline]\nname = 't'\n", "at least one"),
        ("[pipeline\n", "invalid TOML"),
    ]:
        p.write_text(bad)
        with pytest.raises(ConfigError, match=words):
            load_pipeline_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline_config(tmp_path / "missing.toml")


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "configs" / "serve").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_pipeline_file_loads(path):
    cfg = load_pipeline_config(path)
    assert cfg.variants and abs(sum(v.share for v in cfg.variants) - 1) < 1e-9


def test_there_are_shipped_pipelines():
    assert len(SHIPPED) >= 2
