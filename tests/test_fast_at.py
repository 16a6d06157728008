"""Fast adversarial training (issue 21): free AT replays in ``fit`` against a transcription of
HYDRA's ``trainer/freeadv.py``, FGSM-RS against the official ``train_fgsm.py`` step, the
catastrophic-overfitting flag, exact resume, and the measured training compute (``passes``)
against the arithmetic count of each loss."""
from __future__ import annotations

import copy
import json
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit import LOSSES
from prunekit.losses.fgsm_rs import CHECK_KEY
from prunekit.train import fit
from prunekit.train.compute import ForwardCounter
from prunekit.train.records import StageRecord, compute_columns

N, B, EPS = 40, 16, 0.1          # 3 batches per epoch: 16, 16, 8


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(144, 3))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(N, 1, 8, 8, generator=g), torch.randint(0, 3, (N,), generator=g)


def _fit(model: nn.Module, loss: object, epochs: int, **kw: object):
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    loader = DataLoader(TensorDataset(x, y), batch_size=B, shuffle=False)
    return fit(model, loss, opt, sched, loader, epochs, progress=False, **kw)


@pytest.mark.parametrize("name,kw,per_example", [
    ("pgd_at", {"steps": 4}, 4 + 2),    # K attack steps + the training forward + the no-grad
                                        # clean forward of its clean_acc stat
    ("trades", {"steps": 4}, 4 + 4),    # the clean target + K steps + 3 outer forwards
    ("mart", {"steps": 4}, 4 + 2),      # K steps + clean and adversarial outer forwards
    ("free_at", {"replays": 3}, 3),     # one forward per replay
    ("fgsm_rs", {"check_steps": 0}, 2),  # the FGSM forward + the training forward
])
def test_counted_passes_equal_the_arithmetic_count(name: str, kw: dict, per_example: int) -> None:
    res = _fit(_net(), LOSSES.build(name, eps=EPS, **kw), epochs=2)
    assert [r["passes"] for r in res.history] == [per_example * N] * 2
    assert res.passes == 2 * per_example * N
    assert res.cpu_s is not None and res.cpu_s > 0


def test_fgsm_rs_check_forwards_are_counted() -> None:
    res = _fit(_net(), LOSSES.build("fgsm_rs", eps=EPS, check_steps=3), epochs=1)
    assert res.passes == 2 * N + B * (3 + 1)  # + PGD-3 and its scoring forward on batch one
    assert 0.0 <= res.history[0][CHECK_KEY] <= 1.0


def _hydra_free(model: nn.Module, m: int, epochs: int) -> None:
    """Transcription of inspire-group/hydra trainer/freeadv.py:31-84 (no normalisation)."""
    x_all, y_all = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        noise = torch.zeros(B, 1, 8, 8)
        model.train()
        for i in range(0, N, B):
            inp, target = x_all[i:i + B], y_all[i:i + B]
            for _ in range(m):
                nb = noise[0:inp.size(0)].clone().requires_grad_(True)
                in1 = inp + nb
                in1 = in1.clamp(0, 1.0)
                loss = F.cross_entropy(model(in1), target)
                opt.zero_grad()
                loss.backward()
                noise[0:inp.size(0)] += EPS * torch.sign(nb.grad)
                noise.clamp_(-EPS, EPS)
                opt.step()


def test_free_at_in_fit_matches_the_official_loop() -> None:
    ours, ref = _net(), _net()
    steps = []

    class Counting:  # a pruner stub: fit calls on_step_end once per optimizer step
        def penalty(self) -> torch.Tensor:
            return torch.zeros(())

        def on_step_end(self, step: int) -> None:
            steps.append(step)

        def on_epoch_end(self, epoch: int) -> None:
            pass

        def state_dict(self) -> dict:
            return {}

    _fit(ours, LOSSES.build("free_at", eps=EPS, replays=3), epochs=2, pruner=Counting())
    _hydra_free(ref, 3, 2)
    assert steps == list(range(2 * 3 * 3))  # 2 epochs x 3 batches x 3 replays
    for a, b in zip(ours.state_dict().values(), ref.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), "free AT differs from HYDRA's"


def test_fgsm_rs_attack_is_the_official_step() -> None:
    model, (x, y) = _net(), _data()
    model.eval()
    lf = LOSSES.build("fgsm_rs", eps=EPS)
    assert lf.step_size == pytest.approx(1.25 * EPS)
    torch.manual_seed(5)
    ours = lf.attack(model, x, y)
    torch.manual_seed(5)  # train_fgsm.py:106-118, eval mode (prunekit's convention)
    delta = torch.zeros_like(x).uniform_(-EPS, EPS)
    delta = torch.max(torch.min(delta, 1 - x), -x).requires_grad_(True)
    F.cross_entropy(model(x + delta), y).backward()
    delta = (delta + 1.25 * EPS * torch.sign(delta.grad)).clamp(-EPS, EPS)
    delta = torch.max(torch.min(delta, 1 - x), -x).detach()
    assert torch.allclose(ours, x + delta, atol=1e-6)


def test_catastrophic_overfitting_is_flagged(caplog: pytest.LogCaptureFixture) -> None:
    lf = LOSSES.build("fgsm_rs", eps=EPS)
    model, (x, y) = _net(), _data()
    lf.begin_epoch(3, [{CHECK_KEY: 1.01}])  # the previous epoch's check (above any accuracy)
    lf.attack(model, x, y)
    with caplog.at_level(logging.WARNING):
        out = lf.end_epoch(model)
    assert out["warnings"] and "catastrophic overfitting in epoch 4" in out["warnings"][0]
    assert "catastrophic overfitting" in caplog.text
    lf.begin_epoch(4, [{CHECK_KEY: out[CHECK_KEY]}])
    lf.attack(model, x, y)
    assert "warnings" not in lf.end_epoch(model)   # no drop: no flag
    rec = StageRecord.from_fit(type("R", (), {"epochs": 1, "seconds": 0.0, "last": {},
                                              "passes": 1, "cpu_s": 0.1,
                                              "warnings": out["warnings"]})())
    assert rec.warnings == out["warnings"]


@pytest.mark.parametrize("name,kw", [("free_at", {"replays": 2}), ("fgsm_rs", {})])
def test_resume_is_exact(tmp_path, name: str, kw: dict) -> None:
    full = _net()
    res_full = _fit(full, LOSSES.build(name, eps=EPS, **kw), epochs=3, seed=7)
    part = _net()
    ck = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        class Stop:  # kill after the second epoch's checkpoint
            def __init__(self) -> None:
                self.loss = LOSSES.build(name, eps=EPS, **kw)
                self.replays = self.loss.replays

            def __call__(self, *a):
                return self.loss(*a)

            def begin_epoch(self, epoch, history):
                if epoch == 2:
                    raise KeyboardInterrupt
                self.loss.begin_epoch(epoch, history)

            def end_epoch(self, model):
                return self.loss.end_epoch(model)
        _fit(part, Stop(), epochs=3, seed=7, checkpoint=ck)
    res = _fit(part, LOSSES.build(name, eps=EPS, **kw), epochs=3, seed=7, checkpoint=ck)
    assert res.resumed_from == 2 and res.passes == res_full.passes
    for a, b in zip(full.state_dict().values(), part.state_dict().values()):
        assert torch.equal(a, b)


def test_unknown_compute_stays_unknown() -> None:
    known = StageRecord(epochs=2, passes=100, cpu_s=1.5)
    old = StageRecord(epochs=5, cached=True)  # a cache entry from before the counts
    cols = compute_columns({"pretrain": old, "prune": StageRecord(skipped=True),
                            "finetune": known})
    assert cols["train_passes"] is None and cols["train_cpu_s"] is None
    assert json.loads(cols["train_epochs"]) == {"pretrain": 5, "prune": 0, "finetune": 2}
    cols = compute_columns({"pretrain": StageRecord(epochs=1, passes=7, cpu_s=0.5),
                            "finetune": known})
    assert cols["train_passes"] == 107 and cols["train_cpu_s"] == 2.0


def test_global_counter_counts_outermost_calls_only() -> None:
    model, (x, _) = _net(), _data()
    with ForwardCounter(None) as fc:
        model(x)
        model[0](x)
    assert fc.passes == 2 * N
    inner = copy.deepcopy(model)
    with ForwardCounter(inner) as fc2:
        nn.Sequential(inner)(x[:5])
    assert fc2.passes == 5
