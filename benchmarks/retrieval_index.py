"""ANN index benchmark: faiss flat / IVF / HNSW against exact search, on a trained model's item
vectors and on a synthetic catalogue of 2 million items (issue #22, "ANN index").

    python benchmarks/retrieval_index.py                     # trains MF-BPR on Gowalla first
    python benchmarks/retrieval_index.py --run RUN           # a trained dot-product retrieval run
    python benchmarks/retrieval_index.py --run RUN --synthetic 0          # the trained catalogue only
    python benchmarks/retrieval_index.py --run RUN --synthetic 200000 --noise 1.0

Two catalogues, each searched with the same query vectors (the user vectors of ``--queries``
test users of the run, drawn with a fixed seed):

1. the run's own item vectors (``model.item_vectors()``, rows 1..N);
2. a synthetic catalogue of ``--synthetic`` items: the trained item vectors resampled with
   replacement, plus Gaussian noise of ``--noise`` times each dimension's standard deviation
   over the trained items (so the copies of one item are not near-duplicates).

The reference is exact search: faiss ``IndexFlatIP`` (checked against torch's matmul + topk on
the first queries). Each index is built with the library's :class:`seqrec.serve.index.ItemIndex`
(what ``seqrec index`` saves) and measured by

* recall@100 of the exact top-100 (|ANN top-100 ∩ exact top-100| / 100, mean over queries;
  the seen-item exclusion plays no part here);
* time per query with a batch of 1 (mean over ``--batch1`` queries, one ``search`` call each,
  as ``seqrec recommend`` does) and batched (all queries in one call, divided by their number);
* build time (k-means training included for IVF), the serialised index's bytes, and the growth of
  the process's resident memory while building (RSS delta).

Everything runs on **one thread** (faiss's OpenMP runtime and torch's) for fairness: an index
that wins only by using more cores wins nothing on this 2-core shared machine. Writes
``benchmarks/results/retrieval_index.json`` (one record per catalogue, kind and search setting)
and ``retrieval_index.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, env_info, fmt_seconds, markdown_table, write_json, write_text

K = 100
OUT = ROOT / "benchmarks" / "results"
TRAIN_CONFIG = "configs/mf_bpr_movielens1m_m1.toml"
TRAIN_SETS = ["data.dataset=gowalla", "train.threads=1", "train.epochs=6", "train.lr=0.005"]
# search settings swept on one built index each: IVF nprobe, HNSW efSearch
NPROBES = (16, 32, 64, 128, 256, 512)
EF_SEARCH = (64, 128, 256, 512, 1024)


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def loadavg() -> float:
    with open("/proc/loadavg") as fh:
        return float(fh.read().split()[0])


def train_run(out: Path) -> tuple[Path, str]:
    """MF-BPR on Gowalla, a few epochs, 1 thread (the item vectors of part 1)."""
    from seqrec.config import load_run_config
    from seqrec.experiment import train_run as train

    cfg = load_run_config(ROOT / TRAIN_CONFIG, TRAIN_SETS)
    train(cfg, out, progress=False)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    cmd = f"seqrec train {TRAIN_CONFIG} --out {shown} " + " ".join(f"--set {s}" for s in TRAIN_SETS)
    return out, cmd


def run_vectors(run_dir: Path, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(items (N, D), queries (Q, D), model name): the run's item vectors and the query vectors of
    ``n_queries`` random test users (every interest of a multi-interest model is a query)."""
    import torch

    from seqrec.families.retrieval import RetrievalRun, split_batch

    run = RetrievalRun(run_dir)
    if not getattr(run.model, "dot_product", False):
        raise SystemExit(f"{run_dir}: {run.config.model_name} is not a dot-product model")
    with torch.no_grad():
        items = run.model.item_vectors()[1:].detach().float().numpy()
    task = run.task
    rows = np.sort(np.random.default_rng(seed).choice(len(task.test), min(n_queries, len(task.test)),
                                                      replace=False))
    queries = []
    for s in range(0, len(rows), 256):
        batch = split_batch(task, task.test, rows[s:s + 256], run.config.data.max_len)
        queries += run.query_vectors(batch)
    return np.ascontiguousarray(items), np.ascontiguousarray(np.concatenate(queries)), run.config.model_name


def synthetic_catalogue(base: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    """``n`` rows: rows of ``base`` drawn with replacement + N(0, (noise * std_d)^2) per dimension."""
    g = np.random.default_rng(seed)
    std = base.std(0).astype(np.float32)  # (D,)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for s in range(0, n, 1 << 17):  # chunks: no float64 temporaries of the whole catalogue
        e = min(n, s + (1 << 17))
        out[s:e] = base[g.integers(0, len(base), e - s)]
        out[s:e] += g.standard_normal((e - s, base.shape[1]), dtype=np.float32) * (noise * std)
    return out


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / exact.shape[1]
                          for a, b in zip(found.tolist(), exact.tolist(), strict=True)]))


def time_search(search, queries: np.ndarray, n_batch1: int) -> tuple[np.ndarray, float, float]:
    """(ids of every query (batched call), seconds per query batched, seconds per query batch 1)."""
    t0 = time.perf_counter()
    ids = search(queries)
    batched = (time.perf_counter() - t0) / len(queries)
    t0 = time.perf_counter()
    for i in range(min(n_batch1, len(queries))):
        search(queries[i:i + 1])
    single = (time.perf_counter() - t0) / min(n_batch1, len(queries))
    return ids, batched, single


def index_size(index) -> int:
    import faiss

    with tempfile.TemporaryDirectory() as d:  # write_index, not serialize_index: no in-memory copy
        faiss.write_index(index, os.path.join(d, "x.faiss"))
        return os.path.getsize(os.path.join(d, "x.faiss"))


def measure(name: str, items: np.ndarray, queries: np.ndarray, *, n_batch1: int, n_batch1_exact: int,
            kinds=("ivf", "hnsw"), nprobes=NPROBES, ef_search=EF_SEARCH, m: int = 32,
            ef_construction: int = 40, transforms: dict | None = None, seed: int = 0, log=print) -> list[dict]:
    """Records of exact search (faiss flat, torch) and of each index kind and search setting."""
    import torch

    from seqrec.serve.index import IndexParams, ItemIndex

    n, d = items.shape
    base = {"catalogue": name, "n_items": n, "dim": d, "queries": len(queries), "k": K, "threads": 1}
    recs: list[dict] = []

    def rec(kind: str, setting: str, ids, batched, single, n1, **extra) -> dict:
        r = {**base, "kind": kind, "setting": setting, "recall@100": recall(ids, exact[:len(ids)]),
             "ms_per_query_batch1": 1e3 * single, "ms_per_query_batched": 1e3 * batched,
             "batch1_queries": n1, **extra}
        recs.append(r)
        log(f"  {name:<28} {kind:<6} {setting:<18} recall@100 {r['recall@100']:.4f}  "
            f"{r['ms_per_query_batch1']:8.3f} ms/q (1)  {r['ms_per_query_batched']:8.3f} ms/q (batched)"
            + (f"  build {extra['build_seconds']:.1f}s" if "build_seconds" in extra else ""))
        return r

    # exact: faiss flat (the reference) and torch matmul + topk
    gc.collect()
    r0 = rss_bytes()
    flat = ItemIndex.build(items, IndexParams(kind="flat", threads=1))
    rss = rss_bytes() - r0
    exact, batched, single = time_search(lambda q: flat.search(q, K)[0], queries, n_batch1_exact)
    exact_rec = rec("exact", "faiss IndexFlatIP", exact, batched, single, min(n_batch1_exact, len(queries)),
                    build_seconds=flat.build_seconds, index_bytes=index_size(flat.index), rss_delta_bytes=rss)
    flat = None  # free its copy of the vectors before the next index
    gc.collect()
    t_items = torch.from_numpy(items)

    def torch_search(q: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(q), 32):  # (32, N) score blocks, not (Q, N)
            out.append((torch.topk(torch.from_numpy(q[s:s + 32]) @ t_items.T, K, dim=1).indices + 1).numpy())
        return np.concatenate(out)

    n_check = min(len(queries), 64)
    ids, batched, single = time_search(torch_search, queries[:n_check], n_batch1_exact)
    rec("exact", "torch matmul+topk", ids, batched, single,
        min(n_batch1_exact, n_check), batched_queries=n_check)
    t_items = None
    for kind in kinds:
        gc.collect()
        r0 = rss_bytes()
        tr = (transforms or {}).get(kind, "auto")
        params = (IndexParams(kind="ivf", threads=1, transform=tr) if kind == "ivf"
                  else IndexParams(kind="hnsw", m=m, ef_construction=ef_construction, threads=1, transform=tr))
        idx = ItemIndex.build(items, params, seed=seed)
        tag = "l2 " if idx.params.transform == "l2" else "ip "
        extra = {"build_seconds": idx.build_seconds, "index_bytes": index_size(idx.index),
                 "rss_delta_bytes": rss_bytes() - r0}
        if kind == "ivf":
            settings = [(f"{tag}nlist={idx.index.nlist} nprobe={p}", idx.with_search(nprobe=p))
                        for p in sorted({min(p, idx.index.nlist) for p in nprobes})]
        else:
            settings = [(f"{tag}M={m} efC={ef_construction} efS={e}", idx.with_search(ef_search=e))
                        for e in ef_search]
        for setting, s_idx in settings:
            ids, batched, single = time_search(lambda q, s_idx=s_idx: s_idx.search(q, K)[0], queries, n_batch1)
            rec(kind, setting, ids, batched, single, min(n_batch1, len(queries)), **extra)
        del idx, settings
    # exact search again at the end: the shared machine's load drifts over a long run, so the
    # reference is the faster of the two timings (the speed-ups err on the low side)
    gc.collect()
    flat = ItemIndex.build(items, IndexParams(kind="flat", threads=1))
    n_end = min(len(queries), 200)
    _, batched_end, single_end = time_search(lambda q: flat.search(q, K)[0], queries[:n_end], n_batch1_exact)
    flat = None
    for key, end in (("ms_per_query_batch1", single_end), ("ms_per_query_batched", batched_end)):
        exact_rec[f"{key}_start_end"] = [exact_rec[key], 1e3 * end]
        exact_rec[key] = min(exact_rec[key], 1e3 * end)
    log(f"  {name:<28} exact  again at the end       {1e3 * single_end:8.3f} ms/q (1)  "
        f"{1e3 * batched_end:8.3f} ms/q (batched, {n_end} queries)")
    for r in recs:
        r["speedup_batch1"] = exact_rec["ms_per_query_batch1"] / r["ms_per_query_batch1"]
        r["speedup_batched"] = exact_rec["ms_per_query_batched"] / r["ms_per_query_batched"]
    return recs


def best(recs: list[dict], target: float = 0.98) -> dict | None:
    """The fastest (batch 1) index setting whose recall@100 reaches ``target``."""
    ok = [r for r in recs if r["kind"] != "exact" and r["recall@100"] >= target]
    return min(ok, key=lambda r: r["ms_per_query_batch1"]) if ok else None


def render(meta: dict, recs: list[dict]) -> str:
    def mib(v):
        return "–" if v is None else f"{v / 2**20:,.0f}"

    out = ["# ANN index: faiss flat / IVF / HNSW against exact search", "",
           f"Generated by `{meta['command']}` on {meta['env']['date']} (faiss {meta['faiss_version']}, "
           f"torch {meta['env']['torch_version']}, {meta['env']['cpu_count']} cores, load average "
           f"{meta['load_start']:.1f} at start and {meta['load_end']:.1f} at the end: a shared machine, "
           "so times are indicative; the ratios come from one run).", "",
           f"Item vectors: {meta['model']} run `{meta['run']}`" + (f" (`{meta['train_command']}`)"
                                                                    if meta.get("train_command") else "")
           + f". Queries: the user vectors of {meta['queries']} random test users. "
           "**One thread** for faiss and torch throughout. Recall@100 = |top-100 found ∩ exact top-100| / "
           "100, mean over queries. Speed-ups are against exact search (faiss `IndexFlatIP`) in the same "
           "mode (batch of 1, or all queries in one call).", ""]
    if meta.get("synthetic"):
        out += [f"Synthetic catalogue: {meta['synthetic']:,} items = the trained item vectors drawn with "
                f"replacement + Gaussian noise of {meta['noise']} x each dimension's standard deviation "
                f"(seed {meta['seed']}).", ""]
    for cat in dict.fromkeys(r["catalogue"] for r in recs):
        rows = [r for r in recs if r["catalogue"] == cat]
        out += [f"## {cat} ({rows[0]['n_items']:,} items, dim {rows[0]['dim']})", ""]
        table = [[r["kind"], r["setting"], f"{r['recall@100']:.4f}", f"{r['ms_per_query_batch1']:.3f}",
                  f"{r['speedup_batch1']:.1f}x", f"{r['ms_per_query_batched']:.3f}", f"{r['speedup_batched']:.1f}x",
                  fmt_seconds(r.get("build_seconds")), mib(r.get("index_bytes")), mib(r.get("rss_delta_bytes"))]
                 for r in rows]
        out += [markdown_table(["kind", "setting", "recall@100", "ms/query (1)", "speed-up (1)",
                                "ms/query (batched)", "speed-up (batched)", "build s", "index MiB",
                                "RSS delta MiB"], table, ["l", "l"] + ["r"] * 8), ""]
        b = best(rows)
        out += [f"Fastest setting with recall@100 >= 0.98: **{b['kind']} {b['setting']}**, recall "
                f"{b['recall@100']:.4f}, {b['speedup_batch1']:.1f}x faster than exact per query with a batch "
                f"of 1 ({b['ms_per_query_batch1']:.3f} against "
                f"{b['ms_per_query_batch1'] * b['speedup_batch1']:.3f} ms), {b['speedup_batched']:.1f}x batched; "
                f"built in {b['build_seconds']:.1f} s, {mib(b['index_bytes'])} MiB serialised."
                if b else "No index setting reached recall@100 >= 0.98 here.", ""]
    out += ["Exact search (faiss flat) is timed at the start and again at the end of each catalogue (the "
            "second time on the first 200 queries); its row and every speed-up use the faster of the two "
            "(`ms_per_query_*_start_end` in the JSON), as the load of this shared machine drifts over a run. "
            "Exact torch times use the first queries only (`batch1_queries` / `batched_queries` in the JSON); "
            "its recall is 1 by construction against faiss flat on those queries. RSS delta: resident memory "
            "growth while building (the index's own copy of the vectors plus its structures).", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=None, help="a trained dot-product retrieval run (default: train MF-BPR "
                   "on Gowalla into runs/bench_index_gowalla)")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--batch1", type=int, default=300, help="queries timed one by one per index setting")
    p.add_argument("--batch1-exact", type=int, default=50, help="queries timed one by one for exact search")
    p.add_argument("--synthetic", type=int, default=2_000_000, help="synthetic catalogue size (0 = skip)")
    p.add_argument("--noise", type=float, default=0.5, help="noise std per dimension, x that dimension's std")
    p.add_argument("--kinds", default="ivf,hnsw", help="index kinds besides exact (comma-separated)")
    p.add_argument("--nprobe", default=",".join(map(str, NPROBES)), help="IVF nprobe values swept")
    p.add_argument("--ef-search", default=",".join(map(str, EF_SEARCH)), help="HNSW efSearch values swept")
    p.add_argument("--ivf-transform", choices=["l2", "none"], default="l2",
                   help="IVF: MIPS -> L2 transform (l2, the library's default) or inner product (none)")
    p.add_argument("--hnsw-transform", choices=["l2", "none"], default="none",
                   help="HNSW: inner product (none, the library's default) or the MIPS -> L2 transform")
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)

    from seqrec.threads import configure_threads

    configure_threads(1)
    import faiss

    from seqrec.serve.index import set_threads

    set_threads(1)
    meta = {"command": " ".join(["python benchmarks/retrieval_index.py",
                                 shlex.join(argv if argv is not None else sys.argv[1:])]).strip(),
            "env": env_info(), "faiss_version": faiss.__version__, "load_start": loadavg(), "seed": args.seed,
            "queries": args.queries, "synthetic": args.synthetic, "noise": args.noise, "threads": 1}
    run = Path(args.run) if args.run else None
    if run is None:
        run = ROOT / "runs" / "bench_index_gowalla"
        print(f"training MF-BPR on Gowalla into {run} (1 thread) ...", flush=True)
        run, meta["train_command"] = train_run(run)
    items, queries, model = run_vectors(run, args.queries, args.seed)
    meta.update(run=str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run), model=model)
    kw = {"n_batch1": args.batch1, "n_batch1_exact": args.batch1_exact, "m": args.m,
          "kinds": [k for k in args.kinds.split(",") if k],
          "nprobes": [int(x) for x in args.nprobe.split(",") if x],
          "ef_search": [int(x) for x in args.ef_search.split(",") if x],
          "transforms": {"ivf": args.ivf_transform, "hnsw": args.hnsw_transform},
          "ef_construction": args.ef_construction, "seed": args.seed}
    print(f"{model} item vectors: {items.shape[0]:,} x {items.shape[1]}; {len(queries)} queries", flush=True)
    recs = measure(f"{model} item vectors", items, queries, **kw)
    if args.synthetic:
        t0 = time.perf_counter()
        big = synthetic_catalogue(items, args.synthetic, args.noise, args.seed)
        print(f"synthetic catalogue {big.shape[0]:,} x {big.shape[1]} in {time.perf_counter() - t0:.1f}s "
              f"({big.nbytes / 2**20:,.0f} MiB)", flush=True)
        recs += measure(f"synthetic {args.synthetic:,}", big, queries, **kw)
        del big
    meta["load_end"] = loadavg()
    meta["peak_rss_mb"] = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024
    out = Path(args.out)
    write_json(out / "retrieval_index.json", {"meta": meta, "records": recs})
    md = render(meta, recs)
    write_text(out / "retrieval_index.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
