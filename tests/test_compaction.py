"""Masked-vs-compacted equality and analytic-vs-torch-pruning MACs (issue 4 acceptance)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from prunekit import MODELS, PRUNERS
from prunekit.pruning import build_groups

MODELS_UNDER_TEST = [("vgg16", 0.125), ("resnet18", 0.125), ("wrn-16-4", 0.25)]


def _model(name: str, width: float) -> nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(name, num_classes=10, in_channels=3, width=width)
    with torch.no_grad():  # non-trivial BN statistics so that a wrong mask site would show
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def _conv_linear_macs(model: nn.Module, x: torch.Tensor) -> int:
    _, _, flops, _ = tp.utils.count_ops_and_params(model, x[:1], layer_wise=True)
    return int(sum(v for m, v in flops.items() if isinstance(m, (nn.Conv2d, nn.Linear)) and v))


@pytest.mark.parametrize("name,width", MODELS_UNDER_TEST)
def test_group_counts(name: str, width: float) -> None:
    model = _model(name, width)
    x = torch.rand(2, 3, 32, 32)
    n_default = len(build_groups(model, x))
    n_stem = len(build_groups(model, x, include_stem=True))
    expected = {"vgg16": (12, 13), "resnet18": (11, 12)}
    if name in expected:
        assert (n_default, n_stem) == expected[name]
    assert n_stem >= n_default >= 1


@pytest.mark.parametrize("name,width", MODELS_UNDER_TEST)
@pytest.mark.parametrize("steps", [0, 3])
def test_masked_equals_compacted(name: str, width: float, steps: int) -> None:
    model = _model(name, width)
    x = torch.rand(8, 3, 32, 32)
    y = torch.randint(0, 10, (8,))
    pruner = PRUNERS.build("d2bc", sparsity=0.7, calibrate=False)
    pruner.attach(model, x[:2])
    keep = pruner.keep_masks()
    assert any(not bool(k.all()) for k in keep), "uniform init should already mask channels"
    opt = torch.optim.SGD(pruner.param_groups(model), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model.train()
    for step in range(steps):
        loss = F.cross_entropy(model(x), y) + pruner.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        pruner.on_step_end(step)
    model.eval()
    with torch.no_grad():
        masked = model(x)
    analytic = float(pruner.macs([k.float() for k in pruner.keep_masks()]))
    n_params = sum(p.numel() for p in model.parameters())
    compacted = pruner.finalize(model)
    assert not compacted._forward_hooks and not compacted._forward_pre_hooks
    assert sum(p.numel() for p in compacted.parameters()) < n_params
    with torch.no_grad():
        out = compacted(x)
    assert out.shape == masked.shape
    assert torch.allclose(out, masked, atol=1e-5, rtol=0), (out - masked).abs().max()
    assert analytic == _conv_linear_macs(compacted, x)


@pytest.mark.parametrize("name,width", MODELS_UNDER_TEST)
def test_analytic_macs_dense_and_differentiable(name: str, width: float) -> None:
    model = _model(name, width)
    x = torch.rand(2, 3, 32, 32)
    groups = build_groups(model, x, include_stem=True)
    assert groups.dense_macs == _conv_linear_macs(model, x)
    gates = [torch.full((g.size,), 0.5, requires_grad=True) for g in groups]
    groups.macs(gates).backward()
    assert all(g.grad is not None and bool((g.grad > 0).all()) for g in gates)


def test_compaction_never_empties_a_group() -> None:
    model = _model("vgg16", 0.125)
    x = torch.rand(2, 3, 32, 32)
    pruner = PRUNERS.build("d2bc", sparsity=0.9, init="constant", init_value=0.0,
                           calibrate=False)
    pruner.attach(model, x)
    assert all(int(k.sum()) == 1 for k in pruner.keep_masks())
    model.eval()
    with torch.no_grad():
        masked = model(x)
    compacted = pruner.finalize(model)
    with torch.no_grad():
        assert torch.allclose(compacted(x), masked, atol=1e-5, rtol=0)


def test_gated_bn_equals_output_times_gate_in_train_mode() -> None:
    from prunekit.pruning.channel import _gated_bn_forward

    torch.manual_seed(0)
    bn, ref = nn.BatchNorm2d(6), nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    ref.load_state_dict(bn.state_dict())
    gate = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    x = torch.randn(4, 6, 5, 5)
    out = _gated_bn_forward(bn, lambda n: gate, x)
    expected = ref(x) * gate.view(1, -1, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert bool((out[:, gate == 0] == 0).all())
    for k, v in ref.state_dict().items():  # running statistics updated identically
        assert torch.allclose(bn.state_dict()[k].float(), v.float())
