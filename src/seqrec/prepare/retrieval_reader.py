"""Training a retrieval model from a prepared directory (``retrieval-bars``, :mod:`seqrec.prepare.spec`).

The lists are small (one row per user), so the whole :class:`~seqrec.data.tasks.retrieval.RetrievalTask`
is built in memory from them: users and items from the vocabulary files (index order), the train
CSR from the ``train`` rows (every user, sorted items), validation targets from ``valid`` and test
targets from ``test``. What the directory leaves to the reader is the evaluation histories' order
(a set has none): it is drawn as :func:`~seqrec.data.tasks.retrieval.bars_task` draws it, a
``default_rng(seed)`` permutation of each test user's full train items first, so the test split
equals the in-memory one exactly; the validation histories are drawn next from the same generator
(the in-memory recipe draws its hold-out in between, which here came from the hash instead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqrec.data.tasks.retrieval import CSR, EvalSplit, RetrievalTask
from seqrec.data.vocab import Vocab
from seqrec.errors import DataValidationError
from seqrec.prepare.layout import open_prepared, read_split


def _lists(root: Path, split: str, n_users: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(users in ascending order, their item arrays) of one split; the users are checked."""
    df = read_split(root, split).sort("user", maintain_order=True)
    users = df["user"].to_numpy().astype(np.int64)
    if len(users) and (users.min() < 0 or users.max() >= n_users):
        raise DataValidationError(f"{root}/{split}: user index outside 0..{n_users - 1}; prepare the directory again")
    return users, [np.asarray(v, dtype=np.int64) for v in df["items"].to_list()]


def load_prepared_retrieval(cfg) -> RetrievalTask:
    """The RetrievalTask of ``cfg.data.prepared``; a ConfigError when it was prepared with other data
    settings or (for a validation hold-out) another seed (:func:`open_prepared`)."""
    split, seed = cfg.data.train_split, cfg.train.seed
    root, m = open_prepared(cfg, "retrieval", seeded=split == "train")  # train: the hashed hold-out
    items, users = Vocab.load(root / "vocab_item.json"), Vocab.load(root / "vocab_user.json")
    n_users, n_items = users.n_known, items.n_known
    tr_users, tr_rows = _lists(root, "train", n_users)
    if not np.array_equal(tr_users, np.arange(n_users)):
        raise DataValidationError(f"{root}/train: expected one row per user 0..{n_users - 1}; prepare it again")
    train = CSR.from_lists(tr_rows)
    va_users, va_rows = _lists(root, "valid", n_users)
    full = list(tr_rows)
    for u, r in zip(va_users, va_rows, strict=True):  # train_full = train + the held-out items
        full[u] = np.union1d(full[u], r)
    full_train = CSR.from_lists(full)
    te_users, te_rows = _lists(root, "test", n_users)
    rng = np.random.default_rng(seed)

    def shuffled(csr: CSR, rows: np.ndarray) -> CSR:
        return CSR.from_lists([rng.permutation(csr.row(u)) for u in rows])

    test = EvalSplit(te_users, CSR.from_lists(te_rows), shuffled(full_train, te_users), full_train.take(te_users))
    valid = None
    if split == "train":
        valid = EvalSplit(va_users, CSR.from_lists(va_rows), shuffled(train, va_users), train.take(va_users))
    how = ("BARS split (prepared): rank all items for every test user, excluding the user's train items; "
           + (f"validation = 10% of each user's train items (hashed, seed {seed})" if valid is not None
              else "trained on all train items"))
    return RetrievalTask(m["dataset"], n_users, n_items, train, valid, test, np.asarray(items.ids_),
                         np.asarray(users.ids_), ordered=False, protocol="bars", how=how)
