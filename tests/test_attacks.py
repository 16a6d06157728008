"""Attack names, the registry entries, and the pyautoattack wrapper's guarantees (RNG restored,
messages captured not printed, eval mode, standard parameters). Tiny untrained models only."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import prunekit
from prunekit.attacks import (AttackNameError, AutoAttackRunner, PGDRunner, build_attack,
                              parse_attack)


@pytest.mark.parametrize("name,steps,restarts,step", [
    ("pgd-50-10", 50, 10, 0.25 * 0.1),
    ("pgd-20", 20, 1, 0.25 * 0.1),
    ("PGD-7-3", 7, 3, 0.25 * 0.1),
    ("pgd-50-10@0.0078", 50, 10, 0.0078),
    ("pgd-50-10@2/255", 50, 10, 2 / 255),
    ("pgd-10-1@eps/10", 10, 1, 0.01),
    ("pgd-10-1@0.5eps", 10, 1, 0.05),
])
def test_parse_pgd(name, steps, restarts, step) -> None:
    s = parse_attack(name)
    assert (s.kind, s.steps, s.restarts, s.name) == ("pgd", steps, restarts, name)
    assert s.pgd_step_size(0.1) == pytest.approx(step)
    assert not s.black_box and not s.ensemble


def test_parse_autoattack_family() -> None:
    assert parse_attack("autoattack").aa_attacks == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert parse_attack("autoattack").version == "standard"
    fast = parse_attack("autoattack-fast")
    assert fast.aa_attacks == ("apgd-ce", "apgd-t") and fast.version == "custom" and fast.ensemble
    for n in ("apgd-ce", "apgd-t", "apgd-dlr", "fab", "fab-t", "square"):
        s = parse_attack(n)
        assert s.kind == "autoattack" and s.aa_attacks == (n,) and not s.ensemble
    assert parse_attack("square").black_box and not parse_attack("apgd-ce").black_box


@pytest.mark.parametrize("bad", ["pgd", "pgd-0-1", "pgd-10-0", "pgd-10-1@", "pgd-10-1@x",
                                 "pgd-10-1@-1", "apgd", "aa", "", "fgsm"])
def test_parse_errors_name_valid_forms(bad) -> None:
    with pytest.raises(ValueError) as exc:
        parse_attack(bad)
    assert isinstance(exc.value, AttackNameError)
    msg = str(exc.value)
    assert "\n" not in msg and "pgd-STEPS-RESTARTS" in msg and "autoattack-fast" in msg


def test_registry_lists_attacks() -> None:
    names = prunekit.ATTACKS.names(aliases=True)
    for n in ("pgd", "pgd-50-10", "apgd-ce", "apgd-t", "apgd-dlr", "square", "autoattack",
              "autoattack-fast"):
        assert n in names
    assert prunekit.ATTACKS.build("pgd", steps=20, restarts=2).restarts == 2
    assert prunekit.ATTACKS.build("autoattack-fast").aa_attacks == ("apgd-ce", "apgd-t")


def test_build_attack_runners() -> None:
    assert isinstance(build_attack("pgd-5-2", 0.1), PGDRunner)
    r = build_attack("autoattack", 0.1, seed=4)
    assert isinstance(r, AutoAttackRunner) and r.version == "standard" and r.seed == 4
    with pytest.raises(ValueError):
        AutoAttackRunner(0.1, attacks=("apgd-ce",), version="standard")


def _tiny(classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Linear(16, classes))


def test_custom_list_uses_standard_parameters() -> None:
    aa = AutoAttackRunner(0.1, attacks=("apgd-ce", "apgd-t"), version="custom").build(
        _tiny().eval(), torch.device("cpu"), n_classes=10)
    assert aa.apgd.n_restarts == 1 and aa.apgd.n_iter == 100
    assert aa.apgd_targeted.n_target_classes == 9 and aa.apgd_targeted.n_restarts == 1
    assert aa.square.n_queries == 5000
    few = AutoAttackRunner(0.1, attacks=("apgd-t",), version="custom").build(
        _tiny(4).eval(), torch.device("cpu"), n_classes=4)
    assert few.apgd_targeted.n_target_classes == 3


def test_autoattack_runner_rng_mode_and_captured_messages(capsys) -> None:
    model = _tiny().train()  # handed over in train mode (BN): must attack in eval mode
    x = torch.rand(12, 3, 8, 8)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # all clean-correct
    model.train()
    torch.manual_seed(99)
    state = torch.get_rng_state()
    seen_modes: list[bool] = []
    hook = model[2].register_forward_pre_hook(lambda m, i: seen_modes.append(m.training))
    root = logging.getLogger()
    root_handlers = list(root.handlers)
    out = AutoAttackRunner(0.05, attacks=("apgd-ce",), version="custom", seed=1).run(model, x, y)
    hook.remove()
    assert torch.equal(torch.get_rng_state(), state)
    assert seen_modes and not any(seen_modes)
    assert model.training and all(m.training for m in model.modules())
    assert out.robust.dtype == torch.bool and out.robust.shape == (12,)
    assert (out.x_adv - x).abs().max() <= 0.05 + 1e-6
    assert isinstance(out.messages, list)
    assert root.handlers == root_handlers
    assert capsys.readouterr().out == ""
    # same seed, same flags
    again = AutoAttackRunner(0.05, attacks=("apgd-ce",), version="custom", seed=1).run(
        model, x, y)
    assert torch.equal(again.robust, out.robust)


def test_autoattack_warning_captured_not_printed(capsys) -> None:
    class Probs(nn.Module):  # outputs probabilities: AutoAttack's check_range_output fires
        def __init__(self) -> None:
            super().__init__()
            self.net = _tiny()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).softmax(1)

    x = torch.rand(6, 3, 8, 8)
    out = AutoAttackRunner(0.05, attacks=("apgd-ce",), version="custom").run(
        Probs(), x, torch.zeros(6, dtype=torch.long))
    assert any("probability distribution" in m for m in out.messages)
    cap = capsys.readouterr()
    assert "probability" not in cap.out and "probability" not in cap.err


def test_pgd_runner_counts_grad_evals() -> None:
    model = _tiny().eval()
    x = torch.rand(10, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    r = build_attack("pgd-4-2", 0.05)
    out = r.run(model, x, y)
    assert 0 < out.grad_evals <= 10 * 4 * 2
    assert (out.x_adv - x).abs().max() <= 0.05 + 1e-6
