"""The ``seqrec`` command line: datasets, download, prepare, train, evaluate, recommend, index,
score-users, serve, export, replay.

Every :class:`~seqrec.errors.SeqrecError` becomes one line on stderr and exit
code 2; no traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from seqrec.errors import ConfigError, SeqrecError


def _cmd_datasets(args: argparse.Namespace) -> int:
    if args.check:
        return _check_data(args)
    from seqrec.data.registry import data_dir, dataset_status

    rows = dataset_status(args.data_dir)
    print(f"data directory: {data_dir(args.data_dir)}  (set SEQREC_DATA to change)")
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for r in rows:
        state = "found" if r["found"] else f"MISSING {', '.join(r['missing'])}"
        print(f"{r['name']:<24} {state:<10} [{', '.join(r['families'])}] {r['description']}")
        for fam, how in r["recipes"].items():
            print(f"{'':<24} {fam}: {how}")
        print(f"{'':<24} licence: {r['licence']}")
    return 0


def _check_data(args: argparse.Namespace) -> int:
    """``seqrec datasets --check CONFIG``: read and validate the config's data, print counts."""
    from seqrec.config import load_run_config
    from seqrec.families import get_family

    cfg = load_run_config(args.check, args.set)
    report = get_family(cfg.family).check_data(cfg)
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    print(f"{cfg.data.name} ({report['family']} family): data OK")
    for k, v in report.items():
        if k in ("family", "dataset"):
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a} {b:,}" if isinstance(b, int) else f"{a} {b}" for a, b in v.items())
        print(f"  {k:<12} {v}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from seqrec.config import load_run_config
    from seqrec.experiment import summary, train_run

    cfg = load_run_config(args.config, args.set)
    # --no-progress wins; without it the config's train.progress decides
    m = train_run(cfg, args.out, resume=args.resume, progress=False if args.no_progress else None)
    if m:  # under torchrun the ranks other than 0 return no metrics and print nothing
        print(summary(cfg, m, args.out))
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    """``seqrec prepare CONFIG --engine polars|spark --out DIR``: the config's data as Parquet shards."""
    from seqrec.config import load_run_config
    from seqrec.prepare.driver import prepare

    cfg = load_run_config(args.config, args.set)
    m = prepare(cfg, args.out, engine=args.engine, shards=args.shards, master=args.master)
    if args.json:
        print(json.dumps({k: v for k, v in m.items() if k != "data"}, default=str))
        return 0
    rows = ", ".join(f"{s} {n:,}" for s, n in m["rows"].items())
    print(f"prepared {m['dataset']} ({m['family']}, {m['recipe']}) with {m['engine']} in {m['seconds']:.1f}s: "
          f"{rows} rows in {m['shards']} shards per split; written to {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from seqrec.experiment import evaluate_run

    m = evaluate_run(args.run_dir, split=args.split, ties=args.ties, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(m))
    else:
        for k, v in m.items():
            print(f"{k:<16} {v:.4f}" if isinstance(v, float) else f"{k:<16} {v}")
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from seqrec.experiment import recommend

    if args.items is None and args.user is None:
        raise ConfigError("give --items ID,ID,... (a session or history) or --user ID (retrieval models)")
    items = [p.strip() for p in (args.items or "").split(",") if p.strip()]
    res = recommend(args.run_dir, items, k=args.k, unknown=args.unknown, user=args.user)
    if res["unknown"]:
        print(f"note: ignored unknown item id(s) {res['unknown']}", file=sys.stderr)
    if args.json:
        print(json.dumps(res))
    else:
        for rank, (i, s) in enumerate(zip(res["items"], res["scores"], strict=True), 1):
            print(f"{rank:>3} {i} {s:.4f}")
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from seqrec.experiment import build_index
    from seqrec.serve.index import IndexParams, faiss_module

    faiss_module()  # one line saying how to install it, before any work
    params = IndexParams(kind=args.kind, nlist=args.nlist, nprobe=args.nprobe, train_points=args.train_points,
                         m=args.m, ef_construction=args.ef_construction, ef_search=args.ef_search,
                         threads=args.threads, transform=args.transform)
    res = build_index(args.run_dir, params, check=args.check)
    if args.json:
        print(json.dumps(res))
        return 0
    p = res["params"]
    how = {"flat": "exact", "ivf": f"nlist={res.get('nlist')} nprobe={p['nprobe']}",
           "hnsw": f"M={p['m']} efConstruction={p['ef_construction']} efSearch={p['ef_search']}"}[res["kind"]]
    if p["transform"] == "l2":
        how += ", l2 transform"
    print(f"{res['kind']} index ({how}) of {res['n_items']:,} {res['model']} item vectors (dim {res['dim']}) "
          f"built in {res['build_seconds']:.2f}s, {res['bytes'] / 2**20:.1f} MiB, written to {res['path']}")
    c = res["check"]
    if c:
        print(f"check on {c['queries']} test users: recall@{c['k']} of the exact top-{c['k']} {c['recall']:.4f}; "
              f"{c['index_ms_per_query']:.3f} ms per query against {c['exact_ms_per_query']:.3f} ms exact "
              f"({p['threads'] or 'all'} thread(s), batch of 1)")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from seqrec.data.sources import download_dataset

    for path in download_dataset(args.name, args.data_dir, progress=not args.no_progress):
        print(path)
    return 0


def _cmd_score_users(args: argparse.Namespace) -> int:
    from seqrec.families.purchase import score_users

    path, rows = score_users(args.run_dir, args.category, top=args.top, out=args.out, data_dir=args.data_dir)
    shown = rows[: min(len(rows), 5)]
    print(f"wrote {len(rows)} users ranked by probability of buying {args.category!r} in the next window "
          f"to {path}")
    for rank, user, p in shown:
        print(f"{rank:>4} {user} {p:.4f}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    # waiting OpenMP threads sleep at once: a worker's idle pool must not spin on the core another
    # worker is serving on (set before torch loads; the workers inherit it)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from seqrec.serve.app import serve
    except ImportError as exc:
        raise ConfigError(f"seqrec serve needs the serve extra: pip install 'seqrec[serve]' ({exc})") from exc
    serve(args.pipeline, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from seqrec.serve.config import load_pipeline_config
    from seqrec.serve.replay import format_report, replay
    from seqrec.threads import configure_threads

    cfg = load_pipeline_config(args.pipeline)
    configure_threads(cfg.pipeline.torch_threads)
    res = replay(cfg, args.data, k=args.k, users=args.users, seed=args.seed, n_boot=args.n_boot,
                 data_dir=args.data_dir, progress=not args.no_progress)
    if args.out:
        from seqrec.train.checkpoint import save_json

        save_json(args.out, res)
    print(json.dumps(res) if args.json else format_report(res))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from seqrec.serve.export import export_run

    r = export_run(args.run_dir, args.format, args.out)
    if args.json:
        print(json.dumps(r, default=str))
        return 0
    what = "ranker" if r["family"] == "ctr" else "user tower"
    print(f"{r['model']} {what} exported as {r['format']} to {r['path']} ({r['bytes'] / 1e6:.1f} MB; inputs "
          f"{', '.join(i['name'] for i in r['inputs'])} -> {', '.join(r['outputs'])}; max abs diff to the model "
          f"{r['parity_max_abs_diff']:.1e} on {r['parity_rows']} test rows)")
    return 0


def _cmd_embed_users(args: argparse.Namespace) -> int:
    from seqrec.families.dupn_users import embed_users_cli

    return embed_users_cli(args)


def _cmd_explain(args: argparse.Namespace) -> int:
    from seqrec.families.dupn_explain import explain_cli

    return explain_cli(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqrec", description="Deep models for behaviour sequences.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("datasets", help="list registered datasets and whether their files are present, "
                                        "or check a config's data (--check)")
    d.add_argument("--data-dir", default=None, help="data directory (default: $SEQREC_DATA or ../shared/data)")
    d.add_argument("--check", metavar="CONFIG", default=None,
                   help="read and validate CONFIG's data (registered or your own file) and print its counts")
    d.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="with --check: override a config value (repeatable)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_cmd_datasets)

    t = sub.add_parser("train", help="train a model from a TOML config")
    t.add_argument("config", help="configs/<model>_<dataset>_<loss>.toml")
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set train.epochs=2")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    pr = sub.add_parser("prepare", help="build a config's data (vocabularies, splits, samples) as Parquet shards "
                        "with polars or Spark; train from them with --set data.prepared=DIR")
    pr.add_argument("config", help="a run config (its [data] and model family say what to build)")
    pr.add_argument("--out", required=True, help="directory to write (replaced atomically if it is a prepared one)")
    pr.add_argument("--engine", choices=["polars", "spark"], default="polars",
                    help="polars (default, this machine) or spark (DataFrame jobs); the output is the same")
    pr.add_argument("--master", default="local[2]", help="Spark master: local[N], spark://HOST:PORT, yarn "
                    "(default local[2])")
    pr.add_argument("--shards", type=int, default=8, help="Parquet files per split (default 8)")
    pr.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config value (repeatable), e.g. --set data.max_len=20")
    pr.add_argument("--json", action="store_true", help="print the manifest as JSON")
    pr.set_defaults(func=_cmd_prepare)

    e = sub.add_parser("evaluate", help="recompute metrics of a run from its checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--split", default="test", help="test (default), valid, train or train_full")
    e.add_argument("--ties", choices=["optimistic", "pessimistic"], default=None)
    e.add_argument("--data-dir", default=None)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("recommend", help="top-k next items for a session (session models), or of the whole "
                       "catalogue for a user or a history (retrieval models)")
    r.add_argument("run_dir")
    r.add_argument("--items", default=None, help="the session's / history's item ids in order, comma-separated")
    r.add_argument("--user", default=None, help="a user id of the training data (retrieval models)")
    r.add_argument("-k", type=int, default=20)
    r.add_argument("--unknown", choices=["skip", "error"], default="skip",
                   help="what to do with item ids the model has never seen")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_cmd_recommend)

    x = sub.add_parser("index", help="build a faiss index of a retrieval run's item vectors (two-tower "
                       "models); seqrec recommend then serves through it")
    x.add_argument("run_dir")
    x.add_argument("--kind", choices=["flat", "ivf", "hnsw"], default="ivf",
                   help="flat: exact; ivf: inverted file of k-means cells (default); hnsw: proximity graph")
    x.add_argument("--nlist", type=int, default=0, help="ivf: number of cells (default 4*sqrt(items))")
    x.add_argument("--nprobe", type=int, default=32, help="ivf: cells scanned per query (default 64)")
    x.add_argument("--train-points", type=int, default=64,
                   help="ivf: k-means sample size per cell (default 64)")
    x.add_argument("--m", type=int, default=32, help="hnsw: links per node (default 32)")
    x.add_argument("--ef-construction", type=int, default=40, help="hnsw: candidates while building (default 40)")
    x.add_argument("--ef-search", type=int, default=512, help="hnsw: candidates while searching (default 512)")
    x.add_argument("--transform", choices=["auto", "none", "l2"], default="auto",
                   help="l2: search max inner product as Euclidean nearest neighbours (an extra coordinate, "
                        "Bachrach et al. 2014); auto (default): l2 for ivf, none for hnsw")
    x.add_argument("--threads", type=int, default=1,
                   help="faiss (and torch) threads for building and searching; 0 = one per core (default 1)")
    x.add_argument("--check", type=int, default=200, metavar="N",
                   help="measure recall@100 of the exact top-100 and time per query on N test users "
                        "(0 = skip; default 200)")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=_cmd_index)

    d = sub.add_parser("download", help="fetch a registered dataset's files (pinned commit, SHA-256 "
                                        "checked, resumable)")
    d.add_argument("name")
    d.add_argument("--data-dir", default=None, help="data root (default: $SEQREC_DATA or ../shared/data)")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_cmd_download)

    s = sub.add_parser("score-users", help="rank users by the probability of buying a category in the next window")
    s.add_argument("run_dir", help="a purchase-prediction run (seqrec train configs/purchase_*.toml)")
    s.add_argument("--category", required=True, help="the category the run was trained for")
    s.add_argument("--top", type=int, default=None, help="keep the K most likely users (default: all)")
    s.add_argument("--out", default=None, help="CSV to write (default RUN_DIR/scores_<category>.csv)")
    s.add_argument("--data-dir", default=None)
    s.set_defaults(func=_cmd_score_users)
    ex = sub.add_parser("export", help="export a run's serving graph (retriever user tower, CTR ranker) as "
                        "TorchScript or ONNX, checked against the model on the test split")
    ex.add_argument("run_dir")
    ex.add_argument("--format", required=True, help="torchscript or onnx")
    ex.add_argument("--out", default=None, help="file to write (default RUN_DIR/ranker.onnx, "
                    "RUN_DIR/user_tower.onnx, ... .torchscript.pt); a PATH.json sidecar goes next to it")
    ex.add_argument("--json", action="store_true", help="print the export record as JSON")
    ex.set_defaults(func=_cmd_export)
    v = sub.add_parser("serve", help="serve a pipeline (retrieve -> rank) over HTTP (FastAPI + uvicorn)")
    v.add_argument("pipeline", help="a pipeline TOML file, e.g. configs/serve/amazon_beauty.toml")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    v.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    v.set_defaults(func=_cmd_serve)

    a = sub.add_parser("replay", help="offline A/B test of a pipeline's variants on a dataset's held-out "
                       "interactions (hit rate, NDCG, lift with 95%% bootstrap intervals)")
    a.add_argument("pipeline", help="a pipeline TOML file with one or more [[variants]]")
    a.add_argument("--data", required=True, help="a registered retrieval dataset, e.g. amazon_beauty")
    a.add_argument("-k", type=int, default=20, help="items shown per user (default 20)")
    a.add_argument("--users", type=int, default=0, help="sample this many test users (default: all)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    a.add_argument("--data-dir", default=None)
    a.add_argument("--out", default=None, help="also write the results JSON here")
    a.add_argument("--no-progress", action="store_true")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_cmd_replay)

    eu = sub.add_parser("embed-users", help="a DUPN run's user representations, computed once per user "
                        "(Parquet: user id, vector)")
    eu.add_argument("run_dir", help="a DUPN run (seqrec train configs/dupn_taobao.toml)")
    eu.add_argument("--out", required=True, help="Parquet file to write (atomically)")
    eu.add_argument("--data-dir", default=None)
    eu.set_defaults(func=_cmd_embed_users)

    xp = sub.add_parser("explain", help="a DUPN user's behaviours with the largest attention weights, and a "
                        "figure of the weights over the sequence")
    xp.add_argument("run_dir", help="a DUPN run")
    xp.add_argument("--user", required=True, help="a raw user id of the run's dataset")
    xp.add_argument("--task", default=None, help="the task whose query context to use (default: the first)")
    xp.add_argument("--top", type=int, default=10, help="behaviours to print (default 10)")
    xp.add_argument("--out", default=None, help="figure to write (default RUN_DIR/explain_<user>_<task>.png)")
    xp.add_argument("--data-dir", default=None)
    xp.add_argument("--json", action="store_true")
    xp.set_defaults(func=_cmd_explain)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SeqrecError as exc:
        print(f"seqrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqrec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
