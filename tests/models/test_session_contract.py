"""Contract suite over the session models: GRU4Rec, HRNN and the POP / item-kNN / SKNN baselines.

On tiny synthetic sessions (items 2..15; 0 = padding, 1 = OOV), every model that scores next
items through the :class:`~seqrec.evaluate.ranking.SessionScorer` protocol must: return one
finite score per catalogue item and lane; give a lane the same scores whatever the other
lanes do, however many there are, and after a reset the scores of a fresh lane (the session
models' "padding": lanes and resets); be deterministic; survive a save/load round trip
exactly; and never have padding / OOV recommended or counted as a hit. GRU4Rec and HRNN also:
one step (HRNN: one epoch of two steps) of the library's own trainer lowers a pairwise ranking
loss on that fixed batch. The baselines: their
top recommendations on this data, computed by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec.baselines import BASELINES, load_baseline
from seqrec.config import load_run_config
from seqrec.data.events import SessionArrays
from seqrec.evaluate.ranking import evaluate_sessions
from seqrec.models.gru4rec import GRU4Rec, GRU4RecConfig, GRU4RecScorer
from seqrec.models.hrnn import HRNN, HRNNConfig
from seqrec.registry import get_model_entry
from seqrec.train.checkpoint import load_tensors, save_tensors
from seqrec.train.hrnn_trainer import HRNNTrainer
from seqrec.train.session_trainer import GRU4RecTrainer

SCORERS = ["gru4rec", "pop", "item-knn", "sknn"]
CONTRACT_MODELS = {*SCORERS, "hrnn"}  # read by tests/models/test_contract_coverage.py
N_ITEMS = 16
TRAIN = [[2, 3, 4, 5], [6, 7, 8], [2, 3, 9], [10, 11, 12, 13], [4, 5, 6], [14, 15, 2], [3, 4, 5, 6],
         [7, 8, 9, 10]]  # fmt: skip
OTHER = [[9, 8, 7, 6, 5], [12, 13], [4, 4, 1, 3, 2, 11], [15, 14, 13, 12, 11, 10]]  # 1 = OOV input
PROBE = [3, 4, 1, 5, 9, 6]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def train_arrays() -> SessionArrays:
    return SessionArrays.from_lists(TRAIN)


def gru4rec(seed: int = 0) -> GRU4Rec:
    torch.manual_seed(seed)
    return GRU4Rec(GRU4RecConfig(layers=(16,)), N_ITEMS).eval()


def scorer_for(name: str, seed: int = 0):
    """A fitted scorer (GRU4Rec: freshly initialised from ``seed``)."""
    if name == "gru4rec":
        return GRU4RecScorer(gru4rec(seed))
    entry = get_model_entry(name)
    return BASELINES[name](entry.config_cls()).fit(train_arrays(), N_ITEMS)


def step(scorer, items, reset) -> torch.Tensor:
    with torch.no_grad():
        out = scorer.step(torch.tensor(items, dtype=torch.int64), torch.tensor(reset, dtype=torch.bool))
    return out.clone()  # GRU4Rec's scorer reuses its buffer


def walk(scorer, session: list[int]) -> list[torch.Tensor]:
    """Score rows after each item of ``session`` in a lane of its own."""
    scorer.begin(1)
    return [step(scorer, [i], [t == 0])[0] for t, i in enumerate(session)]


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SCORERS)
def test_scores_one_finite_row_per_lane(name):
    s = scorer_for(name)
    assert s.n_items == N_ITEMS
    s.begin(3)
    out = step(s, [2, 1, 0], [True, True, True])  # a real item, OOV and padding as inputs
    assert out.shape == (3, N_ITEMS) and out.is_floating_point() and torch.isfinite(out).all()
    if name == "pop":  # the one model that ignores the session
        assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    else:  # the item is read: a known item scores unlike OOV
        assert not torch.equal(out[0], out[1])
    s.keep(torch.tensor([0, 2]))
    assert step(s, [3, 4], [False, False]).shape == (2, N_ITEMS)


@pytest.mark.parametrize("name", SCORERS)
def test_a_lane_ignores_other_lanes_and_reset_gives_a_fresh_lane(name):
    """PROBE walked alone == PROBE in lane 2 of 4 while the other lanes run and reset, and in
    lane 0 after another session there (a reset); finished lanes are dropped with ``keep``
    (the indices of the lanes left shift) without touching the others."""
    alone = walk(scorer_for(name), PROBE)
    streams = [OTHER[0] + PROBE, OTHER[1] + OTHER[2] + OTHER[3], PROBE + [2, 3], OTHER[2] + OTHER[3][:3]]
    starts = [{0, 5}, {0, 2, 8}, {0}, {0, 6}]
    s = scorer_for(name)
    s.begin(4)
    active = [0, 1, 2, 3]
    rows: dict[tuple[int, int], torch.Tensor] = {}
    for t in range(len(streams[0])):
        still = [i for i in active if t < len(streams[i])]
        if still != active:
            s.keep(torch.tensor([active.index(i) for i in still]))
            active = still
        out = step(s, [streams[i][t] for i in active], [t in starts[i] for i in active])
        rows.update({(i, t): out[k] for k, i in enumerate(active)})
    assert active == [0, 1]  # lanes 2 and 3 were dropped on the way
    for t in range(len(PROBE)):
        close(rows[2, t], alone[t])
        close(rows[0, 5 + t], alone[t])


@pytest.mark.parametrize("name", SCORERS)
def test_deterministic_and_exact_save_load_round_trip(name, tmp_path):
    a, b = scorer_for(name), scorer_for(name)
    ref = torch.stack(walk(a, PROBE))
    assert torch.equal(ref, torch.stack(walk(b, PROBE)))
    if name == "gru4rec":
        assert not torch.equal(ref, torch.stack(walk(scorer_for(name, seed=1), PROBE)))
        save_tensors(tmp_path / "model.pt", a.model.state_dict())
        other = gru4rec(seed=7)
        other.load_state_dict(load_tensors(tmp_path / "model.pt"))
        loaded = GRU4RecScorer(other)
    else:
        a.save(tmp_path)
        loaded = load_baseline(tmp_path)
        assert type(loaded) is type(a) and loaded.config == a.config and loaded.n_items == N_ITEMS
    assert torch.equal(torch.stack(walk(loaded, PROBE)), ref)


class SpecialsOnTop:
    """Wraps a scorer and gives padding and OOV the highest score of all."""

    def __init__(self, inner) -> None:
        self.inner, self.n_items = inner, inner.n_items

    def begin(self, n):
        self.inner.begin(n)

    def keep(self, lanes):
        self.inner.keep(lanes)

    def step(self, items, reset):
        out = self.inner.step(items, reset).clone()
        out[:, :2] = 1e30
        return out


def trained_gru4rec() -> GRU4Rec:
    cfg = load_run_config(raw={"model": {"name": "gru4rec", "layers": [16]},
                               "train": {"epochs": 2, "batch_size": 4, "lr": 0.1, "progress": False}})
    torch.manual_seed(0)
    model = GRU4Rec(cfg.model, N_ITEMS)
    GRU4RecTrainer(model, cfg, train_arrays()).fit()
    return model.eval()


@pytest.mark.parametrize("name", SCORERS)
def test_padding_and_oov_are_never_recommended(name):
    if name == "gru4rec":
        model = trained_gru4rec()
        # never trained, never sampled: their output rows stay exactly zero
        assert model.item_out[:2].abs().sum() == 0 and model.item_bias[:2].abs().sum() == 0
        s = GRU4RecScorer(model)
    else:
        s = scorer_for(name)
        s.begin(3)
        out = step(s, [2, 1, 7], [True, True, True])
        seen = torch.tensor(sorted({i for sess in TRAIN for i in sess}))
        # below every item seen in training (the tie-break ranks never-seen items lowest)
        assert (out[:, :2].max(1).values < out[:, seen].min(1).values).all()
    test = SessionArrays.from_lists(OTHER + [[2, 1, 3], [1, 1, 4]])
    want = evaluate_sessions(s, test, ks=(1, 5))
    assert want["n_oov_targets"] == 3
    # the evaluator never lets padding / OOV outrank a target, even when scored highest
    got = evaluate_sessions(SpecialsOnTop(s), test, ks=(1, 5))
    assert got == want


def _top(scores: torch.Tensor, k: int) -> list[int]:
    s = scores.clone()
    s[:2] = -torch.inf
    return torch.topk(s, k).indices.tolist()


def test_baselines_top_recommendations_by_hand():
    """After the session [2]: POP ranks by clicks (items 2..6 have 3 each, 2 the most
    sessions among them is broken by the fixed tie order, so check the set); item-kNN's
    nearest item to 2 is 3 (in 2 of 2's 3 sessions); SKNN sums the similarities of the
    three sessions holding 2: 2 itself 1/2 + 2/sqrt(3), then 3 with 1/2 + 1/sqrt(3)."""
    counts = np.bincount(np.concatenate(TRAIN), minlength=N_ITEMS)
    pop = walk(scorer_for("pop"), [2])[0]
    assert set(_top(pop, 5)) == set(np.flatnonzero(counts == counts.max()).tolist()) == {2, 3, 4, 5, 6}
    assert _top(walk(scorer_for("item-knn"), [2])[0], 1) == [3]
    sknn = walk(scorer_for("sknn"), [2])[0]
    assert _top(sknn, 2) == [2, 3]
    assert sknn[2].item() == pytest.approx(1 / 2 + 2 / np.sqrt(3), abs=1e-5)
    assert sknn[3].item() == pytest.approx(1 / 2 + 1 / np.sqrt(3), abs=1e-5)


# -- one training step of the library's trainers lowers the loss on a fixed batch --------------
BATCH = [[2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [12, 13], [14, 15], [3, 2]]  # one step: 8 lanes


def pairwise_loss(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean BPR loss of each lane's target against the other lanes' targets: the ranking the
    sampled losses train, measured on the fixed batch with no sampling and no config setting."""
    target = scores.gather(1, targets[:, None])  # (B, 1)
    others = targets[None, :] != targets[:, None]  # (B, B): in-batch negatives
    return -torch.nn.functional.logsigmoid(target - scores[:, targets])[others].mean().item()


def gru4rec_batch_loss(model: GRU4Rec) -> float:
    inputs, targets = torch.tensor([s[0] for s in BATCH]), torch.tensor([s[1] for s in BATCH])
    with torch.no_grad():
        out, _ = model.step(inputs, model.init_hidden(len(BATCH)))
        return pairwise_loss(model.score_all(out), targets)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gru4rec_one_trainer_step_lowers_the_loss(seed):
    cfg = load_run_config(raw={"model": {"name": "gru4rec", "layers": [16]},
                               "train": {"epochs": 1, "batch_size": 8, "lr": 0.1, "seed": seed,
                                         "progress": False}})  # fmt: skip
    torch.manual_seed(seed)
    model = GRU4Rec(cfg.model, N_ITEMS)
    before = gru4rec_batch_loss(model)
    state = GRU4RecTrainer(model, cfg, SessionArrays.from_lists(BATCH)).fit()
    assert state.train_events == len(BATCH)  # exactly one step of 8 lanes
    assert np.isfinite(state.history[0]["loss"])
    after = gru4rec_batch_loss(model)
    assert after < 0.9 * before, (before, after)  # seeds 0-5: a drop of 24-27%


# -- HRNN: the session GRU under a user GRU --------------------------------------------------------
USER_SESSIONS = [[2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [12, 13], [14, 15], [3, 2]]
USER_OF = [2, 2, 3, 3, 4, 4, 5, 5]  # four users, two sessions each (two steps of four lanes)


def hrnn(seed: int = 0, user_to_input: bool = False) -> HRNN:
    torch.manual_seed(seed)
    cfg = HRNNConfig(session=GRU4RecConfig(layers=(16,)), user_size=8, user_to_input=user_to_input)
    return HRNN(cfg, N_ITEMS).eval()


def hrnn_walk(model: HRNN, lanes: list[list[list[int]]]) -> list[torch.Tensor]:
    """Scores per step for lanes that each play one user's sessions (all the same shape)."""
    n = len(lanes)
    hidden, c = model.session.init_hidden(n), model.init_user(n)
    out = []
    with torch.no_grad():
        for k in range(len(lanes[0])):
            for t in range(len(lanes[0][k])):
                new = torch.full((n,), t == 0)
                hidden, c = model.boundary(hidden, c, new, torch.full((n,), t == 0 and k == 0))
                items = torch.tensor([lane[k][t] for lane in lanes])
                h, hidden = model.session.step(items, hidden, extra=model.extra(c))
                out.append(model.session.score_all(h).clone())
    return out


USERS = [[[2, 3, 4], [5, 1]], [[9, 8, 7], [6, 5]], [[14, 2, 3], [3, 3]]]


@pytest.mark.parametrize("user_to_input", [False, True])
def test_hrnn_shapes_lanes_and_round_trip(user_to_input, tmp_path):
    model = hrnn(user_to_input=user_to_input)
    together = hrnn_walk(model, USERS)
    assert len(together) == 5 and all(s.shape == (3, N_ITEMS) and torch.isfinite(s).all() for s in together)
    for i, user in enumerate(USERS):  # a lane ignores the other lanes
        for a, b in zip(together, hrnn_walk(model, [user]), strict=True):
            close(a[i], b[0])
    # the user state carries over: the second session differs from the same session of a new user
    fresh = hrnn_walk(model, [[USERS[0][1]]])
    assert not torch.allclose(together[3][0], fresh[0][0])
    assert torch.equal(hrnn(user_to_input=user_to_input).session.item_out, model.session.item_out)
    save_tensors(tmp_path / "model.pt", model.state_dict())
    other = hrnn(seed=5, user_to_input=user_to_input)
    assert not torch.equal(other.session.item_out, model.session.item_out)
    other.load_state_dict(load_tensors(tmp_path / "model.pt"))
    for a, b in zip(together, hrnn_walk(other, USERS), strict=True):
        assert torch.equal(a, b)


def hrnn_batch_loss(model: HRNN) -> float:
    lanes = [[USER_SESSIONS[2 * u], USER_SESSIONS[2 * u + 1]] for u in range(4)]
    steps = hrnn_walk(model.eval(), lanes)  # after each item; the first of each session is scored
    return sum(pairwise_loss(steps[2 * k], torch.tensor([lane[k][1] for lane in lanes])) for k in (0, 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hrnn_one_trainer_epoch_lowers_the_loss(seed):
    cfg = load_run_config(raw={"model": {"name": "hrnn", "user_size": 8, "session": {"layers": [16]}},
                               "train": {"epochs": 1, "batch_size": 4, "lr": 0.1, "seed": seed,
                                         "progress": False}})  # fmt: skip
    torch.manual_seed(seed)
    model = HRNN(cfg.model, N_ITEMS)
    before = hrnn_batch_loss(model)
    train = SessionArrays.from_lists(USER_SESSIONS)
    train.users = np.array(USER_OF)
    state = HRNNTrainer(model, cfg, train).fit()
    assert state.train_events == len(USER_SESSIONS)  # two steps of four user lanes
    after = hrnn_batch_loss(model)
    assert after < 0.9 * before, (before, after)  # seeds 0-5: a drop of 19-31%
    assert model.session.item_out[:2].abs().sum() == 0  # padding / OOV rows never move
