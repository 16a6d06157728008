"""The LRNAS scoring radius (issue 25): the probe's FGSM against torchattacks' FGSM, the choice
rule, ``fgsm_eps: auto`` in a search (chosen once, kept across a resume), the summary's
scoring-health fields and the dead-adversarial-term warning as the report reads it; and the
FactorizedReduce workaround for torch's channels_last 1x1 stride-2 conv backward."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchattacks

import prunekit
from prunekit.bench.cells import method_warnings
from prunekit.search import LRNAS
from prunekit.search.base import SearchResult
from prunekit.search.ops import FactorizedReduce
from prunekit.search.probe import DEAD_ADV_ACC, choose_radius, default_candidates, probe_radii


def _net() -> torch.nn.Module:
    """A confident linear classifier (a random supernet is nearly input-insensitive)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with torch.no_grad():
        net[1].weight.mul_(10.0)
    return net.eval()


def test_probe_fgsm_equals_torchattacks() -> None:
    net = _net()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(32, 1, 8, 8, generator=g)
    with torch.no_grad():
        y = net(x).argmax(1)
    y[::3] = (y[::3] + 1) % 3
    probe = probe_radii(net, x, y, [0.3, 0.05, 0.0])
    clean = float((net(x).argmax(1) == y).float().mean())
    for p in probe:
        assert p["clean_acc"] == pytest.approx(clean)
        x_adv = torchattacks.FGSM(net, eps=p["eps"])(x, y)
        with torch.no_grad():
            want = float((net(x_adv).argmax(1) == y).float().mean())
        assert p["fgsm_acc"] == pytest.approx(want)
    assert probe[-1]["fgsm_acc"] == pytest.approx(clean)   # eps 0: the clean accuracy
    assert probe[0]["fgsm_acc"] < clean                      # the attack does something
    assert not net.training


def test_choose_radius_takes_the_largest_eps_keeping_half_the_clean_accuracy() -> None:
    probe = [{"eps": 0.1, "clean_acc": 0.8, "fgsm_acc": 0.0},
             {"eps": 0.05, "clean_acc": 0.8, "fgsm_acc": 0.3},
             {"eps": 0.025, "clean_acc": 0.8, "fgsm_acc": 0.5},
             {"eps": 0.0125, "clean_acc": 0.8, "fgsm_acc": 0.7}]
    assert choose_radius(probe) == 0.025
    assert choose_radius(probe, ratio=0.3) == 0.05
    dead = [{**p, "fgsm_acc": 0.0} for p in probe]
    assert choose_radius(dead) == 0.0125          # nothing qualifies: the smallest (and a warning)
    assert default_candidates(0.1) == pytest.approx([0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125])


def test_auto_eps_is_probed_once_and_kept_across_a_resume(tmp_path: Path) -> None:
    ds = prunekit.DATASETS.build("synthetic", input_shape=(1, 8, 8), num_classes=3, size=48)
    hp = dict(LRNAS.contract_hparams, epochs=3, warmup_epochs=1, fgsm_eps="auto")
    s = LRNAS(**hp)
    geno, hist = s.search(*s.split(ds), ds.spec, eps=0.2)
    assert "eps_probe" not in hist[0] and "score_eps" not in hist[0]   # warm-up epoch
    first = hist[1]["eps_probe"]
    assert [p["eps"] for p in first] == pytest.approx(default_candidates(0.2))
    chosen = choose_radius(first, 0.5)
    assert [r["score_eps"] for r in hist[1:]] == [chosen, chosen]
    assert "eps_probe" in hist[2]                  # recorded every scoring epoch, not re-chosen

    class Killed(Exception):
        pass

    def kill(epoch: int) -> None:
        if epoch == 1:
            raise Killed

    r = LRNAS(**hp)
    with pytest.raises(Killed):
        r.search(*r.split(ds), ds.spec, eps=0.2, workdir=tmp_path, on_epoch_end=kill)
    geno2, hist2 = LRNAS(**hp).search(*r.split(ds), ds.spec, eps=0.2, workdir=tmp_path)
    assert geno2 == geno and [h["score_eps"] for h in hist2[1:]] == [chosen, chosen]


def _with_history(history: list[dict]) -> LRNAS:
    s = LRNAS(**LRNAS.contract_hparams)
    s._result = SearchResult(genotype={}, model=torch.nn.Identity(), params=100, budget=3000,
                             history=history, macs=1234)
    return s


def test_summary_reports_the_scoring_health_and_warns_when_the_adversarial_term_is_dead() -> None:
    rec = {"score_clean_acc": 0.6, "score_eps": 0.1}
    dead = _with_history([{**rec, "score_fgsm_acc": 0.0}, {**rec, "score_fgsm_acc": 0.03}])
    summ = dead.summary()
    assert summ["macs"] == 1234 and summ["params"] == 100 and summ["score_eps"] == 0.1
    assert summ["score_adv_acc"] == pytest.approx(0.015) and summ["score_adv_acc"] < DEAD_ADV_ACC
    assert summ["score_clean_acc_mean"] == pytest.approx(0.6)
    (warn,) = method_warnings(summ)                       # what the report marks and explains
    assert "adversarial term" in warn and "0.1" in warn
    alive = _with_history([{**rec, "score_fgsm_acc": 0.3}]).summary()
    assert "warnings" not in alive and method_warnings(alive) == []


def _reference_fr(m: FactorizedReduce, x: torch.Tensor) -> torch.Tensor:
    """The official FactorizedReduce: stride-2 1x1 convs (contiguous memory)."""
    x = F.relu(x)
    a = F.conv2d(x, m.conv_1.weight, stride=2)
    b = F.conv2d(F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)), m.conv_2.weight, stride=2)
    return m.bn(torch.cat([a, b], 1))


@pytest.mark.parametrize("size", [28, 14, 7])
def test_factorized_reduce_is_the_stride_2_conv_and_survives_channels_last_backward(
        size: int) -> None:
    torch.manual_seed(0)
    m = FactorizedReduce(4, 4).eval()
    x = torch.randn(3, 4, size, size)
    w = torch.randn(3, 4, (size + 1) // 2, (size + 1) // 2)
    grads = []
    for cl in (False, True):   # channels_last with 4 channels: the torch heap corruption case
        mm = m.to(memory_format=torch.channels_last) if cl else m
        xx = (x.to(memory_format=torch.channels_last) if cl else x.clone()).requires_grad_()
        out = mm(xx)
        assert torch.allclose(out, _reference_fr(m, x), atol=1e-5)
        m.zero_grad()
        (out * w).sum().backward()
        grads.append((xx.grad.contiguous(), m.conv_1.weight.grad.clone()))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-4)
