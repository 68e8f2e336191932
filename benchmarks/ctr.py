"""CTR benchmark: seqrec's CTR models and DeepCTR-Torch's on identical samples, side by side.

    python benchmarks/ctr.py                                     # everything
    python benchmarks/ctr.py --datasets amazon_beauty --models din-paper,dien-paper --seeds 0,1,2
    python benchmarks/ctr.py --quick                             # amazon_beauty, din-paper, seed 0

For every dataset (the task builders of ``seqrec.data.tasks.ctr``: the same samples, split
and negatives for both libraries) and model, one child process trains and evaluates one
(library, model, seed) and reports validation and test AUC, GAUC (weighted by samples),
logloss, train samples/s, inference samples/s (the test set, batch 4096) and peak RSS.

Like for like: the peer (DeepCTR-Torch 0.3.0, ``make bench-deps``; ``_deepctr_peer.py``)
runs for ``din-paper``, ``dien-paper``, ``wide_deep-paper`` and ``deepfm-paper`` (seqrec's
configurations with the peer's architecture and recipe; the peer's rows carry the same
names) with seqrec's
configuration translated to its arguments (embedding width, MLP and attention sizes and
activations, optimiser, learning rate, batch size, epochs, DIEN's auxiliary weight and
negatives). :func:`differences` lists every remaining difference between the two rows;
each record carries the list and the table prints it as footnotes.

Speed: both clocks cover the same work — the training epochs, batch assembly from the same
in-memory arrays included (seqrec: its trainer's epoch loop; the peer: ``fit``'s epochs, from
its ``on_epoch_begin`` to its ``on_epoch_end`` callback, so its one-off input concatenation
is outside, as seqrec's sample building is). The two libraries alternate within one
invocation, seed by seed (seqrec, peer for even seeds; peer, seqrec for odd ones), so that
the host's drift hits both alike; the ratio of a seed is seqrec's samples/s over the
peer's from the same invocation, and the table gives each seed's ratio and their median.
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
    now_iso,
    write_json,
    write_text,
)

DATASETS = ("amazon_beauty", "amazon_sports", "taobao")
OURS = ("din-paper", "din", "dien-paper", "dien", "dsin", "bst", "wide_deep-paper", "wide_deep",
        "deepfm-paper", "deepfm", "dlrm", "mlp_sum")
# seqrec's like-for-like configurations and the peer's model each one is compared with
PEER = {"din-paper": "din", "dien-paper": "dien", "wide_deep-paper": "wide_deep", "deepfm-paper": "deepfm"}
LIB, PEER_LIB = "seqrec", "deepctr-torch"
KEY = ("dataset", "model", "library", "seed")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "POLARS_MAX_THREADS")
PEER_INIT = 1e-4  # DeepCTR-Torch's init_std (embeddings and DNN weights)
CLOCK = ("train: the epochs' wall clock, batch assembly from the in-memory sample arrays "
         "included (seqrec's epoch loop; the peer's fit() from on_epoch_begin to on_epoch_end); "
         "inference: predict on the test set, batch 4096")


def config_path(model: str, dataset: str) -> Path:
    return ROOT / "configs" / f"{model}_{dataset}.toml"


def peer_activation(act: str, model: str) -> str:
    """seqrec's MLP activation as DeepCTR names it; ValueError when the peer has none."""
    if act == "prelu_shared":
        return "prelu"  # DeepCTR builds torch.nn.PReLU(): one slope per layer
    if act == "relu":
        return "relu"
    raise ValueError(f"{model}: mlp_act {act!r} has no DeepCTR-Torch equivalent (prelu_shared or relu)")


def differences(model: str, mc) -> list[str]:
    """Every known difference between seqrec's ``model`` under config ``mc`` and the peer."""
    d = ["main loss: seqrec the batch mean of the BCE, the peer the batch sum (Adam is "
         "invariant to the scale up to its eps)"]
    if model in ("din-paper", "dien-paper") and mc.item_bias:
        d.append("seqrec adds a per-item logit bias")
    if model in ("din-paper", "dien-paper") and mc.sum_product:
        d.append("seqrec feeds [Σ e_t, e_a ⊙ Σ e_t] to the MLP")
    want = "prelu_shared" if model in ("din-paper", "dien-paper") else "relu"
    if mc.mlp_act != want:
        d.append(f"MLP activation: seqrec {mc.mlp_act}, the peer {peer_activation(want, model)}")
    if mc.init_std != PEER_INIT:
        d.append(f"embedding init: seqrec N(0, {mc.init_std:g}), the peer N(0, 1e-4)")
    if mc.dense_init_std != PEER_INIT:
        d.append("MLP / RNN weight init: seqrec torch's defaults, the peer N(0, 1e-4)")
    if mc.sparse_grad:
        d.append("optimiser: seqrec lazy Adam on the embedding tables (rows a batch uses), "
                 "the peer dense Adam on every parameter")
    if mc.mba_reg or mc.dropout:
        d.append("seqrec uses mini-batch aware L2 / dropout, the peer none")
    if model == "din-paper":
        d.append("Dice batch statistics in the attention unit: seqrec over the real behaviours, "
                 "the peer over all 50 positions, padding included (its row-0 embedding is trainable)")
    if model == "dien-paper":
        if mc.attention != "mlp":
            d.append("attention: seqrec bilinear (eq. 6), the peer DIN's activation unit + softmax")
        d.append("AUGRU biases: the peer's cell registers one vector as both bias_ih and bias_hh "
                 "(shared), seqrec has two")
        d.append("auxiliary weight: the peer gets alpha = α · batch size (its main loss is a sum), "
                 "exact for every full batch, not the last one")
    if model in ("wide_deep-paper", "deepfm-paper"):
        d.append("first-order weights: seqrec start at 0, the peer N(0, 1e-4)")
    return d


def run_single(args) -> int:
    dataset, model, library, seed = args.single[0], args.single[1], args.single[2], int(args.single[3])
    import torch

    from seqrec.config import load_run_config
    from seqrec.families.ctr import load_task

    torch.set_num_threads(args.threads)
    over = [f"train.seed={seed}", f"train.threads={args.threads}", "train.progress=false"]
    if args.epochs:
        over.append(f"train.epochs={args.epochs}")
    cfg = load_run_config(config_path(model, dataset), over)
    mc, tc = cfg.model, cfg.train
    if library == LIB:
        from seqrec.families.ctr import train_ctr_run

        with tempfile.TemporaryDirectory() as td:
            m = train_ctr_run(cfg, Path(td) / "run")
        rec = {"metrics": {k: m["test"][k] for k in ("auc", "gauc", "gauc_unweighted", "logloss")},
               "valid_metrics": {k: m["valid"][k] for k in ("auc", "gauc", "logloss")},
               "train_samples_per_s": m["train_samples_per_s"], "infer_samples_per_s": m["infer_samples_per_s"],
               "train_seconds": m["train_seconds"], "peak_rss_mb": m["peak_rss_mb"]}
    else:
        from _deepctr_peer import train_eval_deepctr

        task = load_task(cfg)
        kw = {"dnn_activation": peer_activation(mc.mlp_act, model)}
        if model in ("din-paper", "dien-paper"):
            kw["att_hidden"] = tuple(mc.att_hidden)
            kw["att_activation"] = {"dice": "Dice"}.get(mc.att_act, mc.att_act)
        if model == "dien-paper":
            kw["aux_alpha"] = mc.aux_weight  # the same auxiliary-loss weight for both
        r = train_eval_deepctr(PEER[model], task.train, task.valid, task.test, emb_dim=mc.embedding_dim,
                               batch_size=tc.batch_size, epochs=tc.epochs, lr=tc.lr, optimizer=tc.optimizer,
                               seed=seed, dnn_hidden=tuple(mc.mlp_hidden), **kw)
        rec = {"metrics": {k: r["metrics"][k] for k in ("auc", "gauc", "gauc_unweighted", "logloss")},
               "valid_metrics": {k: r["valid_metrics"][k] for k in ("auc", "gauc", "logloss")},
               "train_samples_per_s": r["train_samples_per_s"], "infer_samples_per_s": r["infer_samples_per_s"],
               "train_seconds": r["train_seconds"], "fit_setup_seconds": r["fit_setup_seconds"],
               "peak_rss_mb": r["peak_rss_mb"], "notes": r.get("notes", [])}
    rec.update(dataset=dataset, model=model, library=library, seed=seed, epochs=tc.epochs,
               batch_size=tc.batch_size, embedding_dim=mc.embedding_dim, threads=args.threads,
               config=str(config_path(model, dataset).relative_to(ROOT)), clock=CLOCK,
               differences=differences(model, mc) if model in PEER else [],
               invocation=args.invocation,
               command=shlex.join(["python", "benchmarks/ctr.py", "--datasets", dataset, "--models", model,
                                   "--seeds", str(seed)]
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


def speed_ratios(recs: list[dict], model: str) -> list[tuple[int, float]]:
    """(seed, seqrec samples/s ÷ peer samples/s) for every seed both ran in one invocation."""
    ours = {r["seed"]: r for r in recs if r["model"] == model and r["library"] == LIB}
    out = []
    for r in recs:
        o = ours.get(r["seed"])
        if r["model"] == model and r["library"] == PEER_LIB and o and o.get("invocation") == r.get("invocation"):
            out.append((r["seed"], o["train_samples_per_s"] / r["train_samples_per_s"]))
    return sorted(out)


def render(records: list[dict]) -> str:
    parts = ["# CTR benchmark", "",
             "Generated by `benchmarks/ctr.py`. AUC exact (ties half), GAUC weighted by each user's samples "
             "(users with one class skipped), logloss; valid = the validation split (what settings were "
             "chosen on), the other metrics the test split. Mean ± std over seeds. Speeds: median over "
             f"seeds; {CLOCK}. Ratio: seqrec's train samples/s over the peer's for each seed, the two "
             "runs adjacent in one invocation (ABAB), then the median.", "",
             "Variants: `din-paper` / `dien-paper` are seqrec's DIN / DIEN built and trained exactly as "
             "DeepCTR-Torch 0.3.0 does (the like-for-like rows; the peer's rows carry the same name); "
             "`din` / `dien` add the extras chosen on validation (see their configs); `wide_deep-paper` / "
             "`deepfm-paper` likewise are Wide&Deep / DeepFM with the peer's initialisation and optimiser, "
             "`wide_deep` / `deepfm` the recipe chosen on validation. Numbers in brackets point to the "
             "footnotes under each table: every difference left between a seqrec row and the peer's."]
    for ds in DATASETS:
        recs = [r for r in records if r["dataset"] == ds]
        if not recs:
            continue
        groups: dict[tuple, list[dict]] = {}
        for r in recs:
            groups.setdefault((r["model"], r["library"]), []).append(r)
        order = {m: i for i, m in enumerate(OURS)}
        notes: list[str] = []
        rows = []
        for (model, lib), rs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1] != LIB)):
            refs = []
            for d in rs[0].get("differences", []):
                if d not in notes:
                    notes.append(d)
                refs.append(str(notes.index(d) + 1))
            ratio = "—"
            if lib == LIB and model in PEER:
                rat = speed_ratios(recs, model)
                if rat:
                    ratio = (f"**{statistics.median(x for _, x in rat):.1f}×** ("
                             + ", ".join(f"{x:.1f}" for _, x in rat) + ")")
            name = f"{model} [{','.join(refs)}]" if refs else model
            rows.append([name, lib, str(len(rs)),
                         _fmt([(r.get("valid_metrics") or {}).get("auc") for r in rs]),
                         _fmt([r["metrics"]["auc"] for r in rs]), _fmt([r["metrics"]["gauc"] for r in rs]),
                         _fmt([r["metrics"]["logloss"] for r in rs]),
                         fmt_int(statistics.median(r["train_samples_per_s"] for r in rs)), ratio,
                         fmt_int(statistics.median(r["infer_samples_per_s"] for r in rs)),
                         fmt_int(max(r["peak_rss_mb"] for r in rs))])
        r0 = recs[0]
        parts += ["", f"## {ds}", "",
                  f"Epochs {r0['epochs']}, batch {r0['batch_size']}, embedding {r0['embedding_dim']}, "
                  f"Adam 1e-3, threads {r0['threads']}; runs of {min(r['date'] for r in recs)[:10]} to "
                  f"{max(r['date'] for r in recs)[:10]}.", "",
                  markdown_table(["Model", "Library", "Seeds", "valid AUC", "AUC", "GAUC", "logloss",
                                  "train samples/s", "speed ratio", "infer samples/s", "peak RSS MB"], rows)]
        if notes:
            parts += [""] + [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(parts) + "\n"


def plan_runs(datasets, models, libraries, seeds) -> list[tuple]:
    """(dataset, model, library, seed) in run order: per seed the two libraries back to back,
    seqrec first for even seeds and the peer first for odd ones (ABBA across seeds)."""
    plan = []
    for ds in datasets:
        for m in models:
            if not config_path(m, ds).is_file():
                continue  # e.g. DSIN needs timestamps (taobao only)
            libs = [lib for lib in libraries if lib == LIB or m in PEER]
            for s in seeds:
                pair = libs if s % 2 == 0 else libs[::-1]
                plan += [(ds, m, lib, s) for lib in pair]
    return plan


def run_all(args) -> int:
    datasets = args.datasets or (["amazon_beauty"] if args.quick else list(DATASETS))
    models = args.models or (["din-paper"] if args.quick else list(OURS))
    libraries = args.libraries or [LIB, PEER_LIB]
    seeds = [int(s) for s in args.seeds.split(",")]
    if PEER_LIB in libraries:
        sys.path.insert(0, str(Path(__file__).parent))
        from _deepctr_peer import deepctr_available

        why = deepctr_available()
        if why:
            print(f"skipping the peer: {why}", file=sys.stderr)
            libraries = [lib for lib in libraries if lib != PEER_LIB]
    plan = plan_runs(datasets, models, libraries, seeds)
    out = Path(args.out)
    env = dict(os.environ, **{v: str(args.threads) for v in THREAD_ENV})
    invocation = now_iso()
    failures = 0
    for i, (ds, m, lib, s) in enumerate(plan, 1):
        tag = f"[{i}/{len(plan)}] {ds} {m} {lib} seed {s}"
        print(f"{tag} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as td:
            rec_path = Path(td) / "rec.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--single", ds, m, lib, str(s),
                   "--record-out", str(rec_path), "--threads", str(args.threads), "--invocation", invocation]
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
        print(f"{tag} done in {time.perf_counter() - t0:.0f} s: valid auc {rec['valid_metrics']['auc']:.4f} "
              f"test auc {mt['auc']:.4f} gauc {mt['gauc']:.4f} logloss {mt['logloss']:.4f}, "
              f"{rec['train_samples_per_s']:,.0f} train samples/s", file=sys.stderr, flush=True)
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
    p.add_argument("--invocation", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.single:
        sys.path.insert(0, str(Path(__file__).parent))
        return run_single(args)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
