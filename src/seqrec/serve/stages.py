"""The stages a pipeline is built from, each loaded from a run directory of its family.

* :class:`Retriever` — a retrieval run (:mod:`seqrec.families.retrieval`) and its faiss index
  (``seqrec index``; exact scoring of the catalogue without one): raw history -> top-N candidates.
  The user side (the user tower) runs once per request; the item side is the index.
* :class:`Ranker` — a CTR run (:mod:`seqrec.families.ctr`): raw history + candidates -> scores,
  through the model split (:mod:`seqrec.serve.split`), or an exported ONNX graph on onnxruntime.
* :class:`SessionModel` — a GRU4Rec session run (:mod:`seqrec.families.session`): one GRU step per
  click from the session's stored hidden state (:mod:`seqrec.serve.sessions`).

Raw ids are strings at the service's edge; every stage maps them through its own run's vocabulary,
so a retriever and a ranker trained with different vocabularies work together as long as their raw
ids agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqrec.errors import CheckpointError, ConfigError


def run_checksums(run_dir: str | os.PathLike, names: tuple[str, ...]) -> dict[str, str]:
    """SHA-256 of the run's files that define what it serves (the ones present)."""
    from seqrec.serve.index import file_sha256

    d = Path(run_dir)
    return {n: file_sha256(d / n) for n in names if (d / n).is_file()}


@dataclass
class Candidates:
    ids: list[str]  # raw item ids, best first
    scores: np.ndarray  # (N,) float32
    n_history: int


class Retriever:
    """A retrieval run served through its index: raw history (or known user) -> candidates."""

    def __init__(self, run_dir: str | os.PathLike, *, use_index: bool = True) -> None:
        from seqrec.families.retrieval import RetrievalRun

        self.run = RetrievalRun(run_dir)
        self.dir = self.run.dir
        self.name = self.run.config.model_name
        self.index = self.run.index if use_index else None
        self.item_ids = np.asarray(self.run.item_ids, dtype=object)  # index i + 1 -> raw id
        self.item_index = self.run.item_index
        self.max_len = self.run.config.data.max_len
        self.needs_user = bool(getattr(self.run.model, "needs_user", False))
        if self.needs_user:
            raise ConfigError(f"{self.name} scores known users only (a user embedding); a serving retriever "
                              "must work from a history: use youtube_dnn, sasrec, mind, ...")
        self.feature_names = list(self.run.feature_sizes)
        self.checksums = run_checksums(self.dir, ("model.pt", "index.faiss", "config.json", "ids.json"))
        self._histories: dict[str, np.ndarray] | None = None
        self.popularity: np.ndarray | None = None  # item indices, most popular first

    # -- data the service keeps: known users' histories, item popularity --------------------
    def load_data(self) -> None:
        """Known users' histories (train + valid items, in order) and item popularity, from the
        run's data (a DataNotFoundError naming the files when it is absent)."""
        task = self.run.task
        hist = task.test.history
        users = task.test.users
        ids = self.run.user_ids
        self._histories = {ids[u]: task.train.row(u) for u in range(len(ids))}
        self._histories.update({ids[u]: hist.row(i) for i, u in enumerate(users.tolist())})
        counts = np.bincount(task.train.values, minlength=len(self.item_ids) + 1)
        counts[0] = -1
        self.popularity = np.argsort(-counts, kind="stable")[:1000]

    def history_of(self, user: str) -> np.ndarray | None:
        if self._histories is None:
            return None
        return self._histories.get(user)

    def encode_items(self, raw: list[str]) -> tuple[np.ndarray, list[str]]:
        """(known item indices in order, unknown raw ids)."""
        idx, unknown = [], []
        for r in raw:
            i = self.item_index.get(r)
            if i is None:
                unknown.append(r)
            else:
                idx.append(i)
        return np.asarray(idx, dtype=np.int64), unknown

    def _batch(self, hist: np.ndarray) -> dict:
        from seqrec.families.retrieval import user_batch

        tail = hist[-self.max_len:]
        return user_batch(np.zeros(1, np.int64), tail[None, :], {k: np.zeros(1, np.int64) for k in self.feature_names})

    def user_vectors(self, hist: np.ndarray) -> np.ndarray:
        """(K, D) query vectors of one history (K interests for multi-interest models)."""
        return self.run.query_vectors(self._batch(hist))[0]

    def retrieve(self, hist: np.ndarray, n: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` item indices and scores for a history of item indices, ``exclude`` left out."""
        exclude = np.zeros(0, np.int64) if exclude is None else exclude
        n = min(n, len(self.item_ids) - len(np.unique(exclude)))
        if self.index is not None:
            from seqrec.serve.index import top_k_excluding

            with torch.inference_mode():
                q = self.user_vectors(hist)
            return top_k_excluding(self.index, q, n, exclude)
        with torch.inference_mode():
            if getattr(self.run.model, "dot_product", False):
                q = torch.from_numpy(self.user_vectors(hist))
                s = (q @ self._item_matrix().T).max(0).values  # (N + 1,)
            else:  # popularity, ItemCF, TDM, NCF's MLP: the model's own scores of every item
                s = self.run.model.score_all(self._batch(hist))[0].float().clone()
            s[0] = -torch.inf
            if len(exclude):
                s[torch.from_numpy(exclude)] = -torch.inf
            vals, idx = torch.topk(s, n)
        return idx.numpy(), vals.numpy()

    def _item_matrix(self) -> torch.Tensor:
        if not hasattr(self, "_items"):
            with torch.inference_mode():
                self._items = self.run.model.item_vectors().detach().float()
        return self._items

    def raw(self, idx: np.ndarray) -> list[str]:
        return self.item_ids[np.asarray(idx) - 1].tolist()


class Ranker:
    """A CTR run scoring candidates for one history, with the model split (or onnxruntime)."""

    def __init__(self, run_dir: str | os.PathLike, *, backend: str = "eager") -> None:
        from seqrec.families.ctr import CTRRun
        from seqrec.serve.split import split_scorer

        self.run = CTRRun(run_dir)
        self.dir = self.run.dir
        self.name = self.run.config.model_name
        self.vocabs = self.run.vocabs
        if "item" not in self.vocabs:
            raise CheckpointError(f"{self.dir}: no vocab_item.json; a ranker must score items")
        self.item_cate = torch.from_numpy(load_item_cate(self.run))
        self.item_index = {str(r): i + 2 for i, r in enumerate(self.vocabs["item"].ids_)}
        self.user_index = ({str(r): i + 2 for i, r in enumerate(self.vocabs["user"].ids_)}
                           if "user" in self.vocabs else {})
        self.cate_ids = ([None, None] + [str(c) for c in self.vocabs["cate"].ids_]
                         if "cate" in self.vocabs else None)
        self.schema = self.run.schema
        bt = self.vocabs.get("btype")
        self.click_code = int(bt.encode(["pv"])[0]) if bt is not None else 1
        self.max_len = self.schema.max_len()
        self.backend = backend
        self.scorer = split_scorer(self.run.model, self.item_cate)
        if backend == "onnx":
            from seqrec.serve.export import OnnxRanker

            self.scorer = OnnxRanker(self.run, self.item_cate)
        elif backend != "eager":
            raise ConfigError(f"ranker backend must be eager or onnx, got {backend!r}")
        self.checksums = run_checksums(self.dir, ("model.pt", "config.json", "schema.json", "vocab_item.json",
                                                  "item_cate.pt", "ranker.onnx"))

    def attributes(self, item_row: int) -> dict:
        if self.cate_ids is None:
            return {}
        return {"category": self.cate_ids[int(self.item_cate[item_row])]}

    def user_batch(self, hist_rows: np.ndarray, user: str | None) -> dict[str, torch.Tensor]:
        """One row of the user-side features: the history (the last ``max_len`` items, oldest
        first and left-aligned, padding 0 after them, as the CTR samples are built), its
        categories, the user (OOV when unknown or absent), other fields OOV."""
        T = self.max_len
        tail = hist_rows[-T:]
        pad = np.zeros(T, np.int64)
        pad[:len(tail)] = tail
        batch: dict[str, torch.Tensor] = {}
        hist = torch.from_numpy(pad)[None]  # (1, T)
        for f in self.schema.sequence_group("hist"):
            if f.table == "item":
                batch[f.name] = hist
            elif f.table == "cate":
                batch[f.name] = self.item_cate[hist]
            else:  # history-only fields (behaviour type): a click ("pv") at every real position
                batch[f.name] = (hist != 0).long() * self.click_code
        for name in self.run.model.inp.f.others:
            code = self.user_index.get(user, 1) if (name == "user" and user is not None) else 1
            batch[name] = torch.tensor([code], dtype=torch.int64)
        for f in self.schema.of_kind("dense"):
            batch[f.name] = torch.zeros(1, f.dim)
        return batch

    def rows(self, raw: list[str]) -> np.ndarray:
        """Ranker item rows of raw ids (1 = unknown to the ranker)."""
        get = self.item_index.get
        return np.fromiter((get(r, 1) for r in raw), dtype=np.int64, count=len(raw))

    def score(self, hist_rows: np.ndarray, user: str | None, items: np.ndarray, *, explain: bool = False,
              threads: int = 0):
        """Logits of ``items`` (ranker rows) for the history; with ``explain`` also the (C, n)
        attention weights of the real history positions (attention models), else None. ``threads``
        > 0: torch's intra-op threads for this call only."""
        prev = torch.get_num_threads()
        if threads and threads != prev:
            torch.set_num_threads(threads)
        try:
            return self._score(hist_rows, user, items, explain)
        finally:
            if threads and threads != prev:
                torch.set_num_threads(prev)

    def _score(self, hist_rows, user, items, explain):
        with torch.inference_mode():
            state = self.scorer.encode(self.user_batch(hist_rows, user))
            it = torch.from_numpy(items)
            logits = self.scorer.score(state, it)
            att = self.scorer.attention(state, it) if explain else None
        return logits.numpy(), (None if att is None else att.numpy())


def load_item_cate(run) -> np.ndarray:
    """The category row of every item row of a CTR run (``item_cate.pt``, written at training;
    runs from before it rebuild it from the data)."""
    from seqrec.train.checkpoint import load_tensors

    path = run.dir / "item_cate.pt"
    if path.is_file():
        return load_tensors(path)["item_cate"].numpy()
    from seqrec.families.ctr import load_task

    return np.asarray(load_task(run.config).item_cate, dtype=np.int64)


class SessionModel:
    """A GRU4Rec run: a click advances the session's stored hidden state by one GRU step."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        from seqrec.families.session import Run
        from seqrec.models.gru4rec import GRU4Rec

        self.run = Run(run_dir)
        self.dir = self.run.dir
        self.name = self.run.config.model_name
        if not isinstance(self.run.model, GRU4Rec) or self.run.model.extra_input:
            raise ConfigError(f"{self.dir}: the session stage needs a GRU4Rec run, got {self.name}")
        self.model = self.run.model.eval()
        self.vocab = self.run.vocab
        self.index = {str(r): i + 2 for i, r in enumerate(self.vocab.ids_)}
        self.state_bytes = 4 * sum(self.model.config.layers)
        self.checksums = run_checksums(self.dir, ("model.pt", "config.json", "vocab.json"))

    def init_state(self) -> list[torch.Tensor]:
        return self.model.init_hidden(1)

    def step(self, state: list[torch.Tensor], item: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(new state, (N,) scores of every item row) after one click."""
        with torch.inference_mode():
            out, new = self.model.step(torch.tensor([item]), state)
            scores = self.model.score_all(out)[0]
        return new, scores

    def top(self, scores: torch.Tensor, k: int) -> tuple[list[str], list[float]]:
        s = scores.clone()
        s[:2] = -torch.inf
        vals, idx = torch.topk(s, min(k, self.vocab.n_known))
        return [str(x) for x in self.vocab.decode(idx.tolist())], vals.tolist()
