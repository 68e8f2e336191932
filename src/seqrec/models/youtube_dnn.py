"""YouTube DNN candidate generation (Covington, Adams & Sargin, RecSys 2016, sec. 3).

Recommendation as extreme multiclass classification (sec. 3.1): the probability that the
next watch ``w_t`` of user ``U`` in context ``C`` is item ``i`` is a softmax over the catalogue,

    P(w_t = i | U, C) = exp(v_i . u) / sum_j exp(v_j . u),

where ``u`` is the user vector produced by a feed-forward ReLU tower from (sec. 3.3-3.4, Fig. 3)

    x = [ mean_{h in history} e_h  ;  f_1(user feature 1) ; ... ;  a, a^2, sqrt(a) ]
    u = ReLU(W_L ... ReLU(W_1 x + b_1) ... + b_L)           (the tower, ``layers``)

* ``e_h`` are the input ("watch") embeddings of the history items, averaged over the real
  items (padding 0 masked out; an empty history gives the zero vector);
* ``f_k`` are embeddings of the user's categorical features (ml-100k: age bucket, gender,
  occupation) where :class:`RetrievalInfo.feature_sizes` has them;
* ``a = age / age_scale`` is the example age (days from the training example to the end of the
  training window), fed with its square and square root as in sec. 3.3/4.1 ("we also feed
  x^2 and sqrt(x)"); the family sets it to 0 at serving, so the model learns the time-
  dependence of popularity during training and predicts "now" when serving.

The item (softmax) vectors ``v_i`` are their own table, or the input embeddings (``tie``).
Training: sampled softmax over the catalogue with the logQ correction of Yi et al. (RecSys
2019), :class:`seqrec.train.objectives.next_item.SampledSoftmaxNextItem`; the objective's
settings (``n_negatives``, ``sample_alpha``, ``logq``, ``in_batch``, ``temperature``) are
fields of :class:`YouTubeDNNConfig`. Examples: the next item from the past items
(:func:`seqrec.data.retrieval_sampling.next_item_batches`), so the label never enters ``u``.
Serving is ``u`` against every ``v_i`` (an inner product, served exactly or by a faiss index).

Deliberate deviations (each a config switch, chosen on validation):

* ``project``: the paper's last tower layer *is* the user vector (ReLU, width = softmax
  dimension). With ``project = true`` a linear layer (no ReLU) maps the last ReLU layer to
  ``dim``, which lets user vectors take negative coordinates ("depth 0" of sec. 4.1 is this
  linear map alone, ``layers = []``).
* ``normalize``: user and item vectors L2-normalised (cosine scores, divided by the
  ``temperature`` in the loss), as in Yi et al. sec. 4 and SimpleX; the paper uses raw dots.
* No search tokens, geography or device features (the datasets have none); continuous
  features are scaled by a constant (``age_scale``) instead of the paper's CDF normalisation.
* Histories on BARS item sets (no order) are the user's *other* items (the data module).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.layers.embedding import make_table
from seqrec.models.retrieval_base import RetrievalInfo, RetrievalModel


@dataclass(frozen=True)
class YouTubeDNNConfig:
    dim: int = 64  # item embedding / softmax dimension (= user vector size)
    layers: tuple[int, ...] = (128,)  # ReLU tower widths (paper: 256, 512-256, 1024-512-256, ...)
    project: bool = True  # final linear map to ``dim`` (false: the last ReLU layer is u; its width = dim)
    tie: bool = False  # item (softmax) vectors = the input history embeddings
    feature_dim: int = 8  # width of each user-feature embedding
    use_features: bool = True  # user feature embeddings when the data has features
    example_age: bool = True  # feed a, a^2, sqrt(a) of the example age (0 at serving)
    age_scale: float = 365.0  # days: a = age / age_scale
    normalize: bool = False  # L2-normalise user and item vectors (cosine; use temperature < 1)
    dropout: float = 0.0  # on the tower's input and hidden layers (training only)
    init_std: float = 0.05  # embedding init N(0, init_std)
    reg: float = 0.0  # L2 on the item rows and history rows a batch uses (0 = off)
    # sparse gradients for the item and feature tables: the optimiser's sparse twin (SparseAdam for
    # adam) moves only the rows a batch used, and under torchrun DDP sends those rows, not the tables
    sparse: bool = False
    # objective (seqrec.train.objectives.next_item.SampledSoftmaxNextItem)
    n_negatives: int = 1000  # items drawn per batch from count^sample_alpha, shared by all rows
    sample_alpha: float = 0.0  # 0 = uniform, 1 = popularity (the unigram distribution)
    logq: bool = True  # subtract log Q(j) from every logit (Yi et al. 2019)
    in_batch: bool = False  # also the batch's other targets as negatives (Q = data frequency)
    temperature: float = 1.0  # logits / temperature

    def __post_init__(self) -> None:
        if self.dim < 1 or self.feature_dim < 1:
            raise ValueError("dim and feature_dim must be >= 1")
        if any(w < 1 for w in self.layers):
            raise ValueError(f"layers must be positive widths, got {self.layers}")
        if not self.project and (not self.layers or self.layers[-1] != self.dim):
            raise ValueError(f"project = false needs the last of layers {self.layers} to equal dim = {self.dim} "
                             "(the last ReLU layer is the user vector)")
        if self.age_scale <= 0 or self.init_std <= 0 or self.temperature <= 0:
            raise ValueError("age_scale, init_std and temperature must be > 0")
        if not 0 <= self.dropout < 1 or self.reg < 0:
            raise ValueError("dropout must be in [0, 1) and reg >= 0")
        if self.n_negatives < 0 or (self.n_negatives == 0 and not self.in_batch):
            raise ValueError("n_negatives must be >= 1 (or 0 with in_batch = true)")
        if not 0 <= self.sample_alpha <= 1:
            raise ValueError(f"sample_alpha must be in [0, 1], got {self.sample_alpha}")


class YouTubeDNN(RetrievalModel):
    """Averaged history + user features + example age -> ReLU tower -> user vector (see module doc)."""

    def __init__(self, config: YouTubeDNNConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.item_in = make_table(info.n_items + 1, c.dim, padding_idx=0, sparse=c.sparse)
        nn.init.normal_(self.item_in.weight, std=c.init_std)
        self.item_out = None
        if not c.tie:
            self.item_out = make_table(info.n_items + 1, c.dim, padding_idx=0, sparse=c.sparse)
            nn.init.normal_(self.item_out.weight, std=c.init_std)
        with torch.no_grad():
            self.item_in.weight[0].zero_()
            if self.item_out is not None:
                self.item_out.weight[0].zero_()
        self.feature_names = sorted(info.feature_sizes) if c.use_features else []
        self.features = nn.ModuleDict({k: make_table(info.feature_sizes[k], c.feature_dim, sparse=c.sparse)
                                       for k in self.feature_names})
        for emb in self.features.values():
            nn.init.normal_(emb.weight, std=c.init_std)
        width = c.dim + c.feature_dim * len(self.feature_names) + (3 if c.example_age else 0)
        tower: list[nn.Module] = []
        for w in c.layers:
            tower += [nn.Dropout(c.dropout), nn.Linear(width, w), nn.ReLU()]
            width = w
        if c.project:
            tower += [nn.Dropout(c.dropout), nn.Linear(width, c.dim)]
        self.tower = nn.Sequential(*tower)

    def tower_input(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, dim + features + 3) the concatenated inputs x of the tower."""
        # mean of the real items' embeddings (padding 0 left out of the mean; empty history -> 0)
        mean = F.embedding_bag(batch["history"], self.item_in.weight, mode="mean", padding_idx=0,
                               sparse=self.config.sparse)  # (B, D)
        parts = [mean]
        parts += [self.features[k](batch[f"feat_{k}"]) for k in self.feature_names]  # (B, F) each
        if self.config.example_age:
            a = (batch["age"].to(mean.dtype) / self.config.age_scale).clamp(min=0.0)  # (B,)
            parts.append(torch.stack([a, a * a, a.sqrt()], dim=1))  # (B, 3)
        return torch.cat(parts, dim=1)

    def user_vectors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        u = self.tower(self.tower_input(batch))  # (B, D)
        return F.normalize(u, dim=-1) if self.config.normalize else u

    def item_vectors(self) -> torch.Tensor:
        return self._out(self._table().weight)  # (N + 1, D)

    def item_vectors_of(self, items: torch.Tensor) -> torch.Tensor:
        """(..., D) the vectors of ``items`` only (training: no pass over the whole table)."""
        return self._out(self._table()(items))

    def _table(self) -> nn.Embedding:
        return self.item_in if self.item_out is None else self.item_out

    def _out(self, v: torch.Tensor) -> torch.Tensor:
        return F.normalize(v, dim=-1) if self.config.normalize else v

    def regularization(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """reg * (|v_target|^2 + mean |e_h|^2 over the real history rows) / 2, batch mean."""
        if not self.config.reg:
            return torch.zeros((), device=self.item_in.weight.device)
        out = self._table()(batch["target"])  # (B, D)
        hist = batch["history"]  # (B, L)
        mask = (hist > 0).to(out.dtype)
        h = (self.item_in(hist).pow(2).sum(-1) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B,)
        return self.config.reg * 0.5 * (out.pow(2).sum(-1) + h).mean()
