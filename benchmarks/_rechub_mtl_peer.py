"""torch-rechub 0.9.0 as a multi-task peer: SharedBottom, MMOE, PLE and ESMM on seqrec's census arrays.

Install: ``make bench-deps`` (as :mod:`_rechub_peer`). :func:`rechub_mtl_available` says whether it
imports.

Inputs are seqrec's own arrays (:class:`seqrec.data.tasks.multitask.MultiTaskData`), unchanged: the
same rows in the same split, the same integer codes (``vocab_size`` = seqrec's table rows), the
7-wide ``dense`` column split into 7 ``DenseFeature`` columns (age, ..., weeks_worked) the way
torch-rechub's census example feeds them. Models and settings are those of torch-rechub's census
example (``examples/ranking/run_census.py``): sparse ``embed_dim`` 4 + the 7 dense features for
SharedBottom (bottom [117], towers [8]), MMOE (8 experts of [16], towers [8]) and PLE (1 level, 2
specific + 1 shared experts of [16], towers [8]); ESMM on the sparse features only, ``embed_dim``
16, user features = industry code, occupation code, race, education, sex and item features = the
other sparse columns, cvr / ctr towers [16, 8], labels (cvr = income, ctr = never married,
ctcvr = their product). Embeddings: torch-rechub's default ``RandomNormal(0, 1e-4)``, no padding
row (code 0 never occurs in the data).

Training: torch-rechub's own ``MTLTrainer`` (Adam, its loss: mean of the task BCEs; ESMM: BCE(ctr) +
BCE(ctcvr)) and its ``train_one_epoch`` over a ``torch.utils.data.DataLoader`` of its
``TorchDataset`` (shuffle, ``num_workers=0``), i.e. its batch assembly. The epoch loop around it is
ours instead of ``MTLTrainer.fit`` because ``fit`` stops early on one task's AUC only
(``earlystop_taskid``): after every epoch the validation mean AUC over the two tasks is computed and
the same rule as seqrec's trainer applies (best strictly higher; stop after ``patience`` epochs
without a better one; the best epoch's weights restored). The clock covers each
``train_one_epoch`` call (batch assembly + forward + backward + step, its tqdm bar and print
included), not validation. Scores: the peer's outputs (probabilities) on seqrec's valid / test
arrays, by :func:`seqrec.evaluate.classification.auc`, the metric code of seqrec's own rows.
"""

from __future__ import annotations

import contextlib
import copy
import io
import resource
import tempfile
import time

import numpy as np
import torch

PEER_VERSION = "0.9.0"
MODELS = {"shared_bottom": "SharedBottom", "mmoe": "MMOE", "ple": "PLE", "esmm": "ESMM"}
ESMM_USER = ("det_ind_code", "det_occ_code", "race", "education", "sex")  # torch-rechub's census example


def rechub_mtl_available() -> str | None:
    """None when torch-rechub's multi-task models import, else why not (one line)."""
    try:
        from torch_rechub.models.multi_task import ESMM, MMOE, PLE, SharedBottom  # noqa: F401
        from torch_rechub.trainers import MTLTrainer  # noqa: F401
    except Exception as exc:  # ImportError, or a dependency's error at import
        return f"torch-rechub does not import: {type(exc).__name__}: {exc} (make bench-deps)"
    return None


def dense_names(width: int) -> list[str]:
    from seqrec.data.tasks.multitask import CENSUS_DENSE

    return list(CENSUS_DENSE) if width == len(CENSUS_DENSE) else [f"dense_{i}" for i in range(width)]


def peer_inputs(cols: dict[str, np.ndarray], sparse: list[str], dense: list[str], esmm: bool,
                tasks: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """torch-rechub's x dict (one array per feature) and y (N, n_labels) from seqrec's columns."""
    x = {n: cols[n] for n in sparse}
    if not esmm:
        d = cols["dense"]  # (N, 7)
        x.update({n: np.ascontiguousarray(d[:, i]) for i, n in enumerate(dense)})
    ys = [cols[f"label_{t}"] for t in tasks]
    if esmm:
        ys.append(ys[0] * ys[1])  # ctcvr = conversion and click
    return x, np.stack(ys, 1).astype(np.float32)  # (N, 2) or (N, 3)


def build_rechub(model_name: str, schema, sparse: list[str], dense: list[str], tasks: tuple[str, ...]):
    """torch-rechub's model with the census example's settings, on seqrec's vocabularies."""
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import ESMM, MMOE, PLE, SharedBottom

    types = ["classification"] * len(tasks)
    towers = [{"dims": [8]} for _ in tasks]
    if model_name == "esmm":
        def feat(n):
            return SparseFeature(n, vocab_size=schema.table(n).rows, embed_dim=16)

        user = [feat(n) for n in sparse if n in ESMM_USER]
        item = [feat(n) for n in sparse if n not in ESMM_USER]
        return ESMM(user, item, cvr_params={"dims": [16, 8]}, ctr_params={"dims": [16, 8]})
    feats = [DenseFeature(n) for n in dense] + [SparseFeature(n, vocab_size=schema.table(n).rows, embed_dim=4)
                                                 for n in sparse]
    if model_name == "shared_bottom":
        return SharedBottom(feats, types, bottom_params={"dims": [117]}, tower_params_list=towers)
    if model_name == "mmoe":
        return MMOE(feats, types, n_expert=8, expert_params={"dims": [16]}, tower_params_list=towers)
    if model_name == "ple":
        return PLE(feats, types, n_level=1, n_expert_specific=2, n_expert_shared=1,
                   expert_params={"dims": [16]}, tower_params_list=towers)
    raise ValueError(f"model must be one of {tuple(MODELS)}, got {model_name!r}")


@torch.no_grad()
def predict(net: torch.nn.Module, x: dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """(N, n_outputs) probabilities in row order (eval mode)."""
    net.eval()
    n = len(next(iter(x.values())))
    out = [net({k: torch.from_numpy(v[s:s + batch_size]) for k, v in x.items()})
           for s in range(0, n, batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def scores(net, x, y, tasks) -> dict:
    """Per-task AUC (seqrec's metric code) and their mean."""
    from seqrec.evaluate.classification import auc

    p = predict(net, x)
    out = {t: auc(y[:, k], p[:, k]) for k, t in enumerate(tasks)}
    out["mean_auc"] = float(np.mean([out[t] for t in tasks]))
    return out


def train_eval_rechub_mtl(model_name: str, data, *, epochs: int, patience: int, batch_size: int, lr: float,
                          weight_decay: float, seed: int) -> dict:
    """Train torch-rechub's ``model_name`` on ``data`` (seqrec's MultiTaskData), choose the epoch on
    validation, and score the restored model on valid and test."""
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import TorchDataset

    if model_name not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {model_name!r}")
    tasks, esmm = tuple(data.tasks), model_name == "esmm"
    sparse = [f.name for f in data.schema.of_kind("sparse")]
    dense = dense_names(data.train["dense"].shape[1])
    np.random.seed(seed)
    torch.manual_seed(seed)
    net = build_rechub(model_name, data.schema, sparse, dense, tasks)
    x_tr, y_tr = peer_inputs(data.train, sparse, dense, esmm, tasks)
    x_va, y_va = peer_inputs(data.valid, sparse, dense, esmm, tasks)
    x_te, y_te = peer_inputs(data.test, sparse, dense, esmm, tasks)
    train_dl = torch.utils.data.DataLoader(TorchDataset(x_tr, y_tr), batch_size=batch_size, shuffle=True,
                                           num_workers=0)
    epoch_seconds: list[float] = []
    history: list[dict] = []
    best, best_epoch, bad, best_state = -1.0, 0, 0, None
    with tempfile.TemporaryDirectory() as td:
        trainer = MTLTrainer(net, task_types=["classification"] * y_tr.shape[1],
                             optimizer_params={"lr": lr, "weight_decay": weight_decay}, n_epoch=epochs,
                             earlystop_patience=patience, device="cpu", model_path=td)
        for e in range(epochs):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                t0 = time.perf_counter()
                losses = trainer.train_one_epoch(train_dl)
                epoch_seconds.append(time.perf_counter() - t0)
            v = scores(net, x_va, y_va, tasks)
            history.append({"epoch": e + 1, "loss": [float(v_) for v_ in losses], "seconds": epoch_seconds[-1],
                            **{f"valid_auc_{t}": v[t] for t in tasks}, "valid_mean_auc": v["mean_auc"]})
            if v["mean_auc"] > best:  # the rule of seqrec's fit_epochs
                best, best_epoch, bad, best_state = v["mean_auc"], e + 1, 0, copy.deepcopy(net.state_dict())
            else:
                bad += 1
                if bad >= patience:
                    break
    net.load_state_dict(best_state)
    valid = scores(net, x_va, y_va, tasks)
    t_eval = time.perf_counter()
    test = scores(net, x_te, y_te, tasks)
    eval_seconds = time.perf_counter() - t_eval
    train_s = sum(epoch_seconds)
    n = len(y_tr)
    return {
        "library": "torch-rechub", "library_version": PEER_VERSION, "peer_model": MODELS[model_name],
        "valid": valid, "test": test, "epochs_chosen": best_epoch, "epochs_run": len(epoch_seconds),
        "train_seconds": train_s, "epoch_seconds": epoch_seconds,
        "train_samples_per_s": n * len(epoch_seconds) / train_s if train_s else None,
        "train_samples_per_epoch": n, "eval_seconds": eval_seconds, "history": history,
        "n_params": sum(p.numel() for p in net.parameters()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }
