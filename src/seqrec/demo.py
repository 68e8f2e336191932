"""``make demo``: train GRU4Rec on real session data and compare it with POP, item-kNN and SKNN.

Runs on the YOOCHOOSE 100k sample (given train/test split, 70k training
clicks): GRU4Rec with BPR-max and the constrained embedding for the configured
epochs (progress bar with events/s), the three baselines, full-catalogue
evaluation of every test position, then prints the comparison table and
saves a bar chart to ``runs/demo/comparison.png``.

The data come from the data directory (``$SEQREC_DATA`` or ``../shared/data``);
files missing there are fetched first as ``seqrec download yoochoose_100k``
would. When that fails (no network, or no public copy registered) the demo
prints one line saying so and where to put the files, and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from seqrec.config import load_run_config
from seqrec.errors import DownloadError, SeqrecError
from seqrec.experiment import train_run

ROOT = Path(__file__).resolve().parents[2]
DATASET = "yoochoose_100k"


def ensure_data(name: str = DATASET, root: str | None = None) -> Path:
    """The folder holding dataset ``name``, fetched as ``seqrec download`` does when a file is missing.

    Raises :class:`~seqrec.errors.DownloadError` (one line, naming the folder to fill by hand)
    when it cannot be fetched."""
    from seqrec.data import sources
    from seqrec.data.registry import DATASETS, data_dir

    info = DATASETS[name]
    folder = data_dir(root) / info.subdir
    if all((folder / f).is_file() for f in info.files):
        return folder
    put = f"put {', '.join(info.files)} in {folder}/ (or set SEQREC_DATA to a data root that has them)"
    if name not in sources.SOURCES:
        raise DownloadError(f"{name} is not in {folder}/ and has no registered public copy to download "
                            f"(source: {info.source}); {put}")
    try:
        sources.download_dataset(name, root)
    except DownloadError as exc:
        raise DownloadError(f"{name} is not in {folder}/ and could not be downloaded (no network?): "
                            f"{exc}; {put}") from None
    print(f"downloaded {name} into {folder}/", flush=True)
    return folder


def _plot(rows: list[tuple[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = (5, 10, 20)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(rows)
    for a, metric in zip(axes, ("recall", "mrr"), strict=True):
        for i, (name, m) in enumerate(rows):
            vals = [m[f"{metric}@{k}"] for k in ks]
            a.bar([j + i * width for j in range(len(ks))], vals, width, label=name)
        a.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(ks))])
        a.set_xticklabels([f"@{k}" for k in ks])
        a.set_title(f"{metric.upper()} (yoochoose_100k test, full ranking)")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    ap.add_argument("--out", default="runs/demo")
    args = ap.parse_args(argv)
    try:
        ensure_data()
    except SeqrecError as exc:
        print(f"seqrec demo: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
    runs = [
        ("gru4rec-bpr-max", load_run_config(ROOT / "configs/gru4rec_yoochoose_100k_bpr-max.toml", overrides)),
    ]
    for name in ("pop", "item-knn", "sknn"):
        runs.append((name, load_run_config(raw={"data": {"dataset": "yoochoose_100k"}, "model": {"name": name}})))
    rows = []
    t_all = time.perf_counter()
    try:
        for name, cfg in runs:
            print(f"== {name}: training on {cfg.data.dataset} ({cfg.data.train_split})", flush=True)
            m = train_run(cfg, out / name, progress=True)
            rows.append((name, m))
            eps = m.get("train_events_per_s")
            print(f"   done in {m['train_seconds']:.1f}s" + (f", {eps:,.0f} train events/s" if eps and name.startswith("gru") else ""))
    except SeqrecError as exc:
        print(f"seqrec demo: error: {exc}", file=sys.stderr)
        return 2
    n = rows[0][1]["test"]["n_events"]
    print(f"\nyoochoose_100k test: {n} next-item predictions, ranked against all {rows[0][1]['n_items']} items\n")
    print(f"{'model':<18}{'Recall@20':>10}{'MRR@20':>9}{'NDCG@20':>9}{'Recall@5':>10}{'MRR@5':>8}")
    for name, m in rows:
        t = m["test"]
        print(f"{name:<18}{t['recall@20']:>10.4f}{t['mrr@20']:>9.4f}{t['ndcg@20']:>9.4f}"
              f"{t['recall@5']:>10.4f}{t['mrr@5']:>8.4f}")
    _plot([(n_, m["test"]) for n_, m in rows], out / "comparison.png")
    print(f"\nplot: {out / 'comparison.png'}   runs: {out}/   total {time.perf_counter() - t_all:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
