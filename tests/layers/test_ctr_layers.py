"""CTR building blocks against hand-computed values: Dice, the mini-batch aware L2, DSIN's
session layout and bias encoding, the activation unit's masking, AUGRU's gate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.layers.attention import ActivationUnit
from seqrec.layers.augru import AttentionGRU
from seqrec.layers.dice import Dice
from seqrec.layers.embedding import FeatureEmbedding
from seqrec.layers.sessions import session_layout, to_sessions
from seqrec.schema import Feature, Schema, Table


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_dice_eval_mode_uses_running_statistics():
    d = Dice(2).eval()
    d.bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
    d.bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    with torch.no_grad():
        d.alpha.copy_(torch.tensor([0.5, 0.1]))
    s = torch.tensor([[3.0, -3.0]])
    # channel 0: p = σ((3 - 1) / sqrt(4 + 1e-8)) = σ(1) = 0.731059; f = 0.731059·3 + 0.268941·0.5·3
    #            = 2.193176 + 0.403412 = 2.596588
    # channel 1: p = σ((-3 + 2) / 1) = σ(-1) = 0.268941; f = 0.268941·(-3) + 0.731059·0.1·(-3)
    #            = -0.806824 - 0.219318 = -1.026142
    out = d(s)
    assert out.tolist()[0] == pytest.approx([2.596588, -1.026142], abs=1e-5)
    assert _sig(1.0) == pytest.approx(0.731059, abs=1e-6)


def test_dice_training_mode_uses_batch_statistics():
    d = Dice(1).train()
    s = torch.tensor([[0.0], [2.0]])  # batch mean 1, biased variance 1
    # p = σ(∓1) = (0.268941, 0.731059); α = 0: f = p·s = (0, 1.462117)
    assert d(s).flatten().tolist() == pytest.approx([0.0, 1.462117], abs=1e-5)
    # running stats moved by momentum 0.1 toward (mean 1, unbiased var 2)
    assert d.bn.running_mean.item() == pytest.approx(0.1)
    assert d.bn.running_var.item() == pytest.approx(0.9 + 0.1 * 2.0)


def test_minibatch_aware_l2_only_rows_in_batch_scaled_by_frequency():
    schema = Schema(tables=(Table("item", 5, 2),),
                    features=(Feature("item", "sparse", "item"),
                              Feature("hist_item", "sequence", "item", max_len=3)), user="")
    emb = FeatureEmbedding(schema)
    with torch.no_grad():
        emb.tables["item"].weight.copy_(torch.tensor([[0, 0], [1, 1], [1, 2], [3, 0], [2, 2.0]]))
    # training data: item 2 occurs 3 times, item 3 once, item 4 twice (counts over both features)
    emb.fit_counts({"item": np.array([2, 3]), "hist_item": np.array([[2, 2, 0], [4, 4, 0]])})
    batch = {"item": torch.tensor([2]), "hist_item": torch.tensor([[3, 2, 0]])}
    # distinct ids in the batch: 2 and 3 (padding 0 never counts; 4 is not in the batch)
    # ||w_2||² / 3 + ||w_3||² / 1 = 5 / 3 + 9 = 10.666667
    assert emb.minibatch_l2(batch).item() == pytest.approx(10.666667, abs=1e-5)


def test_session_layout_hand_made_stream():
    # two histories; session ids from the sessionizer: [7 7 7 | 9 | 12 12] and [3 x5]
    sid = torch.tensor([[7, 7, 7, 9, 12, 12, 0, 0], [3, 3, 3, 3, 3, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0]]).bool()
    slot, cell = session_layout(sid, mask, n_sessions=2, session_len=2)
    # row 0 keeps the 2 most recent sessions (9 -> slot 0, 12 -> slot 1); row 1 the last 2 of 5
    assert slot.tolist() == [[-1, -1, -1, 0, 2, 3, -1, -1], [-1, -1, -1, 0, 1, -1, -1, -1]]
    assert cell.int().tolist() == [[[1, 0], [1, 1]], [[1, 1], [0, 0]]]
    x = torch.arange(1, 9).float().repeat(2, 1).unsqueeze(-1)
    assert to_sessions(x, slot, 2, 2).squeeze(-1).tolist() == [[[4, 0], [5, 6]], [[4, 5], [0, 0]]]


def test_sessionizer_feeds_dsin_sessions_at_30_minutes():
    import polars as pl

    from seqrec.data.sessionize import sessionize

    df = pl.DataFrame({"user_id": [1] * 5, "timestamp": [0.0, 600.0, 2401.0, 2500.0, 9000.0]})
    # gaps 600, 1801 (> 1800: new session), 99, 6500 (new session)
    assert sessionize(df)["session_id"].to_list() == [0, 0, 1, 1, 2]


def test_dsin_bias_encoding_is_session_plus_position_plus_unit():
    from seqrec.config import load_run_config
    from seqrec.families.ctr import build_ctr_model

    schema = Schema(tables=(Table("item", 10, 4), Table("user", 4, 4)),
                    features=(Feature("user", "sparse", "user"), Feature("item", "sparse", "item"),
                              Feature("hist_item", "sequence", "item", max_len=4)))
    cfg = load_run_config(raw={"model": {"name": "dsin", "embedding_dim": 4, "n_sessions": 2,
                                         "session_len": 2}})
    m = build_ctr_model(cfg, schema)
    with torch.no_grad():
        m.bias_session.copy_(torch.tensor([10.0, 20.0]).view(2, 1, 1))
        m.bias_position.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1))
        m.bias_unit.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]).view(1, 1, 4))
    be = (m.bias_session + m.bias_position + m.bias_unit)  # (S, L, D)
    assert be[1, 0].tolist() == pytest.approx([21.1, 21.2, 21.3, 21.4])
    assert be[0, 1].tolist() == pytest.approx([12.1, 12.2, 12.3, 12.4])


def test_activation_unit_padding_gets_zero_weight_and_no_softmax():
    au = ActivationUnit(3, (4,), act="prelu").eval()
    q = torch.randn(2, 3)
    k = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]]).bool()
    w = au.weights(q, k, mask)
    assert (w[~mask] == 0).all()
    k2 = k.clone()
    k2[~mask] = 99.0  # garbage in padded slots changes nothing
    torch.testing.assert_close(au(q, k, mask), au(q, k2, mask))
    assert not torch.allclose(w[mask].sum(), torch.tensor(1.0))  # not normalised
    soft = ActivationUnit(3, (4,), act="prelu", softmax=True).eval()
    assert soft.weights(q, k, mask).sum(1).tolist() == pytest.approx([1.0, 1.0])


def test_augru_attention_zero_keeps_state_and_one_is_a_gru_step():
    g = AttentionGRU(2, 3, "augru")
    x = torch.randn(1, 1, 2)
    mask = torch.ones(1, 1, dtype=torch.bool)
    assert g(x, torch.zeros(1, 1), mask).abs().max().item() == 0.0  # h_0 = 0 kept
    # attention 1: AUGRU is a plain GRU cell step from h = 0
    gru = torch.nn.GRUCell(2, 3)
    with torch.no_grad():
        gru.weight_ih.copy_(g.ih.weight)
        gru.bias_ih.copy_(g.ih.bias)
        gru.weight_hh.copy_(g.hh.weight)
        gru.bias_hh.copy_(g.hh.bias)
    torch.testing.assert_close(g(x, torch.ones(1, 1), mask), gru(x[:, 0], torch.zeros(1, 3)))


def test_self_attention_block_matches_a_reference_encoder_layer_and_ignores_padding():
    from seqrec.layers.transformer import SelfAttentionBlock

    torch.manual_seed(0)
    ours = SelfAttentionBlock(8, heads=2, ff=16, dropout=0.0, layer_norm=True).eval()
    ref = torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True).eval()
    lay = ours.layers[0]
    with torch.no_grad():  # same weights: [q; k; v] projections, output, feed-forward, norms
        ref.self_attn.in_proj_weight.copy_(lay.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(lay.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(lay.out.weight)
        ref.self_attn.out_proj.bias.copy_(lay.out.bias)
        ref.linear1.weight.copy_(lay.ff[0].weight)
        ref.linear1.bias.copy_(lay.ff[0].bias)
        ref.linear2.weight.copy_(lay.ff[2].weight)
        ref.linear2.bias.copy_(lay.ff[2].bias)
    x = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    got = ours(x, mask)
    with torch.no_grad():
        want = ref(x[:2], src_key_padding_mask=~mask[:2]) * mask[:2].unsqueeze(-1)
    torch.testing.assert_close(got[:2], want, atol=1e-5, rtol=1e-5)
    assert torch.equal(got[2], torch.zeros(5, 8))  # an empty sequence gives zeros, not NaN
    x2 = x.clone()
    x2[0, 3:] = 99.0  # padded positions are never keys
    torch.testing.assert_close(ours(x2, mask)[0], got[0])


@pytest.mark.parametrize("mode", ["augru", "agru", "aigru"])
def test_attention_gru_hand_backward_matches_autograd_of_the_equations(mode):
    """The hand-written recurrence (forward and backward) against autograd of DIEN's
    equations, written out step by step over all rows with masks."""
    torch.manual_seed(1)
    g = AttentionGRU(4, 3, mode).double()
    x = torch.randn(5, 6, 4, dtype=torch.double, requires_grad=True)
    att = torch.rand(5, 6, dtype=torch.double, requires_grad=True)
    mask = torch.arange(6) < torch.tensor([6, 0, 3, 1, 4]).unsqueeze(1)

    def reference():
        a = (att * mask).unsqueeze(-1)
        xin = x * a if mode == "aigru" else x
        h = torch.zeros(5, 3, dtype=torch.double)
        for t in range(6):
            xr, xz, xn = g.ih(xin[:, t]).chunk(3, 1)
            hr, hz, hn = g.hh(h).chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            c = torch.tanh(xn + r * hn)
            u = {"augru": (1 - z) * a[:, t], "agru": a[:, t].expand(5, 3), "aigru": 1 - z}[mode]
            h = torch.where(mask[:, t:t + 1], (1 - u) * h + u * c, h)
        return h

    params = [x, att, *g.parameters()]
    w = torch.randn(5, 3, dtype=torch.double)
    got = g(x, att, mask)
    gg = torch.autograd.grad((got * w).sum(), params)
    want = reference()
    gw = torch.autograd.grad((want * w).sum(), params)
    torch.testing.assert_close(got, want)
    for a, b in zip(gg, gw, strict=True):
        torch.testing.assert_close(a, b)


def test_sequence_gru_matches_torch_gru_and_is_zero_at_padding():
    from seqrec.layers.augru import SequenceGRU

    torch.manual_seed(2)
    g = SequenceGRU(4, 3).double()
    ref = torch.nn.GRU(4, 3, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(g.ih.weight)
        ref.bias_ih_l0.copy_(g.ih.bias)
        ref.weight_hh_l0.copy_(g.hh.weight)
        ref.bias_hh_l0.copy_(g.hh.bias)
    x = torch.randn(4, 5, 4, dtype=torch.double, requires_grad=True)
    lens = torch.tensor([5, 2, 0, 3])
    mask = torch.arange(5) < lens.unsqueeze(1)
    got = g(x, mask)
    w = torch.randn(4, 5, 3, dtype=torch.double)
    gg = torch.autograd.grad((got * w).sum(), [x, g.ih.weight, g.hh.weight, g.ih.bias, g.hh.bias])
    want = torch.zeros_like(got)
    for i, n in enumerate(lens.tolist()):  # each sequence alone through torch's GRU
        if n:
            want[i, :n] = ref(x[i : i + 1, :n])[0][0]
    gw = torch.autograd.grad((want * w).sum(), [x, *ref.parameters()])  # w_ih, w_hh, b_ih, b_hh
    torch.testing.assert_close(got, want)
    assert torch.equal(got[2], torch.zeros(5, 3)) and torch.equal(got[1, 2:], torch.zeros(3, 3))
    for a, b in zip(gg, gw, strict=True):
        torch.testing.assert_close(a, b)
