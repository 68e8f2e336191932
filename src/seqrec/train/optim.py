"""Optimisers that update only the item-table rows a step touched.

GRU4Rec's item tables (output weights, input embedding) have tens of
thousands of rows but a step uses ~B + n_sample of them. The trainer gathers
those rows (see :mod:`seqrec.train.rows`) and hands their gradients to
``step_rows``, which updates just those rows and their optimiser state, so a
step costs O(rows used), not O(catalogue). Dense parameters go through
``step`` as usual (parameters without ``.grad`` are skipped). Both paths run
the fused kernels of :mod:`seqrec.kernels.optim` (one pass per row).

The names are those of ``train.optimizer``, with the same meaning in every model family
(the CTR trainer builds the same optimisers, see :mod:`seqrec.train.ctr_trainer`):

* ``adagrad-momentum``, :class:`AdagradM` — Adagrad with momentum, the optimiser of the
  GRU4Rec reference settings: acc += g²;  v = μ v + lr g / sqrt(acc + ε);  w -= v
  (ε = 1e-6 inside the root). Rows a step does not use keep their velocity and do not move.
* ``adagrad``, :class:`Adagrad` — plain Adagrad (Duchi, Hazan & Singer, JMLR 2011) with
  torch's semantics: acc += g²;  w -= lr g / (sqrt(acc) + ε), ε = 1e-10 outside the root,
  no momentum. Updating only the used rows is exact here: a row with a zero gradient would
  not move in a dense step either. (The same kernels as AdagradM with momentum 0; they keep
  a velocity table that this rule multiplies by 0.)
* ``adam``, :class:`LazyAdam` — Adam (Kingma & Ba 2015); row updates touch moments only at
  the used rows (like ``torch.optim.SparseAdam``); bias correction uses the
  optimiser's global step count.

``step`` also takes sparse gradients (``nn.Embedding(sparse=True)`` in the CTR models): their
rows go through the row update.

The fused GRU4Rec step calls the kernels every ~6 ms, so it binds its
parameters once (:meth:`_RowOptimizer.bind`): numpy views of each parameter,
its state and a fixed gradient buffer, and the parameter's group, rebuilt only
after ``load_state_dict`` replaces the state. Looking them up per step
(``_group_of``, ``detach().numpy()`` of four arrays per parameter) was a
measurable share of the step (see :mod:`seqrec.kernels.gru4rec_step`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from seqrec.kernels.optim import (
    ScatterScratch,
    adagradm_dense,
    adagradm_rows,
    adagradm_scatter,
    adam_dense,
    adam_rows,
    adam_scatter,
    as_2d,
    set_threads,
)

_EMPTY = np.empty(0, dtype=np.float32)


class _RowOptimizer(torch.optim.Optimizer):
    """Shared plumbing: state per parameter, dense step = all rows."""

    _state_names: tuple[str, ...] = ()
    _version = 0  # bumped when load_state_dict replaces the state tensors (bindings rebuild)

    def load_state_dict(self, state_dict) -> None:  # noqa: D102
        super().load_state_dict(state_dict)
        self._version += 1

    def bind(self, params: list[torch.Tensor], grads: list[torch.Tensor] | None = None) -> Binding:
        """Cached views for :meth:`step_bound` (dense) or :meth:`step_scatter_bound` (rows).

        ``grads``: one fixed gradient buffer per parameter (dense steps), written by the caller
        before each :meth:`step_bound`.
        """
        return Binding(self, params, grads)

    @torch.no_grad()
    def step_bound(self, b: Binding) -> None:
        """One optimiser step of the bound dense parameters from their gradient buffers."""
        self._tick()
        for group, views in b.views():
            sc = self._scalars(group)
            for v in views:
                self._dense_kernel(*v, *sc)

    @torch.no_grad()
    def step_scatter_bound(self, b: Binding, idx: torch.Tensor, grad: torch.Tensor,
                           scratch: ScatterScratch, bias_grad: torch.Tensor | None = None) -> int:
        """:meth:`step_scatter` for a binding of ``[table]`` or ``[table, bias]`` (bias_grad given)."""
        ((group, (tab, *bias)),) = b.views()
        g = grad.numpy()
        sc = scratch.ensure(idx.shape[0], g.shape[1])
        if bias:
            bvs, bg = bias[0], bias_grad.numpy()
        else:
            bvs, bg = (_EMPTY,) * (len(self._state_names) + 1), _EMPTY
        return self._scatter(*tab, *bvs, idx.numpy(), g, bg, sc, group)

    def _state(self, p: torch.Tensor) -> dict:
        st = self.state[p]
        if not st:
            for name in self._state_names:
                st[name] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        return st

    def _group_of(self, p: torch.Tensor) -> dict:
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                return group
        raise KeyError("parameter is not managed by this optimizer")

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        with_grad = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.step_dense([(p, p.grad) for p in with_grad if not p.grad.is_sparse])
        for p in with_grad:
            if p.grad.is_sparse:  # the rows the batch used, each once (coalesced)
                g = p.grad.coalesce()
                self.step_rows(p, g.indices()[0], g.values())

    @torch.no_grad()
    def step_dense(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """One optimiser step for parameters given with their gradients (no ``.grad`` needed)."""
        self._tick()
        for p, g in pairs:
            self._dense(p, self._group_of(p), _flat(g.contiguous()))

    @torch.no_grad()
    def step_rows(self, p: torch.Tensor, idx: torch.Tensor, grad: torch.Tensor) -> None:
        """Update rows ``idx`` (unique, (R,)) of ``p`` with their gradient ``grad`` (R, ...)."""
        self._update(p, self._group_of(p), idx.numpy(), as_2d(grad.contiguous()))

    @torch.no_grad()
    def step_scatter(
        self,
        table: torch.Tensor,
        idx: torch.Tensor,
        grad: torch.Tensor,
        scratch: ScatterScratch,
        bias: torch.Tensor | None = None,
        bias_grad: torch.Tensor | None = None,
    ) -> int:
        """Update the distinct rows of ``idx`` (duplicates allowed) of ``table`` (N, D).

        ``grad`` (K, D) has one row per entry of ``idx``; entries with the same
        index are summed. With ``bias`` (N,), its rows get ``bias_grad`` (K_b,),
        K_b <= K, the gradients of the first K_b entries, the same way; a row
        whose entries all lie beyond K_b keeps its bias and bias state (an
        input row of a shared table, which has no bias term). Returns the number
        of distinct rows updated.
        """
        tables = [table] if bias is None else [table, bias]
        bg = None if bias is None else bias_grad.detach().contiguous()
        return self.step_scatter_bound(self.bind(tables), idx, grad.detach().contiguous(), scratch, bg)

    def _tick(self) -> None:
        pass

    def _dense(self, p, group, g) -> None:
        st = self._state(p)
        self._dense_kernel(_flat(p), *(_flat(st[n]) for n in self._state_names), g, *self._scalars(group))


class AdagradM(_RowOptimizer):
    _state_names = ("acc", "vel")

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.0, eps: float = 1e-6) -> None:
        set_threads(torch.get_num_threads())
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "eps": eps})

    def _scalars(self, group) -> tuple:
        """(lr, momentum, ε inside the root, ε outside it)."""
        return _f32(group["lr"], group["momentum"], group["eps"], 0.0)

    def _update(self, p, group, idx, g) -> None:
        st = self._state(p)
        adagradm_rows(as_2d(p), as_2d(st["acc"]), as_2d(st["vel"]), idx, g, *self._scalars(group))

    _dense_kernel = staticmethod(adagradm_dense)

    def _scatter(self, p, acc, vel, pb, accb, velb, idx, g, bg, sc, group) -> int:
        return adagradm_scatter(p, acc, vel, pb, accb, velb, idx, g, bg, sc.slot, sc.uniq,
                                sc.first, sc.last, sc.nxt, sc.buf, sc.bsum, *self._scalars(group))


class Adagrad(AdagradM):
    """Plain Adagrad with torch's rule, w -= lr g / (sqrt(acc) + ε) (see the module docstring)."""

    def __init__(self, params, lr: float = 0.01, eps: float = 1e-10) -> None:
        super().__init__(params, lr=lr, momentum=0.0, eps=eps)

    def _scalars(self, group) -> tuple:
        return _f32(group["lr"], 0.0, 0.0, group["eps"])


class LazyAdam(_RowOptimizer):
    _state_names = ("m", "v")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        set_threads(torch.get_num_threads())
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        self.t = 0

    def _tick(self) -> None:
        self.t += 1

    def _scalars(self, group) -> tuple:
        b1, b2 = group["betas"]
        t = max(self.t, 1)
        corr = group["lr"] * math.sqrt(1 - b2**t) / (1 - b1**t)
        return _f32(corr, b1, b2, group["eps"])

    def _update(self, p, group, idx, g) -> None:
        st = self._state(p)
        adam_rows(as_2d(p), as_2d(st["m"]), as_2d(st["v"]), idx, g, *self._scalars(group))

    _dense_kernel = staticmethod(adam_dense)

    def _scatter(self, p, m, v, pb, mb, vb, idx, g, bg, sc, group) -> int:
        return adam_scatter(p, m, v, pb, mb, vb, idx, g, bg, sc.slot, sc.uniq,
                            sc.first, sc.last, sc.nxt, sc.buf, sc.bsum, *self._scalars(group))

    def state_dict(self):
        sd = super().state_dict()
        sd["t"] = self.t
        return sd

    def load_state_dict(self, state_dict):
        self.t = state_dict.pop("t", 0)
        super().load_state_dict(state_dict)


class Binding:
    """Numpy views of parameters (and their optimiser state and gradient buffers) for the
    ``*_bound`` steps; rebuilt when the optimiser's state is replaced (``load_state_dict``)."""

    def __init__(self, opt: _RowOptimizer, params: list[torch.Tensor], grads: list[torch.Tensor] | None) -> None:
        if grads is not None and [g.shape for g in grads] != [p.shape for p in params]:
            raise ValueError("bind: one gradient buffer of each parameter's shape is needed")
        self.opt, self.params, self.grads = opt, list(params), grads
        self._version = -1
        self._views: list = []

    def views(self) -> list:
        """[(group, [one tuple of arrays per parameter])]: dense bindings (with gradient buffers)
        split by parameter group, flat arrays (param, state..., grad); row bindings one entry
        in the first parameter's group, (param, state...) in their own shapes."""
        opt = self.opt
        if self._version == opt._version:
            return self._views
        by_group: dict[int, tuple] = {}
        for i, p in enumerate(self.params):
            if not p.numel():
                continue
            st = opt._state(p)
            arrays = [p.detach(), *(st[n] for n in opt._state_names)]
            if self.grads is not None:
                arrays.append(self.grads[i])
            if not all(a.is_contiguous() and a.dtype == torch.float32 for a in arrays):
                raise ValueError("bind: parameters, optimiser state and gradient buffers must be "
                                 "contiguous float32 (the kernels write through numpy views)")
            if self.grads is not None:
                group = opt._group_of(p)
                v = tuple(a.numpy().reshape(-1) for a in arrays)
            else:
                group = opt._group_of(self.params[0])
                v = tuple(a.numpy() for a in arrays)
            by_group.setdefault(id(group), (group, []))[1].append(v)
        self._views = list(by_group.values())
        self._version = opt._version
        return self._views


def _flat(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().reshape(-1)


def _f32(*xs: float) -> tuple:
    return tuple(np.float32(x) for x in xs)


OPTIMIZERS = ("adagrad", "adagrad-momentum", "adam")  # the session models' choices of train.optimizer


def build_optimizer(name: str, params, lr: float, momentum: float = 0.0) -> torch.optim.Optimizer:
    """A row-wise optimiser by its ``train.optimizer`` name (see the module docstring); all of
    them support ``step_rows`` and the bound steps of the fused GRU4Rec step."""
    from seqrec.errors import ConfigError

    if momentum and name != "adagrad-momentum":
        raise ConfigError(f"train.momentum = {momentum} applies to optimizer 'adagrad-momentum' only, "
                          f"not {name!r}")
    if name == "adagrad-momentum":
        return AdagradM(params, lr=lr, momentum=momentum)
    if name == "adagrad":
        return Adagrad(params, lr=lr)
    if name == "adam":
        return LazyAdam(params, lr=lr)
    if name == "sgd":
        raise ConfigError("optimizer 'sgd' is not implemented for the session models (GRU4Rec, HRNN); "
                          f"choose one of {list(OPTIMIZERS)}")
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")
