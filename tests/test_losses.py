"""Sampled losses of the GRU4Rec family: golden values computed by hand on a 2x3 score matrix.

The matrix (B = 2 lanes, M = 3 columns; column 2 plays a shared extra sample):

    X = [[1.0, 0.0,  2.0],     row 0: target column 0 (score 1), negatives 0 and 2
         [0.5, 1.0, -1.0]]     row 1: target column 1 (score 1), negatives 0.5 and -1

Values used below (σ = logistic sigmoid, e = 2.718281828):
    σ(1) = 0.731058579   σ(-1) = 0.268941421   σ(0.5) = 0.622459331   σ(2) = 0.880797078
    σ(0) = 0.5           σ(4) = 0.982013790    σ(-0.5) = 0.377540669  σ(0.25) = 0.562176501
    σ(-2) = 0.119202922
"""

from __future__ import annotations

import pytest
import torch

from seqrec.losses.sampled import (
    LOSSES,
    bpr,
    bpr_max,
    cross_entropy,
    loss_and_grad,
    sampled_loss,
    top1,
    top1_max,
)

X = [[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]]


def _x(requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor(X, dtype=torch.float64, requires_grad=requires_grad)


# -- golden values ---------------------------------------------------------------------------


def test_cross_entropy_golden():
    # row 0: -log(e^1 / (e^1 + e^0 + e^2)) = log(2.718282 + 1 + 7.389056) - 1
    #        = log(11.107338) - 1 = 2.407606 - 1 = 1.407606
    # row 1: log(e^0.5 + e^1 + e^-1) - 1 = log(1.648721 + 2.718282 + 0.367879) - 1
    #        = log(4.734883) - 1 = 1.554957 - 1 = 0.554957
    # mean = (1.407606 + 0.554957) / 2 = 0.981281
    assert cross_entropy(_x()).item() == pytest.approx(0.9812814420, abs=1e-9)
    assert sampled_loss("cross-entropy", _x()).item() == pytest.approx(0.9812814420, abs=1e-9)


def test_cross_entropy_logq_golden():
    # Q = (0.5, 0.25, 0.25): with logq = 1 column j's score becomes x_j - log Q_j, i.e.
    # + log 2 = 0.693147 on column 0 and + log 4 = 1.386294 on columns 1 and 2.
    # row 0: [1.693147, 1.386294, 3.386294]; target col 0:
    #        log(5.436564 + 4 + 29.556224) - 1.693147 = log(38.992788) - 1.693147
    #        = 3.663377 - 1.693147 = 1.970230
    # row 1: [1.193147, 2.386294, 0.386294]; target col 1:
    #        log(3.297443 + 10.873127 + 1.471518) - 2.386294 = log(15.642088) - 2.386294
    #        = 2.749965 - 2.386294 = 0.363671
    # mean = (1.970230 + 0.363671) / 2 = 1.166950
    log_q = torch.log(torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    got = sampled_loss("cross-entropy", _x(), logq=1.0, log_q=log_q).item()
    assert got == pytest.approx(1.1669501857, abs=1e-9)
    # logq = 0 (or no table) is plain cross-entropy; logq = 0.5 is halfway in the shift
    assert sampled_loss("cross-entropy", _x(), logq=0.0, log_q=log_q).item() == pytest.approx(
        0.9812814420, abs=1e-9
    )
    half = _x() - 0.5 * log_q[None, :]
    assert sampled_loss("cross-entropy", _x(), logq=0.5, log_q=log_q).item() == pytest.approx(
        cross_entropy(half).item(), abs=1e-12
    )


def test_bpr_golden():
    # -1/N_S Σ_j log σ(r_i - r_j), N_S = 2 negatives per row
    # row 0: -(log σ(1 - 0) + log σ(1 - 2)) / 2 = -(log 0.731059 + log 0.268941) / 2
    #        = -(-0.313262 - 1.313262) / 2 = 0.813262
    # row 1: -(log σ(1 - 0.5) + log σ(1 + 1)) / 2 = -(log 0.622459 + log 0.880797) / 2
    #        = -(-0.474077 - 0.126928) / 2 = 0.300502
    # mean = 0.556882
    assert bpr(_x()).item() == pytest.approx(0.5568820926, abs=1e-9)
    assert sampled_loss("bpr", _x()).item() == pytest.approx(0.5568820926, abs=1e-9)


def test_top1_golden():
    # 1/N_S Σ_j σ(r_j - r_i) + σ(r_j²)
    # row 0: (σ(0 - 1) + σ(0²) + σ(2 - 1) + σ(2²)) / 2
    #        = (0.268941 + 0.5 + 0.731059 + 0.982014) / 2 = 2.482014 / 2 = 1.241007
    # row 1: (σ(0.5 - 1) + σ(0.25) + σ(-1 - 1) + σ(1)) / 2
    #        = (0.377541 + 0.562177 + 0.119203 + 0.731059) / 2 = 1.789979 / 2 = 0.894989
    # mean = 1.067998
    assert top1(_x()).item() == pytest.approx(1.0679981151, abs=1e-9)
    assert sampled_loss("top1", _x()).item() == pytest.approx(1.0679981151, abs=1e-9)


# softmax over each row's negatives only:
#   row 0 over (0, 2):    s_1 = 1 / (1 + e^2) = 0.119203,  s_2 = e^2 / (1 + e^2) = 0.880797
#   row 1 over (0.5, -1): s_0 = e^0.5 / (e^0.5 + e^-1) = 1.648721 / 2.016601 = 0.817574,
#                         s_2 = 0.367879 / 2.016601 = 0.182426
# BPR-max ranking part  -log Σ_j s_j σ(r_i - r_j):
#   row 0: -log(0.119203 σ(1) + 0.880797 σ(-1)) = -log(0.087144 + 0.236883) = -log(0.324027) = 1.126928
#   row 1: -log(0.817574 σ(0.5) + 0.182426 σ(2)) = -log(0.508907 + 0.160680) = -log(0.669587) = 0.401095
# regulariser  Σ_j s_j r_j²:
#   row 0: 0.119203 * 0 + 0.880797 * 4 = 3.523188
#   row 1: 0.817574 * 0.25 + 0.182426 * 1 = 0.386819
BPR_MAX_RANK = (1.1269280110 + 0.4010945778) / 2  # 0.764011
BPR_MAX_REG = (3.5231883119 + 0.3868191429) / 2  # 1.955004


@pytest.mark.parametrize("bpreg", [0.0, 0.5, 1.0])
def test_bpr_max_golden(bpreg):
    # bpreg = 0: 0.764011; bpreg = 1: 0.764011 + 1.955004 = 2.719015;
    # bpreg = 0.5: 0.764011 + 0.977502 = 1.741513
    want = {0.0: 0.7640112944, 0.5: 1.7415131581, 1.0: 2.7190150218}[bpreg]  # hand-computed above
    assert bpr_max(_x(), bpreg).item() == pytest.approx(want, abs=1e-9)
    assert sampled_loss("bpr-max", _x(), bpreg=bpreg).item() == pytest.approx(want, abs=1e-9)


def test_top1_max_golden():
    # Σ_j s_j (σ(r_j - r_i) + σ(r_j²)), s as above
    # row 0: 0.119203 (σ(-1) + σ(0)) + 0.880797 (σ(1) + σ(4))
    #        = 0.119203 * 0.768941 + 0.880797 * 1.713073 = 0.091660 + 1.508869 = 1.600529
    # row 1: 0.817574 (σ(-0.5) + σ(0.25)) + 0.182426 (σ(-2) + σ(1))
    #        = 0.817574 * 0.939718 + 0.182426 * 0.850262 = 0.768289 + 0.155110 = 0.923398
    # mean = 1.261964
    assert top1_max(_x()).item() == pytest.approx(1.2619636867, abs=1e-9)
    assert sampled_loss("top1-max", _x()).item() == pytest.approx(1.2619636867, abs=1e-9)


# -- masking: the target is never its own negative ----------------------------------------


def test_target_excluded_from_negative_softmax():
    """Raising only the targets' scores leaves the softmax over negatives, hence BPR-max's
    regulariser, unchanged; and with a huge target score the ranking parts vanish."""
    lo, hi = _x(), _x()
    hi[0, 0], hi[1, 1] = 50.0, 50.0
    for bpreg in (0.5, 2.0):
        reg_lo = bpr_max(lo, bpreg) - bpr_max(lo, 0.0)
        reg_hi = bpr_max(hi, bpreg) - bpr_max(hi, 0.0)
        assert reg_lo.item() == pytest.approx(bpreg * BPR_MAX_REG, abs=1e-9)
        assert reg_hi.item() == pytest.approx(reg_lo.item(), abs=1e-12)
    # target far above every negative: -log Σ s_j σ(50 - r_j) ≈ 0; if the target were in the
    # softmax it would take weight ~1 and add bpreg * 50² to the loss.
    assert bpr_max(hi, 1.0).item() == pytest.approx(BPR_MAX_REG, abs=1e-9)
    # TOP1-max: σ(r_j - 50) ≈ 0, left Σ s_j σ(r_j²) over the negatives only
    # row 0: 0.119203 σ(0) + 0.880797 σ(4) = 0.059601 + 0.864955 = 0.924556
    # row 1: 0.817574 σ(0.25) + 0.182426 σ(1) = 0.459621 + 0.133364 = 0.592985
    assert top1_max(hi).item() == pytest.approx((0.9245563 + 0.5929849) / 2, abs=1e-6)
    # BPR / TOP1 average over the M - 1 = 2 true negatives, never over the target itself
    assert bpr(hi).item() == pytest.approx(0.0, abs=1e-12)
    # TOP1 row 0: (σ(-50) + σ(0) + σ(-48) + σ(4)) / 2 ≈ (0.5 + 0.982014) / 2 = 0.741007
    # TOP1 row 1: (σ(-49.5) + σ(0.25) + σ(-51) + σ(1)) / 2 ≈ (0.562177 + 0.731059) / 2 = 0.646618
    assert top1(hi).item() == pytest.approx((0.7410069 + 0.6466179) / 2, abs=1e-6)


def test_regulariser_has_no_gradient_on_targets():
    x = _x(requires_grad=True)
    (bpr_max(x, 1.0) - bpr_max(x, 0.0)).backward()
    assert x.grad.diagonal().abs().max().item() == 0.0
    assert x.grad[0, 2].item() != 0.0


def test_other_lanes_targets_are_negatives():
    """Column 1 is lane 1's target and a negative for lane 0 (and vice versa)."""
    x = _x(requires_grad=True)
    bpr(x).backward()
    # x[0, 1] is lane 1's item scored for lane 0: a negative of row 0, so the loss pushes it
    # down (positive gradient); the targets x[i, i] are pushed up (negative gradient)
    assert x.grad[0, 1].item() > 0 and x.grad[1, 0].item() > 0
    assert x.grad[0, 0].item() < 0 and x.grad[1, 1].item() < 0


# -- numerics ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_finite(name):
    torch.manual_seed(0)
    log_q = torch.log(torch.full((7,), 1 / 7))
    for scale in (1.0, 30.0, 200.0):
        x = (torch.randn(3, 7) * scale).requires_grad_()
        loss = sampled_loss(name, x, bpreg=1.0, logq=1.0, log_q=log_q)
        loss.backward()
        assert torch.isfinite(loss), (name, scale)
        assert torch.isfinite(x.grad).all(), (name, scale)
    # saturated case: every negative far above the target
    x = torch.tensor([[-100.0, 100.0, 100.0]], requires_grad=True)
    loss = sampled_loss(name, x, bpreg=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", LOSSES)
def test_no_negative_gives_zero_loss(name):
    """One lane left and no extra samples (n_sample = 0): a (1, 1) matrix; loss 0, not NaN."""
    x = torch.tensor([[0.3]], requires_grad=True)
    loss = sampled_loss(name, x)
    loss.backward()
    assert loss.item() == 0.0
    assert x.grad.item() == 0.0


@pytest.mark.parametrize("name", LOSSES)
def test_float32_matches_float64(name):
    got = sampled_loss(name, _x().float(), bpreg=0.7).item()
    want = sampled_loss(name, _x(), bpreg=0.7).item()
    assert got == pytest.approx(want, rel=1e-6)


def test_unknown_loss_raises():
    with pytest.raises(ValueError, match="unknown loss"):
        sampled_loss("hinge", _x())


# -- closed-form gradients of the fused step --------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])
def test_loss_and_grad_equals_autograd(name, scale):
    """The hand-derived gradients (fused training step) equal autograd of the definitions."""
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(5, 13, generator=g, dtype=torch.float64) * scale).requires_grad_()
    log_q = torch.log(torch.rand(13, generator=g, dtype=torch.float64))
    want = sampled_loss(name, x, bpreg=0.7, logq=0.8, log_q=log_q)
    want.backward()
    got, grad = loss_and_grad(name, x.detach().clone(), bpreg=0.7, logq=0.8, log_q=log_q)
    assert got == pytest.approx(want.item(), rel=1e-9, abs=1e-9)
    torch.testing.assert_close(grad, x.grad, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_and_grad_norm_is_the_sum_over_the_batch_size(name):
    """``norm``: the gradient of the rows' sum / norm (the trainer passes the configured batch
    size, as the reference divides by it also when fewer lanes are live); the value stays the mean."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 9, generator=g, dtype=torch.float64).requires_grad_()
    (sampled_loss(name, x, bpreg=0.7) * 3 / 8).backward()  # mean * B / norm = sum / norm
    mean, _ = loss_and_grad(name, x.detach().clone(), bpreg=0.7)
    got, grad = loss_and_grad(name, x.detach().clone(), bpreg=0.7, norm=8)
    assert got == mean
    torch.testing.assert_close(grad, x.grad, rtol=1e-7, atol=1e-10)


def test_loss_and_grad_golden_and_degenerate():
    assert loss_and_grad("bpr-max", _x(), bpreg=1.0)[0] == pytest.approx(2.7190150218, abs=1e-9)
    assert loss_and_grad("top1", _x())[0] == pytest.approx(1.0679981151, abs=1e-9)
    value, grad = loss_and_grad("bpr", torch.tensor([[0.3]]))
    assert value == 0.0 and grad.tolist() == [[0.0]]
    with pytest.raises(ValueError, match="unknown loss"):
        loss_and_grad("hinge", _x())
