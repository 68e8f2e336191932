"""DSIN's session layout: a left-aligned history (B, T) cut into (B, S, L) sessions.

The sessions themselves come from the shared sessionizer (:mod:`seqrec.data.sessionize`:
a new session after more than 30 minutes without a behaviour), which the CTR task builder
runs on each user's whole event stream; here ``session_ids`` (B, T) are those ids for the
history positions (non-decreasing along a history). DSIN (Feng et al. IJCAI 2019, sec.
4.1) keeps a fixed number of sessions of a fixed length: the ``S`` most recent sessions in
time order (oldest in slot 0) and, within each, the ``L`` most recent behaviours in order.
"""

from __future__ import annotations

import torch


def session_layout(session_ids: torch.Tensor, mask: torch.Tensor, n_sessions: int,
                   session_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (slot (B, T) int64: s * L + l, or -1 for positions dropped or padded;
    session_mask (B, S, L) bool of filled cells)."""
    B, T = session_ids.shape
    S, L = n_sessions, session_len
    pos = torch.arange(T).expand(B, T)
    prev = torch.cat([session_ids[:, :1], session_ids[:, :-1]], 1)
    boundary = mask & ((session_ids != prev) | (pos == 0))  # first position of each session
    c = torch.cumsum(boundary.long(), 1) - 1  # session index from the start (B, T)
    n_sess = torch.where(mask, c, -1).amax(1, keepdim=True) + 1  # sessions per history
    slot_s = c - (n_sess - S).clamp(min=0)  # the S most recent sessions -> 0..S-1
    start = torch.cummax(torch.where(boundary, pos, 0), 1).values  # first position of the session
    length = torch.zeros(B, T + 1, dtype=torch.long).scatter_add_(
        1, torch.where(mask, c, T), mask.long())[:, :T]  # (B, T): length of session c
    sess_len = length.gather(1, c.clamp(min=0))  # length of each position's session
    slot_l = pos - start - (sess_len - L).clamp(min=0)  # keep the last L behaviours
    keep = mask & (slot_s >= 0) & (slot_l >= 0)
    slot = torch.where(keep, slot_s * L + slot_l, -1)
    filled = torch.zeros(B, S * L + 1, dtype=torch.bool)
    filled.scatter_(1, torch.where(keep, slot, S * L), True)
    return slot, filled[:, : S * L].reshape(B, S, L)


def to_sessions(x: torch.Tensor, slot: torch.Tensor, n_sessions: int, session_len: int) -> torch.Tensor:
    """Scatter history vectors x (B, T, D) into (B, S, L, D) by ``slot`` (dropped -> zeros)."""
    B, T, D = x.shape
    SL = n_sessions * session_len
    out = x.new_zeros(B, SL + 1, D)
    idx = torch.where(slot >= 0, slot, SL).unsqueeze(-1).expand(B, T, D)
    out = out.scatter(1, idx, x)
    return out[:, :SL].reshape(B, n_sessions, session_len, D)
