"""The CPU fast path: channels_last and bf16 autocast in training (the training-time attack
included), an exact resume with both, fp32-only evaluation whatever the caller set up, and the
fallback where bf16 is not native."""
from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prunekit
from prunekit.attacks import PGD
from prunekit.attacks.precision import training_attack_autocast
from prunekit.config import StageConfig
from prunekit.eval import RobustnessEvaluator
from prunekit.losses import TRADES
from prunekit.train import build_loader, env, fit, make_optimizer, make_scheduler

needs_bf16 = pytest.mark.skipif(not env.bf16_support("cpu")[0],
                                reason="this CPU has no native bf16")


def _data(n: int = 64) -> Any:
    return prunekit.DATASETS.build("synthetic", split="train", input_shape=(3, 16, 16),
                                   num_classes=4, size=n, seed=0)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return prunekit.MODELS.build("vgg-small", num_classes=4, in_channels=3, width=0.25)


def _fit(model: nn.Module, epochs: int = 2, ckpt: Any = None, loss: Any = None,
         seed: int = 0, **kw: Any) -> Any:
    st = StageConfig(epochs=epochs, lr=0.05, schedule="cosine")
    opt = make_optimizer(list(model.parameters()), st)
    return fit(model, loss or TRADES(eps=8 / 255, steps=2), opt, make_scheduler(opt, st),
               build_loader(_data(), 16, shuffle=True, seed=0), epochs, checkpoint=ckpt,
               seed=seed, progress=False, **kw)


class ConvDtypes:
    """Records (training mode, conv output dtype) of every conv forward."""

    def __init__(self, model: nn.Module) -> None:
        self.seen: set[tuple[bool, torch.dtype]] = set()
        self.count: dict[tuple[bool, torch.dtype], int] = {}
        self.first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(self._hook)

    def _hook(self, mod: nn.Module, args: Any, out: torch.Tensor) -> None:
        self.seen.add((mod.training, out.dtype))
        if mod is self.first:  # one count per model forward
            key = (mod.training, out.dtype)
            self.count[key] = self.count.get(key, 0) + 1


def test_channels_last_step_equals_default_format() -> None:
    """Forward, backward and the attack's start agree with the default format to float
    rounding (the random starts are drawn in logical order, so the streams are the same)."""
    x = torch.stack([_data()[i][0] for i in range(32)])
    y = torch.tensor([_data()[i][1] for i in range(32)])
    ref, fast = _model().train(), _model().train().to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    logits = []
    for model, inputs in ((ref, x), (fast, xc)):
        logits.append(model(inputs))
        F.cross_entropy(logits[-1], y).backward()
    assert torch.allclose(logits[0], logits[1], atol=1e-4)
    g_ref, g_fast = (torch.cat([p.grad.flatten() for p in m.parameters()]) for m in (ref, fast))
    # max-pool routes a gradient to the other element of a near-tie now and then (rounding)
    assert float((g_ref - g_fast).norm() / g_ref.norm()) < 1e-2
    loss = TRADES(eps=8 / 255, steps=2)
    torch.manual_seed(0)
    l_ref, _ = loss(ref, x, y)
    torch.manual_seed(0)
    l_fast, _ = loss(fast, xc, y)
    assert l_ref.item() == pytest.approx(l_fast.item(), rel=1e-4)
    torch.manual_seed(0)
    a_ref = loss.attack(ref, x, y)
    torch.manual_seed(0)
    a_fast = loss.attack(fast, xc, y)
    # sign-PGD flips the sign of a near-zero gradient coordinate on rounding noise, as any
    # change of summation order would (thread count, another CPU)
    assert (a_ref == a_fast).float().mean() > 0.95
    torch.manual_seed(1)  # control: another start noise agrees far less
    assert (loss.attack(ref, x, y) == a_ref).float().mean() < 0.9


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_channels_last_training_stays_on_the_default_trajectory() -> None:
    """Two epochs in channels_last end where the default format does, up to rounding that
    sign-PGD amplifies (the thread count or the CPU alone moves the epoch-2 loss by 0.1-0.2 %):
    measured against the training displacement, the two runs differ by ~3 %, a control with
    another attack-noise seed by ~37 %."""
    ref, fast, control = _model(), _model(), _model()
    start = _flat(ref)
    r_ref = _fit(ref)
    r_fast = _fit(fast, channels_last=True)
    _fit(control, seed=1)
    w = next(m.weight for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert w.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(r_ref.history, r_fast.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-2)
        assert a["clean_acc"] == pytest.approx(b["clean_acc"], abs=0.05)
    moved = (_flat(ref) - start).norm()
    assert float((_flat(fast) - _flat(ref)).norm() / moved) < 0.1
    assert float((_flat(control) - _flat(ref)).norm() / moved) > 0.2


@needs_bf16
@pytest.mark.parametrize("amp_attack", [True, False])
def test_bf16_autocast_covers_training_and_optionally_the_attack(amp_attack: bool) -> None:
    model = _model()
    seen = ConvDtypes(model)
    res = _fit(model, epochs=1, amp=True, channels_last=True, amp_attack=amp_attack)
    assert (True, torch.bfloat16) in seen.seen and (True, torch.float32) not in seen.seen
    # the attack runs in eval mode: bf16 only when opted in; the loop's end-of-epoch finite
    # check (one eval-mode forward outside autocast) is the only other eval-mode forward
    steps = 4  # 64 images, batch 16
    if amp_attack:
        assert seen.count[(False, torch.bfloat16)] == steps * 3  # TRADES target + 2 steps
        assert seen.count[(False, torch.float32)] == 1
    else:
        assert (False, torch.bfloat16) not in seen.count
        assert seen.count[(False, torch.float32)] == steps * 3 + 1
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert res.history[0]["loss"] == res.history[0]["loss"]  # finite


@needs_bf16
def test_resume_with_fast_path_is_exact(tmp_path: Any) -> None:
    ref = _model()
    ref_res = _fit(ref, epochs=3, ckpt=tmp_path / "ref.pt", amp=True, channels_last=True)
    cut = _model()
    with pytest.raises(_Crash):  # 4 steps an epoch: dies in epoch 3
        _fit(cut, epochs=3, ckpt=tmp_path / "cut.pt", amp=True, channels_last=True,
             loss=_Crashing(9))
    resumed = _model()
    res = _fit(resumed, epochs=3, ckpt=tmp_path / "cut.pt", amp=True, channels_last=True)
    assert res.resumed_from == 2
    assert [r["loss"] for r in res.history] == [r["loss"] for r in ref_res.history]
    for k, v in ref.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


class _Crash(Exception):
    pass


class _Crashing:
    def __init__(self, n: int) -> None:
        self.n, self.inner = n, TRADES(eps=8 / 255, steps=2)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Any:
        self.n -= 1
        if self.n < 0:
            raise _Crash
        return self.inner(model, x, y)


def test_unsupported_bf16_warns_once_and_trains_in_fp32(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(env, "_cpu_bf16", lambda: (False, "this CPU has no native bf16 (test)"))
    env._warn_once.cache_clear()
    model = _model()
    seen = ConvDtypes(model)
    with caplog.at_level(logging.WARNING, logger="prunekit.train.env"):
        _fit(model, epochs=1, amp=True)
        _fit(_model(), epochs=1, amp=True)
    env._warn_once.cache_clear()
    msgs = [r.getMessage() for r in caplog.records if r.name == "prunekit.train.env"]
    assert msgs == ["amp: this CPU has no native bf16 (test); training in fp32 instead "
                    "(set amp: false to silence this)"]
    assert {d for _, d in seen.seen} == {torch.float32}


def test_evaluation_is_fp32_inside_any_autocast() -> None:
    model = _model().eval()
    x, y = torch.rand(16, 3, 16, 16), torch.randint(0, 4, (16,))
    ev = RobustnessEvaluator(8 / 255, attacks=("pgd-3-1",), batch_size=16)
    ref = ev.evaluate(model, (x, y))
    seen = ConvDtypes(model)
    with torch.autocast("cpu", dtype=torch.bfloat16), training_attack_autocast(True):
        res = ev.evaluate(model, (x, y))
    assert {d for _, d in seen.seen} == {torch.float32}
    assert torch.equal(res.flags["pgd-3-1"], ref.flags["pgd-3-1"])
    assert res.clean_acc == ref.clean_acc


@needs_bf16
def test_bf16_training_attack_is_as_strong_as_fp32() -> None:
    """Mechanism check of the soundness argument: sign-PGD under bf16 autocast raises the fp32
    loss about as much as the fp32 attack does (on a model trained a little)."""
    model = _model()
    _fit(model, epochs=2, channels_last=False)
    model.eval()
    x = torch.stack([_data()[i][0] for i in range(64)])
    y = torch.tensor([_data()[i][1] for i in range(64)])
    pgd = PGD(8 / 255, steps=5, start=None)
    x32 = pgd(model, x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16), training_attack_autocast(True):
        x16 = pgd(model, x, y)
    assert not torch.equal(x16, x32)  # the bf16 path really ran
    with torch.no_grad():
        clean, l32, l16 = (float(F.cross_entropy(model(v), y)) for v in (x, x32, x16))
    assert l32 > clean
    assert l16 - clean >= 0.9 * (l32 - clean)
