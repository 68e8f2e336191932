"""HRNN: hierarchical RNN for personalised session-based recommendation.

Quadrana, Karatzoglou, Hidasi, Cremonesi. "Personalizing session-based
recommendations with hierarchical recurrent neural networks", RecSys 2017.

Implements (m = session index of a user, s_m = final state of session m):
  user level:     c_m = GRU_usr(s_m, c_{m-1})                       (eq. 3)
  session init:   s_{m+1,0} = tanh(W_init c_m + b_init)              (eq. 4, per layer)
  session level:  s_{m+1,n} = GRU_ses(i_{m+1,n}, s_{m+1,n-1})        (eq. 5)
  "HRNN All":     ``user_to_input`` also feeds c_m to every step of the session GRU.
The session level is a :class:`~seqrec.models.gru4rec.GRU4Rec` (same scoring,
losses and sampling: the run's ``[loss]`` section, TOP1 by default as in the paper). Dropout on the user state and on the initialisation as
in the paper. Deviation: with one-step truncated backpropagation (as GRU4Rec),
the user GRU and W_init learn through the first step of each session; the
state fed to every step in "All" mode is treated as a constant input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from seqrec.models.gru4rec import GRU4Rec, GRU4RecConfig, _init_uniform


@dataclass(frozen=True)
class HRNNConfig:
    session: GRU4RecConfig = field(
        default_factory=lambda: GRU4RecConfig(layers=(100,), final_act="linear")
    )
    user_size: int = 100
    user_to_input: bool = False  # "HRNN All": user state is an extra input at every step
    dropout_user: float = 0.0  # on the user state c_m
    dropout_init: float = 0.0  # on the session initialisation

    def __post_init__(self) -> None:
        if self.user_size <= 0:
            raise ValueError(f"user_size must be positive, got {self.user_size}")


class HRNN(nn.Module):
    def __init__(self, config: HRNNConfig, n_items: int) -> None:
        super().__init__()
        self.config = config
        self.n_items = n_items
        U = config.user_size
        self.session = GRU4Rec(config.session, n_items, extra_input=U if config.user_to_input else 0)
        H_L = config.session.layers[-1]
        self.w_ih_u = nn.Parameter(torch.empty(3 * U, H_L))  # user GRU input->gates
        self.w_hh_u = nn.Parameter(torch.empty(3 * U, U))
        self.b_ih_u = nn.Parameter(torch.zeros(3 * U))
        self.b_hh_u = nn.Parameter(torch.zeros(3 * U))
        self.init = nn.ModuleList(nn.Linear(U, h) for h in config.session.layers)  # W_init per layer
        _init_uniform(self.w_ih_u, H_L, 3 * U, None)
        _init_uniform(self.w_hh_u, U, 3 * U, None)
        for lin in self.init:
            _init_uniform(lin.weight, U, lin.out_features, None)
            nn.init.zeros_(lin.bias)

    def init_user(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.config.user_size)

    def user_update(self, s_final: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """c_m = GRU_usr(s_m, c_{m-1}): (B, H_L), (B, U) -> (B, U)."""
        return torch.gru_cell(s_final, c, self.w_ih_u, self.w_hh_u, self.b_ih_u, self.b_hh_u)

    def session_init(self, c: torch.Tensor) -> list[torch.Tensor]:
        """s_{m,0} = tanh(W_init c + b) for every session layer (dropout on c and on the result)."""
        d = self.session.dropout
        c = d(c, self.config.dropout_user)
        return [d(torch.tanh(lin(c)), self.config.dropout_init) for lin in self.init]  # (B, H_l)

    def extra(self, c: torch.Tensor) -> torch.Tensor | None:
        return c if self.config.user_to_input else None

    def boundary(
        self,
        hidden: list[torch.Tensor],
        c: torch.Tensor,
        new_session: torch.Tensor,
        new_user: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Apply session/user boundaries before a step.

        Lanes that continue a user with a new session fold the finished session's
        final state into the user state; lanes with a new user start from c = 0;
        every lane with a new session re-initialises its session state from c.
        """
        if not bool(new_session.any()):
            return hidden, c
        cont = (new_session & ~new_user).unsqueeze(1)  # (B, 1)
        c_upd = self.user_update(hidden[-1], c)
        c = torch.where(cont, c_upd, c)
        c = torch.where(new_user.unsqueeze(1), torch.zeros_like(c), c)
        init = self.session_init(c)
        ns = new_session.unsqueeze(1)
        hidden = [torch.where(ns, i, h) for i, h in zip(init, hidden, strict=True)]
        return hidden, c
