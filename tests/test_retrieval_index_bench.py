"""benchmarks/retrieval_index.py on small random data: the synthetic catalogue, records, the table."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss", reason="faiss-cpu is not installed (pip install 'seqrec[index]')")


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("retrieval_index")


def test_synthetic_catalogue_resamples_with_noise(bench):
    base = (np.random.default_rng(0).standard_normal((50, 4)) * [1, 2, 3, 4]).astype(np.float32)
    a = bench.synthetic_catalogue(base, 20_000, 0.5, seed=1)
    assert a.shape == (20_000, 4) and a.dtype == np.float32
    assert np.array_equal(a, bench.synthetic_catalogue(base, 20_000, 0.5, seed=1))
    # variance = base variance + (0.5 std)^2 per dimension
    np.testing.assert_allclose(a.var(0), base.var(0) * 1.25, rtol=0.1)
    same = bench.synthetic_catalogue(base, 10, 0.0, seed=1)  # no noise: every row is a base row
    assert (same[:, None] == base[None]).all(-1).any(1).all()


def test_measure_records_and_markdown(bench):
    g = np.random.default_rng(0)
    items, queries = g.standard_normal((3000, 8)).astype(np.float32), g.standard_normal((30, 8)).astype(np.float32)
    recs = bench.measure("toy", items, queries, n_batch1=5, n_batch1_exact=5, nprobes=(1, 1000),
                         ef_search=(16, 256), m=8, log=lambda *_: None)
    kinds = [(r["kind"], r["setting"]) for r in recs]
    assert kinds[:2] == [("exact", "faiss IndexFlatIP"), ("exact", "torch matmul+topk")]
    assert {k for k, _ in kinds} == {"exact", "ivf", "hnsw"} and len(recs) == 2 + 2 + 2
    assert all(r["recall@100"] == 1.0 for r in recs if r["kind"] == "exact")
    ivf = [r for r in recs if r["kind"] == "ivf"]
    assert ivf[0]["recall@100"] < ivf[1]["recall@100"] == 1.0  # nprobe 1 vs every cell (capped at nlist)
    for r in recs:
        assert r["ms_per_query_batch1"] > 0 and r["speedup_batch1"] > 0 and r["threads"] == 1
    assert recs[0]["speedup_batch1"] == 1.0 and recs[0]["index_bytes"] >= 3000 * 8 * 4
    assert recs[0]["ms_per_query_batch1"] == min(recs[0]["ms_per_query_batch1_start_end"])
    meta = {"command": "python benchmarks/retrieval_index.py", "env": {"date": "d", "torch_version": "t",
            "cpu_count": 2}, "faiss_version": "f", "load_start": 1.0, "load_end": 1.0, "model": "mf_bpr",
            "run": "r", "queries": 30, "synthetic": 0}
    md = bench.render(meta, recs)
    assert "## toy (3,000 items, dim 8)" in md and "recall@100 >= 0.98: **" in md and "One thread" in md
