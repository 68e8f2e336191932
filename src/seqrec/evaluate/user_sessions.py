"""Next-item evaluation of user-level session models (HRNN) with the user's history as context.

For every user with test sessions, the model first walks the user's training
sessions (building its user state, no predictions scored), then the test
sessions, where every position is scored exactly as in
:func:`seqrec.evaluate.ranking.evaluate_sessions` (full catalogue, same rank
definition). Test sessions of users unseen in training start from an empty
user state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from seqrec.data.events import SessionArrays
from seqrec.data.user_parallel import user_parallel_batches
from seqrec.data.vocab import N_SPECIAL, OOV
from seqrec.evaluate.ranking import DEFAULT_KS, RankingAccumulator, target_ranks


def _gather_sessions(arrays: SessionArrays, sessions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts, lengths = arrays.offsets[sessions], arrays.lengths[sessions]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return arrays.items[idx], offsets


def user_streams(context: SessionArrays, test: SessionArrays):
    """Context sessions then test sessions, grouped by user -> (items, offsets, users, scored)."""
    t_users = test.users.copy()
    unknown = t_users == OOV
    t_users[unknown] = -1 - np.arange(int(unknown.sum()))  # each unknown-user session stands alone
    wanted = np.isin(context.users, t_users[~unknown])
    c_sess = np.flatnonzero(wanted)
    users = np.concatenate([context.users[c_sess], t_users])
    source = np.concatenate([np.zeros(len(c_sess), np.int8), np.ones(test.n_sessions, np.int8)])
    order = np.lexsort((source, users))  # by user; context before test; stable within each
    c_items, c_off = _gather_sessions(context, c_sess)
    t_items, t_off = _gather_sessions(test, np.arange(test.n_sessions))
    both = SessionArrays(
        items=np.concatenate([c_items, t_items]),
        offsets=np.concatenate([c_off[:-1], t_off + c_off[-1]]),
        times=np.zeros(len(c_items) + len(t_items)),
    )
    items, offsets = _gather_sessions(both, order)
    return items, offsets, users[order], source[order] == 1


@torch.no_grad()
def evaluate_hrnn(
    model,
    context: SessionArrays,
    test: SessionArrays,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    ties: str = "optimistic",
    batch_size: int = 512,
) -> dict:
    """Full-catalogue Recall/MRR/NDCG@K on ``test`` with user context from ``context``."""
    model.eval()
    items, offsets, users, scored = user_streams(context, test)
    acc = RankingAccumulator(ks)
    n = batch_size
    hidden = model.session.init_hidden(n)
    c = model.init_user(n)
    buffer = torch.empty(n, model.session.n_items)  # reused score rows (no per-step allocation)
    n_sessions = int((np.diff(offsets)[scored] >= 2).sum())
    for st in user_parallel_batches(items, offsets, users, batch_size):
        if st.keep is not None:
            hidden = [h.index_select(0, st.keep) for h in hidden]
            c = c.index_select(0, st.keep)
        if len(st.inputs) < len(c):
            hidden, c = [h[: len(st.inputs)] for h in hidden], c[: len(st.inputs)]
        hidden, c = model.boundary(hidden, c, st.new_session, st.new_user)
        out, hidden = model.session.step(st.inputs, hidden, extra=model.extra(c))
        mask = torch.from_numpy(scored[st.sessions])
        if mask.any():
            scores = model.session.score_all(out[mask], buffer)  # (b, N)
            scores[:, :N_SPECIAL] = -torch.inf
            tgt = st.targets[mask]
            acc.update(target_ranks(scores, tgt, ties), n_oov=int((tgt == OOV).sum()))
    out = acc.result()
    out["n_sessions"] = n_sessions
    return out
