"""HFIN's pieces checked by hand (eq. 7/11 field interactions, eq. 9 as a linear map of the multi-hot
features, padding contributes nothing), shapes and finite gradients of eq. 14, every ablation
trains, and a few neighbour pairs are overfitted."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from recipes.graphtr.modeling import HfinModel, _FieldBags, field_interactions

FIELDS = [7, 5, 4]  # hot positions (+1 padding) per field


def config(**kw) -> SimpleNamespace:
    base = dict(hidden_dim=16, heads=2, aggregator="hfin", first_transformer=True, second_transformer=True,
                graphsage=True, fm=True)
    return SimpleNamespace(**{**base, **kw})


def features(n_nodes: int = 30, depth: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, size, (n_nodes, depth), generator=g) for size in FIELDS], dim=1)


def batch(n_nodes: int = 30, B: int = 6, K1: int = 4, K2: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, n_nodes, (B,), generator=g)
    hop1 = torch.randint(0, n_nodes, (B, K1), generator=g)
    hop2 = torch.randint(0, n_nodes, (B, 1 + K1, K2), generator=g)
    return targets, hop1, hop2


def test_field_interactions_are_the_pairwise_products() -> None:
    a, b, c = torch.randn(3, 2, 5)
    assert torch.allclose(field_interactions([a, b, c]), a * b + a * c + b * c)
    assert torch.equal(field_interactions([a]), torch.zeros_like(a))


def test_field_bags_are_a_linear_map_of_the_multi_hot_and_ignore_padding() -> None:
    bags = _FieldBags(FIELDS, 4)
    feats = torch.tensor([[[1, 3, 0], [2, 0, 0], [0, 0, 0]]])  # (1, F, D): field 2 empty
    out = bags(feats)  # (1, F, 4)
    W = bags.bag.weight
    assert torch.allclose(out[0, 0], W[1] + W[3]) and torch.allclose(out[0, 1], W[7 + 2])
    assert torch.equal(out[0, 2], torch.zeros(4))


def test_encode_shapes_loss_and_gradients() -> None:
    model = HfinModel(config(), FIELDS, features())
    targets, hop1, hop2 = batch()
    o = model.encode(targets, hop1, hop2)
    assert o.shape == (6, 16) and torch.isfinite(o).all()
    loss = model(targets, hop1, hop2, anchor=torch.tensor([0, 1]), positive=torch.tensor([2, 3]),
                 negatives=torch.tensor([[4, 5], [5, 0]]))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is None or torch.isfinite(p.grad).all()
                                        for p in model.parameters())


@pytest.mark.parametrize("flags", [{}, {"aggregator": "graphsage"}, {"graphsage": False}, {"fm": False},
                                   {"first_transformer": False}, {"second_transformer": False}, {"heads": 1}])
def test_every_ablation_overfits_a_few_pairs(flags: dict) -> None:
    torch.manual_seed(0)
    model = HfinModel(config(**flags), FIELDS, features())
    targets, hop1, hop2 = batch()
    args = dict(anchor=torch.tensor([0, 1, 2]), positive=torch.tensor([3, 4, 5]),
                negatives=torch.tensor([[4, 5], [5, 3], [3, 4]]))
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    first = None
    for _ in range(120):
        opt.zero_grad()
        loss = model(targets, hop1, hop2, **args)
        loss.backward()
        opt.step()
        first = float(loss) if first is None else first
    # Below 0.8 of an all-zero embedding's loss (3 log 2: what a collapsed model gets) and of the first.
    assert float(loss) < 0.8 * min(first, 3 * math.log(2)), (flags, first, float(loss))


def test_ablating_every_first_layer_aggregator_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to learn"):
        HfinModel(config(first_transformer=False, graphsage=False, fm=False), FIELDS)
