"""Model split for CTR rankers: the item side once at load, the user side once per request.

A ranker scores C candidates for one user. Every CTR model's forward takes C full samples, each
carrying the same history, so the naive path embeds and encodes that history C times. Here:

* the **item side** (:meth:`SplitScorer.__init__`): every item's candidate vector q (its target
  embeddings: item, and the item's category) and, where the first layer of an MLP is linear in
  q, q's share of that layer, computed for the whole catalogue once;
* the **user side** (:meth:`encode`): the history's embeddings, what is computed from them alone
  (DIEN's interest-extractor GRU states, the sum-pooled history), the user / context fields'
  share of the final MLP's first layer;
* the **candidates** (:meth:`score`): only what depends on q.

DIN (:class:`DINSplit`): the activation unit's first layer is linear in [k, q, k - q, k ⊙ q], so
it splits into a key term (once per behaviour), a query term and the bilinear term (one matrix
product for all candidates; :meth:`seqrec.layers.attention.ActivationUnit.weights_many`); the
final MLP's first layer splits the same way over [q, v, other, Σk, q ⊙ Σk]. DIEN
(:class:`DIENSplit`): the extractor GRU runs once; the attention and the AUGRU, which depend on
the candidate, run for all candidates as one batch over the shared states. Any other CTR model
(:class:`ExpandScorer`) gets the user's tensors broadcast to the candidates (views, no copies)
and its own forward.

All three return the logits of ``model(batch)`` on the C full samples, to float rounding
(tests/serve/test_split.py: max abs diff <= 1e-5 on real histories).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from seqrec.errors import ConfigError
from seqrec.layers.dice import Dice
from seqrec.models.ctr_base import sum_product

_CACHE_FLOATS = 1 << 18  # 1 MiB of float32 (the L2 cache of one core here)


def candidate_features(model: nn.Module, item_cate: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per target feature of a CTR model, the code of every item row: ``item`` -> the row itself,
    ``cate`` -> the item's category (``item_cate``); other target features cannot be derived from
    the item and are refused."""
    rows = torch.arange(len(item_cate), dtype=torch.int64)
    out = {}
    for name in model.inp.f.targets:
        if name == "item":
            out[name] = rows
        elif name == "cate":
            out[name] = item_cate
        else:
            raise ConfigError(f"the ranker's candidate feature {name!r} is not derived from the item id; "
                              "serving knows item and cate only")
    return out


def candidate_batch(feats: Mapping[str, torch.Tensor], items: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.index_select(0, items) for k, v in feats.items()}


class ExpandScorer:
    """Any CTR model: the user's tensors broadcast over the candidates (views), one forward."""

    kind = "expand"

    def __init__(self, model: nn.Module, item_cate: torch.Tensor) -> None:
        self.model = model.eval()
        self.feats = candidate_features(model, item_cate)

    def encode(self, user: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(user)

    def score(self, state: Mapping[str, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        C = len(items)
        batch = {k: v.expand(C, *v.shape[1:]) for k, v in state.items()}
        batch.update(candidate_batch(self.feats, items))
        return self.model(batch).logits

    def attention(self, state, items) -> torch.Tensor | None:
        return None


def user_other(inp, user: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(1, O) the user / context fields and dense features of a user-side batch."""
    return inp.other({**user, inp.f.targets[0]: torch.zeros(1, dtype=torch.int64)})


def _split_first_layer(linear: nn.Linear, widths: list[int]) -> list[torch.Tensor]:
    """The first layer's weight split by input block: [(H, w) for w in widths]."""
    return list(linear.weight.split(widths, dim=1))


class DINSplit:
    """DIN (:class:`seqrec.models.din.DIN`) split into item side, user side and candidates."""

    kind = "din"

    def __init__(self, model: nn.Module, item_cate: torch.Tensor) -> None:
        self.model = model.eval()
        self.feats = candidate_features(model, item_cate)
        cfg, inp = model.config, model.inp
        with torch.no_grad():
            self.q_all = inp.query(self.feats).contiguous()  # (R, D) every item's candidate vector
            self.bias_all = (model.item_bias.b.weight.squeeze(-1).clone() if model.item_bias is not None
                             else None)  # (R,)
            d, o = inp.key_dim, inp.other_dim
            first = model.mlp.net[0]
            widths = [d, d, o] + ([d, d] if cfg.sum_product else [])
            w = _split_first_layer(first, widths)
            self.w_v, self.w_o = w[1], w[2]  # (H1, D), (H1, O)
            self.w_s, self.w_qs = (w[3], w[4]) if cfg.sum_product else (None, None)
            self.p_all = (self.q_all @ w[0].T).contiguous()  # (R, H1): q's share of the first layer
            self.b1 = first.bias
        self.rest = _EvalStack(model.mlp.net[1:])
        self.softmax = cfg.att_softmax
        self.att_rest = _EvalStack(model.att.mlp.net[1:])  # after the activation unit's first layer

    def encode(self, user: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``user``: one row of the user-side features (history, user / context fields)."""
        inp = self.model.inp
        k, mask = inp.keys(user)  # (1, T, D), (1, T)
        kr = k[0][mask[0]]  # (n, D) the real behaviours
        d = kr.shape[1]
        # [q, 1] @ m[t] is the activation unit's first layer for behaviour t and candidate q
        m = self.model.att.key_terms(kr)  # (n, D + 1, Ha)
        n, ha = m.shape[0], m.shape[2]
        c = self.b1 + (user_other(inp, user)[0] @ self.w_o.T if self.w_o.shape[1] else 0.0)  # (H1,)
        state = {"kr": kr, "m": m.permute(1, 0, 2).reshape(d + 1, n * ha).contiguous(), "n": n, "ha": ha,
                 # v W_v^T = w (kr W_v^T): the pooled interest's share of the final MLP's first layer
                 # from the (C, n) weights directly (n x H1 once, then C x n x H1 instead of C x D x H1)
                 "kv": (kr @ self.w_v.T).contiguous()}  # (n, H1)
        if self.w_s is not None:
            s = kr.sum(0)  # (D,)
            c = c + s @ self.w_s.T
            state["m_qs"] = s[:, None] * self.w_qs.T  # (D, H1): (q ⊙ s) W_qs^T = q @ m_qs
        state["c"] = c
        return state

    def attention(self, state, items: torch.Tensor) -> torch.Tensor:
        """(C, n) the activation unit's weights of each real behaviour for each candidate."""
        q = self.q_all.index_select(0, items)  # (C, D)
        C, n, ha = len(items), state["n"], state["ha"]
        if n == 0:
            return q.new_zeros(C, 0)
        q1 = torch.cat([q, q.new_ones(C, 1)], 1)  # (C, D + 1)
        # blocks of candidates whose (block * n, Ha) activations stay in cache: the elementwise
        # passes of Dice over one (C * n, Ha) matrix measured ~3x slower per element at n = 20
        block = max(32, _CACHE_FLOATS // (n * ha))
        w = q.new_empty(C, n)
        for i in range(0, C, block):
            h = torch.mm(q1[i:i + block], state["m"]).view(-1, ha)  # (block * n, Ha)
            w[i:i + block] = self.att_rest(h).view(-1, n)
        return torch.softmax(w, 1) if self.softmax else w

    def score(self, state, items: torch.Tensor) -> torch.Tensor:
        w = self.attention(state, items)  # (C, n)
        h = self.p_all.index_select(0, items).add_(state["c"])  # (C, H1): q's and the user's shares
        h.addmm_(w, state["kv"])  # + v W_v^T
        if "m_qs" in state:
            h.addmm_(self.q_all.index_select(0, items), state["m_qs"])  # + (q ⊙ Σk) W_qs^T
        logits = self.rest(h).squeeze(-1)  # (C,)
        return logits if self.bias_all is None else logits + self.bias_all.index_select(0, items)


class DIENSplit:
    """DIEN (:class:`seqrec.models.dien.DIEN`): the extractor GRU once per user; attention and the
    AUGRU for all candidates in one batch over the shared states."""

    kind = "dien"

    def __init__(self, model: nn.Module, item_cate: torch.Tensor) -> None:
        self.model = model.eval()
        self.feats = candidate_features(model, item_cate)
        with torch.no_grad():
            self.q_all = model.inp.query(self.feats).contiguous()  # (R, D)

    def encode(self, user: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inp, model = self.model.inp, self.model
        k, mask = inp.keys(user)  # (1, T, D), (1, T)
        h = model.extractor(k, mask)  # (1, T, H)
        return {"k": k, "mask": mask, "h": h, "other": user_other(inp, user)}

    def attention(self, state, items: torch.Tensor) -> torch.Tensor:
        """(C, n) the attention of each candidate over the real behaviours."""
        return self._attention(state, items)[:, state["mask"][0]]

    def _attention(self, state, items: torch.Tensor) -> torch.Tensor:
        model, q = self.model, self.q_all.index_select(0, items)
        h, mask = state["h"], state["mask"]
        C = len(items)
        if model.config.attention == "mlp":
            return model.att.weights_many(q[None], h, mask)[0]  # (C, T)
        scores = (model.att_w(q) @ h[0].T)  # (C, T)
        return torch.softmax(scores.masked_fill(~mask.expand(C, -1), -torch.inf), 1).nan_to_num(0.0)

    def score(self, state, items: torch.Tensor) -> torch.Tensor:
        model, q = self.model, self.q_all.index_select(0, items)
        C = len(items)
        a = self._attention(state, items)  # (C, T)
        h, mask = state["h"], state["mask"]
        final = model.evolve(h.expand(C, -1, -1), a, mask.expand(C, -1))  # (C, H)
        parts = [q, final, state["other"].expand(C, -1)]
        if model.config.sum_product:
            parts.append(sum_product(q, state["k"].expand(C, -1, -1), mask.expand(C, -1)))
        logits = model.mlp(torch.cat(parts, 1)).squeeze(-1)
        batch = candidate_batch(self.feats, items)
        return logits if model.item_bias is None else logits + model.item_bias(batch)


class _EvalStack:
    """An MLP's layers after its first, for inference: Linear layers as (in-place) matrix products
    and Dice with its running moments folded into constants once (Dice's own eval path recomputes
    them per call: ~15 small ops per block, which added up to milliseconds per request)."""

    def __init__(self, layers: nn.Sequential) -> None:
        self.ops = []
        with torch.no_grad():
            for m in layers:
                if isinstance(m, Dice):
                    self.ops.append(("dice", *(t.clone() for t in m.folded())))
                elif isinstance(m, nn.Linear) and m.out_features == 1:
                    self.ops.append(("dot", m.weight[0].detach().clone(), float(m.bias[0]) if m.bias is not None
                                     else 0.0))
                elif isinstance(m, nn.Linear):
                    self.ops.append(("linear", m.weight.detach().T.contiguous(), m.bias.detach().clone()))
                elif isinstance(m, nn.Dropout):
                    continue
                else:
                    self.ops.append(("module", m))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            kind = op[0]
            if kind == "dice":
                x = Dice.apply_folded(x, op[1:])
            elif kind == "linear":
                x = torch.addmm(op[2], x, op[1])
            elif kind == "dot":
                x = torch.mv(x, op[1]).add_(op[2])[:, None]
            else:
                x = op[1](x)
        return x


def split_scorer(model: nn.Module, item_cate: torch.Tensor):
    """The split scorer of a CTR model: DIN's and DIEN's own, the broadcast forward otherwise."""
    from seqrec.models.dien import DIEN
    from seqrec.models.din import DIN

    if isinstance(model, DIN):
        return DINSplit(model, item_cate)
    if isinstance(model, DIEN):
        return DIENSplit(model, item_cate)
    return ExpandScorer(model, item_cate)


def naive_scores(model: nn.Module, user: Mapping[str, torch.Tensor], item_cate: torch.Tensor,
                 items: torch.Tensor, *, per_candidate: bool = False) -> torch.Tensor:
    """The unsplit reference: C full samples (the history copied per candidate) in one forward, or
    ``per_candidate``: one forward of one sample per candidate."""
    feats = candidate_features(model, item_cate)
    if per_candidate:
        out = []
        for i in items.tolist():
            b = dict(user)
            b.update(candidate_batch(feats, torch.tensor([i])))
            out.append(model(b).logits)
        return torch.cat(out)
    C = len(items)
    batch = {k: v.repeat(C, *([1] * (v.dim() - 1))) for k, v in user.items()}
    batch.update(candidate_batch(feats, items))
    return model(batch).logits
