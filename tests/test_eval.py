"""RobustnessEvaluator: cross-checks against independent oracles (torchattacks' PGD, the official
pyautoattack called directly), sanity checks, resume, determinism, mode handling, CSV row.

A tiny CNN is adversarially trained once per session (FGSM with random start, Wong et al. 2020)
on 4000 Fashion-MNIST images: about 75 % clean and 55 % PGD accuracy at eps 0.1.
"""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.eval import EvalResult, RobustnessEvaluator

FMNIST = Path("/usr/share/datasets/fashion-mnist")
EPS = 0.1


def _read(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    p = "train" if split == "train" else "t10k"
    img, lbl = FMNIST / f"{p}-images-idx3-ubyte.gz", FMNIST / f"{p}-labels-idx1-ubyte.gz"
    if not img.exists():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    with gzip.open(img) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open(lbl) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return torch.tensor(x, dtype=torch.float32) / 255, torch.tensor(y, dtype=torch.long)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU(),
                         nn.Conv2d(8, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 7 * 7, 10))


@pytest.fixture(scope="session")
def model() -> nn.Module:
    """FGSM-RS adversarial training, 3 epochs on 4000 images (a few CPU seconds)."""
    x, y = _read("train", 4000)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        m = _net()
        opt = torch.optim.Adam(m.parameters(), 2e-3)
        for _ in range(3):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 100):
                xb, yb = x[perm[i:i + 100]], y[perm[i:i + 100]]
                d = ((torch.rand_like(xb) * 2 - 1) * EPS).requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(m((xb + d).clamp(0, 1)), yb), d)
                xa = (xb + (d + 1.25 * EPS * g.sign()).clamp(-EPS, EPS)).clamp(0, 1).detach()
                opt.zero_grad()
                F.cross_entropy(m(xa), yb).backward()
                opt.step()
    return m.eval()


@pytest.fixture(scope="session")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    return _read("test", 300)


def _modes(m: nn.Module) -> list[bool]:
    return [mod.training for mod in m.modules()]


# -- cross-checks ------------------------------------------------------------------------------
def _torchattacks_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
                      restarts: int) -> torch.Tensor:
    torchattacks = pytest.importorskip("torchattacks")
    atk = torchattacks.PGD(model, eps=EPS, alpha=EPS / 4, steps=steps, random_start=True)
    with torch.no_grad():
        robust = model(x).argmax(1) == y
    with torch.random.fork_rng():
        torch.manual_seed(123)
        for _ in range(restarts):
            x_adv = atk(x, y)
            with torch.no_grad():
                robust &= model(x_adv).argmax(1) == y
    return robust


@pytest.mark.parametrize("steps,restarts", [
    (10, 3), pytest.param(50, 10, marks=pytest.mark.slow)])
def test_pgd_matches_torchattacks(model, test_set, steps, restarts) -> None:
    x, y = test_set
    name = f"pgd-{steps}-{restarts}"
    res = RobustnessEvaluator(EPS, attacks=(name,), batch_size=300).evaluate(model, (x, y))
    oracle = _torchattacks_pgd(model, x, y, steps, restarts)
    assert 0.3 <= res.robust_acc[name] <= 0.65  # the model is a meaningful test case
    # within 1 point, counted in examples (3 of 300) to avoid float rounding at the boundary
    gap = abs(int(res.flags[name].sum()) - int(oracle.sum()))
    assert gap <= len(x) // 100, (res.robust_acc[name], oracle.double().mean().item())
    assert res.checks == []


def _direct_autoattack(model, x, y, attacks, seed):
    from pyautoattack import AutoAttack

    if attacks is None:
        aa = AutoAttack(model, eps=EPS, seed=seed, device="cpu", version="standard")
    else:
        aa = AutoAttack(model, attacks=list(attacks), eps=EPS, seed=seed, device="cpu",
                        version="custom")
        aa.apgd.n_restarts = 1  # the standard version's setting (prunekit's apgd-ce)
    with torch.no_grad():
        _, y_adv = aa.run_standard_evaluation(x, y, batch_size=len(x))
    return y_adv == y


def test_autoattack_path_matches_direct_pyautoattack(model, test_set) -> None:
    x, y = test_set[0][:50], test_set[1][:50]
    res = RobustnessEvaluator(EPS, attacks=("apgd-ce",), seed=3, batch_size=64).evaluate(
        model, (x, y))
    direct = _direct_autoattack(model, x, y, ["apgd-ce"], seed=3)
    assert torch.equal(res.flags["apgd-ce"], direct)
    assert 0 < res.robust_acc["apgd-ce"] < res.clean_acc


def test_autoattack_fast_stagewise_matches_direct_pyautoattack(model, test_set) -> None:
    """prunekit runs an ensemble one official call per stage, each on the still-robust points:
    the flags equal one direct ``run_standard_evaluation`` of the same list."""
    x, y = test_set[0][:20], test_set[1][:20]
    res = RobustnessEvaluator(EPS, attacks=("autoattack-fast",), seed=2, batch_size=64
                              ).evaluate(model, (x, y))
    direct = _direct_autoattack(model, x, y, ["apgd-ce", "apgd-t"], seed=2)
    assert torch.equal(res.flags["autoattack-fast"], direct)
    assert res.meta["autoattack-fast"].label == "APGD-CE + APGD-T" and res.checks == []


def test_apgd_ce_from_autoattack_equals_a_separate_run(model, test_set) -> None:
    """No attack run twice: with apgd-ce and autoattack-fast, APGD-CE is read from AutoAttack's
    first stage (run on every clean-correct point, pyautoattack reseeding with the same seed),
    over several batches; the per-example flags equal a separate APGD-CE run's."""
    x, y = test_set[0][:30], test_set[1][:30]
    kw = dict(seed=3, batch_size=12)
    both = RobustnessEvaluator(EPS, attacks=("apgd-ce", "autoattack-fast"), **kw).evaluate(
        model, (x, y))
    alone = RobustnessEvaluator(EPS, attacks=("apgd-ce",), **kw).evaluate(model, (x, y))
    assert both.reused == {"apgd-ce": "autoattack-fast"} and alone.reused == {}
    assert torch.equal(both.flags["apgd-ce"], alone.flags["apgd-ce"])
    assert both.robust_acc["autoattack-fast"] <= both.robust_acc["apgd-ce"] < both.clean_acc
    assert both.grad_evals["apgd-ce"] == alone.grad_evals["apgd-ce"] > 0
    assert both.seconds["apgd-ce"] > 0 and both.checks == []


@pytest.mark.slow
def test_autoattack_standard_matches_direct(model, test_set) -> None:
    x, y = test_set[0][:40], test_set[1][:40]
    res = RobustnessEvaluator(EPS, attacks=("apgd-ce", "autoattack"), seed=1,
                              batch_size=64).evaluate(model, (x, y))
    assert torch.equal(res.flags["autoattack"], _direct_autoattack(model, x, y, None, seed=1))
    assert res.robust_acc["autoattack"] <= res.robust_acc["apgd-ce"] <= res.clean_acc
    assert "aa_above_apgd" not in res.checks


# -- determinism, resume, modes ----------------------------------------------------------------
def test_seeded_and_rng_untouched(model, test_set) -> None:
    x, y = test_set[0][:60], test_set[1][:60]
    ev = RobustnessEvaluator(EPS, attacks=("pgd-5-2",), batch_size=25, seed=7)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    a = ev.evaluate(model, (x, y))
    assert torch.equal(torch.get_rng_state(), before)
    b = ev.evaluate(model, (x, y))
    assert torch.equal(a.flags["pgd-5-2"], b.flags["pgd-5-2"])
    assert a.grad_evals["pgd-5-2"] > 0


def test_dataset_loader_and_tensors_agree(model, test_set) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    x, y = test_set[0][:45], test_set[1][:45]
    ds = TensorDataset(torch.cat([x, x]), torch.cat([y, y]))
    ev = RobustnessEvaluator(EPS, attacks=("pgd-3-1",), n_examples=45, batch_size=20)
    r1 = ev.evaluate(model, ds)
    r2 = ev.evaluate(model, DataLoader(ds, batch_size=7))
    r3 = ev.evaluate(model, (x, y))
    assert r1.n_examples == r2.n_examples == r3.n_examples == 45
    for r in (r2, r3):
        assert torch.equal(r.flags["worst"], r1.flags["worst"])
    shuffled = ev.evaluate(model, DataLoader(ds, batch_size=7, shuffle=True))
    assert "shuffled_loader" in shuffled.checks


class _Stop(Exception):
    pass


def test_resume_gives_the_uninterrupted_result(model, test_set, tmp_path) -> None:
    x, y = test_set[0][:30], test_set[1][:30]
    kw = dict(attacks=("pgd-5-2", "apgd-ce"), batch_size=10, seed=5)
    ref = RobustnessEvaluator(EPS, **kw).evaluate(model, (x, y))
    state = tmp_path / "eval-state.json"
    ev = RobustnessEvaluator(EPS, state_path=state, **kw)
    done: list[tuple[str, int]] = []

    def hook(attack: str, batch: int) -> None:
        if attack != "clean":
            done.append((attack, batch))
        if len(done) == 3:  # batch 0 both attacks, batch 1 PGD: then "crash"
            raise _Stop

    with pytest.raises(_Stop):
        ev.evaluate(model, (x, y), callback=hook)
    assert state.exists()
    resumed = RobustnessEvaluator(EPS, state_path=state, **kw).evaluate(model, (x, y))
    assert resumed.resumed_batches == 3
    for name in ("clean", "pgd-5-2", "apgd-ce", "worst"):
        assert torch.equal(resumed.flags[name], ref.flags[name]), name
    # a stale state (other eps) is not reused
    other = RobustnessEvaluator(0.05, state_path=state, attacks=("pgd-5-2",), batch_size=10,
                                seed=5).evaluate(model, (x, y))
    assert other.resumed_batches == 0


def test_train_mode_warned_evaluated_in_eval_mode_and_restored(model, test_set) -> None:
    x, y = test_set[0][:40], test_set[1][:40]
    net = nn.Sequential(model, nn.Dropout(0.5))  # dropout would randomise outputs in train mode
    ev = RobustnessEvaluator(EPS, attacks=("pgd-3-1",), batch_size=40)
    ref = ev.evaluate(net.eval(), (x, y))
    net.train()
    model.eval()  # a submodule left in eval mode must stay so
    res = ev.evaluate(net, (x, y))
    assert "train_mode" in res.checks and "randomized" not in res.checks
    assert _modes(net) == [True, False, False, False, False, False, False, False, True]
    assert torch.equal(res.flags["worst"], ref.flags["worst"])
    model.eval()


class _Noisy(nn.Module):
    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x + 0.2 * torch.randn_like(x))


def test_randomized_model_is_flagged_and_autoattack_messages_captured(model, test_set,
                                                                      capsys) -> None:
    x, y = test_set[0][:20], test_set[1][:20]
    res = RobustnessEvaluator(EPS, attacks=("pgd-2-1", "apgd-ce"), batch_size=20).evaluate(
        _Noisy(model), (x, y))
    assert "randomized" in res.checks
    assert "autoattack_check" in res.checks
    assert any("randomized defense" in w for w in res.warnings)
    out = capsys.readouterr()
    assert "randomized defense" not in out.out and "randomized defense" not in out.err


class _Saturated(nn.Module):
    """Logits x 1e4: softmax saturates, CE gradients vanish (PGD-CE stalls); the DLR loss of
    APGD-DLR is scale-invariant and still works -- classic gradient masking."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) * 1e4


def test_gradient_masking_pgd_far_above_autoattack(model, test_set) -> None:
    x, y = test_set[0][:40], test_set[1][:40]
    res = RobustnessEvaluator(EPS, attacks=("pgd-10-1", "apgd-dlr"), batch_size=40).evaluate(
        _Saturated(model), (x, y))
    assert res.robust_acc["pgd-10-1"] - res.robust_acc["apgd-dlr"] > 0.10
    assert "pgd_far_above_aa" in res.checks


class _Quantised(nn.Module):
    """Input quantisation through ``round``: zero input gradients everywhere."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(torch.round(x * 4) / 4)


@pytest.mark.slow
def test_gradient_masking_square_beats_whitebox(model, test_set) -> None:
    x, y = test_set[0][:30], test_set[1][:30]
    res = RobustnessEvaluator(EPS, attacks=("pgd-10-1", "square"), batch_size=30).evaluate(
        _Quantised(model), (x, y))
    assert "square_beats_whitebox" in res.checks


def test_non_fp32_model_evaluated_as_fp32_copy(model, test_set) -> None:
    import copy

    x, y = test_set[0][:20], test_set[1][:20]
    m64 = copy.deepcopy(model).double()
    res = RobustnessEvaluator(EPS, attacks=("pgd-2-1",), batch_size=20).evaluate(m64, (x, y))
    assert "not_fp32" in res.checks
    assert next(m64.parameters()).dtype == torch.float64


# -- result / CSV row --------------------------------------------------------------------------
def test_to_row_columns_and_nan() -> None:
    t, f = True, False
    flags = {"clean": torch.tensor([t, t, t, f]), "pgd-20-2": torch.tensor([t, t, f, f]),
             "autoattack-fast": torch.tensor([t, f, f, f])}
    res = EvalResult.from_flags(eps=0.1, norm="Linf", attacks=["pgd-20-2", "autoattack-fast"],
                                flags=flags, seconds={"clean": 1.0, "pgd-20-2": 2.0,
                                                      "autoattack-fast": 3.5})
    row = res.to_row()
    assert set(row) == {"clean_acc", "pgd_acc", "apgd_acc", "aa_acc", "worst_acc", "eval_s",
                        "n_eval", "eps", "checks", "robust_acc", "certified_acc"}
    assert row["certified_acc"] == "{}"
    assert row["clean_acc"] == 0.75 and row["pgd_acc"] == 0.5 and row["aa_acc"] == 0.25
    assert json.loads(row["robust_acc"]) == {"pgd-20-2": 0.5, "autoattack-fast": 0.25}
    assert list(json.loads(row["robust_acc"])) == ["pgd-20-2", "autoattack-fast"]  # run order
    assert math.isnan(row["apgd_acc"])
    assert row["worst_acc"] == 0.25 and row["eval_s"] == 6.5 and row["n_eval"] == 4
    assert row["checks"] == "ok"
    assert "autoattack-fast" in res.table()


def test_invalid_arguments_are_one_line_value_errors() -> None:
    with pytest.raises(ValueError, match="valid forms"):
        RobustnessEvaluator(0.1, attacks=("pgd-fast",))
    with pytest.raises(ValueError, match="duplicate"):
        RobustnessEvaluator(0.1, attacks=("apgd-ce", "apgd-ce"))
    with pytest.raises(ValueError, match="L-inf only"):
        RobustnessEvaluator(0.5, norm="L2", attacks=("pgd-10-1",))
    with pytest.raises(ValueError):
        RobustnessEvaluator(-1.0)
