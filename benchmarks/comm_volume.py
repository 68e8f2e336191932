"""Per-step communication volume of data-parallel training, measured, and a paper estimate of
throughput at 8 and 64 workers (issue #25, ``docs/scale.md``).

For each model (its shipped config, its real data) this runs ``--steps`` real training steps
(forward + backward of the family's own loss on the config's batch, one process, one thread) and
measures, per step:

* **dense bytes**: the gradients of every parameter that is not an embedding table (float32):
  what DistributedDataParallel all-reduces every step;
* **sparse bytes**: for every embedding table, the rows the step touched (rows with a non-zero
  gradient) x (row width x 4 bytes + an 8-byte index): what a rank sends when the tables stay
  replicated and their gradients sparse (an all-gather of the touched rows);
* **full-table bytes**: what all-reducing the tables densely would send instead;
* the compute time of a step (forward + backward, median).

The estimate for W workers, each with the config's batch (weak scaling), on a link of B bit/s:
ring all-reduce of the dense part 2 (W - 1) / W x dense / B, all-gather of the sparse part
(W - 1) x sparse / B, no overlap with compute and no latency term; throughput = W x batch /
(compute + communication). A paper estimate: it says where the network starts to dominate, not
what a cluster will measure.

    python benchmarks/comm_volume.py            # writes results/comm_volume.{json,md}
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, env_info, markdown_table, write_json, write_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODELS = {  # name -> (config, family)
    "din / amazon_beauty": ("configs/din_amazon_beauty.toml", "ctr"),
    "youtube_dnn / gowalla": ("configs/youtube_dnn_gowalla.toml", "retrieval"),
    "dupn / taobao": ("configs/dupn_taobao.toml", "multitask"),
    "mmoe / census_income": ("configs/mmoe_census_income.toml", "multitask"),
}
WORKERS = (8, 64)
LINKS_GBIT = (10, 100)


def step_source(config: str, family: str, overrides: list[str]):
    """(model, an iterator of batches, loss(batch), batch size) of a config's training."""
    from seqrec.config import load_run_config

    cfg = load_run_config(ROOT / config, overrides)
    torch.manual_seed(cfg.train.seed)
    if family == "ctr":
        from seqrec.data.samples import sample_batches
        from seqrec.families.ctr import build_ctr_model, load_task
        from seqrec.train.ctr_trainer import CTRTrainer

        task = load_task(cfg)
        model = build_ctr_model(cfg, task.schema)
        trainer = CTRTrainer(model, cfg, task.train)
        return model, sample_batches(task.train, cfg.train.batch_size, shuffle=True, seed=0), trainer.loss, \
            cfg.train.batch_size
    if family == "retrieval":
        from seqrec.families.retrieval import build_model, info_of, load_task
        from seqrec.train.objectives import objective_for

        task = load_task(cfg)
        model = build_model(cfg, info_of(task, cfg))
        obj = objective_for(cfg.model_name, model, task, cfg)
        return model, obj.batches(0), obj.loss, cfg.train.batch_size
    from seqrec.families.multitask import build_model, load_task
    from seqrec.train.multitask_trainer import MultiTaskObjective

    data = load_task(cfg)
    model = build_model(cfg, data.schema, data.tasks)
    obj = MultiTaskObjective(model, data.train, cfg)
    return model, obj.batches(0), obj.loss, cfg.train.batch_size


def measure(model: torch.nn.Module, batches, loss_fn, steps: int) -> dict:
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    table_params = {id(m.weight) for m in tables}
    dense_bytes = sum(4 * p.numel() for p in model.parameters() if p.requires_grad and id(p) not in table_params)
    full_table_bytes = sum(4 * m.weight.numel() for m in tables if m.weight.requires_grad)
    sparse, secs = [], []
    model.train()
    for step, batch in enumerate(batches):
        if step >= steps:
            break
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss_fn(batch).backward()
        secs.append(time.perf_counter() - t0)
        b = 0
        for m in tables:
            g = m.weight.grad
            if g is None:
                continue
            rows = g.coalesce().indices().unique().numel() if g.is_sparse else int((g != 0).any(1).sum())
            b += rows * (m.weight.shape[1] * 4 + 8)
        sparse.append(b)
    return {"dense_bytes": dense_bytes, "sparse_bytes_mean": float(np.mean(sparse)),
            "sparse_bytes_max": int(max(sparse)), "full_table_bytes": full_table_bytes,
            "compute_seconds_median": statistics.median(secs[1:] or secs), "steps": len(secs),
            "parameters": sum(p.numel() for p in model.parameters())}


def estimate(m: dict, batch: int) -> dict:
    out = {}
    for w in WORKERS:
        for g in LINKS_GBIT:
            bps = g * 1e9 / 8
            t_dense = 2 * (w - 1) / w * m["dense_bytes"] / bps
            t_sparse = (w - 1) * m["sparse_bytes_mean"] / bps
            t = m["compute_seconds_median"] + t_dense + t_sparse
            out[f"{w}x{g}G"] = {"comm_seconds": t_dense + t_sparse, "samples_per_s": w * batch / t,
                                "efficiency": m["compute_seconds_median"] / t}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of the model names")
    p.add_argument("--out", default=str(RESULTS / "comm_volume.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    recs = []
    for name in args.models.split(","):
        config, family = MODELS[name]
        model, batches, loss_fn, batch = step_source(config, family, ["train.threads=1", "train.progress=false"])
        m = measure(model, batches, loss_fn, args.steps)
        recs.append({"model": name, "config": config, "batch": batch, **m, "estimate": estimate(m, batch)})
        print(f"{name}: dense {m['dense_bytes'] / 1e6:.2f} MB, sparse {m['sparse_bytes_mean'] / 1e6:.2f} MB/step "
              f"(tables {m['full_table_bytes'] / 1e6:.1f} MB), compute {1e3 * m['compute_seconds_median']:.1f} ms",
              flush=True)
    env = env_info()
    write_json(args.out, {"env": env, "command": "python benchmarks/comm_volume.py", "models": recs})
    rows = []
    for r in recs:
        e = r["estimate"]
        rows.append([r["model"], str(r["batch"]), f"{r['dense_bytes'] / 1e6:.3f}", f"{r['sparse_bytes_mean'] / 1e6:.3f}",
                     f"{r['full_table_bytes'] / 1e6:.1f}", f"{1e3 * r['compute_seconds_median']:.1f}",
                     *[f"{e[k]['samples_per_s']:,.0f} ({100 * e[k]['efficiency']:.0f} %)"
                       for k in (f"{w}x{g}G" for w in WORKERS for g in LINKS_GBIT)]])
    heads = ["model", "batch / rank", "dense MB / step", "sparse MB / step (rank)", "tables MB (dense would send)",
             "compute ms / step", *[f"{w} workers, {g} Gbit/s: samples/s (efficiency)" for w in WORKERS
                                    for g in LINKS_GBIT]]
    md = ["# Communication volume per training step, and a throughput estimate", "",
          f"Generated by `python benchmarks/comm_volume.py` ({env['date']}, torch {env['torch_version']}, 1 thread); "
          "see the script's docstring for what is measured and the estimate's assumptions.", "",
          markdown_table(heads, rows), ""]
    write_text(Path(args.out).with_suffix(".md"), "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
