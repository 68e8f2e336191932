"""seqrec's retrieval splits for the peers: RecBole atomic files and an ``.npz`` of the evaluation splits.

Numpy only (plus :mod:`seqrec.data.tasks.retrieval` for the CSR types), so both sides import it:
``benchmarks/retrieval.py`` in seqrec's environment writes the files, ``_recbole_peer.py`` in
RecBole's own environment (``make bench-recbole``) reads the ``.npz`` back to score RecBole's
models with seqrec's metric code.

RecBole reads pre-split *benchmark* files (``benchmark_filename = [train, valid, test]``): one
file per phase, ``<name>.<phase>.inter``, tab-separated with a typed header. Tokens are seqrec's
own indices (users ``0..n_users-1``, items ``1..n_items``), so a RecBole id maps back to ours
through its ``field2id_token`` alone.

* general models (BPR, NeuMF, ItemKNN): ``user_id:token  item_id:token``, one line per
  interaction: train = ``task.train`` (what seqrec trains on), valid / test = the held-out
  targets. RecBole's full-ranking evaluation masks, for each user of a phase, every item the user
  has in the files up to that phase minus the phase's own positives: on BARS splits that is the
  train items (valid) and train + valid items = all train items (test), seqrec's exclusions.
* sequential models (SASRec, GRU4Rec): RecBole does no augmentation of benchmark files, they
  carry the prefix themselves: ``user_id:token  item_id_list:token_seq  item_id:token``. Train
  = every position p >= 1 of a user's train sequence with the (at most ``max_len``) items before
  it (the examples SASRec-style training sees); valid / test = the split's history tail and target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PHASES = ("train", "valid", "test")
GENERAL_HEADER = "user_id:token\titem_id:token"
SEQ_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"


def _eval_rows(split) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) of every target of an EvalSplit."""
    rows = split.targets.row_ids()
    return split.users[rows], split.targets.values


def general_rows(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """phase -> (users, items) of the general-model files."""
    out = {"train": (task.train.row_ids(), task.train.values)}
    out["test"] = _eval_rows(task.test)
    out["valid"] = _eval_rows(task.valid) if task.valid is not None else out["test"]
    return out


def sequential_rows(task, max_len: int) -> dict[str, list[tuple[int, list[int], int]]]:
    """phase -> [(user, history tail, target)] of the sequential-model files."""
    tr = task.train
    train = []
    for u in range(len(tr)):
        seq = tr.row(u).tolist()
        for p in range(1, len(seq)):
            train.append((u, seq[max(0, p - max_len):p], seq[p]))
    out = {"train": train}
    for name in ("valid", "test"):
        sp = task.valid if name == "valid" else task.test
        if sp is None:  # see write_recbole_atomic
            sp = task.test
        rows = []
        for r, u in enumerate(sp.users.tolist()):
            hist = sp.history.row(r).tolist()[-max_len:]
            rows += [(u, hist, int(t)) for t in sp.targets.row(r).tolist()]
        out[name] = rows
    return out


def write_recbole_atomic(task, folder: str | Path, name: str, *, sequential: bool, max_len: int = 50) -> dict:
    """Write ``folder/name/name.{train,valid,test}.inter``; returns {phase: lines written}.

    A task without validation (``train_full`` on BARS) gets the test rows as its valid file: RecBole
    needs a non-empty valid phase, never trains on it (no validation during training) and, for the
    test phase, masks the items of the earlier phases minus the test positives, so the test rows
    repeated there change no mask (the user's train items stay the only exclusions)."""
    d = Path(folder) / name
    d.mkdir(parents=True, exist_ok=True)
    counts = {}
    if sequential:
        data = sequential_rows(task, max_len)
        for ph in PHASES:
            lines = [SEQ_HEADER] + [f"{u}\t{' '.join(map(str, h))}\t{t}" for u, h, t in data.get(ph, [])]
            (d / f"{name}.{ph}.inter").write_text("\n".join(lines) + "\n")
            counts[ph] = len(lines) - 1
    else:
        data = general_rows(task)
        for ph in PHASES:
            us, its = data.get(ph, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
            body = "".join(f"{u}\t{i}\n" for u, i in zip(us.tolist(), its.tolist(), strict=True))
            (d / f"{name}.{ph}.inter").write_text(GENERAL_HEADER + "\n" + body)
            counts[ph] = len(us)
    return counts


def read_recbole_atomic(path: str | Path) -> list[tuple]:
    """The rows of one atomic file: (user, item) or (user, [history], item), as ints."""
    lines = Path(path).read_text().splitlines()
    seq = lines[0] == SEQ_HEADER
    out = []
    for line in lines[1:]:
        parts = line.split("\t")
        if seq:
            out.append((int(parts[0]), [int(x) for x in parts[1].split()], int(parts[2])))
        else:
            out.append((int(parts[0]), int(parts[1])))
    return out


# -- the evaluation splits, for scoring a peer with seqrec's metric code ---------------------------------
def _put(out: dict, key: str, csr) -> None:
    out[key + "_indptr"], out[key + "_values"] = csr.indptr, csr.values


def save_splits(task, path: str | Path) -> None:
    """The train CSR and the valid / test EvalSplits of ``task`` in one ``.npz``."""
    out = {"n_users": np.int64(task.n_users), "n_items": np.int64(task.n_items),
           "ordered": np.bool_(task.ordered)}
    _put(out, "train", task.train)
    for name in ("valid", "test"):
        sp = task.valid if name == "valid" else task.test
        if sp is None:
            continue
        out[f"{name}_users"] = sp.users
        for part in ("targets", "history", "exclude"):
            _put(out, f"{name}_{part}", getattr(sp, part))
    np.savez(path, **out)


def load_splits(path: str | Path) -> dict:
    """``{"n_users", "n_items", "ordered", "train": CSR, "valid": EvalSplit | None, "test": EvalSplit}``."""
    from seqrec.data.tasks.retrieval import CSR, EvalSplit

    z = np.load(path)

    def csr(key):
        return CSR(z[key + "_indptr"], z[key + "_values"])

    out = {"n_users": int(z["n_users"]), "n_items": int(z["n_items"]), "ordered": bool(z["ordered"]),
           "train": csr("train"), "valid": None}
    for name in ("valid", "test"):
        if f"{name}_users" in z:
            out[name] = EvalSplit(z[f"{name}_users"], csr(f"{name}_targets"), csr(f"{name}_history"),
                                  csr(f"{name}_exclude"))
    return out
