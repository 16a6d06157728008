"""Contract tests run on every registered attack (built-ins and ``prunekit.attacks`` entry-point
plug-ins, over ``ATTACKS.names()``).

What an attack must do (prunekit.attacks.base.Attack, docs/evaluation.md "Attack family" and
its plug-in API table): declare well-formed metadata (``label``, ``norms`` with ``Linf``, ``box``,
the per-example-file record); parse its own names so the canonical name parses back to the same
attack; return per-example ``robust`` flags (bool, [B], on the CPU), never robust where the clean
prediction is wrong; every broken point re-verifies (inside the eps-ball, in [0, 1],
misclassified); the caller's module modes come back; a ``seeded`` attack is reproducible.
Iterative attacks run with 3 steps and 1 restart (``steps`` / ``restarts`` constructor
arguments) on a tiny untrained model with a large eps, so every case takes a fraction of a
second.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit import ATTACKS
from prunekit.attacks import NORMS, eval_mode, parse_attack, registered_names
from prunekit.eval.checks import count_unverified

NAMES = ATTACKS.names()
EPS = 0.2   # large for the tiny untrained model: the expensive attacks finish quickly
N, CLASSES, WRONG = 8, 10, 2


def tiny_model(classes: int = CLASSES) -> nn.Module:
    """A seeded MLP with batch norm (modes matter) on 3x8x8 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Linear(16, classes))


def _short(name: str):
    """The attack ``name`` built from its canonical parameters, iterative ones cut short."""
    cls = ATTACKS.get(name)
    spec = next(parse_attack(n) for n in registered_names(cls) if cls.parse(n) is not None)
    kw = {k: 3 if k == "steps" else 1 if k == "restarts" else v for k, v in spec.params.items()}
    return cls(EPS, seed=1, **kw)


def _batch(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, labels (the first ``WRONG`` deliberately misclassified) and the clean flags."""
    x = torch.rand(N, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    y[:WRONG] = (y[:WRONG] + 1) % CLASSES
    clean = torch.ones(N, dtype=torch.bool)
    clean[:WRONG] = False
    return x, y, clean


@pytest.mark.parametrize("name", NAMES)
def test_metadata_and_canonical_name(name: str) -> None:
    attack = _short(name)
    m = attack.meta
    assert m.label and m.components and set(m.norms) <= set(NORMS) and "Linf" in m.norms
    assert m.box in ("white", "black", "mixed"), f"{name}: box {m.box!r}"
    assert set(m.record()) == {"name", "label", "components", "norms", "box", "targeted",
                               "standard"}
    assert parse_attack(attack.canonical()).build(EPS, seed=1).same_as(attack), \
        f"{name}: canonical {attack.canonical()!r} does not parse back to the same attack"


@pytest.mark.parametrize("name", NAMES)
def test_flags_verified_and_modes_restored(name: str) -> None:
    attack = _short(name)
    model = tiny_model()
    x, y, clean = _batch(model)
    model.train()
    out = attack(model, x, y)
    assert model.training and all(mod.training for mod in model.modules()), "modes not restored"
    assert out.robust.dtype == torch.bool and out.robust.shape == (N,) and not out.robust.is_cuda
    assert not out.robust[:WRONG].any(), f"{name}: robust where the clean prediction is wrong"
    with eval_mode(model):
        bad, *_ = count_unverified(model, x, y, clean, out.robust, out.x_adv, EPS, "Linf")
    assert bad == 0, f"{name}: {bad} broken points do not re-verify"
    if attack.meta.seeded and not attack.meta.ensemble:  # an ensemble's stages: one by one
        with eval_mode(model):
            again = attack(model, x, y)
        assert torch.equal(again.robust, out.robust), f"{name}: seeded but not reproducible"
