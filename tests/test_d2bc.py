"""D2BC / ANAS-P: registration, STE gates, penalty, clamp, calibration, hyperparameter checks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prunekit import MODELS, PRUNERS
from prunekit.pruning import D2BC, binarize_ste


def _setup(**hp):
    torch.manual_seed(0)
    model = MODELS.build("vgg-small", num_classes=10, in_channels=1)
    x = torch.rand(8, 1, 28, 28)
    pruner = PRUNERS.build("d2bc", **{"sparsity": 0.8, **hp})
    pruner.attach(model, x[:2])
    return model, x, pruner


def test_registered_with_alias() -> None:
    assert PRUNERS.canonical("anas-p") == "d2bc"
    assert isinstance(PRUNERS.build("anas-p", sparsity=0.5), D2BC)
    assert D2BC.granularity == "channel" and D2BC.target_kind() == "macs"


def test_ste_forward_binary_backward_identity() -> None:
    m = torch.tensor([0.2, 0.5, 0.7], requires_grad=True)
    b = binarize_ste(m, 0.5)
    assert b.tolist() == [0.0, 0.0, 1.0]
    (b * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert m.grad.tolist() == [1.0, 2.0, 3.0]


def test_init_uniform_deterministic_and_constant() -> None:
    _, _, p1 = _setup()
    _, _, p2 = _setup()
    assert all(torch.equal(a, b) for a, b in zip(p1.gate_params, p2.gate_params))
    assert all(bool(((m >= 0) & (m <= 1)).all()) for m in p1.gate_params)
    _, _, pc = _setup(init="constant", init_value=0.9)
    assert all(bool((m == 0.9).all()) for m in pc.gate_params)
    assert pc.macs_reduction() == 0.0


def test_param_groups_penalty_and_clamp() -> None:
    model, x, pruner = _setup(gamma=2.0, gate_lr_mult=3.0)
    groups = pruner.param_groups(model)
    gate_ids = {id(p) for p in pruner.gate_params}
    assert groups[1]["weight_decay"] == 0.0 and {id(p) for p in groups[1]["params"]} == gate_ids
    assert not gate_ids & {id(p) for p in model.parameters()}
    ratio = float(pruner.mac_ratio().detach())
    assert abs(ratio - (1 - pruner.macs_reduction())) < 1e-6
    pen = pruner.penalty()
    assert abs(float(pen.detach()) - 2.0 * (ratio - 0.2) ** 2) < 1e-6
    pen.backward()
    # ratio > target: the penalty pushes every gate down (positive gradient), scaled by 3
    assert all(bool((m.grad > 0).all()) for m in pruner.gate_params)
    opt = torch.optim.SGD(groups, lr=100.0)
    opt.step()
    pruner.on_step_end(0)
    assert all(bool(((m >= 0) & (m <= 1)).all()) for m in pruner.gate_params)


def test_penalty_alone_drives_macs_towards_target() -> None:
    model, x, pruner = _setup(gamma=10.0, init="constant", init_value=0.6, calibrate=False)
    opt = torch.optim.SGD(pruner.param_groups(model)[1:], lr=0.5, momentum=0.9)
    for step in range(60):
        opt.zero_grad()
        pruner.penalty().backward()
        opt.step()
        pruner.on_step_end(step)
    assert abs(pruner.macs_reduction() - 0.8) < 0.1


def test_calibration_hits_target() -> None:
    model, x, pruner = _setup(sparsity=0.9)
    before = pruner.macs_reduction()
    pruner.finalize(model)
    c = pruner.calibration
    assert c["search_reduction"] == pytest.approx(before)
    assert c["calibrated"] and abs(c["final_reduction"] - 0.9) < 0.01


def test_state_dict_round_trip() -> None:
    model, x, pruner = _setup()
    with torch.no_grad():
        pruner.gate_params[0].fill_(0.1)
    state = pruner.state_dict()
    _, _, other = _setup()
    other.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(pruner.gate_params, other.gate_params))
    assert all(torch.equal(pruner.masks()[k], v) for k, v in other.masks().items())


@pytest.mark.parametrize("hp", [{"sparsity": 1.5}, {"sparsity": -0.1}, {"gamma": -1.0},
                                {"thres": 1.5}, {"init": "normal"}, {"init_value": 2.0},
                                {"gate_lr_mult": 0.0}, {"calibrate_tol": 1.0}])
def test_bad_hparams(hp) -> None:
    with pytest.raises(ValueError) as err:
        PRUNERS.build("d2bc", **{"sparsity": 0.5, **hp})
    assert "\n" not in str(err.value)


def test_train_step_updates_gates_and_weights() -> None:
    model, x, pruner = _setup()
    y = torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(pruner.param_groups(model), lr=0.1, momentum=0.9)
    before = [m.detach().clone() for m in pruner.gate_params]
    loss = F.cross_entropy(model(x), y) + pruner.penalty()
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, pruner.gate_params))
