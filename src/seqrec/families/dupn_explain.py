"""Which behaviours a DUPN user representation attends to (``seqrec explain``).

DUPN pools the LSTM states of a user's behaviour sequence with attention weights that depend on
the behaviour (its hidden state and its property: behaviour type and time gap), the query and the
user (:meth:`seqrec.models.dupn.DUPN.represent`). Ni et al. (KDD 2018, "Perceive Your Users in
Depth") read those weights in their sec. 6 attention analysis: which behaviours a representation
relies on, and that different tasks attend to different behaviour types (a purchase-related task
to buys and carts more than a click task). This module gives that analysis for one user
(:func:`explain_user`: the weights of the user's most recent row of a task, a table and a bar
figure over the sequence) and in aggregate (:func:`attention_by_type`: per task, the mean
attention mass on each behaviour type, raw and relative to the type's frequency among the
positions, so that rare buys are comparable with frequent page views).

Histories are left-aligned: the real behaviours are positions 0..len-1, oldest first, the most
recent last; the weights are zero at padding and sum to 1 over the real positions.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import torch

from seqrec.data.tasks.ctr import BEHAVIOURS
from seqrec.errors import CheckpointError, ConfigError

SPLITS = ("test", "valid", "train")  # where the user's most recent row is looked for, in order
TYPE_IDS = np.arange(len(BEHAVIOURS)) + 2  # hist_btype ids of pv, cart, fav, buy (0 = padding)
REPRESENT_INPUTS = ("user", "query", "hist_item", "hist_cate", "hist_btype", "hist_gap")
COLOURS = {"pv": "#9e9e9e", "cart": "#ff7f0e", "fav": "#9467bd", "buy": "#d62728"}
TAOBAO_TZ = timezone(timedelta(hours=8))  # the dataset's days are UTC+8 days


def load_dupn_run(run_dir: str | os.PathLike, data_dir: str | None = None):
    """A finished DUPN run on the Taobao sample (model in eval mode); one-line errors otherwise
    (:func:`seqrec.families.dupn_users.check_dupn`)."""
    from seqrec.families.dupn_users import check_dupn

    return check_dupn(run_dir, data_dir)


def _task_index(run, run_dir: Path, task: str | None) -> tuple[str, int]:
    task = run.tasks[0] if task is None else task
    if task not in run.tasks:
        raise ConfigError(f"task {task!r} is not a task of run {run_dir}; its tasks are {list(run.tasks)}")
    return task, run.tasks.index(task)


def _user_key(user, data, run_dir: Path, dataset: str):
    """The raw id as stored in ``user_key``; a ConfigError if no row of any split has it."""
    unknown = ConfigError(f"user {user!r} is not in the {dataset} data of run {run_dir} (no row of any split)")
    dtype = data.test["user_key"].dtype
    try:
        key = int(str(user).strip()) if np.issubdtype(dtype, np.integer) else user
    except ValueError:
        raise unknown from None
    if not any((data.split(s)["user_key"] == key).any() for s in SPLITS):
        raise unknown
    return key


def _find_row(data, key, k: int) -> tuple[str, int] | None:
    """(split, index) of the user's most recent row of task ``k``: test first, then valid, then
    train; within a split the latest day, then the last row (rows are in time order per user)."""
    for split in SPLITS:
        cols = data.split(split)
        idx = np.flatnonzero((cols["user_key"] == key) & (cols["task"] == k))
        if len(idx):
            return split, int(idx[np.lexsort((idx, cols["day"][idx]))[-1]])
    return None


def row_batch(cols: dict[str, np.ndarray], rows) -> dict[str, torch.Tensor]:
    """The inputs :meth:`DUPN.represent` reads, for the rows ``rows`` (an index array or slice)."""
    return {c: torch.from_numpy(np.ascontiguousarray(cols[c][rows])) for c in REPRESENT_INPUTS}


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def _gap_text(bucket: int) -> str:
    """A gap bucket (2 + floor(log2(minutes + 1))) as its lower bound, e.g. '>=15m'."""
    lo = 2 ** (bucket - 2) - 1  # minutes
    if lo < 60:
        return f">={lo}m"
    return f">={lo / 60:.1f}h" if lo < 1440 else f">={lo / 1440:.1f}d"


def explain_user(run_dir: str | os.PathLike, user, *, task: str | None = None, top: int = 10,
                 out: str | os.PathLike | None = None, data_dir: str | None = None) -> dict:
    """The attention weights of ``user``'s most recent row of ``task`` (default: the run's first
    task) in a DUPN run, every behaviour of the history with its weight, the ``top`` ones, and a
    bar figure of the weights over the positions written to ``out`` (default
    ``RUN_DIR/explain_<user>_<task>.png``). Ni et al. KDD 2018, sec. 6 (attention analysis)."""
    from seqrec.families.multitask import load_task

    run_dir = Path(run_dir)
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    run = load_dupn_run(run_dir, data_dir)
    task, k = _task_index(run, run_dir, task)
    data = load_task(run.config)
    if data.schema != run.schema:
        raise CheckpointError(f"{run_dir}: the data no longer matches the schema the model was trained on")
    dataset = run.config.data.name
    key = _user_key(user, data, run_dir, dataset)
    found = _find_row(data, key, k)
    if found is None:
        has = sorted({run.tasks[t] for s in SPLITS for t in data.split(s)["task"][data.split(s)["user_key"] == key]})
        raise ConfigError(f"user {key} has no {task} row in the {dataset} data of run {run_dir} "
                          f"(it has rows of {has})")
    split, i = found
    cols = data.split(split)
    model = run.model.eval()
    with torch.no_grad():
        _, w = model.represent(row_batch(cols, slice(i, i + 1)))
    w = w[0].double().numpy()
    n = int((cols["hist_item"][i] != 0).sum())
    v = data.vocabs
    items, cates = v["item"].decode(cols["hist_item"][i, :n]), v["cate"].decode(cols["hist_cate"][i, :n])
    behaviours = [{"position": p, "item": _plain(items[p]), "cate": _plain(cates[p]),
                   "behaviour": BEHAVIOURS[int(cols["hist_btype"][i, p]) - 2],
                   "gap_bucket": int(cols["hist_gap"][i, p]), "weight": float(w[p])} for p in range(n)]
    order = np.argsort(-w[:n], kind="stable")[:top]  # ties: the older position first
    q = int(cols["query"][i])
    day = int(cols["day"][i])
    res = {"run": str(run_dir), "model": run.config.model_name, "dataset": dataset, "task": task,
           "user": _plain(key), "split": split, "row": i, "day": day, "date": _date(dataset, day),
           "query": _plain(v["cate"].decode([q])[0]) if q else None, "query_index": q,
           "history_length": n, "weight_sum": float(w[:n].sum()), "weight_padding": float(np.abs(w[n:]).sum()),
           "top": [behaviours[p] for p in order], "behaviours": behaviours}
    path = Path(out) if out else run_dir / f"explain_{key}_{task}.png"
    plot_weights(res, path)
    res["figure"] = str(path)
    return res


def _date(dataset: str, day: int) -> str | None:
    if dataset != "taobao":
        return None
    from seqrec.data.readers.raw_logs import TAOBAO_START

    return (datetime.fromtimestamp(TAOBAO_START, TAOBAO_TZ) + timedelta(days=day)).date().isoformat()


def plot_weights(res: dict, path: Path) -> None:
    """Bars of the weights over the positions, coloured by behaviour type, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from seqrec.io import atomic_write

    fmt = path.suffix.lstrip(".").lower() or "png"
    fig = Figure(figsize=(8, 3.6))
    canvas = FigureCanvasAgg(fig)
    if fmt not in canvas.get_supported_filetypes():
        raise ConfigError(f"--out {path}: matplotlib cannot write .{fmt} files; use .png, .svg or .pdf")
    ax = fig.add_subplot(1, 1, 1)
    beh = res["behaviours"]
    n = len(beh)
    ax.bar([b["position"] for b in beh], [b["weight"] for b in beh],
           color=[COLOURS[b["behaviour"]] for b in beh], width=0.85)
    if n:
        ax.axhline(1 / n, color="black", ls=":", lw=1)
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylim(0, 1.25 * max(max(b["weight"] for b in beh), 1 / n))  # room for the legend
    else:
        ax.text(0.5, 0.5, "no history before this row", ha="center", va="center", transform=ax.transAxes)
    present = [b for b in BEHAVIOURS if any(x["behaviour"] == b for x in beh)]
    handles = [Patch(color=COLOURS[b], label=b) for b in present]
    if n:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", ls=":", lw=1, label=f"uniform 1/{n}"))
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="upper left", ncol=len(handles), frameon=False)
    ax.set_xlabel("position in the history (0 = oldest; the most recent is the last)")
    ax.set_ylabel("attention weight")
    query = _query_text(res)
    when = res["date"] or f"day {res['day']}"
    ax.set_title(f"DUPN attention: user {res['user']}, task {res['task']}{query}, {when} "
                 f"({res['split']} row; {Path(res['run']).name})", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=100))


def _query_text(res: dict) -> str:
    if not res["query_index"]:
        return ""
    return f", query category {'oov' if res['query'] is None else res['query']}"


def format_table(res: dict) -> str:
    """The top behaviours as a small text table."""
    query = _query_text(res)
    when = res["date"] or f"day {res['day']}"
    lines = [f"{res['model']} run {res['run']}: user {res['user']}, task {res['task']}{query}; "
             f"row of {when} ({res['split']} split), {res['history_length']} behaviours "
             f"(position 0 = oldest, {res['history_length'] - 1} = most recent)"]
    if not res["top"]:
        lines.append("  (the row has no history: nothing to attend to)")
    else:
        lines.append(f"  {'rank':>4} {'pos':>4}  {'behaviour':<9} {'item':>10} {'category':>10} {'gap':>8} {'weight':>8}")
        for r, b in enumerate(res["top"], 1):
            item = "oov" if b["item"] is None else b["item"]
            cate = "oov" if b["cate"] is None else b["cate"]
            lines.append(f"  {r:>4} {b['position']:>4}  {b['behaviour']:<9} {item!s:>10} {cate!s:>10} "
                         f"{_gap_text(b['gap_bucket']):>8} {b['weight']:>8.4f}")
    return "\n".join(lines)


def explain_cli(args) -> int:
    """``seqrec explain RUN --user ID [--task T] [--top N] [--out FIG] [--json]``."""
    res = explain_user(args.run_dir, args.user, task=args.task, top=args.top, out=args.out,
                       data_dir=args.data_dir)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(format_table(res))
        print(f"figure: {res['figure']}")
    return 0


@torch.no_grad()
def attention_by_type(model, cols: dict[str, np.ndarray], tasks, batch_size: int = 4096) -> dict:
    """Per task (``tasks[k]`` names the rows whose ``task`` column is k): the mean attention
    mass on each behaviour type over the task's rows with a history (a row's mass on type b =
    the sum of its weights at the positions of type b; the masses of a row sum to 1), the mean
    share of each type among the positions (what uniform attention would give), and the mass
    relative to that share (mean mass / mean share: 1 = attended in proportion to frequency).
    Also the mean weight of the most recent behaviour (and 1/len, its uniform value). The model
    is put in eval mode. Ni et al. KDD 2018, sec. 6 (attention analysis: different tasks attend
    to different behaviours)."""
    model.eval()
    out = {}
    for k, task in enumerate(tasks):
        rows = np.flatnonzero(cols["task"] == k)
        rows_h = rows[(cols["hist_item"][rows] != 0).any(1)]
        mass, share = np.zeros(len(TYPE_IDS)), np.zeros(len(TYPE_IDS))
        last = uniform_last = 0.0
        for s in range(0, len(rows_h), batch_size):
            r = rows_h[s:s + batch_size]
            _, w = model.represent(row_batch(cols, r))
            w = w.double().numpy()
            real = cols["hist_item"][r] != 0
            onehot = (cols["hist_btype"][r][:, :, None] == TYPE_IDS) & real[:, :, None]  # (B, T, types)
            length = real.sum(1)
            mass += np.einsum("bt,btk->k", w, onehot)
            share += (onehot.sum(1) / length[:, None]).sum(0)
            last += w[np.arange(len(r)), length - 1].sum()
            uniform_last += (1.0 / length).sum()
        n = len(rows_h)
        rec = {"rows": int(len(rows)), "rows_with_history": int(n)}
        if n:
            mass, share = mass / n, share / n
            rec |= {"mass": dict(zip(BEHAVIOURS, mass.tolist(), strict=True)),
                    "share": dict(zip(BEHAVIOURS, share.tolist(), strict=True)),
                    "relative": {b: (float(m / s) if s > 0 else None)
                                 for b, m, s in zip(BEHAVIOURS, mass, share, strict=True)},
                    "mass_total": float(mass.sum()), "last_position_mass": float(last / n),
                    "last_position_uniform": float(uniform_last / n)}
        else:
            rec |= {b: None for b in ("mass", "share", "relative", "mass_total", "last_position_mass",
                                      "last_position_uniform")}
        out[task] = rec
    return out
