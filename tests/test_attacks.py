"""The attack family: names parsed by each attack class, the registry entries, declared metadata,
the Attack call contract (device, eval mode, gradient counting), ensembles and their reuse plan,
and the pyautoattack wrapper's guarantees (RNG restored, messages captured not printed, eval
mode, standard parameters). Tiny untrained models only."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import prunekit
from prunekit.attacks import (Attack, AttackNameError, AttackOutcome, AutoAttackFast,
                              AutoAttackRunner, AutoAttackStandard, OfficialAttack, PGDAttack,
                              build_attack, parse_attack, reuse_plan)


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
    a = s.build(0.1)
    assert (type(a), a.steps, a.restarts, a.name) == (PGDAttack, steps, restarts, name)
    assert a.step_size == pytest.approx(step)
    assert a.meta.box == "white" and not a.meta.ensemble and a.meta.column == "pgd_acc"
    assert parse_attack(a.canonical()).build(0.1).same_as(a)   # canonical name round-trips
    assert s.meta == a.meta                                     # metadata independent of eps


def test_parse_autoattack_family() -> None:
    aa = build_attack("autoattack", 0.1)
    assert aa.meta.components == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert aa.meta.standard and aa.meta.label == "AutoAttack (standard)"
    assert aa.meta.box == "mixed" and aa.meta.targeted and aa.meta.column == "aa_acc"
    fast = build_attack("autoattack-fast", 0.1).meta
    assert fast.components == ("apgd-ce", "apgd-t") and not fast.standard and fast.ensemble
    assert fast.label == "APGD-CE + APGD-T" and fast.box == "white" and fast.column == "aa_acc"
    for n in ("apgd-ce", "apgd-t", "apgd-dlr", "fab", "fab-t", "square"):
        a = build_attack(n, 0.1)
        assert isinstance(a, OfficialAttack) and a.aa_name == n
        assert a.meta.components == (n,) and not a.meta.ensemble and a.meta.reference
        assert a.meta.seeded and a.meta.norms == ("Linf", "L2", "L1")
        assert a.meta.targeted == n.endswith("-t")
    assert build_attack("square", 0.1).meta.box == "black"
    assert build_attack("apgd-ce", 0.1).meta.box == "white"
    assert build_attack("apgd-ce", 0.1).meta.column == "apgd_acc"


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
    assert prunekit.ATTACKS.build("pgd", eps=0.1, steps=20, restarts=2).restarts == 2
    assert prunekit.ATTACKS.build("autoattack-fast", eps=0.1).meta.components == (
        "apgd-ce", "apgd-t")
    assert prunekit.ATTACKS.entry_point_group == "prunekit.attacks"


def test_build_attacks() -> None:
    assert isinstance(build_attack("pgd-5-2", 0.1), PGDAttack)
    r = build_attack("autoattack", 0.1, seed=4)
    assert isinstance(r, AutoAttackStandard) and r.meta.standard and r.seed == 4
    assert [s.seed for s in r.stages] == [4] * 4 and all(s.eps == 0.1 for s in r.stages)
    with pytest.raises(ValueError):
        AutoAttackRunner(0.1, attacks=("apgd-ce",), version="standard")
    with pytest.raises(ValueError, match="L-inf only"):
        build_attack("pgd-10-1", 0.5, norm="L2")
    assert build_attack("autoattack", 0.5, norm="L2").stages[-1].norm == "L2"


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
    before = r.pgd.grad_evals
    out = r(model, x, y)
    assert 0 < out.grad_evals <= 10 * 4 * 2
    # the generic counter (a forward pre-hook) agrees with PGD's own bookkeeping
    assert out.grad_evals == r.pgd.grad_evals - before
    assert (out.x_adv - x).abs().max() <= 0.05 + 1e-6


# -- the family contract, on toy attacks registered for one test ---------------------------------
class ToyThreshold(Attack):
    """Breaks the clean-correct points whose mean pixel exceeds ``thr`` (x_adv = x: a toy)."""

    label = "toy threshold"
    seeded = True
    forms = ("toy-thr-THR",)
    calls = 0

    def __init__(self, eps, norm="Linf", seed=0, *, name=None, thr=0.5) -> None:
        self.thr = float(thr)
        super().__init__(eps, norm, seed, name=name)

    @classmethod
    def parse(cls, name):
        if not name.startswith("toy-thr-"):
            return None
        try:
            return {"thr": float(name[len("toy-thr-"):])}
        except ValueError:
            from prunekit.attacks.parse import invalid_attack

            raise invalid_attack(name, "THR must be a number") from None

    def canonical(self) -> str:
        return f"toy-thr-{self.thr!r}"

    def params(self):
        return {**super().params(), "thr": self.thr}

    def run(self, model, x, y):
        type(self).calls += 1
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        return AttackOutcome(robust=correct & (x.flatten(1).mean(1) <= self.thr), x_adv=x)


class ToyPair(prunekit.attacks.Ensemble):
    components = ("toy-thr-0.7", "toy-thr-0.4")


class Unseeded(ToyThreshold):
    seeded = False
    forms = ("toy-free-THR",)

    @classmethod
    def parse(cls, name):
        return {"thr": float(name[9:])} if name.startswith("toy-free-") else None

    def canonical(self) -> str:
        return f"toy-free-{self.thr!r}"


class UnseededPair(prunekit.attacks.Ensemble):
    components = ("toy-free-0.7", "toy-free-0.4")


class Broken(Attack):
    def run(self, model, x, y):
        return AttackOutcome(robust=torch.ones(1, dtype=torch.bool), x_adv=x)


@pytest.fixture
def toys(monkeypatch):
    reg = prunekit.ATTACKS
    monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    monkeypatch.setattr(reg, "_aliases", dict(reg._aliases))
    for name, cls in (("toy-thr", ToyThreshold), ("toy-pair", ToyPair), ("toy-free", Unseeded),
                      ("toy-unseeded-pair", UnseededPair), ("toy-broken", Broken)):
        reg.add(name, cls)
    ToyThreshold.calls = 0
    yield reg


def _toy_data(n: int = 40):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 8, 8, generator=g) ** torch.linspace(0.3, 3, n).view(-1, 1, 1, 1)
    model = _tiny(4).eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::5] = (y[::5] + 1) % 4          # a few clean-misclassified points
    return model, x, y


def test_each_class_parses_its_own_names(toys) -> None:
    spec = parse_attack("toy-thr-0.25")
    assert spec.cls is ToyThreshold and spec.params == {"thr": 0.25}
    with pytest.raises(AttackNameError, match="THR must be a number"):
        parse_attack("toy-thr-x")
    with pytest.raises(AttackNameError) as exc:
        parse_attack("nope")
    msg = str(exc.value)
    assert "toy-thr-THR" in msg and "pgd-STEPS-RESTARTS" in msg and "\n" not in msg

    class Greedy(ToyThreshold):
        @classmethod
        def parse(cls, name):
            return {} if name.startswith("pgd-") else None

    toys.add("greedy", Greedy)
    with pytest.raises(AttackNameError, match="ambiguous"):
        parse_attack("pgd-5-1")
    assert parse_attack("pgd-50-10").cls is PGDAttack    # a registered name beats a pattern


def test_ensemble_runs_stages_on_still_robust_points(toys) -> None:
    model, x, y = _toy_data()
    pair = build_attack("toy-pair", 0.1)
    assert pair.meta.components == ("toy-thr-0.7", "toy-thr-0.4") and pair.meta.seeded
    assert pair.meta.label == "toy threshold + toy threshold"
    out = pair(model, x, y)
    first = build_attack("toy-thr-0.7", 0.1)(model, x, y)
    second = build_attack("toy-thr-0.4", 0.1)(model, x, y)
    assert torch.equal(out.robust, first.robust & second.robust)
    assert 0 < int(out.robust.sum()) < int(first.robust.sum()) < len(x)
    assert torch.equal(out.prefix(1, x).robust, first.robust)
    assert torch.equal(out.prefix(2, x).robust, out.robust)
    clean_wrong = torch.arange(len(x)) % 5 == 0
    assert (out.broken_at[clean_wrong] == 0).all()
    assert len(out.stage_seconds) == 2
    with pytest.raises(ValueError):
        out.prefix(3, x)


def test_reuse_plan_needs_seeded_equal_stages(toys) -> None:
    atts = [build_attack(n, 0.1) for n in ("toy-thr-0.7", "toy-thr-0.4", "toy-pair")]
    assert reuse_plan(atts) == {"toy-thr-0.7": "toy-pair"}     # a prefix only
    other_eps = [build_attack("toy-thr-0.7", 0.2), build_attack("toy-pair", 0.1)]
    assert reuse_plan(other_eps) == {}                          # not the same attack
    free = [build_attack(n, 0.1) for n in ("toy-free-0.7", "toy-unseeded-pair")]
    assert reuse_plan(free) == {}                               # global-RNG stages: no reuse
    aa = [build_attack(n, 0.1) for n in ("pgd-5-1", "apgd-ce", "autoattack-fast", "autoattack")]
    assert reuse_plan(aa) == {"apgd-ce": "autoattack", "autoattack-fast": "autoattack"}
    assert reuse_plan([build_attack("apgd-ce", 0.1), build_attack("autoattack", 0.1, seed=1)]
                      ) == {}                                    # another seed


def test_evaluator_runs_a_provided_attack_once(toys) -> None:
    from prunekit.eval import RobustnessEvaluator

    model, x, y = _toy_data()
    names = ("toy-thr-0.7", "toy-pair")
    res = RobustnessEvaluator(0.1, attacks=names, batch_size=16).evaluate(model, (x, y))
    assert res.reused == {"toy-thr-0.7": "toy-pair"}
    assert ToyThreshold.calls == 2 * 3                         # two stages x three batches
    ToyThreshold.calls = 0
    ref = RobustnessEvaluator(0.1, attacks=names, batch_size=16, reuse=False).evaluate(
        model, (x, y))
    assert ToyThreshold.calls == 3 * 3 and ref.reused == {}
    for name in ("clean", *names, "worst"):
        assert torch.equal(res.flags[name], ref.flags[name]), name
    assert res.eval_s == pytest.approx(res.seconds["clean"] + res.seconds["toy-pair"])


def test_call_contract(toys) -> None:
    model, x, y = _toy_data(6)
    model.train()
    with pytest.raises(ValueError, match="toy-broken: run"):
        build_attack("toy-broken", 0.1)(model, x, y)
    assert model.training and all(m.training for m in model.modules())   # mode restored
    out = build_attack("toy-thr-0.5", 0.1)(model, x.double(), y)
    assert out.robust.dtype == torch.bool and out.x_adv.dtype == torch.float32


def test_resume_with_a_reused_attack(toys, tmp_path) -> None:
    from prunekit.eval import RobustnessEvaluator

    class Stop(Exception):
        pass

    model, x, y = _toy_data()
    kw = dict(attacks=("toy-thr-0.7", "pgd-2-1", "toy-pair"), batch_size=16, seed=2)
    ref = RobustnessEvaluator(0.1, **kw).evaluate(model, (x, y))
    seen: list[tuple[str, int]] = []

    def hook(name: str, b: int) -> None:
        if name != "clean":
            seen.append((name, b))
        if len(seen) == 4:
            raise Stop

    state = tmp_path / "state.json"
    with pytest.raises(Stop):
        RobustnessEvaluator(0.1, state_path=state, **kw).evaluate(model, (x, y), callback=hook)
    # batch 0: the pair ran first (the provided attack comes first in the list), then PGD
    assert seen == [("toy-thr-0.7", 0), ("toy-pair", 0), ("pgd-2-1", 0), ("toy-thr-0.7", 1)]
    res = RobustnessEvaluator(0.1, state_path=state, **kw).evaluate(model, (x, y))
    assert res.resumed_batches == 5 and res.reused == {"toy-thr-0.7": "toy-pair"}
    for name in ("clean", *kw["attacks"], "worst"):
        assert torch.equal(res.flags[name], ref.flags[name]), name
