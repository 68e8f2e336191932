"""DUPN attention by behaviour type, per task (Ni et al. KDD 2018, sec. 6 attention analysis: the
tasks of one shared representation attend to different behaviours).

    python benchmarks/dupn_attention.py --run runs/final/taobao/dupn

For each task of a finished DUPN run (``seqrec train configs/dupn_taobao.toml --out RUN``), over
the task's rows of the split (default test) that have a history: the mean attention mass on each
behaviour type (pv, cart, fav, buy; a row's masses sum to 1), the mean share of each type among
the positions (the mass uniform attention would give), and mass / share (1 = attended in
proportion to frequency; > 1 = favoured). Computed by
``seqrec.families.dupn_explain.attention_by_type``. Writes ``benchmarks/results/dupn_attention.json``
(one object) and a grouped bar chart ``benchmarks/results/dupn_attention.png`` (x = behaviour type,
one bar per task; left: raw mass with the share as a tick, right: mass relative to frequency).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from _common import ROOT, env_info, fmt_metric, markdown_table, write_json

RESULTS = ROOT / "benchmarks" / "results"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def measure(run_dir: Path, split: str, data_dir: str | None, batch_size: int) -> dict:
    from seqrec.data.tasks.ctr import BEHAVIOURS
    from seqrec.families.dupn_explain import attention_by_type, load_dupn_run
    from seqrec.families.multitask import load_task
    from seqrec.train.checkpoint import load_json

    run = load_dupn_run(run_dir, data_dir)
    data = load_task(run.config)
    if data.schema != run.schema:
        raise SystemExit(f"{run_dir}: the data no longer matches the schema the model was trained on")
    by_task = attention_by_type(run.model, data.split(split), run.tasks, batch_size)
    metrics = load_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    return {"run": _rel(run_dir), "model": run.config.model_name, "dataset": run.config.data.name,
            "split": split, "tasks": list(run.tasks), "behaviours": list(BEHAVIOURS),
            "epochs": metrics.get("epochs"), "best_epoch": metrics.get("best_epoch"),
            "test_auc": {t: (metrics.get("test") or {}).get(t, {}).get("auc") for t in run.tasks},
            "attention": by_task}


def table(rec: dict) -> str:
    beh = rec["behaviours"]
    header = ["task", "rows", *(f"mass {b}" for b in beh), *(f"share {b}" for b in beh),
              *(f"mass/share {b}" for b in beh), "last pos. (uniform)"]
    rows = []
    for t in rec["tasks"]:
        a = rec["attention"][t]
        if not a["rows_with_history"]:
            rows.append([t, "0", *["–"] * (3 * len(beh) + 1)])
            continue
        rows.append([t, f"{a['rows_with_history']:,}", *(fmt_metric(a["mass"][b]) for b in beh),
                     *(fmt_metric(a["share"][b]) for b in beh),
                     *("–" if a["relative"][b] is None else f"{a['relative'][b]:.3f}" for b in beh),
                     f"{a['last_position_mass']:.4f} ({a['last_position_uniform']:.4f})"])
    return markdown_table(header, rows)


def plot(rec: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from seqrec.io import atomic_write

    beh, tasks = rec["behaviours"], [t for t in rec["tasks"] if rec["attention"][t]["rows_with_history"]]
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    width = 0.8 / max(len(tasks), 1)
    for i, t in enumerate(tasks):
        a = rec["attention"][t]
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(beh))]
        axes[0].bar(xs, [a["mass"][b] for b in beh], width, label=t, color=f"C{i}")
        axes[0].scatter(xs, [a["share"][b] for b in beh], marker="_", s=120, color="black",
                        label="share of positions" if i == 0 else None, zorder=3)
        axes[1].bar(xs, [(a["relative"][b] or 1.0) - 1.0 for b in beh], width, bottom=1.0, label=t, color=f"C{i}")
    axes[0].set_yscale("log")
    axes[0].set_title("mean attention mass per behaviour type (log scale)", fontsize=9)
    axes[1].axhline(1.0, color="black", ls=":", lw=1, label="in proportion to frequency")
    rel = [r for t in tasks for r in rec["attention"][t]["relative"].values() if r is not None]
    m = 1.35 * max([abs(r - 1.0) for r in rel] + [0.02])  # bars grow from 1, up or down
    axes[1].set_ylim(max(0.0, 1.0 - m), 1.0 + m)
    axes[1].set_title("mass / share of positions (1 = proportional to frequency)", fontsize=9)
    for ax in axes:
        ax.set_xticks(range(len(beh)))
        ax.set_xticklabels(beh)
        ax.set_xlabel("behaviour type")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    ep = f", best epoch {rec['best_epoch']} of {rec['epochs']}" if rec.get("epochs") else ""
    fig.suptitle(f"DUPN attention by behaviour type ({rec['dataset']} {rec['split']} rows, "
                 f"run {rec['run']}{ep})", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a finished DUPN run directory")
    ap.add_argument("--split", default="test", choices=("test", "valid", "train"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", default=str(RESULTS / "dupn_attention.json"),
                    help="results JSON (the figure goes beside it, .png)")
    args = ap.parse_args(argv)
    import torch

    from seqrec.errors import SeqrecError

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    try:
        rec = measure(Path(args.run), args.split, args.data_dir, args.batch_size)
    except SeqrecError as exc:
        print(f"dupn_attention: error: {exc}", file=sys.stderr)
        return 2
    rec |= {"command": shlex.join(["python", "benchmarks/dupn_attention.py", *(argv or sys.argv[1:])]),
            "env": env_info() | {"threads": torch.get_num_threads()}}
    print(table(rec))
    write_json(out, rec)
    plot(rec, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
