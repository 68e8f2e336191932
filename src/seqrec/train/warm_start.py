"""Starting a run from another run's parameters: transfer, fine-tuning, daily updates.

:func:`warm_start` copies every parameter and buffer of a finished run into a freshly built model
whose names match (DUPN's shared layers, its heads by task name). A table with **more** rows
than the old one (the vocabulary grew: :meth:`seqrec.data.vocab.Vocab.fit` appends new ids
after the known ones) gets the old rows bit for bit in its first rows and keeps its own fresh
rows, N(0, init_std), for the new ids; any other shape mismatch is an error. Parameters the old
run does not have (a new task's head) keep their initialisation.

With the old run's ``train_state.pt`` and an optimiser over exactly the same parameters (same
names, same order), the optimiser state is carried over too — the state of the epoch whose weights
``model.pt`` holds (``best_optimizer``), with this run's own hyper-parameters (lr, weight decay,
betas) — its per-row moments extended with zero rows for the grown tables
(:func:`seqrec.train.grow.grow_embedding`'s rule; new rows then start with zero moments and the
old step count, so their first steps are bias-corrected as late ones).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from seqrec.errors import CheckpointError
from seqrec.train.checkpoint import load_tensors


@torch.no_grad()
def warm_start(model: torch.nn.Module, run_dir: str | os.PathLike, optimizer: torch.optim.Optimizer | None = None
               ) -> dict:
    """Load ``run_dir``'s ``model.pt`` into ``model`` (see the module docstring); returns what was
    copied, grown, left new and whether the optimiser state was carried."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        raise CheckpointError(f"train.init_from = {str(run_dir)!r}: no model.pt there (not a finished run)")
    old = load_tensors(run_dir / "model.pt")
    own = model.state_dict()
    copied, grown = [], {}
    for name, v in old.items():
        if name not in own:
            continue
        t = own[name]
        if t.shape == v.shape:
            t.copy_(v)
        elif t.dim() == v.dim() == 2 and t.shape[1] == v.shape[1] and t.shape[0] > v.shape[0]:
            t[:v.shape[0]].copy_(v)
            grown[name] = (v.shape[0], t.shape[0])
        else:
            raise CheckpointError(f"train.init_from = {str(run_dir)!r}: {name} has shape {tuple(v.shape)} there "
                                  f"and {tuple(t.shape)} here; only a table may grow (more rows)")
        copied.append(name)
    new = [n for n in own if n not in old]
    carried = False
    names = [n for n, _ in model.named_parameters()]
    if optimizer is not None and not new and set(names) <= set(old) and (run_dir / "train_state.pt").is_file():
        blob = load_tensors(run_dir / "train_state.pt")["trainer"]
        # the state of the epoch whose weights model.pt holds (early stopping restored them), else
        # the last epoch's (runs from before best_optimizer was kept)
        opt_state = blob.get("best_optimizer") or blob["optimizer"]
        if len(opt_state["param_groups"][0]["params"]) == len(names):
            own_settings = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
            optimizer.load_state_dict(opt_state)
            for g, settings in zip(optimizer.param_groups, own_settings, strict=True):
                g.update(settings)  # this run's lr / weight decay / betas, not the old run's
            for p in model.parameters():
                state = optimizer.state.get(p, {})
                for k, v in list(state.items()):
                    if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] < p.shape[0] and v.shape[1:] == p.shape[1:]:
                        state[k] = torch.cat([v, v.new_zeros(p.shape[0] - v.shape[0], *v.shape[1:])])
            carried = True
    return {"from": str(run_dir), "copied": len(copied), "grown": {k: list(v) for k, v in grown.items()},
            "new": new, "optimizer_state": carried}
