"""Twin-Rep (baselines/twin_rep*.py): the twin product is the effective weight and both factors
learn; weight decay on the twin factors is an L1 term on the product (the paper's implicit
sparsity: the soft-threshold fixed point, against a plain-weight ridge control); the one-shot
prune hits its target exactly on the right criterion; the explicit group lasso shrinks exactly
the group channels' norms; finalize folds the re-parametrisation losslessly; the pipeline runs
both modes from scratch."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from prunekit import MODELS, PRUNERS
from prunekit.pruning import measure, remove_weight_masks
from prunekit.train import run_pipeline
from prunekit.train.collapse import is_collapse_warning
from prunekit.checkpoint import load_model
from prunekit.models.common import find_classifier
from baselines.twin_rep_core import ChannelRepWeight, TwinWeight, reparametrize
from test_pipeline import _cfg


def _model(name: str = "vgg-small", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MODELS.build(name, num_classes=10, in_channels=1)


def _data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def _steps(model: nn.Module, pruner, x, y, n: int = 3, lr: float = 0.05, wd: float = 0.0):
    opt = torch.optim.SGD(pruner.param_groups(model), lr=lr, momentum=0.9, weight_decay=wd)
    model.train()
    for _ in range(n):
        opt.zero_grad()
        (F.cross_entropy(model(x), y) + pruner.penalty()).backward()
        opt.step()


def _effective_grads(plain: nn.Module, model: nn.Module, names: list[str], x,
                     y) -> dict[str, torch.Tensor]:
    """dL/dW_eff from ``plain`` (an un-parametrised copy taken before attach) holding the
    effective weights of ``model``. (A deep copy of a parametrised model shares its class with
    the original: removing a parametrization from the copy would break the original.)"""
    mods = dict(plain.named_modules())
    with torch.no_grad():
        for n in names:
            mods[n].weight.copy_(model.get_submodule(n).weight)
    plain.train()
    F.cross_entropy(plain(x), y).backward()
    return {n: mods[n].weight.grad.detach() for n in names}


@pytest.mark.parametrize("method,reparam", [("twin-rep", "twin"), ("twin-rep-channel", "channel"),
                                            ("twin-rep-channel", "twin")])
def test_twin_product_is_the_effective_weight_and_both_factors_get_the_chain_rule(method, reparam):
    model, (x, y) = _model(), _data()
    plain = copy.deepcopy(model)
    extra = {} if method == "twin-rep" else {"reparam": reparam, "include_stem": True}
    pruner = PRUNERS.build(method, sparsity=0.5, **extra)
    pruner.attach(model, x[:2])
    mods = {n: m for n, m in model.named_modules() if parametrize.is_parametrized(m, "weight")}
    assert mods
    geff = _effective_grads(plain, model, list(mods), x, y)
    model.train()
    F.cross_entropy(model(x), y).backward()
    for n, m in mods.items():
        pl = m.parametrizations.weight
        w, aux, pm = pl.original, pl[0].aux, pl[0]
        g = geff[n]
        if isinstance(pm, TwinWeight):
            torch.testing.assert_close(m.weight, w * aux * pm.mask)
            torch.testing.assert_close(w.grad, g * aux * pm.mask, rtol=1e-4, atol=1e-8)
            torch.testing.assert_close(aux.grad, g * w * pm.mask, rtol=1e-4, atol=1e-8)
        else:
            assert isinstance(pm, ChannelRepWeight) and aux.shape == (w.shape[0], w.shape[0])
            torch.testing.assert_close(m.weight, (aux @ w.flatten(1)).view_as(w))
            torch.testing.assert_close(w.grad.flatten(1), aux.t() @ g.flatten(1), rtol=1e-4,
                                       atol=1e-8)
            torch.testing.assert_close(aux.grad, g.flatten(1) @ w.flatten(1).t(), rtol=1e-4,
                                       atol=1e-8)
        assert float(w.grad.abs().sum()) > 0 and float(aux.grad.abs().sum()) > 0


def test_weight_decay_on_the_twin_factors_is_l1_on_the_product():
    """min 0.5 (w u - y)^2 + lambda/2 (w^2 + u^2) has the lasso solution
    w u = sign(y) max(|y| - lambda, 0): exact zeros below lambda. The plain weight under the
    same weight decay (the ridge control) shrinks every entry by 1/(1 + lambda), none to zero."""
    y = torch.tensor([1.0, -1.0, 0.6, -0.6, 0.2, -0.2, 0.1, -0.05, 0.0, 0.45])
    lam = 0.3
    lasso = y.sign() * (y.abs() - lam).clamp_min(0)

    def fit(twin: bool) -> torch.Tensor:
        torch.manual_seed(0)
        lin = nn.Linear(1, y.numel(), bias=False)
        if twin:
            reparametrize({"lin": lin}, "twin")
        opt = torch.optim.SGD(lin.parameters(), lr=0.1, weight_decay=lam)
        for _ in range(3000):
            opt.zero_grad()
            (0.5 * (lin.weight.flatten() - y).pow(2).sum()).backward()
            opt.step()
        return lin.weight.detach().flatten()

    twin, plain = fit(True), fit(False)
    torch.testing.assert_close(twin, lasso, atol=2e-3, rtol=0)
    assert bool((twin[lasso == 0].abs() < 1e-3).all())
    torch.testing.assert_close(plain, y / (1 + lam), atol=1e-4, rtol=0)
    assert bool((plain[y != 0].abs() > 0.03).all())


def test_one_shot_prune_at_the_pruning_epoch_hits_the_exact_count_on_the_twin_product():
    model, (x, y) = _model(), _data()
    pruner = PRUNERS.build("twin-rep", sparsity=0.7, pruning_epoch=3)
    pruner.attach(model, x[:2])
    _steps(model, pruner, x, y)
    pruner.on_epoch_end(0)                     # 1 epoch done: still dense (prune before epoch 3)
    assert all(bool(m.all()) for m in pruner.masks().values())
    _steps(model, pruner, x, y)
    prods = pruner.twin_products()
    pruner.on_epoch_end(1)                     # 2 epochs done: pruned now
    masks = pruner.masks()
    total = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.7 * total)
    kept = torch.cat([prods[n][m].abs() for n, m in masks.items()])
    gone = torch.cat([prods[n][~m].abs() for n, m in masks.items()])
    assert float(gone.max()) <= float(kept.min())          # global magnitude of W * U
    w_only = {n: model.get_submodule(n).parametrizations.weight.original.detach().abs()
              for n in masks}
    by_w = torch.cat([w_only[n].flatten() for n in masks]).kthvalue(round(0.7 * total)).values
    assert any(bool((w_only[n][~m] > by_w).any()) for n, m in masks.items())  # not |W| alone
    assert pruner.summary()["pruned_after_epochs"] == 2
    _steps(model, pruner, x, y)
    pruner.on_epoch_end(2)
    assert all(torch.equal(masks[n], m) for n, m in pruner.masks().items())
    for n, m in masks.items():
        assert bool((model.get_submodule(n).weight.detach()[~m] == 0).all())


def test_unstructured_finalize_folds_losslessly_into_plain_layers():
    model, (x, y) = _model("resnet-small"), _data()
    pruner = PRUNERS.build("twin-rep", sparsity=0.8, pruning_epoch=1)
    pruner.attach(model, x[:2])
    _steps(model, pruner, x, y)
    model.eval()
    with torch.no_grad():
        before = model(x)
    masks = pruner.masks()
    final = pruner.finalize(model).eval()
    assert not any("aux" in k for k in final.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(final(x), before, rtol=1e-5, atol=1e-6)
        plain = remove_weight_masks(final).eval()
        torch.testing.assert_close(plain(x), before, rtol=1e-5, atol=1e-6)
    assert torch.equal(plain(x).argmax(1), before.argmax(1))
    for n, m in masks.items():
        mod = plain.get_submodule(n)
        assert type(mod) in (nn.Conv2d, nn.Linear) and not parametrize.is_parametrized(mod)
        assert bool((mod.weight[~m] == 0).all())


def _group_lasso_reference(model: nn.Module, pruner) -> torch.Tensor:
    """sum_c sqrt(sum over the group's convs of ||W_eff[conv][c]||^2), written out directly
    (the shipped models' group slices are the identity)."""
    mods = dict(model.named_modules())
    total = torch.zeros(())
    for g in pruner.groups:
        sq = sum(mods[n].weight.flatten(1).pow(2).sum(1) for n in g.convs)
        total = total + sq.sqrt().sum()
    return total


@pytest.mark.parametrize("name", ["vgg-small", "resnet-small"])
def test_group_lasso_term_shrinks_the_group_channel_norms(name):
    (x, y), lam = _data(), 0.05
    runs = {}
    for coef in (lam, 0.0):                    # penalised run and its unpenalised control
        model = _model(name)
        pruner = PRUNERS.build("twin-rep-channel", sparsity=0.5, group_lasso=coef,
                               include_stem=True, pruning_epoch=5)
        pruner.attach(model, x[:2])
        if coef:
            torch.testing.assert_close(pruner.penalty(), lam * _group_lasso_reference(model,
                                                                                     pruner))
            model.zero_grad()
            pruner.penalty().backward()        # reaches the group convs' factors only
            cls = find_classifier(model)[1]
            assert all(p.grad is None or float(p.grad.abs().sum()) == 0
                       for p in cls.parameters())
            for g in pruner.groups:
                for n in g.convs:
                    aux = model.get_submodule(n).parametrizations.weight[0].aux
                    assert float(aux.grad.abs().sum()) > 0
        before = torch.cat(pruner.group_norms())
        _steps(model, pruner, x, y, n=10, lr=0.05)
        runs[coef] = (before, torch.cat(pruner.group_norms()), pruner)
    b0, pen, _ = runs[lam]
    c0, ctl, _ = runs[0.0]
    torch.testing.assert_close(b0, c0)         # same start
    assert float(pen.sum()) < float(ctl.sum()) - 0.02 * float(ctl.sum())
    assert float((pen < ctl).float().mean()) > 0.8
    pruner = runs[lam][2]
    assert float(pruner.penalty().detach()) > 0
    pruner.on_epoch_end(3)                     # prune: the group lasso term switches off
    assert float(pruner.penalty()) == 0.0


@pytest.mark.parametrize("name", ["vgg-small", "resnet-small"])
def test_channel_prune_removes_the_lowest_norms_at_the_macs_target_and_compacts_losslessly(name):
    model, (x, y) = _model(name), _data()
    dense = copy.deepcopy(model)
    pruner = PRUNERS.build("twin-rep-channel", sparsity=0.6, include_stem=True, pruning_epoch=2)
    pruner.attach(model, x[:2])
    _steps(model, pruner, x, y)
    norms = pruner.group_norms()
    pruner.on_epoch_end(0)
    keep = [k.cpu() for k in pruner.keep]
    floor = [int(torch.argmax(n)) for n in norms]   # select_by_macs keeps >= 1 per group
    kept = torch.cat([n[k & (torch.arange(k.numel()) != f)] for n, k, f in zip(norms, keep, floor)])
    gone = torch.cat([n[~k] for n, k in zip(norms, keep)])
    assert gone.numel() and float(gone.max()) <= float(kept.min())
    red = pruner.reduction()
    assert red >= 0.6 - 1e-9
    gi = max(range(len(norms)), key=lambda i: float(norms[i][~keep[i]].max())
             if bool((~keep[i]).any()) else -1.0)
    more = [k.clone().float() for k in keep]
    more[gi][int(torch.argmax(torch.where(~keep[gi], norms[gi], torch.tensor(-1.0))))] = 1.0
    assert 1 - float(pruner.groups.macs(more)) / pruner.groups.dense_macs < 0.6  # tight
    _steps(model, pruner, x, y)
    model.eval()
    with torch.no_grad():
        before = model(x)
    final = pruner.finalize(model).eval()
    assert not any("aux" in k or "parametrizations" in k for k in final.state_dict())
    assert all(type(m) in (nn.Conv2d,) for m in final.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        torch.testing.assert_close(final(x), before, rtol=1e-4, atol=1e-5)
    assert torch.equal(final(x).argmax(1), before.argmax(1))
    # torch-pruning's total also counts BN / pooling; the analytic conv + linear count is red
    assert measure(final, x[:1], dense=dense).macs_reduction == pytest.approx(red, abs=0.005)


def test_state_restores_the_prune_and_does_not_prune_again():
    (x, y) = _data()
    a = _model()
    pa = PRUNERS.build("twin-rep", sparsity=0.5, pruning_epoch=2)
    pa.attach(a, x[:2])
    _steps(a, pa, x, y)
    pa.on_epoch_end(0)
    b = _model()
    pb = PRUNERS.build("twin-rep", sparsity=0.5, pruning_epoch=2)
    pb.attach(b, x[:2])
    b.load_state_dict(a.state_dict())
    pb.load_state_dict(pa.state_dict())
    _steps(b, pb, x, y)
    pb.on_epoch_end(1)                         # would be due; already pruned
    assert all(torch.equal(pa.masks()[n], m) for n, m in pb.masks().items())
    assert pb.summary()["pruned_after_epochs"] == 1


@pytest.mark.parametrize("method,extra", [("twin-rep", {}),
                                          ("twin-rep-channel", {"include_stem": True})])
def test_pipeline_trains_from_scratch_and_prunes_at_the_pruning_epoch(tmp_path, method, extra):
    cfg = _cfg(method=method, sparsity=0.5, prune={"epochs": 2}, finetune={"epochs": 1},
               **{method: {"pruning_epoch": 2, **extra}})
    res = run_pipeline(cfg, tmp_path / "run", progress=False)
    assert res.records["pretrain"].skipped and res.records["prune"].epochs == 2
    s = res.summary
    assert s["pruned_after_epochs"] == 1 and s["finalize_agreement"] == 1.0
    assert s["finalize_logit_change"] < 1e-5
    assert all(is_collapse_warning(w) for w in s.get("warnings", []))   # tiny run: at chance
    m = measure(res.model, res.example_inputs, dense=res.dense_model)
    if method == "twin-rep":
        assert m.weight_sparsity == pytest.approx(0.5, abs=0.005)
    else:   # analytic conv + linear reduction >= 0.5; the measured total also counts BN
        assert s["search_reduction"] >= 0.5 - 1e-9
        assert m.macs_reduction == pytest.approx(s["search_reduction"], abs=0.005)
    assert not any("aux" in k for k in res.model.state_dict())
    saved = load_model(tmp_path / "run" / "model.pt").eval()
    xx = torch.rand(4, 1, 12, 12)
    torch.testing.assert_close(saved(xx), res.model(xx))


@pytest.mark.parametrize("method,bad", [
    ("twin-rep", {"pruning_epoch": 0}), ("twin-rep", {"pruning_epoch": 2.5}),
    ("twin-rep", {"pruning_epoch": "ten"}), ("twin-rep-channel", {"reparam": "lora"}),
    ("twin-rep-channel", {"group_lasso": -1.0}), ("twin-rep-channel", {"group_lasso": "x"})])
def test_bad_hyperparameters_raise_one_line(method, bad):
    with pytest.raises(ValueError) as err:
        PRUNERS.build(method, sparsity=0.5, **bad)
    assert "\n" not in str(err.value) and next(iter(bad)) in str(err.value)


@pytest.mark.slow
def test_paper_grid_end_to_end_at_toy_size(tmp_path):
    """paper-twinrep-cifar10.yaml (the official recipe) at toy size (benchmarks/paper_toy.py's
    overrides, 2 prune-stage epochs with the prune after the first): dense, twin-rep and
    twin-rep-channel at 90 % on vgg16 and resnet18, TRADES, standard AutoAttack."""
    import csv
    import json
    import sys
    from pathlib import Path

    from prunekit.cli import main as prunekit

    root = Path(__file__).resolve().parents[1]
    found = [a / "shared" / "data" / "cifar10-jpeg-q75.tar.gz" for a in root.parents]
    archive = next((a for a in found if a.exists()), None)
    if archive is None:
        pytest.skip("the shared CIFAR-10 archive is not here")
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        import paper_toy
    finally:
        sys.path.remove(str(root / "benchmarks"))
    args = ["bench", str(root / "benchmarks" / "grids" / "paper-twinrep-cifar10.yaml"), "--out",
            str(tmp_path), "--threads", "1", "--no-table", "--only", "sparsity=0.0", "--only",
            "sparsity=0.9", "--only", "loss.name=trades"]
    for item in [*paper_toy.toy_overrides(str(archive), 128, 8), "prune.epochs=2",
                 "twin-rep.pruning_epoch=2", "twin-rep-channel.pruning_epoch=2"]:
        args += ["--set", item]
    assert prunekit(args) == 0
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert {(r["model"], r["method"]) for r in rows} == {
        (m, k) for m in ("vgg16", "resnet18") for k in ("dense", "twin-rep", "twin-rep-channel")}
    for r in rows:
        if r["method"] != "dense":
            s = json.loads(r["method_summary"])
            assert s["pruned_after_epochs"] == 1 and s["finalize_agreement"] == 1.0, s
