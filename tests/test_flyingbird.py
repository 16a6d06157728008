"""FlyingBird (baselines/flyingbird.py, flyingbird_masks.py): the mechanism, not only the output.

The density stays exactly constant through every drop/regrow, pruned weights and their momentum
are zero after every step, the drop takes the smallest active ``|w|``, random regrowth is uniform
over the inactive weights (chi-square), gradient regrowth takes the top-``|grad|`` inactive ones
(checked against an independent numpy computation, in isolation and inside a training run), the
death rate follows torch's own CosineAnnealingLR, the update frequency switches after half the
stage, the initial per-layer densities follow IGQ / ERK, and the pipeline trains it from scratch
end to end."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from prunekit import MODELS, PRUNERS
from prunekit.pruning import measure
from prunekit.train import run_pipeline
from prunekit.train.collapse import is_collapse_warning

from baselines.flyingbird_masks import death_rate_at, drop_and_grow, integer_counts, \
    layer_densities
from test_pipeline import _cfg


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(0)
    model = MODELS.build("vgg-small", num_classes=10, in_channels=1, width=0.5)
    return model, torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))


def _run(pruner, model, x, y, steps: int, epochs: int = 1, check=None):
    """Attach, then ``steps`` SGD steps (momentum, weight decay) the way fit() drives a pruner;
    ``check(pruner, step)`` after every ``on_step_end``."""
    pruner.attach(model, x[:2])
    opt = torch.optim.SGD(pruner.param_groups(model), lr=0.05, momentum=0.9, weight_decay=5e-4)
    pruner.bind_optimizer(opt)
    pruner.begin_stage(epochs, steps // epochs)
    model.train()
    for step in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        pruner.on_step_end(step)
        if check is not None:
            check(pruner, opt, step)
    return pruner, opt


@pytest.mark.parametrize("growth", ["random", "gradient"])
def test_density_constant_weights_and_momentum_masked(data, growth):
    dense, x, y = data
    model = copy.deepcopy(dense)
    pruner = PRUNERS.build("flyingbird", sparsity=0.8, growth=growth, update_frequency=2,
                           second_frequency=None)
    counts: dict[str, int] = {}
    first: dict[str, torch.Tensor] = {}
    moved: list[int] = []

    def check(p, opt, step):
        masks = p.masks()
        if not counts:                       # after step 0: no update yet (first at step 2)
            counts.update({n: int(m.sum()) for n, m in masks.items()})
            first.update(masks)
        assert {n: int(m.sum()) for n, m in masks.items()} == counts  # exact, every layer
        for n, mod in p._layers.items():
            off = ~masks[n]
            assert bool((mod.weight.detach()[off] == 0).all()), n
            assert bool((opt.state[mod.weight]["momentum_buffer"][off] == 0).all()), n
        moved.append(sum(int((masks[n] != first[n]).sum()) for n in masks))

    _run(pruner, model, x, y, steps=10, check=check)
    total = sum(counts.values())
    size = sum(m.weight.numel() for m in pruner._layers.values())
    assert total == round(0.2 * size)
    assert pruner.updates == 4                           # steps 2, 4, 6, 8 (not the last)
    assert moved[-1] > 0                                 # the topology did move
    assert pruner.summary()["fired_fraction"] > total / size
    final = pruner.finalize(model)
    m = measure(final, x[:1], dense=dense)
    # exactly the mask's zeros, plus any regrown weight still at zero (at most a few)
    assert 1 - total / size - 1e-12 <= m.weight_sparsity <= 0.8 + 0.01
    json.dumps(pruner.summary())


def test_drop_takes_smallest_active_magnitudes():
    torch.manual_seed(3)
    w = torch.randn(7, 9)
    mask = torch.rand(7, 9) < 0.5
    new, dropped = drop_and_grow(w, mask, 0.3, "random", None, torch.Generator().manual_seed(0))
    k = int(np.ceil(0.3 * int(mask.sum())))
    assert dropped == k and int(new.sum()) == int(mask.sum())
    act = np.flatnonzero(mask.numpy().ravel())
    expect_drop = set(act[np.argsort(np.abs(w.numpy().ravel()[act]))[:k]].tolist())
    survivors = set(np.flatnonzero((mask & new).numpy().ravel()).tolist())
    assert survivors == set(act.tolist()) - expect_drop
    grown = new & ~mask
    assert int(grown.sum()) + len(expect_drop & set(np.flatnonzero(new.numpy().ravel()))) == k


def test_random_growth_is_uniform_over_inactive():
    w = torch.arange(1, 41, dtype=torch.float).view(5, 8)   # distinct |w|: a fixed drop set
    mask = torch.zeros(40, dtype=torch.bool)
    mask[20:] = True                                          # active: the 20 largest
    mask = mask.view(5, 8)
    gen = torch.Generator().manual_seed(0)
    hits = np.zeros(40)
    trials = 3000
    for _ in range(trials):
        new, k = drop_and_grow(w, mask, 0.5, "random", None, gen)
        assert k == 10 and int(new.sum()) == 20
        assert bool(new.flatten()[30:].all())                 # the 10 largest survive
        hits += new.flatten().numpy()
    cand = hits[:30]                                          # 20 never active + 10 dropped
    assert cand.sum() == 10 * trials
    assert stats.chisquare(cand).pvalue > 1e-3               # uniform over the 30 candidates


def test_gradient_growth_takes_top_inactive_gradients():
    torch.manual_seed(4)
    w, g = torch.randn(6, 10), torch.randn(6, 10)
    mask = torch.rand(6, 10) < 0.4
    new, k = drop_and_grow(w, mask, 0.5, "gradient", g, torch.Generator())
    act = np.flatnonzero(mask.numpy().ravel())
    dropped = act[np.argsort(np.abs(w.numpy().ravel()[act]))[:k]]
    after = mask.numpy().ravel().copy()
    after[dropped] = False
    inact = np.flatnonzero(~after)
    grown = set(inact[np.argsort(-np.abs(g.numpy().ravel()[inact]))[:k]].tolist())
    assert set(np.flatnonzero(new.numpy().ravel() & ~after).tolist()) == grown


def test_gradient_growth_inside_training_uses_the_last_steps_gradient(data):
    dense, x, y = data
    model = copy.deepcopy(dense)
    pruner = PRUNERS.build("flyingbird", sparsity=0.7, growth="gradient", update_frequency=3,
                           second_frequency=None)
    seen = {}

    def check(p, opt, step):
        if step == 1:                          # before the update at step index 2: keep state
            seen["masks"] = p.masks()
        if step == 2:
            for n, mod in p._layers.items():
                before, after = seen["masks"][n].flatten(), p.masks()[n].flatten()
                grown = np.flatnonzero((after & ~before).numpy())
                grad = mod.weight.grad.detach().abs().flatten().numpy()
                # every regrown weight beats every inactive weight that stayed out
                out = np.flatnonzero((~after).numpy())
                if len(grown) and len(out):
                    assert grad[grown].min() >= grad[out].max(), n
                assert bool((mod.weight.detach().flatten()[torch.from_numpy(grown)] == 0).all())

    _run(pruner, model, x, y, steps=4, check=check)
    assert pruner.updates == 1


def test_death_rate_follows_torch_cosine_annealing():
    total, rate, floor = 50, 0.5, 0.005
    p = torch.nn.Parameter(torch.zeros(1))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(torch.optim.SGD([p], lr=rate), total,
                                                       floor)
    for t in range(1, total + 1):
        sched.optimizer.step()
        sched.step()
        assert death_rate_at(t, total, rate, floor, "cosine") == pytest.approx(
            sched.get_last_lr()[0], abs=1e-9)
    assert death_rate_at(7, total, rate, floor, "constant") == rate


def test_update_steps_rates_and_frequency_switch(data):
    dense, x, _ = data
    pruner = PRUNERS.build("flyingbird", sparsity=0.5, update_frequency=3, second_frequency=5)
    pruner.attach(copy.deepcopy(dense), x[:2])
    pruner.begin_stage(4, 10)
    at, rates = [], []
    for step in range(40):
        before = pruner.updates
        pruner.on_step_end(step)
        if pruner.updates > before:
            at.append(step + 1)
            rates.append(pruner.last_death_rate)
    # epochs 0-2 (epoch <= 4 / 2): every 3 steps; epoch 3: every 5; never at the last step
    assert at == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 35]
    assert rates == [pytest.approx(death_rate_at(t, 40, 0.5, 0.005, "cosine")) for t in at]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    static = PRUNERS.build("flyingbird", sparsity=0.5, update_frequency=3, fix=True)
    static.attach(copy.deepcopy(dense), x[:2])
    start = static.masks()
    static.begin_stage(4, 10)
    for step in range(40):
        static.on_step_end(step)
    assert static.updates == 0 and all(torch.equal(start[n], m) for n, m in
                                       static.masks().items())


def test_resume_continues_the_same_topology(data):
    """A prune stage resumed from state_dict() (masks, RNG of the regrowth, counters) makes the
    same random regrowth as the uninterrupted one."""
    dense, x, y = data
    hp = dict(sparsity=0.8, update_frequency=2, second_frequency=None)

    def steps(pruner, model, opt, lo, hi):
        for step in range(lo, hi):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            pruner.on_step_end(step)

    def fresh():
        model = copy.deepcopy(dense).train()
        pruner = PRUNERS.build("flyingbird", seed=5, **hp)
        pruner.attach(model, x[:2])
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        pruner.bind_optimizer(opt)
        pruner.begin_stage(1, 9)
        return pruner, model, opt

    a = fresh()
    steps(*a, 0, 9)
    b = fresh()
    steps(*b, 0, 5)
    saved = copy.deepcopy({"p": b[0].state_dict(), "m": b[1].state_dict(),
                           "o": b[2].state_dict()})
    c = fresh()
    c[1].load_state_dict(saved["m"])
    c[2].load_state_dict(saved["o"])
    c[0].load_state_dict(saved["p"])
    steps(*c, 5, 9)
    assert a[0].updates == c[0].updates == 4
    assert all(torch.equal(a[0].masks()[n], c[0].masks()[n]) for n in a[0].masks())


def test_initial_densities_igq_erk_uniform():
    shapes = [(16, 1, 3, 3), (32, 16, 3, 3), (64, 32, 3, 3), (10, 64)]
    n = np.array([float(np.prod(s)) for s in shapes])
    for init in ("igq", "erk", "uniform"):
        d = np.array(layer_densities(init, shapes, 0.2))
        assert (d * n).sum() == pytest.approx(0.2 * n.sum(), rel=1e-6), init
    igq = np.array(layer_densities("igq", shapes, 0.2))
    f = (1 / igq - 1) / n                                   # IGQ: d_l = 1 / (1 + F n_l)
    assert np.allclose(f, f[0], rtol=1e-6)
    erk = np.array(layer_densities("erk", shapes, 0.2))
    ratio = erk / np.array([sum(s) / np.prod(s) for s in shapes])
    dense = erk >= 1.0
    assert np.allclose(ratio[~dense], ratio[~dense][0])     # ERK: d_l prop. to sum/prod
    assert dense.any()                                      # the 16x1x3x3 stem saturates
    counts = integer_counts(list(igq), [int(v) for v in n], int(round(0.2 * n.sum())))
    assert sum(counts) == round(0.2 * n.sum()) and all(1 <= c <= v for c, v in zip(counts, n))


def test_bad_hyperparameters_one_line():
    for bad in ({"growth": "momentum"}, {"init": "snip"}, {"death_rate": 1.0},
                {"update_frequency": 0}, {"second_frequency": 2.5}, {"decay": "linear"}):
        with pytest.raises(ValueError) as err:
            PRUNERS.build("flyingbird", sparsity=0.5, **bad)
        assert "\n" not in str(err.value)


def test_pipeline_trains_from_scratch_end_to_end(tmp_path):
    cfg = _cfg(method="flyingbird", sparsity=0.8, prune={"epochs": 2}, finetune={"epochs": 0},
               flyingbird={"update_frequency": 2, "second_frequency": 3})
    res = run_pipeline(cfg, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert res.records["pretrain"].skipped and res.records["prune"].epochs == 2
    summary = res.pruner["summary"]
    # 3 steps per epoch (48 examples / 16): updates at steps 2 and 4 (epoch 1 is not past
    # half of 2 epochs, so no switch to 3; step 6 is the last: skipped)
    assert summary["updates"] == 2 and summary["death_rate_last"] < 0.5
    m = measure(res.model, res.example_inputs, dense=res.dense_model)
    assert m.weight_sparsity == pytest.approx(0.8, abs=0.01)
    assert summary["finalize_agreement"] == 1.0 and summary["finalize_logit_change"] == 0.0
    # the tiny synthetic run is at chance (prunekit.train.collapse); nothing else warns
    assert all(is_collapse_warning(w) for w in summary.get("warnings", []))

