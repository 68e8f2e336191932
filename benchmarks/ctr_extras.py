"""Choose DIN / DIEN's extras on the validation split (the test split is never evaluated).

    python benchmarks/ctr_extras.py --datasets amazon_beauty --models din --seeds 0,1,2
    python benchmarks/ctr_extras.py --datasets amazon_beauty --models dien --base aux_weight=0.1
    python benchmarks/ctr_extras.py --datasets amazon_beauty --models din \\
        --variant 'chosen:item_bias=true,sum_product=true'     # check a combination

Starting from the like-for-like recipe (``configs/<model>-paper_<dataset>.toml``, DeepCTR-Torch's
architecture and training; for Wide&Deep / DeepFM, whose architecture is already the peer's,
its initialisation and dense Adam), each extra is switched on alone, and every variant trains with
each seed and is scored on **validation** (AUC, GAUC, logloss): the paper recipe and each extra
alone on top of it (what each does by itself), then a backward elimination from all extras:
remove each extra in turn (``--only loo``); if the best removal does not lower the mean
validation AUC over the seeds, drop that extra and try removing each remaining one from the
new set (``--drop-from 'all extras -x' --only next``), until every removal lowers it. The
Any "all extras -a -b" variant can also be run by name (``--only 'all extras -a -b'``).
The ``din`` / ``dien`` configs take the final set, so every extra left on is one whose removal
scored lower on validation. The summary marks the best variant (``*``) and prints each
variant's gain over the paper recipe paired by seed with twice its standard error (the
seed-to-seed spread of one-epoch runs is ~0.01).

Records merge into ``results/tuning/ctr_extras_<dataset>_<model>.json``
(one per variant and seed) and a summary table is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import ROOT, env_info, load_records, merge_records, write_json

EXTRAS = {
    "+item_bias": {"item_bias": True},
    "+sum_product": {"sum_product": True},
    "+dice_mlp": {"mlp_act": "dice"},
    "+torch_init": {"init_std": 0.01, "dense_init_std": 0.0},
    "+lazy_adam": {"sparse_grad": True},
}
DIEN_EXTRAS = {"+bilinear_att": {"attention": "bilinear"}}
BASELINE_EXTRAS = ("+torch_init", "+lazy_adam")  # Wide&Deep / DeepFM: recipe only
ALL = "all extras"


def extras_of(model: str) -> dict[str, dict]:
    if model in ("din", "dien"):
        return dict(EXTRAS, **(DIEN_EXTRAS if model == "dien" else {}))
    return {k: EXTRAS[k] for k in BASELINE_EXTRAS}


def without(ex: dict[str, dict], off: list[str]) -> tuple[str, dict]:
    """("all -a -b", overrides): every extra but those in ``off``."""
    name = " ".join([ALL] + [n.replace("+", "-") for n in ex if n in off])
    return name, {k: v for n, o in ex.items() if n not in off for k, v in o.items()}


def variants(model: str, extra: list[str], drop_from: list[str] = ()) -> dict[str, dict]:
    """The paper recipe, each extra alone, all extras, all but one, and for every name in
    ``drop_from`` (an "all -a ..." variant) that variant with one more extra dropped."""
    ex = extras_of(model)
    out = {"paper": {}, **ex}
    name, all_on = without(ex, [])
    out[name] = all_on
    for d in ex:  # leave one out of the full set (unless that is a variant already)
        name, rest = without(ex, [d])
        if rest not in out.values():
            out[name] = rest
    for start in drop_from:
        off = ["+" + t[1:] for t in start.split()[2:]]
        for d in ex:
            if d not in off:
                name, rest = without(ex, off + [d])
                if rest not in out.values():
                    out[name] = rest
    for spec in extra:
        name, _, body = spec.partition(":")
        out[name] = dict(_parse(kv) for kv in body.split(",") if kv)
    return out


def _dropped(name: str) -> set[str]:
    """The extras an "all extras -a -b" variant leaves out ({"a", "b"}); none for other names."""
    return {t[1:] for t in name.split()[2:]} if name.startswith(ALL) else set()


def _parse(kv: str) -> tuple[str, object]:
    import tomllib

    k, _, v = kv.partition("=")
    return k.strip(), tomllib.loads(f"x = {v.strip()}")["x"]


def _override(k: str, v) -> str:
    if isinstance(v, bool):
        return f"model.{k}={'true' if v else 'false'}"
    if isinstance(v, str):
        return f'model.{k}="{v}"'
    return f"model.{k}={v}"


def run_one(dataset: str, model: str, overrides: dict, seed: int, threads: int) -> dict:
    import torch

    from seqrec.config import load_run_config
    from seqrec.families.ctr import build_ctr_model, load_task
    from seqrec.train.ctr_trainer import CTRTrainer, evaluate_ctr

    over = [f"train.seed={seed}", f"train.threads={threads}", "train.progress=false"]
    over += [_override(k, v) for k, v in overrides.items()]
    cfg = load_run_config(ROOT / "configs" / f"{model}-paper_{dataset}.toml", over)
    task = load_task(cfg)
    torch.manual_seed(seed)
    net = build_ctr_model(cfg, task.schema)
    t0 = time.perf_counter()
    st = CTRTrainer(net, cfg, task.train).fit(None)
    wall = time.perf_counter() - t0
    m = evaluate_ctr(net, task.valid, cfg.eval.batch_size)
    return {"valid": {k: m[k] for k in ("auc", "gauc", "logloss")}, "train_seconds": st.train_seconds,
            "wall_seconds": wall, "n_valid": len(task.valid), "set": over}


def summary(recs: list[dict]) -> list[str]:
    by: dict[str, list[dict]] = {}
    for r in recs:
        by.setdefault(r["variant"], []).append(r)
    base = {r["seed"]: r["valid"]["auc"] for r in by.get("paper", [])}
    best = max(by, key=lambda n: statistics.mean(r["valid"]["auc"] for r in by[n]))
    lines = [f"{'variant':<22} {'seeds':>5} {'valid AUC':>17} {'gain':>8} {'2 SE':>7} {'best':>5} "
             f"{'paired gains':>28}"]
    for name, rs in by.items():
        aucs = [r["valid"]["auc"] for r in rs]
        sd = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
        gains = [r["valid"]["auc"] - base[r["seed"]] for r in rs if r["seed"] in base]
        g = statistics.mean(gains) if gains else float("nan")
        se2 = 2 * statistics.stdev(gains) / len(gains) ** 0.5 if len(gains) > 1 else float("nan")
        keep = "*" if name == best else ""
        lines.append(f"{name:<22} {len(rs):>5} {statistics.mean(aucs):.4f} ± {sd:.4f} {g:+.4f} {se2:7.4f} "
                     f"{keep:>5} {' '.join(f'{x:+.4f}' for x in gains):>28}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=lambda s: s.split(","), default=["amazon_beauty"])
    p.add_argument("--models", type=lambda s: s.split(","), default=["din"])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--only", type=lambda s: s.split(","),
                   help="run only these variants ('singles': each extra alone; 'loo': all but one; "
                        "'next': the --drop-from variants with one more extra dropped)")
    p.add_argument("--variant", action="append", default=[], help="NAME:key=value,key=value (extra variant)")
    p.add_argument("--drop-from", action="append", default=[],
                   help="an 'all extras -a ...' variant: --only next runs it with one more extra dropped")
    p.add_argument("--base", action="append", default=[], help="key=value applied to every variant")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    base = dict(_parse(kv) for kv in args.base)
    for ds in args.datasets:
        for model in args.models:
            out = ROOT / "benchmarks" / "results" / "tuning" / f"ctr_extras_{ds}_{model}.json"
            vs = variants(model, args.variant, args.drop_from)
            for tok in args.only or []:  # any "all extras -a -b ..." named in --only
                if tok.startswith(ALL + " -") and tok not in vs:
                    name, rest = without(extras_of(model), ["+" + t[1:] for t in tok.split()[2:]])
                    if name != tok:
                        p.error(f"--only {tok!r}: write it as {name!r} (extras in the order of EXTRAS)")
                    vs[name] = rest
            names = [n for tok in (args.only or ["paper", "singles", ALL, "loo"]) for n in
                     ([k for k in vs if k.startswith("+")] if tok == "singles" else
                      [k for k in vs if k.startswith(ALL + " -") and len(k.split()) == 3] if tok == "loo" else
                      [k for start in args.drop_from for k in vs if _dropped(k) > _dropped(start)
                       and len(_dropped(k)) == len(_dropped(start)) + 1]
                      if tok == "next" else [tok])]
            for name in names:
                for seed in seeds:
                    r = run_one(ds, model, {**base, **vs[name]}, seed, args.threads)
                    rec = {"dataset": ds, "model": model, "variant": name, "seed": seed,
                           "overrides": {**base, **vs[name]}, **r, **env_info(),
                           "command": "python benchmarks/ctr_extras.py " + " ".join(sys.argv[1:])}
                    recs = merge_records(load_records(out), [rec], ("variant", "seed"))
                    write_json(out, recs)
                    print(f"{ds} {model} {name} seed {seed}: valid auc {r['valid']['auc']:.4f} "
                          f"({r['train_seconds']:.0f} s)", file=sys.stderr, flush=True)
            print(f"\n{ds} {model} (validation; gain = mean paired difference to 'paper')")
            print("\n".join(summary(load_records(out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
