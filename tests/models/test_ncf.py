"""NCF (He et al. WWW 2017): NeuMF's score is eq. (12), the chunked full ranking equals the
per-pair forward, pretraining copies GMF / MLP exactly with the alpha scaling, and the pointwise
log loss (eq. 7) matches a hand computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from seqrec.config import load_run_config
from seqrec.data.tasks.retrieval import CSR, EvalSplit, RetrievalTask
from seqrec.errors import ConfigError
from seqrec.models.ncf import GMF, NCFMLP, GMFConfig, NCFMLPConfig, NeuMF, NeuMFConfig
from seqrec.models.retrieval_base import RetrievalInfo
from seqrec.train.checkpoint import save_tensors
from seqrec.train.objectives import objective_for
from seqrec.train.objectives.ncf import PointwiseNCF, sample_unobserved

N_USERS, N_ITEMS = 5, 9
INFO = RetrievalInfo(N_USERS, N_ITEMS)
TRAIN = [[1, 2], [3], [2, 4, 5], [6, 7, 8], [9]]


def tiny_task() -> RetrievalTask:
    train = CSR.from_lists([np.asarray(r) for r in TRAIN])
    users = np.arange(N_USERS)
    test = EvalSplit(users, CSR.from_lists([np.asarray([(r[0] % N_ITEMS) + 1]) for r in TRAIN]), train, train)
    return RetrievalTask("tiny", N_USERS, N_ITEMS, train, None, test, np.arange(1, N_ITEMS + 1), users,
                         ordered=False, protocol="bars")


def run_config(name: str, **model):
    return load_run_config(raw={"data": {"dataset": "gowalla", "train_split": "train"},
                                "model": {"name": name, **model},
                                "train": {"batch_size": 4, "optimizer": "sgd", "lr": 0.1, "seed": 3}})


def seeded(cls, config, seed=0):
    torch.manual_seed(seed)
    model = cls(config, INFO)
    with torch.no_grad():  # larger weights than the N(0, 0.01) init, so every term matters
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    return model


def relu(x):
    return np.maximum(x, 0.0)


def test_neumf_score_is_the_papers_formula():
    m = seeded(NeuMF, NeuMFConfig(gmf_dim=3, mlp_dim=2, layers=(4, 2)))
    sd = {k: v.detach().double().numpy() for k, v in m.state_dict().items()}
    u, i = 2, 7
    pg, qg = sd["gmf_user.weight"][u], sd["gmf_item.weight"][i]
    z = np.concatenate([sd["mlp.user.weight"][u], sd["mlp.item.weight"][i]])  # eq. (10): z_1 = [p_u, q_i]
    z = relu(sd["mlp.tower.net.0.weight"] @ z + sd["mlp.tower.net.0.bias"])
    z = relu(sd["mlp.tower.net.2.weight"] @ z + sd["mlp.tower.net.2.bias"])
    h = sd["out.weight"][0]
    want = h @ np.concatenate([pg * qg, z])  # eq. (12): h^T [phi_GMF ; phi_MLP]
    with torch.no_grad():
        got = m.score_pairs(torch.tensor([u]), torch.tensor([[i]]))
        full = m.score_all({"user": torch.tensor([u])})
    assert got.shape == (1, 1)
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(full[0, i]) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("cls,config", [
    (GMF, GMFConfig(dim=4)),
    (NCFMLP, NCFMLPConfig(dim=3, layers=(6, 3, 2), score_chunk=2)),
    (NeuMF, NeuMFConfig(gmf_dim=4, mlp_dim=3, layers=(6, 3), score_chunk=3)),
])
def test_score_all_equals_the_per_pair_forward(cls, config):
    m = seeded(cls, config)
    users = torch.tensor([4, 0, 2, 2, 1, 3, 0])  # 7 users: chunks of 2 / 3 with a short last one
    with torch.no_grad():
        fast = m.score_all({"user": users})
        naive = m.score_pairs(users, torch.arange(N_ITEMS + 1).expand(len(users), -1))
    assert fast.shape == (len(users), N_ITEMS + 1)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)


def test_gmf_is_an_inner_product():
    m = seeded(GMF, GMFConfig(dim=4))
    assert m.dot_product
    u = torch.tensor([1, 3])
    s = m.user_vectors({"user": u}) @ m.item_vectors().T
    torch.testing.assert_close(s, m.score_pairs(u, torch.arange(N_ITEMS + 1).expand(2, -1)))


def save_run(path, name: str, model, dataset="gowalla", train_split="train"):
    path.mkdir()
    cfg = {"family": "retrieval", "data": {"dataset": dataset, "train_split": train_split},
           "model": {"name": name}}
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "metrics.json").write_text("{}")
    save_tensors(path / "model.pt", model.state_dict())


def pretrained_pair(tmp_path):
    gmf = seeded(GMF, GMFConfig(dim=3), seed=1)
    mlp = seeded(NCFMLP, NCFMLPConfig(dim=2, layers=(4, 2)), seed=2)
    save_run(tmp_path / "gmf", "gmf", gmf)
    save_run(tmp_path / "mlp", "ncf_mlp", mlp)
    return gmf, mlp


@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_pretraining_loads_gmf_and_mlp_exactly(tmp_path, alpha):
    gmf, mlp = pretrained_pair(tmp_path)
    cfg = run_config("neumf", gmf_dim=3, mlp_dim=2, layers=[4, 2], alpha=alpha,
                     pretrained_gmf=str(tmp_path / "gmf"), pretrained_mlp=str(tmp_path / "mlp"))
    model = NeuMF(cfg.model, INFO)
    objective_for("neumf", model, tiny_task(), cfg)  # the objective initialises NeuMF (sec. 3.4.1)
    assert torch.equal(model.gmf_user.weight, gmf.user.weight)
    assert torch.equal(model.gmf_item.weight, gmf.item.weight)
    for k, v in mlp.mlp.state_dict().items():
        assert torch.equal(model.mlp.state_dict()[k], v), k
    assert torch.equal(model.out.weight[:, :3], alpha * gmf.out.weight)
    assert torch.equal(model.out.weight[:, 3:], (1 - alpha) * mlp.out.weight)
    # so NeuMF starts as the alpha-blend of the two models' logits
    users = torch.tensor([0, 3, 4])
    with torch.no_grad():
        blend = alpha * gmf.score_all({"user": users}) + (1 - alpha) * mlp.score_all({"user": users})
        torch.testing.assert_close(model.score_all({"user": users}), blend)


def test_pretraining_errors_are_one_line(tmp_path):
    pretrained_pair(tmp_path)
    save_run(tmp_path / "other", "gmf", seeded(GMF, GMFConfig(dim=3)), dataset="movielens1m_m1")
    good = {"gmf_dim": 3, "mlp_dim": 2, "layers": [4, 2], "pretrained_gmf": str(tmp_path / "gmf"),
            "pretrained_mlp": str(tmp_path / "mlp")}
    cases = [
        ({"pretrained_gmf": str(tmp_path / "nope")}, "not a finished run"),
        ({"pretrained_gmf": str(tmp_path / "mlp")}, "is a 'ncf_mlp' run"),
        ({"pretrained_gmf": str(tmp_path / "other")}, "data.dataset"),
        ({"gmf_dim": 4}, "gmf_dim = 4"),
        ({"layers": [4, 3]}, "layers = [4, 3]"),
    ]
    for change, words in cases:
        cfg = run_config("neumf", **{**good, **change})
        with pytest.raises(ConfigError) as exc:
            PointwiseNCF(NeuMF(cfg.model, INFO), tiny_task(), cfg)
        assert words in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="both"):
        NeuMFConfig(pretrained_gmf="x")


def test_pointwise_log_loss_by_hand():
    cfg = run_config("gmf", dim=2, n_negatives=2)
    model = GMF(cfg.model, INFO)
    with torch.no_grad():
        model.user.weight.copy_(torch.arange(N_USERS * 2, dtype=torch.float32).view(-1, 2) / 10)
        model.item.weight.copy_(torch.linspace(-1, 1, (N_ITEMS + 1) * 2).view(-1, 2))
        model.out.weight.copy_(torch.tensor([[0.5, -2.0]]))
    obj = PointwiseNCF(model, tiny_task(), cfg)
    batch = {"user": torch.tensor([0, 3]), "target": torch.tensor([1, 6]), "neg": torch.tensor([[4, 9], [2, 2]])}
    p, q, h = (model.user.weight.detach().numpy(), model.item.weight.detach().numpy(), np.array([0.5, -2.0]))

    def sig(x):
        return 1 / (1 + math.exp(-x))

    total = 0.0
    for b in range(2):
        u = int(batch["user"][b])
        total -= math.log(sig(float(h @ (p[u] * q[int(batch["target"][b])]))))  # y = 1
        for j in batch["neg"][b].tolist():
            total -= math.log(1 - sig(float(h @ (p[u] * q[j]))))  # y = 0
    assert obj.loss(batch).item() == pytest.approx(total / 6, rel=1e-5)  # mean over 2 x (1 + 2) instances


def test_negatives_are_unobserved_and_resampled_each_epoch():
    task = tiny_task()
    cfg = run_config("ncf_mlp", dim=2, layers=[2], n_negatives=4)
    obj = PointwiseNCF(NCFMLP(cfg.model, INFO), task, cfg)
    seen = {(u, i) for u, r in enumerate(TRAIN) for i in r}
    epochs = []
    for e in range(2):
        negs = []
        for b in obj.batches(e):
            assert b["neg"].shape == (len(b["user"]), 4)
            for u, row in zip(b["user"].tolist(), b["neg"].tolist(), strict=True):
                assert all(1 <= j <= N_ITEMS and (u, j) not in seen for j in row)
            negs.append(b["neg"])
        epochs.append(torch.cat(negs))
        assert sum(len(b["user"]) for b in obj.batches(e)) == obj.n_examples == sum(map(len, TRAIN))
    assert not torch.equal(epochs[0], epochs[1])
    rng = np.random.default_rng(0)  # a user with one free item always gets it
    observed = np.sort(np.arange(1, 9))  # user 0 has items 1..8 of 9
    assert (sample_unobserved(np.zeros(3, np.int64), 5, observed, 9, rng) == 9).all()


def test_config_rejects_bad_values():
    for bad in ({"dim": 0}, {"layers": ()}, {"n_negatives": 0}, {"reg": -1.0}):
        with pytest.raises(ValueError):
            NCFMLPConfig(**bad)
    with pytest.raises(ValueError):
        NeuMFConfig(alpha=1.5)
