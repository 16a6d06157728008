"""Masked-vs-compacted equality (train and eval mode), analytic-vs-torch-pruning MACs, and where
the channel gates act: a closed gate still gets the loss's gradient (issue 10)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from prunekit import MODELS, PRUNERS
from prunekit.pruning import build_groups

MODELS_UNDER_TEST = [("vgg16", 0.125), ("resnet18", 0.125), ("wrn-16-4", 0.25),
                     ("vgg-small", 1.0), ("resnet-small", 1.0)]


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
@pytest.mark.parametrize("steps,channels_last", [(0, False), (3, False), (3, True)])
def test_masked_equals_compacted(name: str, width: float, steps: int,
                                 channels_last: bool) -> None:
    """Also with the model and inputs in channels_last (the CPU fast path trains that way, so
    the pruner attaches to, trains and compacts a channels_last model)."""
    model = _model(name, width)
    x = torch.rand(8, 3, 32, 32)
    y = torch.randint(0, 10, (8,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
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
    train_state = copy.deepcopy(model.state_dict())
    model.train()                       # batch statistics: the masked channels must not leak
    with torch.no_grad():
        masked_train = model(x)
    model.load_state_dict(train_state)
    model.eval()
    with torch.no_grad():
        masked = model(x)
    analytic = float(pruner.macs([k.float() for k in pruner.keep_masks()]))
    n_params = sum(p.numel() for p in model.parameters())
    compacted = pruner.finalize(model)
    assert not compacted._forward_hooks and not compacted._forward_pre_hooks
    assert all("forward" not in m.__dict__ for m in compacted.modules())
    assert sum(p.numel() for p in compacted.parameters()) < n_params
    with torch.no_grad():
        out = compacted(x)
        out_contiguous = compacted(x.contiguous())
        compacted.train()
        out_train = compacted(x)
    assert out.shape == masked.shape
    assert torch.allclose(out, masked, atol=1e-5, rtol=0), (out - masked).abs().max()
    assert torch.allclose(out_contiguous, masked, atol=1e-5, rtol=0)
    assert torch.allclose(out_train, masked_train, atol=1e-5, rtol=0), \
        (out_train - masked_train).abs().max()
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


def _closed_gate_grads(name: str, method: str, **hp) -> tuple[int, int]:
    """(closed channels, closed channels with a non-zero gradient) after one TRADES backward."""
    from prunekit import LOSSES

    torch.manual_seed(0)
    model = MODELS.build(name, num_classes=10, in_channels=1)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    pruner = PRUNERS.build(method, sparsity=0.5, **hp)
    pruner.attach(model, x[:2])
    model.train()
    LOSSES.build("trades", eps=0.1, steps=2)(model, x, y)[0].backward()
    closed = nonzero = 0
    for param, keep in zip(pruner.scores() if method == "hydra-channel" else pruner.gate_params,
                           pruner.keep_masks()):
        assert param.grad is not None
        closed += int((~keep).sum())
        nonzero += int((param.grad[~keep] != 0).sum())
    return closed, nonzero


@pytest.mark.parametrize("name", ["vgg-small", "resnet-small"])
@pytest.mark.parametrize("method", ["d2bc", "hydra-channel"])
def test_closed_gates_get_the_adversarial_gradient(name: str, method: str) -> None:
    closed, nonzero = _closed_gate_grads(name, method)
    assert closed > 10
    assert nonzero == closed        # before the fix: 0 (the gate sat in front of a ReLU)


@pytest.mark.parametrize("name", ["vgg-small", "resnet-small"])
def test_gate_gradient_equals_gating_the_consumers_input(name: str) -> None:
    """Oracle: D2BC's gate gradient (STE, multiplier 1) equals the gradient of an explicit gate
    multiplying the input of every layer that reads the channel (after BN, ReLU, pooling and the
    residual add), written here with plain forward pre-hooks on a copy of the model."""
    torch.manual_seed(0)
    model = MODELS.build(name, num_classes=10, in_channels=1)
    ref = copy.deepcopy(model)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    pruner = PRUNERS.build("d2bc", sparsity=0.5, gate_lr_mult=1.0, include_stem=True)
    pruner.attach(model, x[:2])
    model.train()
    F.cross_entropy(model(x), y).backward()
    named = dict(ref.named_modules())
    gates = [k.float().requires_grad_(True) for k in pruner.keep_masks()]
    for g, gate in zip(pruner.groups, gates):
        for consumer in g.consumers:
            sl = g.in_slices[consumer]
            assert sl.identity                      # these models: channel i -> input i

            def pre(m, args, gate=gate):
                shape = (1, -1) + (1,) * (args[0].dim() - 2)
                return (args[0] * gate.view(shape),)

            named[consumer].register_forward_pre_hook(pre)
    ref.train()
    F.cross_entropy(ref(x), y).backward()
    for m, gate in zip(pruner.gate_params, gates):
        torch.testing.assert_close(m.grad, gate.grad, atol=1e-6, rtol=1e-4)
