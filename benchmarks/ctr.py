"""CTR benchmark: seqrec's CTR models and DeepCTR-Torch's on identical samples, side by side.

    python benchmarks/ctr.py                                     # everything
    python benchmarks/ctr.py --datasets amazon_beauty --models din,dien --seeds 0,1,2
    python benchmarks/ctr.py --quick                             # amazon_beauty, 1 epoch, din only

For every dataset (the task builders of ``seqrec.data.tasks.ctr``: the same samples, split
and negatives for both libraries) and model, one child process trains and evaluates one
(library, model, seed) with the same embedding size, batch size, optimiser (Adam), learning
rate and epochs, and reports test AUC, GAUC (weighted by samples), logloss, train
samples/s (wall clock of the training epochs), inference samples/s (the test set, batch
4096) and peak RSS. Peers: DeepCTR-Torch 0.3.0's DIN, DIEN, WDL and DeepFM
(``make bench-deps``; see ``_deepctr_peer.py`` for how it is set up and its quirks).
Records merge into ``<out>/ctr.json``; ``<out>/ctr.md`` has one table per dataset
(mean ± std over seeds where there are several).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    ROOT,
    env_info,
    fmt_int,
    load_records,
    markdown_table,
    merge_records,
    write_json,
    write_text,
)

DATASETS = ("amazon_beauty", "amazon_sports", "taobao")
OURS = ("din", "dien", "dsin", "bst", "wide_deep", "deepfm", "dlrm", "mlp_sum")
PEER = ("din", "dien", "wide_deep", "deepfm")
KEY = ("dataset", "model", "library", "seed")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "POLARS_MAX_THREADS")


def config_path(model: str, dataset: str) -> Path:
    return ROOT / "configs" / f"{model}_{dataset}.toml"


def run_single(args) -> int:
    dataset, model, library, seed = args.single[0], args.single[1], args.single[2], int(args.single[3])
    import torch

    from seqrec.config import load_run_config
    from seqrec.experiment_ctr import load_task

    torch.set_num_threads(args.threads)
    over = [f"train.seed={seed}", f"train.threads={args.threads}", "train.progress=false"]
    if args.epochs:
        over.append(f"train.epochs={args.epochs}")
    cfg = load_run_config(config_path(model, dataset), over)
    if library == "seqrec":
        from seqrec.experiment_ctr import train_ctr_run

        with tempfile.TemporaryDirectory() as td:
            m = train_ctr_run(cfg, Path(td) / "run")
        rec = {"metrics": {k: m["test"][k] for k in ("auc", "gauc", "gauc_unweighted", "logloss")},
               "train_samples_per_s": m["train_samples_per_s"], "infer_samples_per_s": m["infer_samples_per_s"],
               "train_seconds": m["train_seconds"], "peak_rss_mb": m["peak_rss_mb"],
               "valid_auc": m["valid"]["auc"]}
    else:
        from _deepctr_peer import train_eval_deepctr

        task = load_task(cfg)
        mc, tc = cfg.model, cfg.train
        kw = {}
        if model in ("din", "dien"):
            kw["att_hidden"] = tuple(getattr(mc, "att_hidden", (80, 40)))
        if model == "dien":
            kw["item_to_cate"] = task.item_cate
            kw["aux_alpha"] = mc.aux_weight  # the same auxiliary-loss weight for both
        r = train_eval_deepctr(model, task.train, task.valid, task.test, emb_dim=mc.embedding_dim,
                               batch_size=tc.batch_size, epochs=tc.epochs, lr=tc.lr, optimizer=tc.optimizer,
                               seed=seed, dnn_hidden=tuple(mc.mlp_hidden), **kw)
        rec = {"metrics": {k: r["metrics"][k] for k in ("auc", "gauc", "gauc_unweighted", "logloss")},
               "train_samples_per_s": r["train_samples_per_s"], "infer_samples_per_s": r["infer_samples_per_s"],
               "train_seconds": r["train_seconds"], "peak_rss_mb": r["peak_rss_mb"],
               "valid_auc": (r.get("valid_metrics") or {}).get("auc"), "notes": r.get("notes", [])}
    rec.update(dataset=dataset, model=model, library=library, seed=seed, epochs=cfg.train.epochs,
               batch_size=cfg.train.batch_size, embedding_dim=cfg.model.embedding_dim,
               threads=args.threads, config=str(config_path(model, dataset).relative_to(ROOT)),
               command=shlex.join(["python", "benchmarks/ctr.py", "--datasets", dataset, "--models", model,
                                   "--libraries", library, "--seeds", str(seed)]
                                  + (["--epochs", str(args.epochs)] if args.epochs else [])),
               **env_info())
    Path(args.record_out).write_text(json.dumps(rec, indent=2))
    return 0


def _fmt(vals: list[float], digits: int = 4) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def render(records: list[dict]) -> str:
    parts = ["# CTR benchmark", "",
             "Generated by `benchmarks/ctr.py`. Test split; AUC exact (ties half), GAUC weighted by "
             "each user's samples (users with one class skipped), logloss. Mean ± std over seeds "
             "where several ran. Speeds: median over seeds; train = wall clock of the epochs, "
             "inference = the test set in batches of 4096."]
    for ds in DATASETS:
        recs = [r for r in records if r["dataset"] == ds]
        if not recs:
            continue
        groups: dict[tuple, list[dict]] = {}
        for r in recs:
            groups.setdefault((r["model"], r["library"]), []).append(r)
        order = {m: i for i, m in enumerate(OURS)}
        rows = []
        for (model, lib), rs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1] != "seqrec")):
            rows.append([model, lib, str(len(rs)),
                         _fmt([r["metrics"]["auc"] for r in rs]), _fmt([r["metrics"]["gauc"] for r in rs]),
                         _fmt([r["metrics"]["logloss"] for r in rs]),
                         fmt_int(statistics.median(r["train_samples_per_s"] for r in rs)),
                         fmt_int(statistics.median(r["infer_samples_per_s"] for r in rs)),
                         fmt_int(max(r["peak_rss_mb"] for r in rs))])
        r0 = recs[0]
        parts += ["", f"## {ds}", "",
                  f"Epochs {r0['epochs']}, batch {r0['batch_size']}, embedding {r0['embedding_dim']}, "
                  f"Adam, threads {r0['threads']}; run {r0.get('date', '')[:10]}.", "",
                  markdown_table(["Model", "Library", "Seeds", "AUC", "GAUC", "logloss", "train samples/s",
                                  "infer samples/s", "peak RSS MB"], rows)]
    return "\n".join(parts) + "\n"


def run_all(args) -> int:
    datasets = args.datasets or (["amazon_beauty"] if args.quick else list(DATASETS))
    models = args.models or (["din"] if args.quick else list(OURS))
    libraries = args.libraries or ["seqrec", "deepctr-torch"]
    seeds = [int(s) for s in args.seeds.split(",")]
    if "deepctr-torch" in libraries:
        sys.path.insert(0, str(Path(__file__).parent))
        from _deepctr_peer import deepctr_available

        why = deepctr_available()
        if why:
            print(f"skipping the peer: {why}", file=sys.stderr)
            libraries = [lib for lib in libraries if lib != "deepctr-torch"]
    plan = []
    for ds in datasets:
        for m in models:
            for lib in libraries:
                if lib == "deepctr-torch" and m not in PEER:
                    continue
                if not config_path(m, ds).is_file():
                    continue  # e.g. DSIN needs timestamps (taobao only)
                plan += [(ds, m, lib, s) for s in seeds]
    out = Path(args.out)
    env = dict(os.environ, **{v: str(args.threads) for v in THREAD_ENV})
    failures = 0
    for i, (ds, m, lib, s) in enumerate(plan, 1):
        tag = f"[{i}/{len(plan)}] {ds} {m} {lib} seed {s}"
        print(f"{tag} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as td:
            rec_path = Path(td) / "rec.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--single", ds, m, lib, str(s),
                   "--record-out", str(rec_path), "--threads", str(args.threads)]
            if args.epochs:
                cmd += ["--epochs", str(args.epochs)]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, check=False)
            if proc.returncode != 0 or not rec_path.exists():
                failures += 1
                print(f"{tag} FAILED (exit {proc.returncode})", file=sys.stderr, flush=True)
                continue
            rec = json.loads(rec_path.read_text())
        records = merge_records(load_records(out / "ctr.json"), [rec], KEY)
        write_json(out / "ctr.json", records)
        write_text(out / "ctr.md", render(records))
        mt = rec["metrics"]
        print(f"{tag} done in {time.perf_counter() - t0:.0f} s: auc {mt['auc']:.4f} gauc {mt['gauc']:.4f} "
              f"logloss {mt['logloss']:.4f}, {rec['train_samples_per_s']:,.0f} train samples/s",
              file=sys.stderr, flush=True)
    print(render(load_records(out / "ctr.json")))
    return 1 if failures else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=lambda s: s.split(","))
    p.add_argument("--models", type=lambda s: s.split(","))
    p.add_argument("--libraries", type=lambda s: s.split(","))
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=0, help="override the configs' epochs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--single", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--record-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.single:
        sys.path.insert(0, str(Path(__file__).parent))
        return run_single(args)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
