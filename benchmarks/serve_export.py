"""Exported graphs vs eager PyTorch: serving latency at one thread, with parity.

(a) The retriever's user tower (YouTube DNN), batch 1: a real Amazon Beauty test history (its
real length, the last ``max_len`` items, as :meth:`seqrec.serve.stages.Retriever.user_vectors`
builds it) through ``eager`` (``model.user_vectors``), ``torchscript`` and ``onnxruntime``
(:func:`seqrec.serve.export.load_exported`; the TorchScript trace pads the history to the
length it was traced with, ONNX takes it as it is).

(b) The DIN ranker scoring 1,000 candidates (random catalogue items) for one real history (the
service's user batch, :meth:`~seqrec.serve.stages.Ranker.user_batch`):

* ``eager_split``  — :func:`seqrec.serve.split.split_scorer`, what the service runs by default;
* ``eager_full``   — the model's forward on 1,000 full samples (the history copied per candidate);
* ``torchscript_full`` — the traced forward on the same 1,000 samples;
* ``onnx_ranker``  — :class:`seqrec.serve.export.OnnxRanker` (the service's ``backend = "onnx"``:
  the full forward on onnxruntime, DIN's all-padding history columns dropped first);
* ``onnx_full``    — the ONNX graph on the 1,000 full samples, padding kept.

Each round runs every variant once on the same input (the order rotating from round to round),
rounds over users; the first rounds are warm-up. torch and onnxruntime at one thread. Reports
median / p95 ms per call, the speed ratio to the first variant (its median / the variant's), and
the max abs diff of every variant's outputs to the eager model's over all rounds. The runs are
copied to a temporary directory and exported there (the originals are not touched). Results go
to ``benchmarks/results/serving.json`` under ``"export"`` (other keys kept).

    python benchmarks/serve_export.py [--tower-run RUN] [--ranker-run RUN] [--rounds 300]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, env_info, update_result_key  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "serving.json"
RUNS = ROOT / "runs" / "final" / "amazon_beauty"


def update_results(key: str, value, path: Path = RESULTS) -> None:
    update_result_key(path, key, value)


def _copy_run(src: Path, tmp: Path) -> Path:
    dst = tmp / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("tb", "train_state.pt", "*.onnx", "*.onnx.json",
                                                            "*.torchscript.pt*"))
    return dst


def interleave(variants: dict[str, Callable], inputs: list, warmup: int) -> tuple[dict, dict]:
    """Every round: each variant once on the round's input, the order rotated per round.
    -> ({variant: [seconds]}, {variant: [outputs]}) without the warm-up rounds."""
    names = list(variants)
    times = {n: [] for n in names}
    outs = {n: [] for n in names}
    with torch.inference_mode():
        for i, x in enumerate(inputs):
            k = i % len(names)
            for n in names[k:] + names[:k]:
                t0 = time.perf_counter()
                y = variants[n](x)
                dt = time.perf_counter() - t0
                if i >= warmup:
                    times[n].append(dt)
                    outs[n].append(y)
    return times, outs


def summarise(times: dict, outs: dict, ref: str) -> dict:
    base = float(np.median(times[next(iter(times))]))
    rows = {}
    for n, t in times.items():
        ms = 1e3 * np.asarray(t)
        diff = max(float((a.double() - b.double()).abs().max()) for a, b in zip(outs[n], outs[ref], strict=True))
        rows[n] = {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
                   "mean_ms": float(ms.mean()), "n": len(ms), "speed_vs_first": base / float(np.median(t)),
                   "max_abs_diff": diff}
    return rows


def bench_tower(run_dir: Path, rounds: int, warmup: int, seed: int) -> dict:
    from seqrec.families.retrieval import RetrievalRun, user_batch
    from seqrec.serve.export import export_run, load_exported

    run = RetrievalRun(run_dir)
    exports = {f: export_run(run_dir, f) for f in ("torchscript", "onnx")}
    ts = load_exported(exports["torchscript"]["path"], run_dir=run_dir)
    ox = load_exported(exports["onnx"]["path"], run_dir=run_dir)
    split, L = run.task.test, run.config.data.max_len
    rows = np.random.default_rng(seed).choice(len(split), rounds + warmup, replace=len(split) < rounds + warmup)
    feats = {k: np.zeros(1, np.int64) for k in run.feature_sizes}
    inputs = [user_batch(np.zeros(1, np.int64), split.history.row(r)[-L:][None, :], feats) for r in rows]
    model = run.model
    variants = {"eager": lambda b: model.user_vectors(b),
                "torchscript": lambda b: ts(b)["user_vectors"],
                "onnxruntime": lambda b: ox(b)["user_vectors"]}
    times, outs = interleave(variants, inputs, warmup)
    lens = [int((b["history"] != 0).sum()) for b in inputs[warmup:]]
    return {"run": str(run_dir), "model": run.config.model_name, "batch": 1, "rounds": rounds,
            "history_len_mean": float(np.mean(lens)),
            "exports": {f: {"bytes": e["bytes"], "parity_max_abs_diff": e["parity_max_abs_diff"]}
                        for f, e in exports.items()},
            "variants": summarise(times, outs, "eager")}


def bench_ranker(run_dir: Path, rounds: int, warmup: int, n_cand: int, seed: int) -> dict:
    from seqrec.families.ctr import load_task
    from seqrec.serve.export import export_run, load_exported
    from seqrec.serve.split import candidate_batch, candidate_features, naive_scores
    from seqrec.serve.stages import Ranker

    exports = {f: export_run(run_dir, f) for f in ("torchscript", "onnx")}
    eager, onnx = Ranker(run_dir), Ranker(run_dir, backend="onnx")
    ts = load_exported(exports["torchscript"]["path"], run_dir=run_dir)
    ox = load_exported(exports["onnx"]["path"], run_dir=run_dir)
    model, cate = eager.run.model, eager.item_cate
    feats = candidate_features(model, cate)
    test = load_task(eager.run.config).test.columns["hist_item"]
    rng = np.random.default_rng(seed)
    inputs = []
    for r in rng.choice(len(test), rounds + warmup, replace=False):
        hist = test[r][test[r] != 0]
        items = torch.from_numpy(rng.choice(np.arange(2, len(cate)), n_cand, replace=False))
        user = eager.user_batch(hist, None)
        full = {k: v.repeat(n_cand, *([1] * (v.dim() - 1))) for k, v in user.items()}
        full.update(candidate_batch(feats, items))
        inputs.append((user, items, full))
    variants = {
        "eager_split": lambda x: eager.scorer.score(eager.scorer.encode(x[0]), x[1]),
        "eager_full": lambda x: naive_scores(model, x[0], cate, x[1]),
        "torchscript_full": lambda x: ts(x[2])["logits"],
        "onnx_ranker": lambda x: onnx.scorer.score(onnx.scorer.encode(x[0]), x[1]),
        "onnx_full": lambda x: ox(x[2])["logits"],
    }
    times, outs = interleave(variants, inputs, warmup)
    lens = [int((x[0]["hist_item"] != 0).sum()) for x in inputs[warmup:]]
    return {"run": str(run_dir), "model": eager.name, "candidates": n_cand, "rounds": rounds,
            "history_len_mean": float(np.mean(lens)), "history_len_max": int(max(lens)),
            "exports": {f: {"bytes": e["bytes"], "parity_max_abs_diff": e["parity_max_abs_diff"]}
                        for f, e in exports.items()},
            "variants": summarise(times, outs, "eager_full")}


def _table(title: str, rows: dict, first: str) -> None:
    print(title)
    print(f"  {'variant':<18} {'median ms':>10} {'p95 ms':>9} {'x ' + first:>16} {'max abs diff':>13}")
    for n, r in rows.items():
        print(f"  {n:<18} {r['median_ms']:>10.3f} {r['p95_ms']:>9.3f} {r['speed_vs_first']:>16.2f} "
              f"{r['max_abs_diff']:>13.1e}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tower-run", default=str(RUNS / "youtube_dnn"))
    ap.add_argument("--ranker-run", default=str(RUNS / "din"))
    ap.add_argument("--rounds", type=int, default=300, help="measured rounds per benchmark")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="serve_export_") as tmp:
        tower = bench_tower(_copy_run(Path(args.tower_run), Path(tmp)), args.rounds * 3, args.warmup, args.seed)
        ranker = bench_ranker(_copy_run(Path(args.ranker_run), Path(tmp)), args.rounds, args.warmup,
                              args.candidates, args.seed)
    tower["run"], ranker["run"] = args.tower_run, args.ranker_run
    _table(f"(a) {tower['model']} user tower, batch 1, {tower['rounds']} rounds, mean history "
           f"{tower['history_len_mean']:.1f}; diff vs eager", tower["variants"], "eager")
    _table(f"(b) {ranker['model']} ranker, {ranker['candidates']} candidates, {ranker['rounds']} rounds, mean history "
           f"{ranker['history_len_mean']:.1f}; diff vs eager_full", ranker["variants"], "eager_split")
    update_results("export", {"env": env_info(), "threads": 1, "tower": tower, "ranker": ranker}, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
