"""A DUPN run as the service's ranker (the paper's model split, Ni et al. KDD 2018 sec. 7.2).

Per request the user representation r (the behaviour LSTM and the attention over it) is computed
**once** (:meth:`seqrec.models.dupn.DUPN.represent`) and one task head scores every candidate with
it (:meth:`~seqrec.models.dupn.DUPN.score_candidates`); the variant's ``ranker_task`` names the head
(``ctr`` by default: the first task of a run trained on the four joint tasks).

A request carries item ids only, so the history's side information is what the service knows:
each item's category from the run (``item_cate.pt``), behaviour type "pv" for every behaviour, and
the time gap bucket of "now" (the behaviours' times are not sent; the gap of a behaviour of the
last minutes). The query is empty (a feed, not a search). A run whose representation depends on the
candidate (``candidate_attention``) cannot be split this way and is refused. Daily updates are new
run directories (``benchmarks/dupn_incremental.py``); pointing the pipeline file's ``ranker`` at
the next one and calling ``POST /admin/reload`` swaps it in (tested).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from seqrec.errors import CheckpointError, ConfigError
from seqrec.serve.stages import Ranker, run_checksums

NOW_GAP = 2  # gap bucket of a behaviour 0-1 minutes before the cut (seqrec.data.tasks.taobao_multitask)
PV = 2  # behaviour type id of a page view


class DUPNRanker(Ranker):
    """The Ranker interface (``rows``, ``attributes``, ``score``) over a DUPN run's task head."""

    def __init__(self, run_dir: str | os.PathLike, task: str = "") -> None:
        from seqrec.data.vocab import Vocab
        from seqrec.families.multitask import MultiTaskRun
        from seqrec.models.dupn import DUPN
        from seqrec.train.checkpoint import load_tensors

        self.run = MultiTaskRun(run_dir)
        self.dir = self.run.dir
        model = self.run.model
        if not isinstance(model, DUPN):
            raise ConfigError(f"{self.dir}: a multi-task ranker must be a DUPN run, got {self.run.config.model_name}")
        if model.config.candidate_attention:
            raise ConfigError(f"{self.dir}: candidate_attention makes r depend on the candidate's category; "
                              "the service computes r once per request")
        self.task = task or self.run.tasks[0]
        if self.task not in self.run.tasks:
            raise ConfigError(f"ranker_task {self.task!r} is not a task of {self.dir}; its tasks are "
                              f"{list(self.run.tasks)}")
        self.name = f"dupn[{self.task}]"
        self.vocabs = {}
        for name in ("item", "cate", "user"):
            path = self.dir / f"vocab_{name}.json"
            if not path.is_file():
                raise CheckpointError(f"{self.dir}: {path.name} is missing (runs trained before vocabularies were "
                                      "saved with multi-task runs cannot be served; train it again)")
            self.vocabs[name] = Vocab.load(path)
        self.item_cate = load_tensors(self.dir / "item_cate.pt")["item_cate"]
        self.item_index = {str(r): i + 2 for i, r in enumerate(self.vocabs["item"].ids_)}
        self.user_index = {str(r): i + 2 for i, r in enumerate(self.vocabs["user"].ids_)}
        self.cate_ids = [None, None] + [str(c) for c in self.vocabs["cate"].ids_]
        self.schema = self.run.schema
        self.max_len = self.schema.max_len()
        self.backend = "eager"
        self.model = model.eval()
        self.checksums = run_checksums(self.dir, ("model.pt", "config.json", "schema.json", "tasks.json",
                                                  "vocab_item.json", "item_cate.pt"))

    def user_batch(self, hist_rows: np.ndarray, user: str | None) -> dict[str, torch.Tensor]:
        """One row: the last ``max_len`` items (left-aligned, oldest first), their categories, "pv"
        and the "now" gap at real positions; no query, no candidate; the user (OOV when unknown)."""
        tail = hist_rows[-self.max_len:]
        pad = np.zeros(self.max_len, np.int64)
        pad[:len(tail)] = tail
        hist = torch.from_numpy(pad)[None]
        real = (hist != 0).long()
        one = torch.ones(1, dtype=torch.int64)
        return {"hist_item": hist, "hist_cate": self.item_cate[hist], "hist_btype": real * PV,
                "hist_gap": real * NOW_GAP, "query": 0 * one, "item": 0 * one, "cate": 0 * one,
                "user": one * (self.user_index.get(user, 1) if user is not None else 1)}

    def _score(self, hist_rows, user, items, explain):
        with torch.inference_mode():
            batch = self.user_batch(hist_rows, user)
            r, w = self.model.represent(batch)
            it = torch.from_numpy(items)
            logits = self.model.score_candidates(r, it, self.item_cate[it], self.task)[0]
            att = None
            if explain:
                n = int((batch["hist_item"] != 0).sum())
                att = w[0, :n].expand(len(it), n)  # one weight per behaviour, the same for every candidate
        return logits.numpy(), (None if att is None else att.numpy())
