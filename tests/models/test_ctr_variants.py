"""The like-for-like variants (``din-paper``, ``dien-paper``): the peer's recipe, knob by knob."""

from __future__ import annotations

import pytest
import torch
from test_ctr_contract import columns, model_for

from seqrec.config import load_run_config
from seqrec.data.samples import to_tensors
from seqrec.layers.mlp import MLP
from seqrec.models.ctr_base import normal_weights_
from seqrec.train.ctr_trainer import build_torch_optimizer


@pytest.mark.parametrize("name", ["din-paper", "dien-paper"])
def test_paper_variants_have_the_peers_recipe(name):
    m = model_for(name)
    c = m.config
    assert not c.item_bias and not c.sum_product and m.item_bias is None
    assert c.mlp_act == "prelu_shared" and c.init_std == 1e-4 and c.dense_init_std == 1e-4
    # one PReLU slope per MLP layer (torch.nn.PReLU(), what DeepCTR builds for "prelu")
    slopes = [p for n, p in m.mlp.named_parameters() if n.endswith("weight") and p.dim() == 1]
    assert slopes and all(p.numel() == 1 for p in slopes)
    # dense Adam on everything: no sparse embedding gradients, a single optimiser
    assert not any(e.sparse for e in m.inp.emb.tables.values())
    assert len(build_torch_optimizer("adam", m, 1e-3).opts) == 1
    # embeddings ~ N(0, 1e-4) (padding row zero), hidden MLP weights likewise
    w = m.inp.emb.tables["item"].weight
    assert torch.all(w[0] == 0) and 0.5e-4 < w[1:].std().item() < 2e-4
    hidden = m.mlp.linears(output=False)[0].weight
    assert 0.5e-4 < hidden.std().item() < 2e-4


def test_din_extras_variant_differs_from_the_paper_one():
    m = model_for("din", item_bias=True, sum_product=True, init_std=1e-2, dense_init_std=0.0)
    assert m.item_bias is not None
    assert m.inp.emb.tables["item"].weight[1:].std().item() > 5e-3
    # torch's default init: uniform with bound 1/sqrt(fan_in), far wider than 1e-4
    assert m.mlp.linears(output=False)[0].weight.std().item() > 1e-2


@pytest.mark.parametrize("name", ["din", "dien"])
def test_default_extras_are_those_that_helped_on_validation(name):
    """Defaults keep only the extras whose removal lowered validation AUC on most datasets
    (configs/din_*.toml, dien_*.toml headers): sum-product and the N(0, 1e-2) init."""
    c = model_for(name).config
    assert c.sum_product and c.init_std == 1e-2 and c.dense_init_std == 0.0
    assert not c.item_bias and not c.sparse_grad and c.mlp_act == "prelu_shared"
    if name == "dien":
        assert c.attention == "mlp"


def test_dien_paper_uses_mlp_attention_normalised_over_real_steps():
    m = model_for("dien-paper")
    assert hasattr(m, "att") and not hasattr(m, "att_w")
    b = to_tensors(columns())
    q = m.inp.query(b)
    k, mask = m.inp.keys(b)
    h = m.extractor(k, mask)
    a = m.att.weights(q, h, mask)
    real = mask.any(1)
    torch.testing.assert_close(a[real].sum(1), torch.ones(int(real.sum())))
    assert torch.all(a[~mask] == 0)
    # DeepCTR's AUGRU cell starts with zero biases; weights ~ N(0, 1e-4)
    assert torch.all(m.evolve.ih.bias == 0) and torch.all(m.evolve.hh.bias == 0)
    assert 0.5e-4 < m.evolve.hh.weight.std().item() < 2e-4
    bil = model_for("dien-paper", attention="bilinear")
    assert hasattr(bil, "att_w") and not hasattr(bil, "att")


def test_mlp_attention_needs_equal_widths():
    with pytest.raises(ValueError, match="gru_hidden equal to the behaviour width"):
        model_for("dien-paper", gru_hidden=5)


def test_normal_weights_leaves_biases_and_output_layer():
    torch.manual_seed(0)
    mlp = MLP(10, (20, 30), "relu", out_dim=1)
    out_w = mlp.linears()[-1].weight.clone()
    biases = [lin.bias.clone() for lin in mlp.linears()]
    normal_weights_(1e-4, *mlp.linears(output=False))
    assert all(lin.weight.std().item() < 2e-4 for lin in mlp.linears(output=False))
    assert torch.equal(mlp.linears()[-1].weight, out_w)
    assert all(torch.equal(b, lin.bias) for b, lin in zip(biases, mlp.linears(), strict=True))
    normal_weights_(0.0, mlp)  # no-op
    assert torch.equal(mlp.linears()[-1].weight, out_w)


def test_bad_init_values_are_config_errors():
    from seqrec.errors import ConfigError

    with pytest.raises(ConfigError, match="init_std must be > 0"):
        load_run_config(raw={"model": {"name": "din-paper", "init_std": 0.0}})
    with pytest.raises(ConfigError, match="attention must be bilinear or mlp"):
        load_run_config(raw={"model": {"name": "dien", "attention": "dot"}})
