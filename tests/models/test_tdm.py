"""TDM (Zhu et al. KDD 2018): the item tree's invariants, beam search against brute force, and the
layer-wise objective's positives and negatives."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from seqrec.models.retrieval_base import RetrievalInfo
from seqrec.models.tdm import TDM, TDMConfig
from seqrec.models.tdm_tree import ItemTree, balanced_order, tree_layers
from seqrec.train.objectives.tdm import layer_negatives


def _check_tree(tree: ItemTree, n: int) -> None:
    depth = max(1, math.ceil(math.log2(n)))
    assert tree.depth == depth
    ptr = tree.layer_ptr.tolist()
    assert ptr[0] == 0 and ptr[1] == 1  # one root
    for lay in range(depth + 1):
        assert 1 <= tree.layer_size(lay) <= 2 ** lay
    assert tree.layer_size(depth) == n  # every leaf on the last layer: balanced depth
    # every item is a leaf exactly once, and item_leaf inverts leaf_item
    assert sorted(tree.leaf_item.tolist()) == list(range(1, n + 1))
    leaves = torch.arange(tree.leaf_start, tree.n_nodes)
    assert torch.equal(tree.item_leaf[tree.leaf_item], leaves)
    assert tree.item_leaf[0] == -1
    # parents and children agree; every non-root node is a child of its parent exactly once
    parent, child = tree.parent, tree.child
    assert parent[0] == -1
    for node in range(1, tree.n_nodes):
        p = int(parent[node])
        assert (child[p] == node).sum() == 1
        lay = int(np.searchsorted(ptr, node, side="right")) - 1
        assert ptr[lay - 1] <= p < ptr[lay]  # the parent is on the layer above
    kids = child[child >= 0]
    assert sorted(kids.tolist()) == list(range(1, tree.n_nodes))
    assert (child[tree.leaf_start:] == -1).all()  # leaves have no children
    assert (child[:tree.leaf_start, 0] >= 0).all()  # every internal node has a (left) child
    # each internal node's subtree holds floor/ceil halves of its parent's leaves (balanced)
    sizes = tree_layers(n)
    for lay in range(depth):
        s = sizes[lay]
        assert ((s + 1) // 2 <= 2 ** (depth - lay - 1)).all()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 30, 100, 1000])
def test_tree_invariants(n):
    tree = ItemTree(n)
    _check_tree(tree, n)
    tree.set_order(torch.randperm(n, generator=torch.Generator().manual_seed(n)) + 1)
    _check_tree(tree, n)


def test_ancestors_are_the_parent_chain_of_each_leaf():
    tree = ItemTree(37)
    tree.set_order(torch.randperm(37, generator=torch.Generator().manual_seed(1)) + 1)
    for item in range(1, 38):
        anc = tree.ancestors[item].tolist()
        assert anc[-1] == int(tree.item_leaf[item])
        for lay in range(tree.depth - 1):
            assert anc[lay] == int(tree.parent[anc[lay + 1]])
            assert tree.layer_ptr[lay + 1] <= anc[lay] < tree.layer_ptr[lay + 2]
        assert int(tree.parent[anc[0]]) == 0


def test_set_order_rejects_a_non_permutation():
    with pytest.raises(ValueError, match="permutation"):
        ItemTree(4).set_order(torch.tensor([1, 1, 2, 3]))


def test_balanced_order_separates_clusters_at_every_level():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 0], [-10, 0], [0, 10], [0, -10]], dtype=float)
    labels = np.repeat(np.arange(4), 8)
    emb = centres[labels] + rng.normal(0, 0.1, (32, 2))
    order = balanced_order(emb, iters=5, seed=0)
    assert sorted(order.tolist()) == list(range(32))
    groups = labels[order].reshape(4, 8)  # the four subtrees of layer 2
    assert all(len(set(g)) == 1 for g in groups)
    assert len({g[0] for g in groups}) == 4
    halves = labels[order].reshape(2, 16)  # layer 1: two clusters per half
    assert {frozenset(h) for h in halves} in ({frozenset({0, 1}), frozenset({2, 3})},
                                              {frozenset({0, 2}), frozenset({1, 3})},
                                              {frozenset({0, 3}), frozenset({1, 2})})


def test_subtree_means():
    tree = ItemTree(5)
    vals = torch.arange(6, dtype=torch.float32)[:, None]  # item i -> i
    means = tree.subtree_means(vals)
    assert means[0].item() == pytest.approx(3.0)  # root: mean of 1..5
    for node in range(tree.leaf_start, tree.n_nodes):
        assert means[node].item() == float(tree.leaf_item[node - tree.leaf_start])


def _model(n_items=200, max_len=6, seed=0, **kw) -> TDM:
    torch.manual_seed(seed)
    cfg = TDMConfig(dim=8, att_hidden=(8,), hidden=(16, 8), **kw)
    model = TDM(cfg, RetrievalInfo(n_users=10, n_items=n_items, max_len=max_len)).eval()
    with torch.no_grad():  # larger weights than the init, so scores differ clearly between nodes
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def _batch(n_items=200, b=5, t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(1, n_items + 1, (b, t), generator=g)
    hist[0, :4] = 0  # padding
    hist[1, :] = 0  # an empty history
    return {"user": torch.arange(b), "history": hist, "age": torch.zeros(b)}


@pytest.mark.parametrize("n_windows", [1, 3])
def test_beam_covering_the_tree_equals_brute_force(n_windows):
    model = _model(n_windows=n_windows, beam=200)
    batch = _batch()
    with torch.no_grad():
        brute = model.bruteforce(batch)
        items, scores, n_scored = model.beam_search(batch)
        beam_all = model.score_all(batch)
    assert (n_scored == 200).all()  # only the leaf layer is scored: all 200 leaves
    torch.testing.assert_close(beam_all, brute)
    top = torch.topk(brute[:, 1:], 200, dim=1)
    torch.testing.assert_close(scores, top.values)


def test_small_beam_scores_few_nodes_and_matches_brute_force_on_its_leaves():
    model = _model(beam=8)
    batch = _batch()
    with torch.no_grad():
        brute = model.bruteforce(batch)
        items, scores, n_scored = model.beam_search(batch)
        s = model.score_all(batch)
    # 8 layers of 2, 4, 8, ..., 128, 200 nodes: layers 1..3 fit the beam and are kept unscored;
    # layers 4..7 score 2 * 8 children each; on the last, some of the 8 kept nodes have one child
    assert model.tree.depth == 8
    assert ((n_scored >= 16 * 4 + 8) & (n_scored <= 16 * 5)).all()
    assert items.shape == (5, 8) and (items >= 1).all()
    assert all(len(set(r)) == 8 for r in items.tolist())
    torch.testing.assert_close(scores, brute.gather(1, items))  # same scorer on the leaves it keeps
    assert torch.isfinite(s).sum(1).tolist() == [8] * 5
    assert s[:, 0].eq(-math.inf).all()


def test_search_switch_in_score_all():
    beam = _model(beam=4)
    brute = _model(beam=4, search="bruteforce")
    batch = _batch()
    with torch.no_grad():
        assert torch.isfinite(brute.score_all(batch)[:, 1:]).all()
        assert torch.isfinite(beam.score_all(batch)).sum(1).eq(4).all()


def test_rebuild_moves_leaves_but_keeps_every_item_score():
    model = _model()
    batch = _batch()
    with torch.no_grad():
        before = model.bruteforce(batch)
        old = model.tree.leaf_item.clone()
        model.rebuild_tree(seed=0)
        after = model.bruteforce(batch)
    _check_tree(model.tree, 200)
    assert not torch.equal(old, model.tree.leaf_item)
    torch.testing.assert_close(after, before)  # leaves carry their item's embedding
    means = model.tree.subtree_means(model.item_emb.weight)
    torch.testing.assert_close(model.node_emb.weight, means[:model.tree.leaf_start])


def test_positives_are_the_ancestors_and_negatives_stay_in_their_layer():
    tree = ItemTree(50)
    tree.set_order(torch.randperm(50, generator=torch.Generator().manual_seed(3)) + 1)
    targets = torch.tensor([1, 17, 50, 17])
    pos = tree.ancestors[targets]  # (B, depth): the objective's positives
    torch.manual_seed(0)
    neg, has = layer_negatives(tree, pos, 40)
    assert has.all()
    ptr = tree.layer_ptr
    for lay in range(tree.depth):
        lo, hi = ptr[lay + 1], ptr[lay + 2]
        assert ((pos[:, lay] >= lo) & (pos[:, lay] < hi)).all()
        n = neg[:, lay]
        assert ((n >= lo) & (n < hi)).all()
        assert (n != pos[:, lay, None]).all()
    # uniform over the layer's other nodes: every other node of layer 2 (4 nodes) turns up
    assert set(neg[0, 1].tolist()) == set(range(int(ptr[2]), int(ptr[3]))) - {int(pos[0, 1])}
    assert pos[:, -1].tolist() == tree.item_leaf[targets].tolist()


def test_objective_scores_each_layer_positive_and_negatives():
    from types import SimpleNamespace

    from seqrec.train.objectives.tdm import TDMLayerwise

    model = _model(n_items=20, n_negatives=2).train()
    task = SimpleNamespace()
    obj = TDMLayerwise.__new__(TDMLayerwise)
    obj.model, obj.task, obj.n_neg = model, task, 2
    obj.cfg = SimpleNamespace()
    batch = {**_batch(n_items=20, b=3), "target": torch.tensor([3, 7, 20])}
    seen = []
    orig = model.node_logits

    def spy(k, mask, nodes):
        seen.append(nodes)
        return orig(k, mask, nodes)

    model.node_logits = spy
    loss = obj.loss(batch)
    assert torch.isfinite(loss) and loss > 0
    depth = model.tree.depth
    assert seen[0].shape == (3, depth * 3)
    assert torch.equal(seen[0][:, :depth], model.tree.ancestors[batch["target"]])


def test_padding_does_not_change_scores():
    model = _model(n_windows=2, beam=10)
    batch = _batch()
    padded = {**batch, "history": torch.cat([torch.zeros(5, 4, dtype=torch.int64), batch["history"]], 1)}
    with torch.no_grad():
        torch.testing.assert_close(model.score_all(batch), model.score_all(padded))
        torch.testing.assert_close(model.bruteforce(batch), model.bruteforce(padded))


def test_chunking_does_not_change_scores():
    batch = _batch()
    with torch.no_grad():
        a = _model(chunk=50).bruteforce(batch)
        b = _model(chunk=1 << 20).bruteforce(batch)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bad", [dict(search="exact"), dict(beam=0), dict(n_negatives=0), dict(att_act="x"),
                                 dict(rebuild_epochs=(-1,)), dict(dropout=1.0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        dataclasses.replace(TDMConfig(), **bad)
