"""torch-rechub 0.9.0 as a retrieval peer: YoutubeDNN and MIND on seqrec's own retrieval task.

Install: ``make bench-deps`` (``pip install --no-deps torch-rechub==0.9.0`` next to torch 2.13.0;
its runtime needs ``pandas``, ``scikit-learn`` and ``tqdm``, which the ``bench`` extra and seqrec
bring). :func:`rechub_available` says whether it imports.

Inputs are arrays built from the task, as torch-rechub's users build them with
``gen_model_input``: the examples are seqrec's own next-item examples
(:func:`seqrec.data.retrieval_sampling.next_item_batches`, one pass in fixed order: on ordered
data every train position p >= 1 with the ``max_len`` items before it; on BARS item sets every
train interaction with the user's other train items), histories left-padded (torch-rechub's
``padding='pre'``); ``neg_items`` are ``n_negatives`` items per example from torch-rechub's own
``negative_sample(..., method_id=0)`` (uniform over the items seen in training); the label is
column 0 (the positive) for its list-wise mode (``MatchTrainer(mode=2)``: cross-entropy over
positive + negatives, scores are cosine / temperature).

Training is ``MatchTrainer.fit`` (its DataLoader over the dict of arrays, Adam); the clock covers
the calls of ``train_one_epoch`` (batch assembly included). Serving: ``model.mode = "user"`` /
``"item"`` give the user vectors (MIND: ``interest_num`` of them) for seqrec's valid / test
histories and the vectors of every item; a user's score for an item is the inner product (MIND:
the best interest, i.e. each interest retrieves and the lists are merged by score), ranked by
:func:`seqrec.evaluate.retrieval.evaluate_ranking`, the metric code of seqrec's own rows.
"""

from __future__ import annotations

import contextlib
import io
import resource
import time

import numpy as np
import torch

PEER_VERSION = "0.9.0"
MODELS = ("YoutubeDNN", "MIND")


def rechub_available() -> str | None:
    """None when ``torch_rechub`` imports, else why not (one line)."""
    try:
        import torch_rechub  # noqa: F401
        from torch_rechub.models.matching import MIND, YoutubeDNN  # noqa: F401
    except Exception as exc:  # ImportError, or a dependency's error at import
        return f"torch-rechub does not import: {type(exc).__name__}: {exc} (make bench-deps)"
    return None


def training_arrays(task, max_len: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users (E,), histories (E, max_len) left-padded, targets (E,)) of seqrec's examples."""
    from seqrec.data.retrieval_sampling import next_item_batches

    us, hs, ts = [], [], []
    for b in next_item_batches(task, 8192, max_len, seed, shuffle=False):
        h = b["history"].numpy()
        full = np.zeros((len(h), max_len), np.int64)
        full[:, max_len - h.shape[1]:] = h  # the batch is padded to its longest; pad to max_len
        us.append(b["user"].numpy())
        hs.append(full)
        ts.append(b["target"].numpy())
    return np.concatenate(us), np.concatenate(hs), np.concatenate(ts)


def eval_histories(split, max_len: int) -> np.ndarray:
    return split.history.padded_tail(np.arange(len(split)), max_len)


def train_eval_rechub(model_name: str, task, *, dim: int, epochs: int, batch_size: int, lr: float,
                      n_negatives: int, max_len: int, seed: int, temperature: float = 0.02,
                      interest_num: int = 4, user_dims: tuple = (128, 64), weight_decay: float = 1e-5) -> dict:
    """Train torch-rechub's ``model_name`` on ``task`` and evaluate it on its valid / test splits."""
    from torch_rechub.basic.features import SequenceFeature, SparseFeature
    from torch_rechub.models.matching import MIND, YoutubeDNN
    from torch_rechub.trainers import MatchTrainer
    from torch_rechub.utils.data import MatchDataGenerator
    from torch_rechub.utils.match import negative_sample

    from seqrec.evaluate.retrieval import evaluate_ranking

    if model_name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model_name!r}")
    np.random.seed(seed)
    torch.manual_seed(seed)
    t_prep = time.perf_counter()
    users, hist, target = training_arrays(task, max_len, seed)
    counts = np.bincount(task.train.values, minlength=task.n_items + 1)
    order = np.argsort(-counts[1:], kind="stable") + 1
    cnt = {int(i): int(counts[i]) for i in order if counts[i] > 0}  # item -> count, most frequent first
    neg = np.asarray(negative_sample(cnt, ratio=len(target) * n_negatives, method_id=0),
                     dtype=np.int64).reshape(len(target), n_negatives)
    n_vocab = task.n_items + 1
    item_f = [SparseFeature("item_id", n_vocab, embed_dim=dim, padding_idx=0)]
    neg_f = [SequenceFeature("neg_items", n_vocab, embed_dim=dim, pooling="concat", shared_with="item_id")]
    notes = []
    if model_name == "YoutubeDNN":
        hist_f = [SequenceFeature("hist_item_id", n_vocab, embed_dim=dim, pooling="mean", shared_with="item_id",
                                  padding_idx=0)]
        net = YoutubeDNN(hist_f, item_f, neg_f, user_params={"dims": [*user_dims, dim]}, temperature=temperature)
        x = {"hist_item_id": hist, "item_id": target, "neg_items": neg}
        notes.append(f"user tower: mean of the history embeddings (padding masked) -> MLP {[*user_dims, dim]} "
                     "(torch-rechub's MLP: BatchNorm + ReLU per layer), L2-normalised")
    else:
        user_f = [SparseFeature("user_id", task.n_users, embed_dim=dim)]
        hist_f = [SequenceFeature("hist_item_id", n_vocab, embed_dim=dim, pooling="concat", shared_with="item_id",
                                  padding_idx=0)]
        net = MIND(user_f, hist_f, item_f, neg_f, max_length=max_len, temperature=temperature,
                   interest_num=interest_num, dynamic_interest=True)
        x = {"user_id": users, "hist_item_id": hist, "item_id": target, "neg_items": neg}
        notes.append("MIND's user tower concatenates a user-id embedding to every interest (torch-rechub's "
                     "MIND needs at least one user feature; its example passes user_id)")
        notes.append(f"interests: up to {interest_num}, dynamic (K'_u = max(1, min(K, floor(log2 |history|)))), "
                     "label-aware attention = hard argmax over interests (no power p)")
    prep_seconds = time.perf_counter() - t_prep
    y = np.zeros(len(target), np.int64)  # list-wise: the positive is column 0
    gen = MatchDataGenerator(x=x, y=y)
    train_dl = torch.utils.data.DataLoader(gen.dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    import tempfile

    with tempfile.TemporaryDirectory() as td:
        trainer = MatchTrainer(net, mode=2, optimizer_params={"lr": lr, "weight_decay": weight_decay},
                               n_epoch=epochs, device="cpu", model_path=td)
        epoch_seconds: list[float] = []
        inner = trainer.train_one_epoch

        def timed(*a, **kw):
            t = time.perf_counter()
            out = inner(*a, **kw)
            epoch_seconds.append(time.perf_counter() - t)
            return out

        trainer.train_one_epoch = timed
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trainer.fit(train_dl)
    net.eval()
    with torch.no_grad():
        net.mode = "item"
        items = net({"item_id": torch.arange(n_vocab)})  # (N + 1, D)

    def scorer(split, hists):
        def score(rows):
            b = {"hist_item_id": torch.from_numpy(hists[rows]),
                 "user_id": torch.from_numpy(split.users[rows])}
            with torch.no_grad():
                net.mode = "user"
                u = net(b)  # (B, D) or (B, K, D)
                if u.dim() == 3:
                    s = torch.einsum("bkd,nd->bkn", u, items)  # (B, K, N + 1)
                    act = net.active_interest_mask(b)
                    if act is not None:
                        s = s.masked_fill(~act[:, :, None], -float("inf"))
                    return s.max(1).values
                return u @ items.T  # (B, N + 1)
        return score

    out = {}
    t_eval = time.perf_counter()
    # pessimistic ties (as seqrec's side of the benchmark): items or users whose vectors come out all
    # zero tie, and optimistic ties would count a target tied with the top as rank 1
    out["test"] = evaluate_ranking(scorer(task.test, eval_histories(task.test, max_len)), task.test,
                                   batch_size=512, ties="pessimistic")
    eval_seconds = time.perf_counter() - t_eval
    if task.valid is not None:
        out["valid"] = evaluate_ranking(scorer(task.valid, eval_histories(task.valid, max_len)), task.valid,
                                        batch_size=512, ties="pessimistic")
    zero, test_hists = 0, eval_histories(task.test, max_len)
    with torch.no_grad():
        net.mode = "user"
        for s in range(0, len(task.test), 2048):
            rows = np.arange(s, min(s + 2048, len(task.test)))
            hists = test_hists[rows]
            u = net({"hist_item_id": torch.from_numpy(hists), "user_id": torch.from_numpy(task.test.users[rows])})
            zero += int((u.reshape(len(rows), -1).norm(dim=1) == 0).sum())
    zero_items = int((items[1:].norm(dim=1) == 0).sum())
    notes.append(f"all-zero vectors (tied scores): {zero} of {len(task.test)} test users, {zero_items} of "
                 f"{n_vocab - 1} items")
    train_s = sum(epoch_seconds)
    return {
        "library": "torch-rechub", "library_version": PEER_VERSION, "peer_model": model_name,
        "metrics": out["test"], "valid_metrics": out.get("valid"),
        "train_samples_per_s": len(target) * len(epoch_seconds) / train_s if train_s else None,
        "train_seconds": train_s, "epoch_seconds": epoch_seconds, "epochs": len(epoch_seconds),
        "train_examples_per_epoch": int(len(target)), "prep_seconds": prep_seconds,
        "eval_seconds": eval_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(), "notes": notes,
    }
