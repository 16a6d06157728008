"""Baselines (HYDRA, HYDRA-channel, ADMM irregular/filter, Dense) checked side by side with the
official behaviour (inspire-group/hydra, yeshaokai/Robustness-Aware-Pruning-ADMM): the reference
values here are written out independently from the official formulas, not from baselines/."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from prunekit import PRUNERS
from prunekit.pruning.masking import prunable_layers

from baselines._common import scaled_score_init, topk_count, uniform_group_counts
from baselines.admm import ADMM, ADMMFilter
from baselines.dense import Dense
from baselines.hydra import Hydra, HydraChannel



class Net(nn.Module):
    """Stem, a conv, a residual pair (conv2 + conv3), BN everywhere, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)) + x)           # residual: conv2/conv3 coupled
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@pytest.fixture
def net() -> nn.Module:
    torch.manual_seed(0)
    return Net()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(8, 1, 12, 12, generator=g), torch.randint(0, 4, (8,), generator=g)


def _ref_topk(v: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Reference: keep the round((1-s) n) largest |v| (sorted, no ties in random data)."""
    flat = v.detach().abs().flatten()
    k = max(1, round((1 - sparsity) * flat.numel()))
    thr = flat.sort(descending=True).values[k - 1]
    return (v.detach().abs() >= thr)


def _step(model, pruner, x, y, opt, step=0):
    loss = F.cross_entropy(model(x), y) + pruner.penalty()
    opt.zero_grad()
    loss.backward()
    opt.step()
    pruner.on_step_end(step)


# -- registration -----------------------------------------------------------------------------
def test_registered_through_entry_points() -> None:
    for name, cls in [("dense", Dense), ("hydra", Hydra), ("hydra-channel", HydraChannel),
                      ("admm", ADMM), ("admm-filter", ADMMFilter)]:
        assert PRUNERS.get(name) is cls
    one = PRUNERS.build("admm", sparsity=0.5, projection="filter")   # one class, a strategy
    assert type(one) is ADMM and (one.granularity, one.sparsity_target) == ("channel", "macs")
    assert (ADMMFilter.granularity, ADMMFilter.target_kind()) == ("channel", "macs")
    assert (ADMM.granularity, ADMM.target_kind()) == ("weight", "weights")
    with pytest.raises(ValueError, match="admm-filter: projection must be filter"):
        PRUNERS.build("admm-filter", sparsity=0.5, projection="irregular")
    with pytest.raises(ValueError, match="projection must be one of irregular, filter"):
        PRUNERS.build("admm", sparsity=0.5, projection="column")


def test_dense(net, batch) -> None:
    with pytest.raises(ValueError, match="sparsity must be 0"):
        Dense(sparsity=0.5)
    p = PRUNERS.build("dense", sparsity=0.0)
    p.attach(net, batch[0][:2])
    assert p.granularity == "none" and p.masks() == {}
    assert {id(q) for g in p.param_groups(net) for q in g["params"]} == \
        {id(q) for q in net.parameters()}
    assert p.finalize(net) is net


# -- HYDRA -------------------------------------------------------------------------------------
def test_hydra_scaled_init_formula(net) -> None:
    # official initialize_scaled_score: sqrt(6 / fan_in) * W / max|W|, fan_in = (in/groups)*k*k
    grouped = nn.Conv2d(16, 16, 3, groups=2)
    for conv, fan_in in [(net.conv1, 8 * 9), (grouped, 8 * 9), (net.fc, 16)]:
        w = conv.weight.detach()
        ref = math.sqrt(6.0 / fan_in) * w / w.abs().max()
        torch.testing.assert_close(scaled_score_init(conv.weight), ref)


def test_hydra_mask_after_scaled_init_is_top_abs_w(net, batch) -> None:
    weights = {n: m.weight.detach().clone() for n, m in prunable_layers(net).items()}
    p = PRUNERS.build("hydra", sparsity=0.7)
    p.attach(net, batch[0][:2])
    masks = p.masks()
    assert set(masks) == set(weights) == {"conv1", "conv2", "conv3"}   # stem and fc left dense
    for n, w in weights.items():
        assert torch.equal(masks[n], _ref_topk(w, 0.7)), n


def test_hydra_official_layer_set(net, batch) -> None:
    p = PRUNERS.build("hydra", sparsity=0.5, include_stem=True, include_classifier=True)
    p.attach(net, batch[0][:2])
    assert set(p.masks()) == {"stem", "conv1", "conv2", "conv3", "fc"}


def test_hydra_ste_trains_scores_not_weights(net, batch) -> None:
    x, y = batch
    p = PRUNERS.build("hydra", sparsity=0.5)
    p.attach(net, x[:2])
    conv = net.conv1
    w = conv.parametrizations.weight.original
    assert not w.requires_grad and not net.stem.weight.requires_grad   # all conv/linear frozen
    assert net.bn1.weight.requires_grad                                 # BN affine still trains
    trained = {id(q) for g in p.param_groups(net) for q in g["params"]}
    assert id(w) not in trained and all(id(s) in trained for s in p.scores())
    with parametrize.cached():                 # the hook sees the effective weight the forward used
        eff = {}
        conv.register_forward_hook(lambda m, i, o: eff.update(w=m.weight))
        out = net(x)
        eff["w"].retain_grad()
        F.cross_entropy(out, y).backward()
    s = conv.parametrizations.weight[0].scores
    assert w.grad is None and net.bn1.weight.grad is not None
    # straight-through: dL/ds = dL/d(W*m) * W * sign(s)  (GetSubnet backward, then |.|)
    torch.testing.assert_close(s.grad, eff["w"].grad * w.detach() * s.detach().sign())
    assert s.grad[~p.masks()["conv1"]].abs().sum() > 0                 # pruned scores learn too


def test_hydra_finalize_and_finetune_keep_zeros(net, batch) -> None:
    x, y = batch
    p = PRUNERS.build("hydra", sparsity=0.9)
    p.attach(net, x[:2])
    opt = torch.optim.SGD(p.param_groups(net), lr=0.5, momentum=0.9, weight_decay=1e-2)
    for i in range(3):
        _step(net, p, x, y, opt, i)
    masks = p.masks()
    net = p.finalize(net)
    assert 0.0 < p.summary()["kept_as_at_init"] < 1.0          # the scores moved the mask
    assert not any("scores" in k for k in net.state_dict())
    assert all(q.requires_grad for q in net.parameters())
    for n, m in masks.items():
        w = net.get_submodule(n).weight
        assert torch.equal(w != 0, m), n
        assert abs(float((w == 0).float().mean()) - 0.9) <= 0.005, n   # per layer
    ft = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-2)
    for _ in range(3):
        ft.zero_grad()
        F.cross_entropy(net(x), y).backward()
        ft.step()
    for n, m in masks.items():
        assert not net.get_submodule(n).weight[~m].any(), n


def test_hydra_state_roundtrip(net, batch) -> None:
    p = PRUNERS.build("hydra", sparsity=0.5)
    p.attach(net, batch[0][:2])
    with torch.no_grad():
        for s in p.scores():
            s.mul_(-1).add_(torch.randn_like(s))
    state, masks = p.state_dict(), p.masks()
    torch.manual_seed(0)
    q = PRUNERS.build("hydra", sparsity=0.5)
    q.attach(Net(), batch[0][:2])
    q.load_state_dict(state)
    assert all(torch.equal(masks[n], q.masks()[n]) for n in masks)


def test_hydra_channel(net, batch) -> None:
    x, y = batch
    p = PRUNERS.build("hydra-channel", sparsity=0.5)
    p.attach(net, x[:2])
    assert not net.conv1.weight.requires_grad and net.bn1.weight.requires_grad
    # scaled init from the group's coupled filter norms: order of scores = order of norms
    for g, s in zip(p.groups, p.scores()):
        nrm = sum(net.get_submodule(c).weight.detach().flatten(1).pow(2).sum(1)
                  for c in g.convs).sqrt()
        fan_in = nn.init._calculate_correct_fan(net.get_submodule(g.root).weight, "fan_in")
        torch.testing.assert_close(s.detach(), math.sqrt(6 / fan_in) * nrm / nrm.max())
    opt = torch.optim.SGD(p.param_groups(net), lr=0.1, momentum=0.9)
    F.cross_entropy(net(x), y).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in p.scores())
    assert net.conv1.weight.grad is None
    opt.step()
    net.eval()
    masked = net(x)
    kept = {c: int(k.sum()) for g, k in zip(p.groups, p.keep_masks()) for c in g.convs}
    small = p.finalize(net)
    torch.testing.assert_close(small(x), masked, atol=1e-5, rtol=1e-4)   # compaction is exact
    assert small.conv1.out_channels == kept["conv1"] < 16
    assert all(q.requires_grad for q in small.parameters())
    assert 0.0 <= p.summary()["kept_as_at_init"] <= 1.0 and "search_reduction" in p.summary()
    q = PRUNERS.build("hydra-channel", sparsity=0.5)     # no training: the init's top-k exactly
    q.attach(Net(), x[:2])
    q.finalize(q.model)
    assert q.summary()["kept_as_at_init"] == 1.0


# -- ADMM --------------------------------------------------------------------------------------
def test_admm_init_update_and_schedule(net, batch) -> None:
    x, y = batch
    p = PRUNERS.build("admm", sparsity=0.8, admm_interval=2)      # epochs
    p.attach(net, x[:2])
    W = {n: m.weight for n, m in prunable_layers(net).items()}
    for n, w in W.items():                                        # admm_initialization
        torch.testing.assert_close(p._Z[n], w.detach() * _ref_topk(w, 0.8))
        assert not p._U[n].any()
    opt = torch.optim.SGD(p.param_groups(net), lr=0.1, momentum=0.9)
    _step(net, p, x, y, opt)
    p.on_epoch_end(0)
    assert p.n_updates == 0 and p.rho == pytest.approx(1e-3)
    U0 = {n: p._U[n].clone() for n in W}
    _step(net, p, x, y, opt)
    p.on_epoch_end(1)                                            # (1 + 1) % 2 == 0: update
    assert p.n_updates == 1 and p.rho == pytest.approx(1.3e-3)   # multi_rho before Z/U
    for n, w in W.items():
        v = w.detach() + U0[n]
        Z = v * _ref_topk(v, 0.8)
        torch.testing.assert_close(p._Z[n], Z)                   # Z = proj(W + U)
        torch.testing.assert_close(p._U[n], U0[n] + w.detach() - Z)   # U = U + W - Z
    for e in range(2, 6):
        p.on_epoch_end(e)
    assert p.n_updates == 3 and p.rho == pytest.approx(1e-3 * 1.3 ** 3)


def test_admm_step_interval_and_rho_cap(net, batch) -> None:
    p = PRUNERS.build("admm", sparsity=0.5, admm_interval=3, interval_unit="step", rho_max=1.5e-3)
    p.attach(net, batch[0][:2])
    for s in range(9):
        p.on_step_end(s)
        p.on_epoch_end(s)                      # epoch ends do nothing in step mode
    assert p.n_updates == 3 and p.rho == pytest.approx(1.5e-3)
    q = PRUNERS.build("admm", sparsity=0.5, multi_rho=False, admm_interval=1)
    q.attach(Net(), batch[0][:2])
    q.on_epoch_end(0)
    assert q.n_updates == 1 and q.rho == 1e-3
    with pytest.raises(ValueError, match="interval_unit must be one of epoch, step"):
        PRUNERS.build("admm", sparsity=0.5, interval_unit="batch")


def test_admm_penalty_value_and_gradient(net, batch) -> None:
    p = PRUNERS.build("admm", sparsity=0.5, rho=0.01, admm_interval=1, interval_unit="step")
    p.attach(net, batch[0][:2])
    with torch.no_grad():
        for w in prunable_layers(net).values():
            w.weight.add_(0.1 * torch.randn_like(w.weight))
    p.on_step_end(0)                                             # nonzero U
    W = {n: m.weight for n, m in prunable_layers(net).items()}
    ref = sum(0.5 * p.rho * (w - p._Z[n] + p._U[n]).pow(2).sum() for n, w in W.items())
    pen = p.penalty()
    torch.testing.assert_close(pen, ref)
    pen.backward()
    for n, w in W.items():
        torch.testing.assert_close(w.grad, p.rho * (w.detach() - p._Z[n] + p._U[n]))


def test_admm_irregular_finalize_keeps_zeros(net, batch) -> None:
    x, y = batch
    p = PRUNERS.build("admm", sparsity=0.75, admm_interval=1, interval_unit="step")
    p.attach(net, x[:2])
    opt = torch.optim.SGD(p.param_groups(net), lr=0.1, momentum=0.9, weight_decay=1e-2)
    for i in range(3):
        _step(net, p, x, y, opt, i)
    W = {n: m.weight.detach().clone() for n, m in prunable_layers(net).items()}
    net = p.finalize(net)
    ft = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-2)
    for _ in range(3):
        ft.zero_grad()
        F.cross_entropy(net(x), y).backward()
        ft.step()
    for n, w in W.items():
        keep = _ref_topk(w, 0.75)                                # hard prune to proj(W)
        eff = net.get_submodule(n).weight
        assert not eff[~keep].any()
        assert abs(float((eff == 0).float().mean()) - 0.75) <= 0.005, n


def test_admm_filter_projection_whole_coupled_filters(net, batch) -> None:
    x, y = batch
    p = PRUNERS.build("admm-filter", sparsity=0.4, admm_interval=1, interval_unit="step")
    p.attach(net, x[:2])
    groups = list(p._proj.groups)
    coupled = [g for g in groups if len(g.convs) > 1]
    assert coupled and set(coupled[0].convs) >= {"conv2", "conv3"}
    opt = torch.optim.SGD(p.param_groups(net), lr=0.1, momentum=0.9)
    U0 = {n: u.clone() for n, u in p._U.items()}
    _step(net, p, x, y, opt, 0)                                  # first Z/U update
    for g, k in zip(groups, p._proj.counts):
        V = {c: net.get_submodule(c).weight.detach() + U0[c] for c in g.convs}
        norm = sum(V[c].flatten(1).pow(2).sum(1) for c in g.convs).sqrt()   # shared norm
        keep = torch.zeros(g.size, dtype=torch.bool)
        keep[norm.argsort(descending=True)[:k]] = True
        for c in g.convs:
            Z = p._Z[c]
            rows = Z.flatten(1)
            assert torch.equal(rows.abs().sum(1) != 0, keep), c            # whole filters
            torch.testing.assert_close(Z, V[c] * keep.view(-1, 1, 1, 1).float())
    small = p.finalize(net)
    assert small.conv3.out_channels == small.conv2.out_channels < 16
    assert small(x).shape == (8, 4)


def test_admm_hparams_are_the_constructor_arguments(net, batch) -> None:
    """rho evolves during training; hparams() records the rho the run was configured with."""
    p = PRUNERS.build("admm", sparsity=0.5, rho=0.01, admm_interval=1, interval_unit="step")
    p.attach(net, batch[0][:2])
    for s in range(3):
        p.on_step_end(s)
    assert p.rho == pytest.approx(0.01 * 1.3 ** 3) and p.hparams()["rho"] == 0.01
    assert p.hparams()["projection"] == "irregular"


def _admm_run(net, batch, rho: float, steps: int, interval: int = 2, lr: float = 0.05,
              momentum: float = 0.9, **hp):
    x, y = batch
    p = PRUNERS.build("admm", sparsity=0.75, rho=rho, admm_interval=interval,
                      interval_unit="step", **hp)
    p.attach(net, x[:2])
    W0 = {n: m.weight.detach().clone() for n, m in prunable_layers(net).items()}
    opt = torch.optim.SGD(p.param_groups(net), lr=lr, momentum=momentum)
    for i in range(steps):
        _step(net, p, x, y, opt, i)
    W = {n: m.weight.detach().clone() for n, m in prunable_layers(net).items()}
    Z = {n: z.clone() for n, z in p._Z.items()}
    net = p.finalize(net)
    return p, W0, W, Z


def test_admm_convergence_diagnostic_formulas(net, batch, caplog) -> None:
    with caplog.at_level("WARNING", logger="baselines.admm"):
        p, W0, W, Z = _admm_run(net, batch, rho=1e-3, steps=4)
    d = p.summary()
    keep = {n: _ref_topk(w, 0.75) for n, w in W.items()}             # what the hard prune keeps
    norm = lambda ts: math.sqrt(sum(float(t.pow(2).sum()) for t in ts))   # noqa: E731
    assert d["rel_residual"] == pytest.approx(norm(W[n] - Z[n] for n in W) / norm(W.values()),
                                              rel=1e-5)
    assert d["pruned_norm_survived"] == pytest.approx(
        norm(W[n][~keep[n]] for n in W) / norm(W0[n][~keep[n]] for n in W), rel=1e-5)
    assert d["n_updates"] == 2 and d["pruned_norm_survived"] > 0.9 and not d["converged"]
    assert "not converged" in caplog.text
    json.dumps(d)


def test_admm_converges_with_enough_rho(net, batch, caplog) -> None:
    """Toy check of the mechanism: rho large enough for the steps taken, and W-steps long
    enough between two Z/U updates, drive the weights due for removal to (nearly) zero before
    the hard prune, so the hard prune changes little."""
    with caplog.at_level("WARNING", logger="baselines.admm"):
        p, *_ = _admm_run(net, batch, rho=0.5, steps=100, interval=10, lr=0.2, momentum=0.0,
                          multi_rho=False)
    d = p.summary()
    assert d["converged"] and d["pruned_norm_survived"] < 0.1 and d["rel_residual"] < 0.1, d
    assert "not converged" not in caplog.text


def test_admm_official_lr_reset() -> None:
    """Official admm_adjust_learning_rate: lr reset at every update (every interval epochs),
    divided by 10 after each third of the interval."""
    p = PRUNERS.build("admm", sparsity=0.5, admm_interval=6, lr_reset=True)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = p.stage_scheduler(opt, None)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4, 0.01, 0.01])
    assert PRUNERS.build("admm", sparsity=0.5).stage_scheduler(opt, None) is None
    with pytest.raises(ValueError, match="lr_reset .* needs interval_unit: epoch"):
        PRUNERS.build("admm", sparsity=0.5, lr_reset=True, interval_unit="step")


def test_admm_modules_have_no_import_cycle() -> None:
    import subprocess
    import sys

    code = ("import sys, baselines.admm_projections; "
            "assert 'baselines.admm' not in sys.modules, 'cycle'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- random-channel, l1-channel, magnitude (issue 13) -----------------------------------------------
def test_random_channel_uniform_allocation_and_seeds(net, batch) -> None:
    x = batch[0]
    kept = []
    for run_seed in (0, 1, 0):
        torch.manual_seed(run_seed)
        p = PRUNERS.build("random-channel", sparsity=0.5)
        p.attach(Net(), x[:2])
        kept.append(torch.cat(p.keep_masks()))
        counts = [int(k.sum()) for k in p.keep_masks()]
        assert counts == uniform_group_counts(p.groups, 0.5)          # same fraction per group
        assert abs(p.macs_reduction() - 0.5) < 0.1
        assert p.summary()["init_seed"] is not None
    assert not torch.equal(kept[0], kept[1]) and torch.equal(kept[0], kept[2])
    g = PRUNERS.build("random-channel", sparsity=0.5, allocation="global", seed=3)
    g.attach(net, x[:2])
    assert g.macs_reduction() >= 0.5 and g.summary() == {"allocation": "global", "init_seed": 3}


def test_random_channel_is_independent_of_d2bc_init_under_the_same_run_seed() -> None:
    """Issue 19: with one torch draw per run seed for both, random-channel kept the top-k of
    D2BC's own U[0, 1] initial gates. Now each method has its own stream (run seed, name): the
    kept set is not D2BC's top-k, and its overlap with it is what chance gives (k/n)."""
    import prunekit
    x = torch.zeros(2, 1, 28, 28)
    overlap, chance = [], []
    for run_seed in range(6):
        torch.manual_seed(run_seed)
        d = PRUNERS.build("d2bc", sparsity=0.5, include_stem=True)
        d.attach(prunekit.MODELS.build("vgg-small", width=0.5), x)
        torch.manual_seed(run_seed)
        r = PRUNERS.build("random-channel", sparsity=0.5, include_stem=True)
        r.attach(prunekit.MODELS.build("vgg-small", width=0.5), x)
        assert r.summary()["init_seed"] != d.summary()["init_seed"]
        for m, keep in zip(d.group_scores(), r.keep_masks()):
            k = int(keep.sum())
            top = topk_count(m, k)                       # what the old control kept
            overlap.append(float((top & keep).sum()) / k)
            chance.append(k / keep.numel())
        assert not all(torch.equal(topk_count(m, int(k.sum())), k)
                       for m, k in zip(d.group_scores(), r.keep_masks()))
    assert abs(sum(overlap) / len(overlap) - sum(chance) / len(chance)) < 0.1


def test_l1_channel_keeps_the_largest_l1_filters(net, batch) -> None:
    """Li et al.: per layer, the filters of largest sum |W| survive; the score is torch-pruning's
    MagnitudeImportance(p=1, group_reduction="first"), checked against the formula."""
    p = PRUNERS.build("l1-channel", sparsity=0.4)
    p.attach(net, batch[0][:2])
    for g, keep in zip(p.groups, p.keep_masks()):
        w = net.get_submodule(g.root).weight.detach()
        l1 = w.abs().flatten(1).sum(1)                                 # root conv filters
        assert float(l1[keep].min()) >= float(l1[~keep].max()), g.root
    hp = PRUNERS.build("l1-channel", sparsity=0.4, group_reduction="sum", allocation="global")
    hp.attach(Net(), batch[0][:2])
    assert hp.macs_reduction() >= 0.4
    with pytest.raises(ValueError, match="group_reduction must be one of first, sum, mean"):
        PRUNERS.build("l1-channel", sparsity=0.4, group_reduction="max")


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_magnitude_masks(net, batch, scope) -> None:
    x, y = batch
    W = {n: m.weight.detach().clone() for n, m in prunable_layers(net).items()}
    p = PRUNERS.build("magnitude", sparsity=0.8, scope=scope)
    p.attach(net, x[:2])
    masks = p.masks()
    if scope == "layer":                                  # Han et al. per layer: exact top-|w|
        for n, w in W.items():
            assert torch.equal(masks[n], _ref_topk(w, 0.8)), n
    else:                                                 # one threshold over all layers
        kept = torch.cat([W[n].abs()[masks[n]] for n in W])
        dropped = torch.cat([W[n].abs()[~masks[n]] for n in W])
        assert float(kept.min()) >= float(dropped.max())
        total = sum(m.numel() for m in masks.values())
        assert abs(sum(int(m.sum()) for m in masks.values()) / total - 0.2) < 1e-3
    opt = torch.optim.SGD(p.param_groups(net), lr=0.5, momentum=0.9, weight_decay=1e-2)
    for i in range(2):                                    # the prune stage = masked retraining
        _step(net, p, x, y, opt, i)
    net = p.finalize(net)
    for n, m in masks.items():
        assert not net.get_submodule(n).weight[~m].any(), n


@pytest.mark.slow
@pytest.mark.parametrize("method,sparsity", [("dense", 0.0), ("hydra", 0.9), ("hydra-channel", 0.5),
                                             ("admm", 0.9), ("admm-filter", 0.5)])
def test_pipeline_runs_each_baseline(method, sparsity, tmp_path) -> None:
    from prunekit import DATASETS
    from prunekit.config import RunConfig
    from prunekit.pruning import measure
    from prunekit.train import run_pipeline

    if "_baselines_synth" not in DATASETS:
        from prunekit.data.synthetic import synthetic

        DATASETS.add("_baselines_synth", lambda **kw: synthetic(
            input_shape=(1, 12, 12), num_classes=4, size=48, **kw))
    d = {"name": "t", "seed": 0, "device": "cpu",
         "data": {"dataset": "_baselines_synth", "batch_size": 16},
         "model": {"name": "resnet-small", "width": 0.25}, "loss": {"name": "trades", "steps": 1},
         "pretrain": {"epochs": 1, "lr": 0.05}, "method": method, "sparsity": sparsity,
         "prune": {"epochs": 2, "lr": 0.01}, "finetune": {"epochs": 1, "lr": 0.01},
         "eval": {"attacks": ["pgd-2-1"], "n_examples": 8}}
    if method.startswith("admm"):
        d[method] = {"admm_interval": 1}
    res = run_pipeline(RunConfig.from_dict(d), tmp_path / "w", progress=False)
    m = measure(res.model, res.example_inputs, res.dense_model)
    if PRUNERS.get(method).granularity == "weight":
        assert abs(m.weight_sparsity - sparsity) <= 0.005
    elif method == "dense":
        assert m.weight_sparsity == 0 and m.macs_reduction == 0
    else:
        assert m.macs_reduction > 0.3 and m.params < m.dense_params
