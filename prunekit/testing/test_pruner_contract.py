"""Contract tests run on every registered pruner (built-ins and entry-point plug-ins), on a plain
(vgg-small) and a residual (resnet-small) model.

A pruner declares what its ``sparsity`` targets and how to reach it in a few steps with class
attributes (prunekit.pruning.base.Pruner, docs/pruning.md): ``sparsity_target`` ("macs",
"weights", "channels", "params", "none"), ``contract_tolerance``, ``contract_hparams``,
``contract_lr``. Its ``hparams()`` and ``summary()`` must be JSON values.
"""
from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit import LOSSES, MODELS, PRUNERS
from prunekit.pruning import SPARSITY_TARGETS, measure, prunable_layers

NAMES = PRUNERS.names()
CONTRACT_MODELS = ["vgg-small", "resnet-small"]
STEPS = 4
SPARSITY = 0.5


def _cls(name: str) -> Any:
    return PRUNERS.get(name)


def _target(name: str) -> tuple[str, float]:
    cls = _cls(name)
    kind = cls.target_kind() if hasattr(cls, "target_kind") else (
        {"channel": "macs", "weight": "weights"}.get(getattr(cls, "granularity", "none"), "none"))
    return kind, (0.0 if kind == "none" else SPARSITY)


def _achieved(kind: str, final: nn.Module, dense: nn.Module, x: torch.Tensor) -> float:
    """The measured value of what ``sparsity`` targets."""
    m = measure(final, x[:1], dense=dense)
    if kind == "macs":
        return m.macs_reduction
    if kind == "weights":
        return m.weight_sparsity
    if kind == "params":
        return 1.0 - m.params / m.dense_params
    out = lambda model: sum(l.weight.shape[0] for l in prunable_layers(model).values())  # noqa
    return 1.0 - out(final) / out(dense)                                           # channels


def _build(name: str, sparsity: float | None = None, **extra: Any):
    kind, s = _target(name)
    hp = dict(getattr(_cls(name), "contract_hparams", {}) or {})
    hp.update(extra)
    return PRUNERS.build(name, sparsity=s if sparsity is None else sparsity, **hp)


@pytest.fixture(scope="module", params=CONTRACT_MODELS)
def setup(request):
    torch.manual_seed(0)
    model = MODELS.build(request.param, num_classes=10, in_channels=1)
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    return model, x, y


def _batches(x: torch.Tensor, y: torch.Tensor):
    while True:  # an endless calibration stream, as the pipeline's seeded_batches
        yield x, y


def _prune(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = STEPS):
    pruner = _build(name)
    pruner.attach(model, x[:2])
    if pruner.calibrates():
        was = model.training
        model.eval()
        pruner.calibrate(model, _batches(x, y), LOSSES.build("pgd_at", eps=0.03, steps=1))
        model.train(was)
    groups = pruner.param_groups(model)
    lr = float(getattr(_cls(name), "contract_lr", 0.01))
    opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=2e-4) if groups else None
    if opt is not None:
        pruner.bind_optimizer(opt)
        pruner.begin_stage(1, steps)
    model.train()
    for step in range(steps if opt else 0):
        loss = F.cross_entropy(model(x), y) + pruner.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        pruner.on_step_end(step)
    pruner.on_epoch_end(0)
    return pruner


@pytest.mark.parametrize("name", NAMES)
def test_reaches_target_and_keeps_output_shape(name: str, setup) -> None:
    dense, x, y = setup
    model = copy.deepcopy(dense)
    pruner = _prune(name, model, x, y)
    final = pruner.finalize(model)
    final.eval()
    with torch.no_grad():
        assert final(x).shape == (len(x), 10)
    kind, target = _target(name)
    assert kind in SPARSITY_TARGETS
    tol = float(getattr(_cls(name), "contract_tolerance", 0.02))
    if kind == "none":
        m = measure(final, x[:1], dense=dense)
        assert m.weight_sparsity == 0.0 and abs(m.macs_reduction) < 1e-9, m
    else:
        achieved = _achieved(kind, final, dense, x)
        assert abs(achieved - target) <= tol, (kind, achieved)
    json.dumps({"hparams": pruner.hparams(), "summary": pruner.summary()})


@pytest.mark.parametrize("name", NAMES)
def test_pruned_stays_pruned_through_finetune(name: str, setup) -> None:
    dense, x, y = setup
    model = copy.deepcopy(dense)
    final = _prune(name, model, x, y).finalize(model)
    before = measure(final, x[:1], dense=dense)
    zeros = {n: (m.weight.detach() == 0).clone() for n, m in prunable_layers(final).items()}
    opt = torch.optim.SGD(final.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)
    final.train()
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(final(x), y).backward()
        opt.step()
    after = measure(final, x[:1], dense=dense)
    assert after.macs == before.macs and after.params == before.params
    for n, m in prunable_layers(final).items():
        assert bool((m.weight.detach()[zeros[n]] == 0).all()), f"{name}: {n} lost its zeros"
    assert after.weight_sparsity >= before.weight_sparsity - 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name: str, setup) -> None:
    dense, x, y = setup
    model_a = copy.deepcopy(dense)
    pruner_a = _prune(name, model_a, x, y, steps=2)
    buf = io.BytesIO()
    torch.save({"pruner": pruner_a.state_dict(), "model": model_a.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model_b = copy.deepcopy(dense)
    pruner_b = _build(name)
    pruner_b.attach(model_b, x[:2])
    model_b.load_state_dict(saved["model"])
    pruner_b.load_state_dict(saved["pruner"])
    masks_a, masks_b = pruner_a.masks(), pruner_b.masks()
    assert set(masks_a) == set(masks_b)
    for k in masks_a:
        assert torch.equal(masks_a[k], masks_b[k]), f"{name}: mask of {k} differs"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [1.5, -0.1, 1.0])
def test_bad_sparsity_raises(name: str, bad: float) -> None:
    with pytest.raises(ValueError):
        _build(name, sparsity=bad)
