"""Retrieval peer benchmark: seqrec's retrieval models, RecBole's and torch-rechub's on identical splits.

    python benchmarks/retrieval.py --datasets movielens1m_m1 --models mf_bpr,itemcf --epochs 5
    python benchmarks/retrieval.py --datasets amazon_beauty --models sasrec,youtube_dnn,mind --seeds 0,1,2
    python benchmarks/retrieval.py --libraries recbole --models itemcf     # one library only

Every (dataset, model, library, seed) is one child process, so peak RSS is that run's own
(``ru_maxrss`` of the child). seqrec runs ``seqrec.experiment.train_run`` on
``configs/<model>_<dataset>.toml``; the peers (``PEERS``) get seqrec's splits:

* RecBole 1.2.1 (BPR, NeuMF, ItemKNN, SASRec, GRU4Rec) in its own environment
  (``make bench-recbole``: ``.venv-recbole``; RecBole needs numpy 1.26), started by
  ``_recbole_peer.py``, reads the splits as benchmark atomic files written by
  ``_retrieval_export.py`` (one export per dataset and seed: BARS validation hold-outs depend on the
  seed);
* torch-rechub 0.9.0 (YoutubeDNN, MIND), ``_rechub_peer.py``, takes arrays built from the task.

Both peers are scored by seqrec's own metric code on seqrec's valid / test splits (RecBole's own
evaluator is run too and recorded as ``peer_metrics``). Hyperparameters: the peer gets seqrec's
config values where the models have them (dimension, epochs, batch size, learning rate, negatives,
history length, layers), else its documented defaults; :func:`peer_settings` resolves them and
:func:`differences` lists every difference left, printed as footnotes under the table. Without a
seqrec config for a (model, dataset) yet, seqrec's row is a ``skipped`` record naming the file and
the peer runs on its defaults (said in the record).

Speed: per seed the libraries run back to back (seqrec first on even seeds, the peers first on odd
ones), with the same thread count (``--threads``, default 1: OMP/MKL/torch set in every child);
the ratio of a seed is seqrec's train samples/s over the peer's from the same invocation. A
"sample" is one training example of that library (see ``train_examples_per_epoch``; they differ
between libraries where the training schemes differ, e.g. SASRec: seqrec one user sequence with a
loss at every position vs RecBole one (prefix, next item) row), so the table also gives seconds per
epoch. A run that fails leaves a record with the exact error.
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

import numpy as np
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

BARS = ("gowalla", "movielens1m_m1")
LOO = ("amazon_beauty", "amazon_sports")
DATASETS = BARS + LOO
MODELS_OF = {ds: ("mf_bpr", "neumf", "itemcf", "youtube_dnn") for ds in BARS}
MODELS_OF.update({ds: ("sasrec", "sasrec-ce", "gru4rec", "youtube_dnn", "mind") for ds in LOO})
LIB, RECBOLE, RECHUB = "seqrec", "recbole", "torch-rechub"
PEERS = {"mf_bpr": (RECBOLE, "BPR"), "neumf": (RECBOLE, "NeuMF"), "itemcf": (RECBOLE, "ItemKNN"),
         "sasrec": (RECBOLE, "SASRec"), "sasrec-ce": (RECBOLE, "SASRec"), "gru4rec": (RECBOLE, "GRU4Rec"),
         "youtube_dnn": (RECHUB, "YoutubeDNN"), "mind": (RECHUB, "MIND")}
METRICS = ("recall@20", "ndcg@20", "recall@50", "hitrate@20", "hitrate@10", "ndcg@10")
KEY = ("dataset", "model", "library")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "POLARS_MAX_THREADS",
              "OPENBLAS_NUM_THREADS")
RECBOLE_PY = ROOT / ".venv-recbole" / "bin" / "python"


def config_path(model: str, dataset: str) -> Path:
    return ROOT / "configs" / f"{model}_{dataset}.toml"


TIES = "pessimistic"


def our_config(model: str, dataset: str, seed: int, threads: int, epochs: int):
    """seqrec's RunConfig for (model, dataset) with the run's seed / threads / epochs, or None."""
    from seqrec.config import load_run_config

    p = config_path(model, dataset)
    if not p.is_file():
        return None
    # pessimistic ties for every library: a degenerate scorer (e.g. a dead-ReLU user tower giving a zero
    # vector, every item tied) must not count its ties as hits
    over = [f"train.seed={seed}", f"train.threads={threads}", "train.progress=false", "eval.test=true",
            f"eval.ties={TIES}"]
    if epochs:
        over.append(f"train.epochs={epochs}")
    return load_run_config(p, over)


# -- hyperparameters -------------------------------------------------------------------------------------
# the peers' settings when seqrec has no config for the pair yet (their documented defaults, except
# epochs, which --epochs sets for both sides)
DEFAULTS = {
    "BPR": {"dim": 64, "batch_size": 2048, "lr": 1e-3, "n_negatives": 1},
    "NeuMF": {"dim": 64, "batch_size": 2048, "lr": 1e-3, "n_negatives": 4, "mlp_hidden": [128, 64],
              "dropout": 0.1},
    "ItemKNN": {"neighbours": 100},
    "SASRec": {"dim": 64, "batch_size": 2048, "lr": 1e-3, "n_layers": 2, "n_heads": 2, "dropout": 0.5,
               "max_len": 50},
    "GRU4Rec": {"dim": 64, "hidden": 128, "batch_size": 2048, "lr": 1e-3, "dropout": 0.3, "max_len": 50},
    "YoutubeDNN": {"dim": 64, "batch_size": 256, "lr": 1e-3, "n_negatives": 100, "max_len": 50,
                   "temperature": 0.02},
    "MIND": {"dim": 64, "batch_size": 256, "lr": 1e-3, "n_negatives": 100, "max_len": 50, "temperature": 0.02,
             "interests": 4},
}


def _first(obj, names, default=None):
    for n in names:
        if obj is not None and hasattr(obj, n):
            return getattr(obj, n)
    return default


def peer_settings(model: str, cfg, epochs: int) -> dict:
    """The peer's hyperparameters: seqrec's where ``cfg`` (seqrec's RunConfig or None) has them."""
    peer = PEERS[model][1]
    s = dict(DEFAULTS[peer])
    s["source"] = "seqrec config" if cfg is not None else "peer defaults (no seqrec config yet)"
    if cfg is not None and peer == "ItemKNN":
        s["neighbours"] = _first(cfg.model, ("neighbours",), s["neighbours"])
    elif cfg is not None:
        mc, tc = cfg.model, cfg.train
        s["batch_size"], s["lr"] = tc.batch_size, tc.lr
        s["epochs"] = tc.epochs
        # torch-rechub's temperature divides cosines (seqrec's divides inner products) and its negatives
        # are per example (seqrec's shared by the batch): both keep the peer's defaults
        own = peer in ("YoutubeDNN", "MIND")
        for key, names in (("dim", ("dim", "embedding_dim", "hidden_size")),
                           ("n_negatives", () if own else ("n_negatives", "negatives")),
                           ("n_layers", ("n_layers", "layers")), ("n_heads", ("n_heads", "heads")),
                           ("dropout", ("dropout",)), ("neighbours", ("neighbours",)),
                           ("temperature", () if own else ("temperature",)),
                           ("interests", ("n_interests", "interests", "k_max")),
                           ("hidden", ("hidden", "hidden_size"))):
            if key in s:
                s[key] = _first(mc, names, s[key])
        if "max_len" in s:
            s["max_len"] = cfg.data.max_len
        if peer == "BPR" and _first(mc, ("shared_negatives",), False):
            # seqrec's negatives are shared by the batch (one product); RecBole draws its per positive and
            # repeats the interaction for each, so 300 would make an epoch 300 interaction passes
            s["n_negatives"] = DEFAULTS["BPR"]["n_negatives"]
    s["epochs"] = epochs or s.get("epochs", 10)
    if peer == "ItemKNN":
        s["epochs"] = 1
    return s


def recbole_config(model: str, s: dict) -> dict:
    """RecBole config keys for the peer of ``model`` with settings ``s``."""
    peer = PEERS[model][1]
    if peer == "ItemKNN":
        return {"k": s["neighbours"], "shrink": 0.0, "knn_method": "item", "epochs": 1}
    c = {"epochs": s["epochs"], "train_batch_size": s["batch_size"], "learning_rate": s["lr"]}
    if peer == "BPR":
        c.update(embedding_size=s["dim"], train_neg_sample_args={"distribution": "uniform",
                                                                 "sample_num": s["n_negatives"]})
    elif peer == "NeuMF":
        c.update(mf_embedding_size=s["dim"], mlp_embedding_size=s["dim"], mlp_hidden_size=s["mlp_hidden"],
                 dropout_prob=s["dropout"],
                 train_neg_sample_args={"distribution": "uniform", "sample_num": s["n_negatives"]})
    elif peer == "SASRec":
        ce = model == "sasrec-ce"
        c.update(hidden_size=s["dim"], inner_size=4 * s["dim"], n_layers=s["n_layers"], n_heads=s["n_heads"],
                 hidden_dropout_prob=s["dropout"], attn_dropout_prob=s["dropout"],
                 loss_type="CE" if ce else "BPR",
                 train_neg_sample_args=None if ce else {"distribution": "uniform", "sample_num": 1})
    elif peer == "GRU4Rec":
        c.update(embedding_size=s["dim"], hidden_size=s["hidden"], dropout_prob=s["dropout"], loss_type="CE",
                 train_neg_sample_args=None)
    return c


def differences(model: str, s: dict, cfg) -> list[str]:
    """Every known difference between seqrec's ``model`` and its peer's row."""
    peer = PEERS[model][1]
    d = []
    if cfg is None:
        d.append(f"no configs/{model}_<dataset>.toml yet: the peer ran on its defaults {_short(s)}")
    mc = cfg.model if cfg is not None else None
    sched = getattr(cfg.train, "lr_schedule", "constant") if cfg is not None else "constant"
    if sched != "constant" and peer != "ItemKNN":
        d.append(f"learning rate: seqrec {sched} decay over the epochs; the peer constant")
    if peer == "BPR":
        d.append(f"L2: seqrec reg = {_first(mc, ('reg',), 0)} on the rows a batch uses (BPR-Opt); RecBole BPR none "
                 "(weight_decay 0)")
        d.append(f"init: seqrec N(0, {_first(mc, ('init_std',), 0.1)}^2); RecBole xavier_normal")
        if _first(mc, ("shared_negatives",), False):
            d.append(f"negatives: seqrec {_first(mc, ('n_negatives',), 1)} uniform items shared by the batch, each "
                     f"positive ranked against all of them; RecBole {s['n_negatives']} per positive (its sampler "
                     "repeats the interaction once per negative)")
    if peer == "NeuMF":
        d.append("RecBole NeuMF without pretraining (use_pretrain False, its default); "
                 "MLP tower " + str(s["mlp_hidden"]) + f", dropout {s['dropout']}")
    if peer == "ItemKNN" and _first(mc, ("keep",), "history") != "candidate":
        d.append("ItemKNN keeps each item's k nearest neighbours per column of W (item i's k most similar j), "
                 "seqrec's ItemCF (keep = 'history') per row (item j's most similar i); both cosine, "
                 "score = sum over history")
    if peer == "SASRec":
        if model == "sasrec":
            d.append("loss: seqrec BCE with one sampled negative per position (the paper); RecBole has no BCE "
                     "for SASRec, its closest is loss_type BPR (-log sigmoid(pos - neg)), one uniform negative")
        else:
            d.append("loss: RecBole CE = full softmax over all items")
        d.append("examples: seqrec a loss at every position of a user's sequence; RecBole one (prefix, next "
                 "item) row per position, loss at the last position only (so 'samples' differ in size)")
        d.append("RecBole SASRec: GELU feed-forward, inner size 4 * dim, layer norm eps 1e-12, init N(0, 0.02)")
    if peer == "GRU4Rec":
        d.append("seqrec's GRU4Rec is a session model (issue #3), RecBole's a sequential one trained with CE on "
                 "(prefix, next item) rows; a cross-check of quality only")
    if peer in ("YoutubeDNN", "MIND"):
        n_ours = _first(mc, ("n_negatives",), None)
        d.append(f"loss: torch-rechub list-wise softmax over the positive and {s['n_negatives']} uniform negatives "
                 f"per example (no logQ), cosine / temperature {s['temperature']}"
                 + (f"; seqrec {n_ours} shared negatives per batch with logQ" if n_ours else ""))
        d.append("torch-rechub embeddings init N(0, 1e-4); Adam weight_decay 1e-5 (MatchTrainer default)")
        if peer == "MIND":
            d.append("torch-rechub MIND adds a user-id embedding to every interest (it needs one user feature)")
        if cfg is not None and cfg.data.name in BARS:
            d.append("BARS item sets: the peer's histories (other train items) are drawn once, seqrec's per epoch")
    return d


def _short(s: dict) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in s.items() if k != "source") + ")"


# -- one run (a child process) ---------------------------------------------------------------------------
def train_split_of(cfg) -> str:
    """seqrec's ``data.train_split`` for the pair ('train': validation held out, when no config)."""
    return cfg.data.train_split if cfg is not None else "train"


def load_task(dataset: str, seed: int, train_split: str = "train"):
    """The retrieval task exactly as seqrec's run builds it (same split, same BARS hold-out seed)."""
    from seqrec.data.registry import get_dataset, require_files

    entry = get_dataset(dataset, "retrieval")
    return entry.recipes["retrieval"].build(dataset, require_files(entry, None), train_split=train_split,
                                            seed=seed)


def _pick(m: dict | None) -> dict | None:
    return None if m is None else {k: m[k] for k in METRICS if k in m}


def run_single(args) -> int:
    dataset, model, library, seed = args.single[0], args.single[1], args.single[2], int(args.single[3])
    import torch

    torch.set_num_threads(args.threads)
    cfg = our_config(model, dataset, seed, args.threads, args.epochs)
    if library == LIB:
        from seqrec.experiment import train_run

        with tempfile.TemporaryDirectory() as td:
            m = train_run(cfg, Path(td) / "run", progress=False)
        rec = {"metrics": _pick(m["test"]), "valid_metrics": _pick(m.get("valid")),
               "train_samples_per_s": m["train_samples_per_s"], "train_seconds": m["train_seconds"],
               "eval_seconds": m["eval_seconds"], "peak_rss_mb": m["peak_rss_mb"], "epochs": m["epochs"],
               "train_examples_per_epoch": (m["train_examples"] / m["epochs"]) if m.get("epochs") else
               m["train_examples"], "settings": {"config": str(config_path(model, dataset).relative_to(ROOT))}}
    else:
        from _rechub_peer import train_eval_rechub

        s = peer_settings(model, cfg, args.epochs)
        r = train_eval_rechub(PEERS[model][1], load_task(dataset, seed, train_split_of(cfg)), dim=s["dim"], epochs=s["epochs"],
                              batch_size=s["batch_size"], lr=s["lr"], n_negatives=s["n_negatives"],
                              max_len=s["max_len"], seed=seed, temperature=s["temperature"],
                              interest_num=s.get("interests", 4))
        rec = dict(r, metrics=_pick(r["metrics"]), valid_metrics=_pick(r["valid_metrics"]), settings=s,
                   differences=differences(model, s, cfg) + r["notes"])
    rec["ties"] = TIES
    Path(args.record_out).write_text(json.dumps(rec, indent=2, default=float))
    return 0


def run_recbole(model: str, dataset: str, seed: int, args, export_dir: Path) -> dict:
    """One RecBole run in ``.venv-recbole`` (child process); the record or an error record."""
    cfg = our_config(model, dataset, seed, args.threads, args.epochs)
    s = peer_settings(model, cfg, args.epochs)
    peer = PEERS[model][1]
    seq = peer in ("SASRec", "GRU4Rec")
    max_len = s.get("max_len", 50)
    split = train_split_of(cfg)
    name = f"{dataset}_{split}_s{seed}" + (f"_seq{max_len}" if seq else "")
    if not (export_dir / name).is_dir():
        from _retrieval_export import save_splits, write_recbole_atomic

        task = load_task(dataset, seed, split)
        write_recbole_atomic(task, export_dir, name, sequential=seq, max_len=max_len)
        save_splits(task, export_dir / f"{name}.npz")
    with tempfile.TemporaryDirectory() as work:
        spec = {"model": peer, "dataset": name, "data_path": str(export_dir), "splits": str(export_dir / f"{name}.npz"),
                "seed": seed, "threads": args.threads, "max_len": max_len, "workdir": work,
                "n_items": int(np.load(export_dir / f"{name}.npz")["n_items"]),
                "config": recbole_config(model, s), "max_memory_gb": args.recbole_max_memory_gb}
        sp, out = Path(work) / "spec.json", Path(work) / "rec.json"
        sp.write_text(json.dumps(spec))
        env = dict(os.environ, **{v: str(args.threads) for v in THREAD_ENV})
        env.pop("PYTHONPATH", None)
        proc = subprocess.run([str(RECBOLE_PY), str(Path(__file__).parent / "_recbole_peer.py"), "--spec", str(sp),
                               "--out", str(out)], env=env, cwd=work, check=False, capture_output=True, text=True)
        if out.exists():
            rec = json.loads(out.read_text())
        else:
            rec = {"error": f"_recbole_peer.py exited {proc.returncode} without a record: "
                            f"{(proc.stderr or proc.stdout)[-1500:]}"}
    if "error" not in rec:
        rec["metrics"], rec["valid_metrics"] = _pick(rec["metrics"]), _pick(rec.get("valid_metrics"))
    rec.update(settings=dict(s, train_split=split), differences=differences(model, s, cfg) + rec.get("notes", []))
    return rec


# -- records --------------------------------------------------------------------------------------------
def aggregate(old: dict | None, run: dict) -> dict:
    """The (dataset, model, library) record with ``run`` (one seed) added or replaced."""
    runs = [r for r in (old or {}).get("runs", []) if r["seed"] != run["seed"]] + [run]
    runs.sort(key=lambda r: r["seed"])
    ok = [r for r in runs if r.get("metrics")]
    rec = {k: run[k] for k in ("dataset", "model", "library")}
    rec["status"] = "ok" if ok else run.get("status", "failed")
    if ok:
        rec["metrics"] = {k: statistics.mean(r["metrics"][k] for r in ok) for k in METRICS}
        rec["metrics"]["per_seed"] = {str(r["seed"]): r["metrics"] for r in ok}
        for k in ("train_samples_per_s", "train_seconds", "eval_seconds"):
            vals = [r[k] for r in ok if r.get(k) is not None]
            rec[k] = statistics.median(vals) if vals else None
        rec["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    else:
        rec.update(metrics=None, train_samples_per_s=None, train_seconds=None, eval_seconds=None,
                   peak_rss_mb=None)
    rec["seeds"] = [r["seed"] for r in ok]
    rec["command"] = run["command"]
    for k in ("peer_model", "differences", "settings", "reason", "error"):
        if run.get(k) is not None:
            rec[k] = run[k]
    rec["runs"] = runs
    return rec


def speed_ratios(recs: list[dict], dataset: str, model: str, library: str) -> list[tuple[int, float]]:
    """(seed, seqrec samples/s / peer samples/s) for the seeds both ran in one invocation."""
    by = {(r["model"], r["library"]): r for r in recs if r["dataset"] == dataset}
    ours, peer = by.get((model, LIB)), by.get((model, library))
    if not ours or not peer:
        return []
    mine = {r["seed"]: r for r in ours.get("runs", []) if r.get("train_samples_per_s")}
    out = []
    for r in peer.get("runs", []):
        o = mine.get(r["seed"])
        if o and r.get("train_samples_per_s") and o.get("invocation") == r.get("invocation"):
            out.append((r["seed"], o["train_samples_per_s"] / r["train_samples_per_s"]))
    return sorted(out)


def _fmt(rec: dict, k: str) -> str:
    m = rec.get("metrics")
    if not m:
        return "—"
    vals = [v[k] for v in m["per_seed"].values()]
    if len(vals) == 1:
        return f"{vals[0]:.4f}"
    return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"


def render(records: list[dict]) -> str:
    parts = ["# Retrieval peer benchmark", "",
             "Generated by `benchmarks/retrieval.py`. Every row is ranked by seqrec's evaluator "
             "(`seqrec.evaluate.retrieval`) on seqrec's test split: all items, the user's train items "
             "(BARS) or history (leave-one-out) excluded; Recall@K = hits / |T|, NDCG@K with the ideal DCG "
             "over min(|T|, K), HitRate@K. Mean ± std over seeds. Train samples/s: one training example of "
             "that library (see notes), median over seeds; s/epoch = train seconds / epochs. Ratio: seqrec's "
             "samples/s over the peer's, runs adjacent in one invocation, per seed, then the median. "
             "Peak RSS: the run's own child process. Numbers in brackets point to the footnotes: every "
             "difference left between the two rows."]
    order = {m: i for i, m in enumerate(dict.fromkeys(sum(MODELS_OF.values(), ())))}
    for ds in DATASETS:
        recs = [r for r in records if r["dataset"] == ds]
        if not recs:
            continue
        notes: list[str] = []
        rows = []
        for r in sorted(recs, key=lambda r: (order.get(r["model"], 99), r["library"] != LIB)):
            refs = []
            for d in r.get("differences", []):
                if d not in notes:
                    notes.append(d)
                refs.append(str(notes.index(d) + 1))
            name = r["model"] + (f" ({r['peer_model']})" if r.get("peer_model") else "")
            name += f" [{','.join(refs)}]" if refs else ""
            ratio = "—"
            if r["library"] != LIB:
                rat = speed_ratios(records, ds, r["model"], r["library"])
                if rat:
                    ratio = (f"**{statistics.median(x for _, x in rat):.2f}×** ("
                             + ", ".join(f"{x:.2f}" for _, x in rat) + ")")
            if r.get("status") != "ok":
                why = r.get("reason") or r.get("error") or "failed"
                rows.append([name, r["library"], "0", f"{r.get('status', 'failed')}: {why[:300]}"]
                            + ["—"] * 10)
                continue
            ok = [x for x in r["runs"] if x.get("metrics")]
            spe = statistics.median(x["train_seconds"] / max(x.get("epochs") or 1, 1) for x in ok)
            rows.append([name, r["library"], str(len(ok))] + [_fmt(r, k) for k in METRICS]
                        + [fmt_int(r["train_samples_per_s"]), f"{spe:,.1f}", ratio,
                           f"{r['eval_seconds']:.1f}", fmt_int(r["peak_rss_mb"])])
        runs = [x for r in recs for x in r.get("runs", []) if x.get("date")]
        when = f"runs of {min(x['date'] for x in runs)[:10]}" if runs else ""
        thr = sorted({x.get("threads") for x in runs if x.get("threads")})
        eps = sorted({x.get("epochs") for r in recs if r["library"] == LIB for x in r.get("runs", [])
                      if x.get("epochs") is not None})
        ties = sorted({x.get("ties", "optimistic (runs before the tie fix)") for x in runs})
        parts += ["", f"## {ds}", "", f"Threads {thr or '—'}; seqrec epochs {eps or '—'}; {when}; ties "
                  f"{' / '.join(ties)}.", "",
                  markdown_table(["Model (peer)", "Library", "Seeds", *METRICS, "train samples/s", "s/epoch",
                                  "speed ratio", "eval s", "peak RSS MB"], rows)]
        if notes:
            parts += [""] + [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(parts) + "\n"


# -- the whole run ---------------------------------------------------------------------------------------
def plan_runs(datasets, models, libraries, seeds) -> list[tuple]:
    """(dataset, model, library, seed) in run order: per seed seqrec and the model's peer back to back,
    seqrec first on even seeds and the peer first on odd ones."""
    plan = []
    for ds in datasets:
        for m in models:
            if m not in MODELS_OF.get(ds, ()):
                continue
            libs = [lib for lib in libraries if lib == LIB or (m in PEERS and PEERS[m][0] == lib)]
            for s in seeds:
                pair = libs if s % 2 == 0 else libs[::-1]
                plan += [(ds, m, lib, s) for lib in pair]
    return plan


def peer_unavailable(library: str) -> str | None:
    if library == RECBOLE:
        return None if RECBOLE_PY.exists() else f"{RECBOLE_PY.relative_to(ROOT)} is missing (make bench-recbole)"
    if library == RECHUB:
        from _rechub_peer import rechub_available

        return rechub_available()
    return None


def command_of(ds, m, lib, s, args) -> str:
    return shlex.join(["python", "benchmarks/retrieval.py", "--datasets", ds, "--models", m, "--libraries", lib,
                       "--seeds", str(s), "--threads", str(args.threads)]
                      + (["--epochs", str(args.epochs)] if args.epochs else []))


def run_all(args) -> int:
    datasets = args.datasets or list(DATASETS)
    models = args.models or list(dict.fromkeys(sum(MODELS_OF.values(), ())))
    libraries = args.libraries or [LIB, RECBOLE, RECHUB]
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = plan_runs(datasets, models, libraries, seeds)
    out = Path(args.out)
    env = dict(os.environ, **{v: str(args.threads) for v in THREAD_ENV})
    invocation = now_iso()
    failures = 0
    with tempfile.TemporaryDirectory() as export:
        for i, (ds, m, lib, s) in enumerate(plan, 1):
            tag = f"[{i}/{len(plan)}] {ds} {m} {lib} seed {s}"
            print(f"{tag} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            base = {"dataset": ds, "model": m, "library": lib, "seed": s, "invocation": invocation,
                    "threads": args.threads, "command": command_of(ds, m, lib, s, args)}
            if lib != LIB:
                base["peer_model"] = PEERS[m][1]
            why = peer_unavailable(lib)
            if lib == LIB and not config_path(m, ds).is_file():
                why = f"configs/{m}_{ds}.toml does not exist yet"
            if why:
                run = dict(base, status="skipped", reason=why)
            elif lib == RECBOLE:
                run = dict(base, **run_recbole(m, ds, s, args, Path(export)))
            else:
                with tempfile.TemporaryDirectory() as td:
                    rec_path = Path(td) / "rec.json"
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--single", ds, m, lib, str(s),
                           "--record-out", str(rec_path), "--threads", str(args.threads)]
                    if args.epochs:
                        cmd += ["--epochs", str(args.epochs)]
                    proc = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True)
                    if proc.returncode == 0 and rec_path.exists():
                        run = dict(base, **json.loads(rec_path.read_text()))
                    else:
                        err = (proc.stderr or proc.stdout).strip().splitlines()
                        run = dict(base, error=f"exit {proc.returncode}: " + (err[-1] if err else ""),
                                   traceback="\n".join(err[-30:]))
            if run.get("error"):
                run["status"] = "failed"
                failures += 1
            run.update(env_info())
            key = (ds, m, lib)
            old = next((r for r in load_records(out / "retrieval.json") if tuple(r[k] for k in KEY) == key), None)
            records = merge_records(load_records(out / "retrieval.json"), [aggregate(old, run)], KEY)
            write_json(out / "retrieval.json", records)
            write_text(out / "retrieval.md", render(records))
            if run.get("metrics"):
                mt = run["metrics"]
                print(f"{tag} done in {time.perf_counter() - t0:.0f} s: recall@20 {mt['recall@20']:.4f} "
                      f"ndcg@20 {mt['ndcg@20']:.4f} hitrate@10 {mt['hitrate@10']:.4f}, "
                      f"{run['train_samples_per_s']:,.0f} train samples/s", file=sys.stderr, flush=True)
            else:
                print(f"{tag} {run.get('status')}: {run.get('reason') or run.get('error')}", file=sys.stderr,
                      flush=True)
    print(render(load_records(out / "retrieval.json")))
    return 1 if failures else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=lambda s: s.split(","))
    p.add_argument("--models", type=lambda s: s.split(","))
    p.add_argument("--libraries", type=lambda s: s.split(","))
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=0, help="override the epochs of both sides")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--recbole-max-memory-gb", type=float, default=8.0,
                   help="address-space limit of a RecBole child (a MemoryError record, not an OOM kill)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--single", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--record-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.single:
        return run_single(args)
    return run_all(args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
