"""HRNN: session/user boundaries, the user-to-input variant, and a tiny real-data run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from seqrec.config import load_run_config
from seqrec.data.events import SessionArrays
from seqrec.evaluate.user_sessions import evaluate_hrnn, user_streams
from seqrec.experiment import evaluate_run, train_run
from seqrec.models.gru4rec import GRU4RecConfig
from seqrec.models.hrnn import HRNN, HRNNConfig


def _hrnn(layers=(8,), user_size=4, user_to_input=False, n_items=20) -> HRNN:
    torch.manual_seed(0)
    cfg = HRNNConfig(
        session=GRU4RecConfig(layers=layers),
        user_size=user_size,
        user_to_input=user_to_input,
    )
    return HRNN(cfg, n_items).eval()


@pytest.mark.parametrize("layers", [(8,), (8, 6)])
def test_boundary_updates_and_resets_user_state(layers):
    model = _hrnn(layers)
    g = torch.Generator().manual_seed(1)
    hidden = [torch.randn(3, h, generator=g) for h in layers]
    c = torch.randn(3, 4, generator=g)
    # lane 0: same user, new session; lane 1: new user; lane 2: mid-session
    new_session = torch.tensor([True, True, False])
    new_user = torch.tensor([False, True, False])
    with torch.no_grad():
        h2, c2 = model.boundary(hidden, c, new_session, new_user)
        # lane 0: c_m = GRU_usr(s_m, c_{m-1}) with s_m the top-layer state of the ended session
        want_c0 = model.user_update(hidden[-1][:1], c[:1])
        torch.testing.assert_close(c2[:1], want_c0)
        assert not torch.allclose(c2[0], c[0])
        # lane 1: a new user starts from c = 0 and the session from tanh(W_init 0 + b)
        assert torch.equal(c2[1], torch.zeros(4))
        init_c0 = model.session_init(want_c0)
        init_zero = model.session_init(torch.zeros(1, 4))
        for layer, h in enumerate(h2):
            assert h.shape == (3, layers[layer])
            torch.testing.assert_close(h[:1], init_c0[layer])
            torch.testing.assert_close(h[1:2], init_zero[layer])
            assert torch.equal(h[2], hidden[layer][2])  # lane without boundary: untouched
        assert torch.equal(c2[2], c[2])
    # no boundary at all: the very same state comes back
    h3, c3 = model.boundary(
        hidden, c, torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
    )
    assert h3 is hidden and c3 is c


def test_session_init_is_tanh_of_linear():
    model = _hrnn()
    c = torch.randn(2, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        lin = model.init[0]
        torch.testing.assert_close(
            model.session_init(c)[0], torch.tanh(c @ lin.weight.t() + lin.bias)
        )


def test_user_to_input_feeds_the_user_state():
    model = _hrnn(user_to_input=True)
    items = torch.tensor([2, 3])
    h = model.session.init_hidden(2)
    c1 = torch.zeros(2, 4)
    c2 = torch.ones(2, 4)
    with torch.no_grad():
        out1, _ = model.session.step(items, h, extra=model.extra(c1))
        out2, _ = model.session.step(items, h, extra=model.extra(c2))
    assert out1.shape == (2, 8)
    assert not torch.allclose(out1, out2)
    assert _hrnn().extra(c2) is None


def test_user_streams_order_context_then_test():
    # context (training) sessions of users 2, 3 and 4; test sessions of users 3, 2 and OOV (1)
    context = SessionArrays.from_lists([[2, 3], [4, 5, 6], [7, 8], [9, 10]])
    context.users = np.array([2, 3, 2, 4])
    test = SessionArrays.from_lists([[11, 12], [13, 14, 15], [16, 17]])
    test.users = np.array([3, 2, 1])
    items, offsets, users, scored = user_streams(context, test)
    sessions = [items[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
    # the OOV-user test session stands alone (user -1), then user 2: its two context sessions
    # then its test session, then user 3; user 4 has no test session and is left out
    assert sessions == [[16, 17], [2, 3], [7, 8], [13, 14, 15], [4, 5, 6], [11, 12]]
    assert users.tolist() == [-1, 2, 2, 2, 3, 3]
    assert scored.tolist() == [True, False, False, True, False, True]
    m = evaluate_hrnn(_hrnn(), context, test, ks=(5,))
    assert m["n_events"] == 1 + 2 + 1 and m["n_sessions"] == 3


@pytest.fixture(scope="module")
def hrnn_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory):
    cfg = load_run_config(
        raw={
            "data": {"dataset": "retailrocket_users", "data_dir": str(data_root)},
            "model": {
                "name": "hrnn",
                "user_size": 16,
                "session": {"layers": [32]},
            },
            "loss": {"name": "bpr-max", "n_sample": 64, "sample_cache": 20_000},
            "train": {"epochs": 1, "batch_size": 32, "progress": False},
        }
    )
    out = tmp_path_factory.mktemp("hrnn_run")
    return out, train_run(cfg, out)


@pytest.mark.slow
def test_hrnn_train_run_on_real_users(hrnn_run):
    out, metrics = hrnn_run
    for name in (
        "config.json",
        "model.pt",
        "vocab.json",
        "user_vocab.json",
        "metrics.json",
        "log.csv",
    ):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["model"] == "hrnn" and saved["epochs"] == 1
    test = saved["test"]
    # it learned something: one tiny epoch gives ~0.17, POP 0.0125 on these 160 test events
    # (benchmarks/results/session.json), a random ranking ~20 / n_items
    assert test["recall@20"] > 0.05 and test["mrr@20"] > 0.02
    assert test["n_events"] > 0
    assert math.isfinite(saved["train_events_per_s"])


@pytest.mark.slow
def test_hrnn_evaluate_run_reproduces_test_metrics(hrnn_run):
    out, metrics = hrnn_run
    again = evaluate_run(out)
    for k in ("recall@20", "mrr@20", "ndcg@20", "n_events", "n_sessions"):
        assert again[k] == metrics["test"][k], k
