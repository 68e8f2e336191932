"""Golden tests for the ranking metrics and the session evaluator (values computed by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.data.events import SessionArrays
from seqrec.data.vocab import N_SPECIAL, OOV
from seqrec.evaluate.ranking import (
    MISS_RANK,
    RankingAccumulator,
    evaluate_sessions,
    target_ranks,
)

NEG = -math.inf

# columns 0 (padding) and 1 (OOV) are -inf, as the evaluator leaves them; items 2..6
ROW = [NEG, NEG, 0.5, 0.9, 0.1, 0.7, 0.3]


def _metrics(scores, targets, ks=(1, 3, 5), ties="optimistic"):
    s = torch.tensor(scores, dtype=torch.float32)
    t = torch.tensor(targets, dtype=torch.int64)
    acc = RankingAccumulator(ks)
    ranks = target_ranks(s, t, ties)
    acc.update(ranks)
    return ranks.tolist(), acc.result()


def test_golden_ranks_and_metrics():
    # real items sorted by score: 3 (0.9) > 5 (0.7) > 2 (0.5) > 6 (0.3) > 4 (0.1)
    # row 0, target 2: two items strictly higher -> rank 3
    # row 1, target 3: best -> rank 1
    # row 2, target 4: worst of the 5 real items -> rank 5
    ranks, m = _metrics([ROW, ROW, ROW], [2, 3, 4])
    assert ranks == [3, 1, 5]
    # @1: only row 1 hits -> recall 1/3, MRR 1/3, NDCG 1/log2(2) / 3 = 1/3
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["mrr@1"] == pytest.approx(1 / 3)
    assert m["ndcg@1"] == pytest.approx(1 / 3)
    # @3: rows 0 and 1 hit -> recall 2/3; MRR (1/3 + 1 + 0) / 3 = 4/9;
    #     NDCG (1/log2(4) + 1/log2(2) + 0) / 3 = (0.5 + 1) / 3 = 0.5
    assert m["recall@3"] == pytest.approx(2 / 3)
    assert m["mrr@3"] == pytest.approx(4 / 9)
    assert m["ndcg@3"] == pytest.approx(0.5)
    # @5: all hit -> recall 1; MRR (1/3 + 1 + 1/5) / 3 = 23/45;
    #     NDCG (0.5 + 1 + 1/log2(6)) / 3, 1/log2(6) = 0.386852...
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["mrr@5"] == pytest.approx(23 / 45)
    assert m["ndcg@5"] == pytest.approx((0.5 + 1 + 1 / math.log2(6)) / 3)
    assert 1 / math.log2(6) == pytest.approx(0.386852807)
    assert m["n_events"] == 3


def test_ties_optimistic_and_pessimistic():
    # items 2..7; target 3 (0.5) is tied with items 4 and 5; only item 6 (0.9) is higher
    row = [NEG, NEG, 0.2, 0.5, 0.5, 0.5, 0.9, 0.1]
    # optimistic: 1 + #strictly higher = 1 + 1 = 2; pessimistic: #>= = 0.9 and three 0.5 = 4
    assert _metrics([row], [3], ties="optimistic")[0] == [2]
    assert _metrics([row], [3], ties="pessimistic")[0] == [4]
    # a unique score ranks the same either way: item 7 (0.1) is last of 6 real items
    assert _metrics([row], [7], ties="pessimistic")[0] == [6]
    assert _metrics([row], [7], ties="optimistic")[0] == [6]
    # pessimistic NDCG@5 at rank 4 = 1/log2(5)
    assert _metrics([row], [3], ks=(5,), ties="pessimistic")[1]["ndcg@5"] == pytest.approx(
        1 / math.log2(5)
    )
    with pytest.raises(ValueError, match="ties"):
        target_ranks(torch.zeros(1, 4), torch.tensor([2]), ties="average")


def test_oov_target_is_a_miss():
    # target OOV (1): a rank beyond every cut-off in both modes, even though -inf == -inf
    # would otherwise make it "tied"; K = 20 > N = 7 columns must still be a miss
    for ties in ("optimistic", "pessimistic"):
        ranks, m = _metrics([ROW, ROW], [OOV, 3], ks=(5, 20), ties=ties)
        assert ranks == [MISS_RANK, 1]
        for k in (5, 20):
            assert m[f"recall@{k}"] == pytest.approx(0.5)  # one miss (OOV), one hit
            assert m[f"mrr@{k}"] == pytest.approx(0.5)
            assert m[f"ndcg@{k}"] == pytest.approx(0.5)


# -- evaluate_sessions ---------------------------------------------------------------------


class FixedScorer:
    """Returns the same (n_items,) score vector for every lane (a copy: the evaluator writes in place)."""

    def __init__(self, scores):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        self.n_items = len(self.scores)
        self.n_lanes = 0

    def begin(self, n_lanes):
        self.n_lanes = n_lanes

    def step(self, items, reset):
        assert len(items) == len(reset) == self.n_lanes
        return self.scores.expand(self.n_lanes, -1).clone()

    def keep(self, lanes):
        self.n_lanes = len(lanes)


class RecordingScorer:
    """Rebuilds each lane's input sequence from what the evaluator feeds it.

    Score of item j = 1 if j == input + 1 (a "successor" oracle), so a target is a
    hit at rank 1 exactly when it is the input's successor; other items tie at 0.
    """

    def __init__(self, n_items):
        self.n_items = n_items
        self.sequences = []  # finished or running input sequences, in order of their start
        self.lane_seq = []  # lane -> index into self.sequences
        self.keep_calls = []
        self.n_steps = 0

    def begin(self, n_lanes):
        self.lane_seq = [None] * n_lanes

    def step(self, items, reset):
        assert items.dtype == torch.int64 and reset.dtype == torch.bool
        assert len(items) == len(reset) == len(self.lane_seq)
        self.n_steps += 1
        for lane, (i, r) in enumerate(zip(items.tolist(), reset.tolist(), strict=True)):
            if r:
                self.lane_seq[lane] = len(self.sequences)
                self.sequences.append([])
            assert self.lane_seq[lane] is not None, "first step of a lane must be a reset"
            self.sequences[self.lane_seq[lane]].append(i)
        out = torch.zeros(len(items), self.n_items)
        nxt = (items + 1).clamp(max=self.n_items - 1)
        out[torch.arange(len(items)), nxt] = 1.0
        return out

    def keep(self, lanes):
        lanes = lanes.tolist()
        # sorted and unique; the final call, when every session is done, may be empty
        assert lanes == sorted(set(lanes)), "keep gets sorted, unique lanes"
        assert all(0 <= x < len(self.lane_seq) for x in lanes)
        self.keep_calls.append(lanes)
        self.lane_seq = [self.lane_seq[x] for x in lanes]


# sessions over items 2..11 (n_items = 12): lengths 3, 1, 5, 2, 4, 2, 6
SESSIONS = [
    [2, 3, 4],  # successors: 3 hit, 4 hit
    [7],  # length 1: nothing to predict, skipped
    [5, 6, 9, 10, 11],  # 6 hit, 9 miss, 10 hit, 11 hit
    [8, 2],  # miss
    [3, 3, OOV, 6],  # 3 miss (not the successor), OOV target miss, 6 miss
    [10, 11],  # hit
    [2, 4, 5, 6, 7, 8],  # miss, hit, hit, hit, hit
]
N_ITEMS = 12


def _expected_inputs():
    return [s[:-1] for s in SESSIONS if len(s) >= 2]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 100])
def test_every_position_once_in_order(batch_size):
    arrays = SessionArrays.from_lists(SESSIONS)
    scorer = RecordingScorer(N_ITEMS)
    res = evaluate_sessions(scorer, arrays, ks=(1, 20), batch_size=batch_size)
    # n_events = sum(len - 1) = 2 + 0 + 4 + 1 + 3 + 1 + 5 = 16
    assert res["n_events"] == 16 == int(sum(max(len(s) - 1, 0) for s in SESSIONS))
    assert res["n_sessions"] == 6
    assert res["n_oov_targets"] == 1
    # each lane's inputs since its reset form exactly one session's prefix (all but the
    # last item), so reset is True at every first event and nowhere else, and keep()
    # re-indexed lanes correctly when they ran out
    got = sorted(scorer.sequences)
    assert got == sorted(_expected_inputs())
    if batch_size >= 6:  # all sessions fit in lanes at once: they start in order
        assert scorer.sequences == _expected_inputs()
    # successor hits by hand: 2 + 3 + 0 + 0 + 1 + 4 = 10 of 16 at rank 1
    assert res["recall@1"] == pytest.approx(10 / 16)
    # misses tie at 0 with every other non-successor real item: optimistic rank 2
    # (only the successor is strictly higher), except the OOV target (never ranked)
    # -> recall@20 = 15/16, MRR@20 = (10 * 1 + 5 * 1/2) / 16
    assert res["recall@20"] == pytest.approx(15 / 16)
    assert res["mrr@20"] == pytest.approx((10 + 5 / 2) / 16)
    # lanes only ever shrink through keep(); the last call leaves one lane (the longest tail)
    if batch_size > 1:
        assert scorer.keep_calls
        sizes = [len(k) for k in scorer.keep_calls]
        assert sizes == sorted(sizes, reverse=True)


def test_batch_size_does_not_change_metrics():
    rng = np.random.default_rng(0)
    sessions = [list(rng.integers(2, 40, size=rng.integers(1, 9))) for _ in range(60)]
    arrays = SessionArrays.from_lists(sessions)

    class HistoryScorer(FixedScorer):
        """Stateful: score = fixed noise + count of each item seen since the lane's reset."""

        def begin(self, n_lanes):
            super().begin(n_lanes)
            self.hist = torch.zeros(n_lanes, self.n_items)

        def step(self, items, reset):
            self.hist[reset] = 0
            self.hist[torch.arange(len(items)), items] += 1
            return self.scores + self.hist

        def keep(self, lanes):
            super().keep(lanes)
            self.hist = self.hist[lanes]

    noise = torch.rand(40, generator=torch.Generator().manual_seed(1))
    ref = evaluate_sessions(HistoryScorer(noise), arrays, batch_size=1)
    for bs in (2, 7, 64, 1000):
        # identical up to float summation order
        assert evaluate_sessions(HistoryScorer(noise), arrays, batch_size=bs) == pytest.approx(
            ref, rel=1e-12
        )
    assert ref["n_events"] == sum(max(len(s) - 1, 0) for s in sessions)


def test_constant_scores_optimistic_vs_pessimistic():
    # 1000 real items (columns 2..1001), every score equal: optimistic rank 1 for every
    # target, pessimistic rank 1000 -> recall@20 = 1.0 vs 0.0
    rng = np.random.default_rng(0)
    sessions = [list(rng.integers(2, 1002, size=5)) for _ in range(20)]
    arrays = SessionArrays.from_lists(sessions)
    scorer = FixedScorer(torch.zeros(1002))
    opt = evaluate_sessions(scorer, arrays, ks=(20,), ties="optimistic")
    pes = evaluate_sessions(scorer, arrays, ks=(20,), ties="pessimistic")
    assert opt["n_events"] == pes["n_events"] == 80
    assert opt["recall@20"] == 1.0 and opt["mrr@20"] == 1.0
    assert pes["recall@20"] == 0.0 and pes["mrr@20"] == 0.0


def test_padding_and_oov_columns_never_ranked():
    # the model puts huge scores on padding (0) and OOV (1); the evaluator must ignore
    # them, so the best real item (3) still ranks 1 and item 2 ranks 2
    scores = torch.tensor([100.0, 100.0, 0.2, 0.9, 0.1])
    arrays = SessionArrays.from_lists([[4, 3], [4, 2], [4, OOV]])
    res = evaluate_sessions(FixedScorer(scores), arrays, ks=(1, 2), ties="pessimistic")
    # targets: 3 (rank 1), 2 (rank 2), OOV (miss)
    assert res["recall@1"] == pytest.approx(1 / 3)
    assert res["recall@2"] == pytest.approx(2 / 3)
    assert res["mrr@2"] == pytest.approx((1 + 1 / 2) / 3)
    assert res["n_oov_targets"] == 1
    assert N_SPECIAL == 2


def test_no_evaluable_session():
    res = evaluate_sessions(FixedScorer(torch.zeros(5)), SessionArrays.from_lists([[2], [3]]))
    assert res["n_events"] == 0 and res["n_sessions"] == 0
    assert math.isnan(res["recall@20"])


def test_nan_target_score_is_an_error_not_a_perfect_rank():
    from seqrec.errors import SeqrecError

    scores = torch.tensor([[-torch.inf, -torch.inf, 0.5, float("nan"), 0.1]])
    with pytest.raises(SeqrecError, match="NaN"):
        target_ranks(scores, torch.tensor([3]))


def test_ranks_out_holds_each_prediction_at_its_input_position():
    # scores 10 - item: item 2 ranks 1st, item 3 2nd, ... (rank = target - 1)
    scores = torch.tensor([0.0, 0.0] + [10.0 - i for i in range(2, 12)])
    arrays = SessionArrays.from_lists([[2, 5, 3], [7], [4, 4, 11, 2]])
    for bs in (1, 2, 64):
        ranks = np.full(len(arrays.items), -1, dtype=np.int64)
        m = evaluate_sessions(FixedScorer(scores), arrays, batch_size=bs, ranks_out=ranks)
        # inputs 2->5, 5->3 | 7 (no target) | 4->4, 4->11, 11->2
        np.testing.assert_array_equal(ranks, [4, 2, -1, -1, 3, 10, 1, -1])
        assert m["mrr@20"] == pytest.approx(np.mean([1 / 4, 1 / 2, 1 / 3, 1 / 10, 1]))
