"""DUPN: Deep User Perception Network (Ni et al. KDD 2018, "Perceive Your Users in Depth:
Learning Universal User Representations from Multiple E-commerce Tasks").

Layers as in the paper's sec. 3 (the seed article ``002`` sec. 2):

* **behaviour embedding** (sec. 3.2): behaviour i = <item_i, property_i>; the item part
  concatenates the embeddings of the item and its side information (here the category; the
  sample has no shop, brand or tags), the property part those of the behaviour type and the time
  gap to the prediction time (log2-minute buckets; the sample has no scenario);
* **LSTM** (sec. 3.3, eq. 1-5) over the behaviour vectors [item_i; property_i] in time order,
  hidden states h_i (DUPN-all: the property enters the LSTM ...);
* **attention** (sec. 3.4, eq. 6-7): a_i = softmax_i(MLP([h_i; property_i; q; u])) over the real
  positions (... and the attention net), with q the query embedding (zero where a task has no
  query) and u the user profile embedding; the pooled vector Σ a_i h_i concatenated with u is
  **the user representation** r;
* **one head per task** (sec. 3.5): an MLP on [r; item part of the candidate] (the item
  embeddings are shared with the behaviour layer, as the paper says for CTR), zero for a task
  without a candidate (purchase intent), ending in one logit. The paper's L2R head learns weights
  of 26 hand-made ranking features; the sample has none, so L2R is a logit head like CTR's.

Batch normalisation (the talk's pitfall, article sec. 4.3): each head has BatchNorm after its
hidden Linear layers; in training a head normalises **only the rows of its own task** (a batch
column ``task``), so its running statistics are those of the task's samples, and in eval mode it
uses those running statistics: a row's output never depends on the batch it is scored in (tested).

Model split (the paper's sec. 4.2): :meth:`DUPN.represent` computes r once per (user, query);
:meth:`DUPN.score_candidates` runs a head over any number of candidates with it.
``freeze_representation`` (the transfer experiment's RT) trains the heads only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.embedding import FeatureEmbedding
from seqrec.models.multitask_base import MultiTaskConfig, MultiTaskOutput, mlp
from seqrec.schema import Schema

ITEM_PART = ("item", "cate")  # candidate features, paired with hist_item / hist_cate
HIST_ITEM_PART = ("hist_item", "hist_cate")
HIST_PROPERTY = ("hist_btype", "hist_gap")


@dataclass(frozen=True)
class DUPNConfig(MultiTaskConfig):
    embedding_dim: int = 16
    lstm_hidden: int = 64  # the paper: 128 on Taobao's logs; the sample has 814 users
    att_hidden: tuple[int, ...] = (32,)
    tower_hidden: tuple[int, ...] = (64,)
    batch_norm: bool = True
    init_std: float = 1e-2
    freeze_representation: bool = False  # transfer RT: embeddings, LSTM and attention stay fixed
    # not in the paper (the benchmark's ``dupn+cand`` row): the attention context also gets the
    # candidate's category, so r depends on (user, query, candidate category) — DIN-like target
    # attention at category level; the split then computes r once per candidate category
    candidate_attention: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lstm_hidden < 1 or not self.att_hidden:
            raise ValueError("lstm_hidden must be >= 1 and att_hidden non-empty")


class DUPN(nn.Module):
    def __init__(self, config: DUPNConfig, schema: Schema, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.config, self.tasks = config, tuple(tasks)
        need = {"user", "query", *ITEM_PART, *HIST_ITEM_PART, *HIST_PROPERTY}
        missing = need - {f.name for f in schema.features}
        if missing:
            raise ValueError(f"DUPN needs the features {sorted(missing)} (the Taobao multi-task schema)")
        self.schema = schema.with_dim(config.embedding_dim)
        self.emb = FeatureEmbedding(self.schema, init_std=config.init_std)
        d = config.embedding_dim
        self.item_dim, self.prop_dim = len(ITEM_PART) * d, len(HIST_PROPERTY) * d
        h = config.lstm_hidden
        self.lstm = nn.LSTM(self.item_dim + self.prop_dim, h, batch_first=True)
        ctx = (3 if config.candidate_attention else 2) * d
        self.att = mlp(h + self.prop_dim + ctx, config.att_hidden, _no_bn(config), out_dim=1)
        self.repr_dim = h + d
        self.heads = nn.ModuleDict({t: mlp(self.repr_dim + self.item_dim, config.tower_hidden, config, out_dim=1)
                                    for t in self.tasks})
        if config.freeze_representation:
            for m in (self.emb, self.lstm, self.att):
                m.requires_grad_(False)

    # -- the user representation --------------------------------------------------------------
    def represent(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(r (B, repr_dim), attention weights (B, T), zero at padding)."""
        e = self.emb.group(batch, list(HIST_ITEM_PART))  # (B, T, 2d)
        p = self.emb.group(batch, list(HIST_PROPERTY))  # (B, T, 2d)
        mask = batch["hist_item"] != 0  # (B, T), real behaviours first (left-aligned)
        hs, _ = self.lstm(torch.cat([e, p], -1))  # (B, T, H); padding after the real steps
        u = self.emb.lookup(batch, "user")  # (B, d)
        q = self.emb.lookup(batch, "query")  # (B, d), zero for "no query" (id 0)
        T = hs.shape[1]
        ctx = [u, q] + ([self.emb.lookup(batch, "cate")] if self.config.candidate_attention else [])
        ctx = torch.cat(ctx, -1).unsqueeze(1).expand(-1, T, -1)
        score = self.att(torch.cat([hs, p, ctx], -1)).squeeze(-1)  # (B, T)
        score = score.masked_fill(~mask, float("-inf"))
        w = torch.softmax(score, 1).nan_to_num(0.0)  # a user without history: all zero
        pooled = torch.bmm(w.unsqueeze(1), hs).squeeze(1)  # (B, H)
        return torch.cat([pooled, u], -1), w

    def candidate(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.emb.group(batch, list(ITEM_PART))  # (B, 2d), zero for "no candidate"

    # -- heads --------------------------------------------------------------------------------
    def heads_logits(self, r: torch.Tensor, cand: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_tasks) logits. In training with a ``task`` column each head sees only its own
        task's rows (its BatchNorm statistics are that task's); the other entries are 0."""
        x = torch.cat([r, cand], -1)
        if not self.training or task is None:
            return torch.cat([self.heads[t](x) for t in self.tasks], 1)
        # zeros tied to the graph: a batch whose only rows a BatchNorm head cannot take (one row)
        # still gives a loss that backpropagates (a zero gradient)
        out = x.new_zeros(x.shape[0], len(self.tasks)) + 0.0 * x.sum()
        for k, t in enumerate(self.tasks):
            rows = torch.nonzero(task == k).squeeze(1)
            if len(rows) > 1 or (len(rows) == 1 and not self.config.batch_norm):
                out = out.index_put((rows, torch.full_like(rows, k)), self.heads[t](x[rows]).squeeze(-1))
        return out

    def forward(self, batch: Mapping[str, torch.Tensor]) -> MultiTaskOutput:
        r, _ = self.represent(batch)
        return MultiTaskOutput(self.heads_logits(r, self.candidate(batch), batch.get("task")))

    @torch.no_grad()
    def score_candidates(self, r: torch.Tensor, item: torch.Tensor, cate: torch.Tensor, task: str) -> torch.Tensor:
        """The split model: logits (U, C) of task ``task`` for every user representation r (U, R)
        and candidate (C,) — r computed once by :meth:`represent`, the head run per candidate."""
        if self.config.candidate_attention and bool((cate != cate[0]).any()):
            raise ValueError("candidate_attention: r depends on the candidate's category; score the "
                             "candidates of one category with the r computed for it")
        cand = torch.cat([self.emb.tables["item"](item), self.emb.tables["cate"](cate)], -1)  # (C, 2d)
        U, C = r.shape[0], cand.shape[0]
        x = torch.cat([r.unsqueeze(1).expand(U, C, -1), cand.unsqueeze(0).expand(U, C, -1)], -1)
        return self.heads[task](x.reshape(U * C, -1)).reshape(U, C)


def _no_bn(cfg: MultiTaskConfig) -> MultiTaskConfig:
    """The attention MLP has no BatchNorm (its rows are behaviours, not samples)."""
    return dataclasses.replace(cfg, batch_norm=False)
