"""Weight masks as parametrizations, top-k helpers, accounting and save/load (rebuild)."""
from __future__ import annotations

import io

import torch
import torch.nn.functional as F
from torch import nn

from prunekit import MODELS, PRUNERS
from prunekit.pruning import (
    apply_weight_masks, global_topk_masks, measure, prunable_layers, rebuild, topk_masks,
    weight_masks,
)


def _vgg() -> nn.Module:
    torch.manual_seed(0)
    return MODELS.build("vgg16", num_classes=10, in_channels=3, width=0.125)


def _random_masks(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    scores = {n: torch.rand_like(m.weight) for n, m in prunable_layers(model).items()}
    return topk_masks(scores, sparsity)


def test_prunable_layers_exclude_stem_and_classifier() -> None:
    model = _vgg()
    names = list(prunable_layers(model))
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert names == convs[1:]
    assert len(prunable_layers(model, include_stem=True, include_classifier=True)) == len(convs) + 1


def test_masks_survive_momentum_and_weight_decay() -> None:
    model = _vgg()
    masks = _random_masks(model, 0.8)
    apply_weight_masks(model, masks)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    named = dict(model.named_modules())
    for name, mask in masks.items():
        w = named[name].weight
        assert bool((w[~mask] == 0).all())
        assert bool((w[mask] != 0).any())
    assert set(weight_masks(model)) == set(masks)
    m = measure(model, x[:1], dense=_vgg())
    assert abs(m.weight_sparsity - 0.8) < 0.01
    assert m.macs_reduction == 0.0 and m.params == m.dense_params


def test_global_topk_keeps_fraction_and_one_per_layer() -> None:
    scores = {"a": torch.arange(100.0).view(10, 10), "b": -torch.ones(5)}
    masks = global_topk_masks(scores, 0.5)
    assert int(masks["a"].sum()) == 52  # round(0.5 * 105), all from "a"
    assert int(masks["b"].sum()) == 1
    per = topk_masks(scores, 0.9)
    assert int(per["a"].sum()) == 10 and int(per["b"].sum()) == 1


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_rebuild_weight_masked_model() -> None:
    model = _vgg()
    apply_weight_masks(model, _random_masks(model, 0.7))
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    state = _roundtrip(model.state_dict())
    loaded = rebuild(_vgg(), state).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert all(torch.equal(weight_masks(loaded)[k], v) for k, v in weight_masks(model).items())


def test_rebuild_compacted_model_and_accounting() -> None:
    for name in ("vgg16", "resnet18"):
        torch.manual_seed(0)
        dense = MODELS.build(name, num_classes=10, in_channels=3, width=0.125)
        model = MODELS.build(name, num_classes=10, in_channels=3, width=0.125)
        model.load_state_dict(dense.state_dict())
        x = torch.rand(4, 3, 32, 32)
        pruner = PRUNERS.build("d2bc", sparsity=0.6)
        pruner.attach(model, x[:2])
        compacted = pruner.finalize(model).eval()
        m = measure(compacted, x[:1], dense=dense)
        assert abs(m.macs_reduction - 0.6) < 0.02
        assert m.params < m.dense_params and 0.3 < m.weight_sparsity < 0.95
        state = _roundtrip(compacted.state_dict())
        fresh = MODELS.build(name, num_classes=10, in_channels=3, width=0.125)
        loaded = rebuild(fresh, state, example_inputs=x[:1]).eval()
        with torch.no_grad():
            assert torch.equal(loaded(x), compacted(x))
