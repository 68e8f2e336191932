"""RecBole 1.2.1 as a retrieval peer, run in its own environment (``make bench-recbole``).

    .venv-recbole/bin/python benchmarks/_recbole_peer.py --spec SPEC.json --out RECORD.json

RecBole 1.2.1 does not import on numpy 2 (``np.bool8``) and its ``ray`` import (``import
recbole`` loads ``recbole.quick_start``, which imports ``ray.tune``) needs ``setuptools<81``;
``benchmarks/retrieval.py`` therefore starts this file with ``.venv-recbole/bin/python`` (numpy
1.26.4, pandas 2.2.3, scipy<1.15, torch 2.13.0) in a temporary working directory (RecBole writes
``log_tensorboard/`` and ``saved/`` under the current directory).

The spec names the model (BPR, NeuMF, ItemKNN, SASRec, GRU4Rec), the folder with seqrec's
splits as RecBole benchmark files and the ``.npz`` of the evaluation splits
(``_retrieval_export.py``), the seed, thread count and RecBole config overrides (the
hyperparameters ``retrieval.py`` chose). The run is what ``recbole.quick_start.run_recbole``
does, step by step so it can be timed: ``Config`` -> ``create_dataset`` -> ``data_preparation``
-> ``get_model`` -> ``get_trainer(...).fit`` (no validation during training: fixed epochs, the
final weights, as seqrec's runs with ``patience = 0``) -> ``trainer.evaluate`` on the test phase.

Two sets of metrics come back:

* ``metrics``: seqrec's evaluator (:func:`seqrec.evaluate.retrieval.evaluate_ranking`) over
  RecBole's ``full_sort_predict`` scores, on seqrec's own valid / test splits (the same users,
  histories, targets and exclusions as seqrec's rows; scores mapped from RecBole's internal ids
  back to seqrec's item indices through ``field2id_token``);
* ``peer_metrics``: RecBole's own evaluator on its test phase (Recall = hits / |T|, NDCG with
  ideal DCG over min(|T|, K), Hit), as its users see it. On BARS splits it masks exactly
  seqrec's exclusions (train + valid items) and the two agree up to ties; RecBole's sequential
  models mask nothing (the user's history items stay ranked), so on leave-one-out the two differ.

``protocol_check`` compares what RecBole loaded with seqrec's split: for general models each test
user's masked items (RecBole's ``uid2history_item``) against seqrec's ``test.exclude``, for
sequential ones each test row's ``item_id_list`` against seqrec's test history tail.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
SEQUENTIAL = ("SASRec", "GRU4Rec")


def _base_config(spec: dict) -> dict:
    seq = spec["model"] in SEQUENTIAL
    cfg = {
        "data_path": spec["data_path"], "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id"] + (["item_id_list"] if seq else [])},
        "eval_args": {"group_by": "user", "order": "TO" if seq else "RO", "mode": "full",
                      "split": {"RS": [0.8, 0.1, 0.1]}},  # ignored with benchmark files
        "metrics": ["Recall", "NDCG", "Hit"], "topk": [10, 20, 50], "valid_metric": "Recall@20",
        "seed": spec["seed"], "reproducibility": True, "use_gpu": False, "device": "cpu",
        "show_progress": False, "state": "ERROR", "worker": 0, "eval_step": 0,
        "checkpoint_dir": str(Path(spec["workdir"]) / "saved"),
        # 512 users per evaluation batch, as seqrec's evaluator: RecBole's general models take
        # eval_batch_size // n_items users per batch, and its default 4096 is one Gowalla user per batch
        "eval_batch_size": 512 if seq else 512 * (spec.get("n_items", 7) + 1),
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
    }
    if seq:
        cfg["alias_of_item_id"] = ["item_id_list"]  # the history shares the item vocabulary
        cfg["MAX_ITEM_LIST_LENGTH"] = spec["max_len"]
    cfg.update(spec.get("config", {}))
    return cfg


def _item_map(dataset, n_items: int) -> np.ndarray:
    """RecBole internal item id -> seqrec item index (0 for RecBole's [PAD])."""
    tokens = dataset.field2id_token["item_id"]
    out = np.zeros(len(tokens), np.int64)
    for j, t in enumerate(tokens.tolist()):
        if j and t != "[PAD]":
            out[j] = int(t)
    assert out.max() <= n_items
    return out


def _user_map(dataset, n_users: int) -> np.ndarray:
    """seqrec user index -> RecBole internal user id (-1: a user RecBole never saw)."""
    out = np.full(n_users, -1, np.int64)
    for j, t in enumerate(dataset.field2id_token["user_id"].tolist()):
        if j and t != "[PAD]":
            out[int(t)] = j
    return out


def _scorer(model, dataset, split, splits: dict, item_of: np.ndarray, user_of: np.ndarray, spec: dict):
    """``score_fn(rows)`` for :func:`evaluate_ranking`: RecBole's full-sort scores on seqrec's
    item axis (N + 1 columns; items RecBole has no id for score -inf)."""
    import torch
    from recbole.data.interaction import Interaction

    n_cols = splits["n_items"] + 1
    iid_of = np.zeros(n_cols, np.int64)
    iid_of[item_of[1:]] = np.arange(1, len(item_of))
    seq = spec["model"] in SEQUENTIAL
    max_len = spec["max_len"]

    def score(rows: np.ndarray) -> torch.Tensor:
        users = split.users[rows]
        inter = {"user_id": torch.from_numpy(np.maximum(user_of[users], 0))}
        if seq:
            lens = np.minimum(split.history.lengths()[rows], max_len)
            hist = np.zeros((len(rows), max_len), np.int64)  # RecBole's lists are right-padded
            for k, r in enumerate(rows):
                h = split.history.row(r)[-max_len:]
                hist[k, :len(h)] = iid_of[h]
            inter["item_id_list"] = torch.from_numpy(hist)
            inter["item_length"] = torch.from_numpy(lens.astype(np.int64))
        with torch.no_grad():
            s = model.full_sort_predict(Interaction(inter)).view(len(rows), -1).float()  # (B, M)
        out = torch.full((len(rows), n_cols), -float("inf"))
        out[:, torch.from_numpy(item_of[1:])] = s[:, 1:]
        return out

    return score


def _protocol_check(spec, test_data, splits, item_of, user_of) -> dict:
    """Mismatches between what RecBole evaluates and seqrec's test split (0 = identical)."""
    test = splits["test"]
    bad, n = 0, 0
    if spec["model"] in SEQUENTIAL:
        ds = test_data._dataset
        got: dict[int, list[int]] = {}
        u_tok = ds.field2id_token["user_id"]
        for uid, lst, ln in zip(ds.inter_feat["user_id"].numpy(), ds.inter_feat["item_id_list"].numpy(),
                                ds.inter_feat["item_length"].numpy(), strict=True):
            got[int(u_tok[uid])] = item_of[lst[:ln]].tolist()
        for r, u in enumerate(test.users.tolist()):
            n += 1
            bad += got.get(u) != test.history.row(r)[-spec["max_len"]:].tolist()
        return {"compared": "test history (item_id_list) per test row", "rows": n, "mismatches": int(bad)}
    hist = test_data.uid2history_item
    for r, u in enumerate(test.users.tolist()):
        n += 1
        h = hist[user_of[u]] if user_of[u] >= 0 else None
        mine = set(test.exclude.row(r).tolist())
        theirs = set(item_of[h.numpy()].tolist()) if h is not None else set()
        bad += mine != theirs
    return {"compared": "masked items per test user (uid2history_item vs test.exclude)", "rows": n,
            "mismatches": int(bad)}


def run(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import ModelType, get_model, get_trainer, init_seed

    sys.path.insert(0, str(SRC))
    sys.path.insert(0, str(HERE))
    from _retrieval_export import load_splits

    from seqrec.evaluate.retrieval import evaluate_ranking

    splits = load_splits(spec["splits"])
    cfg = Config(model=spec["model"], dataset=spec["dataset"], config_dict=_base_config(spec))
    init_seed(cfg["seed"], cfg["reproducibility"])
    torch.set_num_threads(spec["threads"])
    t0 = time.perf_counter()
    dataset = create_dataset(cfg)
    train_data, valid_data, test_data = data_preparation(cfg, dataset)
    data_seconds = time.perf_counter() - t0
    init_seed(cfg["seed"] + cfg["local_rank"], cfg["reproducibility"])
    t0 = time.perf_counter()
    model = get_model(cfg["model"])(cfg, train_data._dataset).to(cfg["device"])
    build_seconds = time.perf_counter() - t0
    notes = []
    if torch.is_anomaly_enabled():
        # recbole/model/sequential_recommender/sine.py calls torch.autograd.set_detect_anomaly(True) at
        # import, and get_model imports every sequential model: measured 1.6x slower SASRec steps
        torch.autograd.set_detect_anomaly(False)
        notes.append("RecBole 1.2.1 turns on torch.autograd anomaly detection when it imports its sequential "
                     "models (sine.py); switched off again before training (1.6x slower steps with it)")
    trainer = get_trainer(cfg["MODEL_TYPE"], cfg["model"])(cfg, model)
    epoch_seconds: list[float] = []
    inner = trainer._train_epoch

    def timed(*a, **kw):
        t = time.perf_counter()
        out = inner(*a, **kw)
        epoch_seconds.append(time.perf_counter() - t)
        return out

    trainer._train_epoch = timed
    trainer.fit(train_data, valid_data=None, saved=False, show_progress=False, verbose=False)
    traditional = cfg["MODEL_TYPE"] == ModelType.TRADITIONAL
    # ItemKNN computes its similarities (and the score matrix) in the constructor: that is its training
    train_seconds = sum(epoch_seconds) + (build_seconds if traditional else 0.0)
    n_train = len(train_data._dataset)
    epochs = len(epoch_seconds)
    t0 = time.perf_counter()
    peer = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    eval_seconds = time.perf_counter() - t0
    model.eval()
    item_of = _item_map(train_data._dataset, splits["n_items"])
    user_of = _user_map(train_data._dataset, splits["n_users"])
    metrics = evaluate_ranking(_scorer(model, dataset, splits["test"], splits, item_of, user_of, spec),
                               splits["test"], batch_size=512, ties="pessimistic")  # as every library
    valid = None
    if splits["valid"] is not None:
        valid = evaluate_ranking(_scorer(model, dataset, splits["valid"], splits, item_of, user_of, spec),
                                 splits["valid"], batch_size=512, ties="pessimistic")
    return {
        "library": "recbole", "library_version": recbole.__version__, "peer_model": spec["model"],
        "metrics": metrics, "valid_metrics": valid,
        "peer_metrics": {k.lower(): float(v) for k, v in peer.items()},
        "train_samples_per_s": n_train * (1 if traditional else epochs) / train_seconds if train_seconds else None,
        "train_seconds": train_seconds, "epoch_seconds": epoch_seconds, "epochs": epochs,
        "train_examples_per_epoch": n_train, "data_seconds": data_seconds,
        "eval_seconds": eval_seconds, "seqrec_eval_seconds": metrics["eval_seconds"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "protocol_check": _protocol_check(spec, test_data, splits, item_of, user_of),
        "peer_config": {k: cfg[k] for k in sorted(spec.get("config", {}))},
        "notes": notes, "torch_threads": torch.get_num_threads(), "numpy_version": np.__version__,
        "torch_version": torch.__version__,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    if spec.get("max_memory_gb"):  # a MemoryError in the record beats an OOM-killed shared machine
        lim = int(spec["max_memory_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    os.chdir(spec["workdir"])
    try:
        rec = run(spec)
    except BaseException as exc:  # the record says why, with the exact error
        err = f"{type(exc).__name__}: {exc}"
        if not str(exc):  # a bare MemoryError: say where, and under which limit
            last = traceback.extract_tb(exc.__traceback__)[-2:]
            err += " at " + " <- ".join(f"{Path(f.filename).name}:{f.lineno} `{f.line}`" for f in last[::-1])
            if spec.get("max_memory_gb"):
                err += f" (address-space limit {spec['max_memory_gb']:g} GB)"
        rec = {"error": err, "traceback": traceback.format_exc()[-4000:],
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(args.out).write_text(json.dumps(rec, indent=2, default=float))
    return 0 if "error" not in rec else 3


if __name__ == "__main__":
    sys.exit(main())
