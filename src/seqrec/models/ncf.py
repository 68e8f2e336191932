"""Neural Collaborative Filtering: GMF, MLP and NeuMF (He et al., "Neural Collaborative
Filtering", WWW 2017).

Equations implemented (p_u, q_i: user / item embeddings; h: the output weights):

* GMF, eqs. (9)-(10) with a_out = identity on the logit: y(u, i) = h^T (p_u ⊙ q_i). This is an
  inner product of the user vector ``h ⊙ p_u`` with ``q_i`` (``dot_product = True``), so a faiss
  index serves it.
* MLP, eq. (10): z_1 = [p_u, q_i]; z_l = ReLU(W_l z_{l-1} + b_l) for the tower ``layers`` (the
  paper's halving tower, e.g. 2d -> d -> d/2 -> d/4); y(u, i) = h^T z_L.
* NeuMF, eqs. (11)-(12): separate GMF and MLP embeddings; y(u, i) = h^T [p^G_u ⊙ q^G_i ; z_L].
  :meth:`NeuMF.load_pretrained` is the initialisation of sec. 3.4.1: every part from a trained
  GMF and MLP, h = [alpha h^GMF ; (1 - alpha) h^MLP].

The models return logits; sigma (eq. 9's a_out for the log loss, eq. 7) is applied by the loss,
:mod:`seqrec.train.objectives.ncf` (pointwise log loss with sampled negatives, sec. 3.1.1).
Deliberate deviations: the output layers have no bias (a constant per model, it changes no
ranking); the embeddings start from N(0, ``init_std``^2) (the paper: N(0, 0.01^2)), the
linear layers from torch's default uniform init; ``reg`` optionally adds L2 on the embedding
rows a batch uses (the paper's code has none by default).

MLP and NeuMF scores are not inner products, so they override :meth:`score_all`: the first
tower layer on [p_u, q_i] splits into W_u p_u + W_i q_i + b; the item part is computed once per
call for the whole catalogue and broadcast over ``score_chunk`` users at a time, which bounds
the memory to (score_chunk, N + 1, layers[0]) floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.layers.embedding import make_table
from seqrec.layers.mlp import MLP
from seqrec.models.retrieval_base import RetrievalInfo, RetrievalModel


def _check_common(n_negatives: int, reg: float, init_std: float, score_chunk: int) -> None:
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    if not 0 <= reg < math.inf:  # (NaN fails too)
        raise ValueError(f"reg must be a finite number >= 0, got {reg}")
    if not 0 < init_std < math.inf:
        raise ValueError(f"init_std must be a finite number > 0, got {init_std}")
    if score_chunk < 1:
        raise ValueError(f"score_chunk must be >= 1, got {score_chunk}")


def _check_tower(dim: int, layers: tuple[int, ...]) -> None:
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not layers or any(h < 1 for h in layers):
        raise ValueError(f"layers must be a non-empty list of positive sizes, got {list(layers)}")


@dataclass(frozen=True)
class GMFConfig:
    dim: int = 64  # predictive factors (embedding size)
    n_negatives: int = 4  # sampled unobserved items per positive (objective; the paper: 4)
    reg: float = 0.0  # L2 on the embedding rows a batch uses
    init_std: float = 0.01

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        _check_common(self.n_negatives, self.reg, self.init_std, 1)


@dataclass(frozen=True)
class NCFMLPConfig:
    dim: int = 32  # embedding size per side; the tower's input is 2 * dim
    layers: tuple[int, ...] = (32, 16, 8)  # ReLU tower after [p_u, q_i]; the last is the predictive factors
    n_negatives: int = 4
    reg: float = 0.0
    init_std: float = 0.01
    score_chunk: int = 64  # users per broadcast block in score_all

    def __post_init__(self) -> None:
        _check_tower(self.dim, tuple(self.layers))
        _check_common(self.n_negatives, self.reg, self.init_std, self.score_chunk)


@dataclass(frozen=True)
class NeuMFConfig:
    gmf_dim: int = 64
    mlp_dim: int = 32
    layers: tuple[int, ...] = (32, 16, 8)
    n_negatives: int = 4
    reg: float = 0.0
    init_std: float = 0.01
    score_chunk: int = 64
    # sec. 3.4.1 pretraining: run directories of a trained ``gmf`` and ``ncf_mlp`` of the same
    # sizes on the same data ("" = random initialisation); read by the training objective
    pretrained_gmf: str = ""
    pretrained_mlp: str = ""
    alpha: float = 0.5  # h = [alpha h_GMF ; (1 - alpha) h_MLP]

    def __post_init__(self) -> None:
        if self.gmf_dim < 1:
            raise ValueError(f"gmf_dim must be >= 1, got {self.gmf_dim}")
        _check_tower(self.mlp_dim, tuple(self.layers))
        _check_common(self.n_negatives, self.reg, self.init_std, self.score_chunk)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if bool(self.pretrained_gmf) != bool(self.pretrained_mlp):
            raise ValueError("pretraining needs both pretrained_gmf and pretrained_mlp (or neither)")


class _NCFBase(RetrievalModel):
    """Shared parts: user / item tables, the batch's L2 term, the chunked full ranking."""

    needs_user = True  # scores known users only (a user embedding)

    def _embedding(self, rows: int, dim: int, std: float, padding: bool) -> nn.Embedding:
        emb = make_table(rows, dim, padding_idx=0 if padding else None)
        nn.init.normal_(emb.weight, std=std)
        if padding:
            with torch.no_grad():
                emb.weight[0].zero_()
        return emb

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, M) logits of users (B,) against items (B, M)."""
        raise NotImplementedError

    def regularization(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """reg / 2 * (sum of squared user and item rows used), averaged over the batch's users."""
        if not self.config.reg:
            return torch.zeros(())
        sq = sum(t(users).pow(2).sum() for t in self._user_tables()) + \
            sum(t(items).pow(2).sum() for t in self._item_tables())
        return self.config.reg * 0.5 * sq / len(users)

    def _user_tables(self) -> list[nn.Embedding]:
        raise NotImplementedError

    def _item_tables(self) -> list[nn.Embedding]:
        raise NotImplementedError


class _Tower(nn.Module):
    """The MLP part: user / item tables and the ReLU tower over [p_u, q_i]."""

    def __init__(self, model: _NCFBase, info: RetrievalInfo, dim: int, layers: tuple[int, ...], std: float):
        super().__init__()
        self.dim = dim
        self.user = model._embedding(info.n_users, dim, std, padding=False)
        self.item = model._embedding(info.n_items + 1, dim, std, padding=True)
        self.tower = MLP(2 * dim, tuple(layers), act="relu")
        self.out_dim = self.tower.out_dim

    def pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """z_L of every (user, item) pair, the literal eq. (10) on the concatenation: (B, M, H_L)."""
        p = self.user(users)  # (B, D)
        q = self.item(items)  # (B, M, D)
        z = torch.cat([p[:, None, :].expand(-1, q.shape[1], -1), q], dim=-1)  # (B, M, 2D)
        return self.tower(z)

    def all_items(self, users: torch.Tensor, chunk: int):
        """Yields (start, z_L) for ``chunk`` users at a time against every item: (c, N + 1, H_L).

        W_1 [p; q] + b = W_u p + (W_i q + b): the item half once per call, the user half per chunk."""
        first = self.tower.linears()[0]
        w_u, w_i = first.weight[:, :self.dim], first.weight[:, self.dim:]  # (H1, D) each
        item_part = torch.addmm(first.bias, self.item.weight, w_i.T)  # (N + 1, H1)
        user_part = self.user(users) @ w_u.T  # (B, H1)
        rest = self.tower.net[1:]  # ReLU, then the remaining Linear + ReLU layers
        for s in range(0, len(users), chunk):
            z = user_part[s:s + chunk, None, :] + item_part[None, :, :]  # (c, N + 1, H1)
            yield s, rest(z)


class GMF(_NCFBase):
    """Generalised matrix factorisation, eq. (9): h^T (p_u ⊙ q_i)."""

    dot_product = True

    def __init__(self, config: GMFConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.user = self._embedding(info.n_users, config.dim, config.init_std, padding=False)
        self.item = self._embedding(info.n_items + 1, config.dim, config.init_std, padding=True)
        self.out = nn.Linear(config.dim, 1, bias=False)  # h

    def user_vectors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.user(batch["user"]) * self.out.weight[0]  # (B, D): h ⊙ p_u

    def item_vectors(self) -> torch.Tensor:
        return self.item.weight  # (N + 1, D)

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u = self.user_vectors({"user": users})  # (B, D)
        return (u[:, None, :] * self.item(items)).sum(-1)  # (B, M)

    def _user_tables(self):
        return [self.user]

    def _item_tables(self):
        return [self.item]


class NCFMLP(_NCFBase):
    """The MLP instance of NCF, eq. (10)."""

    dot_product = False

    def __init__(self, config: NCFMLPConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.mlp = _Tower(self, info, config.dim, tuple(config.layers), config.init_std)
        self.out = nn.Linear(self.mlp.out_dim, 1, bias=False)  # h

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp.pairs(users, items)).squeeze(-1)  # (B, M)

    def score_all(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        users = batch["user"]
        out = self.out.weight.new_empty(len(users), self.info.n_items + 1)
        h = self.out.weight[0]  # (H_L,)
        for s, z in self.mlp.all_items(users, self.config.score_chunk):
            out[s:s + len(z)] = z @ h  # (c, N + 1)
        return out

    def _user_tables(self):
        return [self.mlp.user]

    def _item_tables(self):
        return [self.mlp.item]


class NeuMF(_NCFBase):
    """Neural matrix factorisation, eqs. (11)-(12): h^T [p^G_u ⊙ q^G_i ; z_L(p^M_u, q^M_i)]."""

    dot_product = False

    def __init__(self, config: NeuMFConfig, info: RetrievalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.gmf_user = self._embedding(info.n_users, config.gmf_dim, config.init_std, padding=False)
        self.gmf_item = self._embedding(info.n_items + 1, config.gmf_dim, config.init_std, padding=True)
        self.mlp = _Tower(self, info, config.mlp_dim, tuple(config.layers), config.init_std)
        self.out = nn.Linear(config.gmf_dim + self.mlp.out_dim, 1, bias=False)  # h = [h_G ; h_M]

    def _h(self) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.out.weight[0]
        return h[:self.config.gmf_dim], h[self.config.gmf_dim:]

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        phi_g = self.gmf_user(users)[:, None, :] * self.gmf_item(items)  # (B, M, Dg)
        phi_m = self.mlp.pairs(users, items)  # (B, M, H_L)
        return self.out(torch.cat([phi_g, phi_m], dim=-1)).squeeze(-1)  # (B, M)

    def score_all(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        users = batch["user"]
        h_g, h_m = self._h()
        out = (self.gmf_user(users) * h_g) @ self.gmf_item.weight.T  # (B, N + 1): the GMF half
        for s, z in self.mlp.all_items(users, self.config.score_chunk):
            out[s:s + len(z)] += z @ h_m  # (c, N + 1)
        return out

    @torch.no_grad()
    def load_pretrained(self, gmf: Mapping[str, torch.Tensor], mlp: Mapping[str, torch.Tensor],
                        alpha: float) -> None:
        """Sec. 3.4.1: embeddings and tower from a trained GMF's and MLP's state dicts, and
        h = [alpha h_GMF ; (1 - alpha) h_MLP]. Shapes are checked by the caller."""
        self.gmf_user.weight.copy_(gmf["user.weight"])
        self.gmf_item.weight.copy_(gmf["item.weight"])
        own = self.mlp.state_dict()
        self.mlp.load_state_dict({k: mlp[f"mlp.{k}"] for k in own})
        self.out.weight.copy_(torch.cat([alpha * gmf["out.weight"], (1.0 - alpha) * mlp["out.weight"]], dim=1))

    def _user_tables(self):
        return [self.gmf_user, self.mlp.user]

    def _item_tables(self):
        return [self.gmf_item, self.mlp.item]
