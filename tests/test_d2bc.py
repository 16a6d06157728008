"""D2BC / ANAS-P: registration, STE gates, penalty, clamp, calibration, hyperparameter checks."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from prunekit import MODELS, PRUNERS
from prunekit.pruning import D2BC, binarize_ste, select_by_macs


def _setup(**hp):
    torch.manual_seed(0)
    model = MODELS.build("vgg-small", num_classes=10, in_channels=1)
    x = torch.rand(8, 1, 28, 28)
    pruner = PRUNERS.build("d2bc", **{"sparsity": 0.8, **hp})
    pruner.attach(model, x[:2])
    return model, x, pruner


def test_registered_with_alias() -> None:
    assert PRUNERS.canonical("anas-p") == "d2bc"
    assert isinstance(PRUNERS.build("anas-p", sparsity=0.5), D2BC)
    assert D2BC.granularity == "channel" and D2BC.target_kind() == "macs"


def test_ste_forward_binary_backward_identity() -> None:
    m = torch.tensor([0.2, 0.5, 0.7], requires_grad=True)
    b = binarize_ste(m, 0.5)
    assert b.tolist() == [0.0, 0.0, 1.0]
    (b * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert m.grad.tolist() == [1.0, 2.0, 3.0]


def test_init_uniform_deterministic_and_constant() -> None:
    _, _, p1 = _setup()
    _, _, p2 = _setup()
    assert all(torch.equal(a, b) for a, b in zip(p1.gate_params, p2.gate_params))
    assert all(bool(((m >= 0) & (m <= 1)).all()) for m in p1.gate_params)
    _, _, pc = _setup(init="constant", init_value=0.9)
    assert all(bool(((m - 0.9).abs() <= 0.01).all()) for m in pc.gate_params)
    assert len({float(v) for m in pc.gate_params for v in m.detach()}) > 100   # jittered: no ties
    assert pc.macs_reduction() == 0.0
    _, _, p0 = _setup(init="constant", init_value=1.0, init_jitter=0.0)
    assert all(bool((m == 1.0).all()) for m in p0.gate_params)
    _, _, ph = _setup(init="constant", init_value=1.0)          # interval kept inside [0, 1]
    assert all(bool(((m >= 0.98) & (m <= 1.0)).all()) for m in ph.gate_params)


def test_init_seed_follows_the_global_generator_unless_given() -> None:
    """seed=None: the seed is drawn at attach from torch's generator (which the pipeline seeds
    from the run seed), so run seeds differ; an explicit seed wins; both are reported."""
    model = MODELS.build("vgg-small", num_classes=10, in_channels=1)
    x = torch.rand(2, 1, 28, 28)
    gates, seeds = [], []
    for run_seed, explicit in [(0, None), (1, None), (0, None), (0, 7), (1, 7)]:
        torch.manual_seed(run_seed)
        p = PRUNERS.build("d2bc", sparsity=0.5, seed=explicit)
        p.attach(model, x)
        gates.append(torch.cat([m.detach() for m in p.gate_params]))
        seeds.append(p.summary()["init_seed"])
        p.remove_hooks()
    assert not torch.equal(gates[0], gates[1]) and torch.equal(gates[0], gates[2])
    assert torch.equal(gates[3], gates[4]) and seeds[3] == seeds[4] == 7
    assert seeds[0] == seeds[2] != seeds[1]
    assert PRUNERS.build("d2bc", sparsity=0.5).hparams()["seed"] is None


def test_constant_init_differs_between_seeds() -> None:
    """init=constant used to give the same network for every seed (lockstep gates, ties broken
    in group order); with the seeded jitter the calibrated kept sets differ."""
    kept = []
    for seed in (0, 1):
        model, _, p = _setup(sparsity=0.7, init="constant", init_value=0.6, seed=seed)
        p.finalize(model)
        kept.append(torch.cat([m.detach() > p.thres for m in p.gate_params]))
    assert not torch.equal(kept[0], kept[1])


def test_calibration_ties_broken_by_filter_norm() -> None:
    """All gates tied (constant init, no jitter): calibration keeps, in every group, the
    channels with the largest coupled-filter RMS, not the first ones."""
    model, x, pruner = _setup(sparsity=0.6, init="constant", init_value=1.0, init_jitter=0.0)
    rms = [r.clone() for r in pruner._filter_rms()]
    pruner.finalize(model)
    c = pruner.summary()
    assert c["calibrated"] and abs(c["final_reduction"] - 0.6) < 0.01
    partial = 0
    for m, r in zip(pruner.gate_params, rms):      # finalize moved m: kept = m > thres
        keep = m.detach() > pruner.thres
        if bool(keep.all()) or not bool(keep.any()):
            continue
        partial += 1
        assert float(r[keep].min()) >= float(r[~keep].max())
    assert partial >= 2


def test_param_groups_penalty_and_clamp() -> None:
    model, x, pruner = _setup(gamma=2.0, gate_lr_mult=3.0)
    groups = pruner.param_groups(model)
    gate_ids = {id(p) for p in pruner.gate_params}
    assert groups[1]["weight_decay"] == 0.0 and {id(p) for p in groups[1]["params"]} == gate_ids
    assert not gate_ids & {id(p) for p in model.parameters()}
    ratio = float(pruner.mac_ratio().detach())
    assert abs(ratio - (1 - pruner.macs_reduction())) < 1e-6
    pen = pruner.penalty()
    assert abs(float(pen.detach()) - 2.0 * (ratio - 0.2) ** 2) < 1e-6
    pen.backward()
    # ratio > target: the penalty pushes every gate down (positive gradient), scaled by 3
    assert all(bool((m.grad > 0).all()) for m in pruner.gate_params)
    opt = torch.optim.SGD(groups, lr=100.0)
    opt.step()
    pruner.on_step_end(0)
    assert all(bool(((m >= 0) & (m <= 1)).all()) for m in pruner.gate_params)


def test_penalty_alone_drives_macs_towards_target() -> None:
    model, x, pruner = _setup(gamma=10.0, init="constant", init_value=0.6, calibrate=False)
    opt = torch.optim.SGD(pruner.param_groups(model)[1:], lr=0.5, momentum=0.9)
    for step in range(60):
        opt.zero_grad()
        pruner.penalty().backward()
        opt.step()
        pruner.on_step_end(step)
    assert abs(pruner.macs_reduction() - 0.8) < 0.1


def test_calibration_hits_target() -> None:
    model, x, pruner = _setup(sparsity=0.9)
    before = pruner.macs_reduction()
    pruner.finalize(model)
    c = pruner.summary()
    assert c["search_reduction"] == pytest.approx(before)
    assert c["calibrated"] and abs(c["final_reduction"] - 0.9) < 0.01
    assert c["reopened"] == 0 and c["closed_at_init"] == c["channels"] - c["kept_after_search"]
    json.dumps(c)


def test_short_search_reopens_channels() -> None:
    """Toy problem: with gamma 0 only the task loss moves the gates; a few adversarial (TRADES)
    steps re-open channels that the uniform initialisation closed (0 before issue 10's fix:
    a closed gate had exactly zero gradient)."""
    from prunekit import DATASETS, LOSSES

    torch.manual_seed(0)
    ds = DATASETS.build("synthetic", split="train", input_shape=(1, 28, 28), num_classes=4,
                        size=64, seed=0)
    x = torch.stack([ds[i][0] for i in range(64)])
    y = torch.tensor([int(ds[i][1]) for i in range(64)])
    model = MODELS.build("vgg-small", num_classes=4, in_channels=1, width=0.5)
    pruner = PRUNERS.build("d2bc", sparsity=0.5, gamma=0.0, calibrate=False, seed=0)
    pruner.attach(model, x[:2])
    loss = LOSSES.build("trades", eps=0.1, steps=1)
    opt = torch.optim.SGD(pruner.param_groups(model), lr=0.05, momentum=0.9)
    model.train()
    for step in range(12):
        opt.zero_grad()
        loss(model, x, y)[0].backward()
        opt.step()
        pruner.on_step_end(step)
    pruner.finalize(model)
    s = pruner.summary()
    assert s["closed_at_init"] > 20
    assert s["reopened"] >= 3, s


def test_state_dict_round_trip() -> None:
    model, x, pruner = _setup()
    with torch.no_grad():
        pruner.gate_params[0].fill_(0.1)
    state = pruner.state_dict()
    _, _, other = _setup()
    other.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(pruner.gate_params, other.gate_params))
    assert all(torch.equal(pruner.masks()[k], v) for k, v in other.masks().items())


@pytest.mark.parametrize("hp", [{"sparsity": 1.5}, {"sparsity": -0.1}, {"gamma": -1.0},
                                {"thres": 1.5}, {"init": "normal"}, {"init_value": 2.0},
                                {"gate_lr_mult": 0.0}, {"calibrate_tol": 1.0},
                                {"init_jitter": 0.6}, {"seed": 1.5}])
def test_bad_hparams(hp) -> None:
    with pytest.raises(ValueError) as err:
        PRUNERS.build("d2bc", **{"sparsity": 0.5, **hp})
    assert "\n" not in str(err.value)


def test_train_step_updates_gates_and_weights() -> None:
    model, x, pruner = _setup()
    y = torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(pruner.param_groups(model), lr=0.1, momentum=0.9)
    before = [m.detach().clone() for m in pruner.gate_params]
    loss = F.cross_entropy(model(x), y) + pruner.penalty()
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, pruner.gate_params))


def test_bench_rows_record_target_summary_and_run_seed(tmp_path) -> None:
    """End to end: the pipeline seeds the gate init from the run seed, records summary() in
    run.json, and the bench runner writes sparsity_target and method_summary to the CSV."""
    from prunekit.bench import ResultsStore, run_grid

    grid = {"name": "t", "base": {
        "device": "cpu", "data": {"dataset": "synthetic", "train_subset": 32, "batch_size": 16},
        "model": {"name": "vgg-small", "width": 0.25}, "loss": {"name": "trades", "steps": 1},
        "pretrain": {"epochs": 1, "lr": 0.05}, "prune": {"epochs": 1, "lr": 0.01},
        "finetune": {"epochs": 0}, "eval": {"attacks": ["pgd-2-1"], "n_examples": 8},
        "method": "d2bc", "sparsity": 0.5},
        "axes": {"seed": [0, 1]}}
    summary = run_grid(grid, tmp_path)
    assert not summary.ran_failed
    rows = ResultsStore(tmp_path / "results.csv").rows()
    assert [r["sparsity_target"] for r in rows] == ["macs", "macs"]
    s = [json.loads(r["method_summary"]) for r in rows]
    assert s[0]["init_seed"] != s[1]["init_seed"] and "reopened" in s[0]
    # the pipeline's hard-prune probe (prunekit.pruning.hard_prune) is in every row
    assert all(0.0 <= d["finalize_agreement"] <= 1.0 and d["finalize_logit_change"] >= 0.0
               for d in s)
    run = json.loads((tmp_path / "runs" / rows[0]["run_id"] / "run.json").read_text())
    # the row's summary is run.json's plus the evaluation's chance-level warning (this tiny
    # synthetic run is at chance; prunekit.train.collapse.eval_collapse)
    saved = run["pruner"]["summary"]
    extra = [w for w in s[0].get("warnings", []) if w not in saved.get("warnings", [])]
    assert all(w.startswith("the final model is at chance level") for w in extra)
    assert {k: v for k, v in s[0].items() if k != "warnings"} == \
        {k: v for k, v in saved.items() if k != "warnings"}
    assert run["pruner"]["hparams"]["seed"] is None


def test_lagrangian_dual_meets_the_target_where_the_fixed_penalty_stalls() -> None:
    """Issue 19: a loss that pulls every gate open (here -mean(m), the stand-in for the
    adversarial loss's re-opening pull) against the MACs constraint. The fixed penalty settles
    at its biased equilibrium short of the target; the dual variable keeps growing until the
    constraint holds. Also: the dual and step count survive state_dict / load_state_dict."""
    ends = {}
    for constraint in ("penalty", "lagrangian"):
        model, x, p = _setup(sparsity=0.7, gamma=10.0, constraint=constraint, dual_lr=2.0,
                             gate_lr_mult=1.0, seed=0)
        opt = torch.optim.SGD(list(p.gate_params), lr=0.05)
        for step in range(300):
            pull = -2.0 * torch.cat([m for m in p.gate_params]).mean()
            loss = pull + p.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            p.on_step_end(step)
        ends[constraint] = p.macs_reduction()
        if constraint == "lagrangian":
            assert p.summary()["dual"] > 0
            sd = p.state_dict()
            _, _, q = _setup(sparsity=0.7, constraint="lagrangian", seed=0)
            q.load_state_dict(sd)
            assert q.lam == p.lam and q._steps == 300
    assert abs(ends["lagrangian"] - 0.7) < 0.015 and abs(ends["penalty"] - 0.7) > 0.03
    with pytest.raises(ValueError, match="constraint must be one of"):
        PRUNERS.build("d2bc", sparsity=0.5, constraint="dual")


def test_settle_phase_projects_onto_the_budget_and_finalize_is_lossless() -> None:
    """Issue 19: with ``settle_epochs`` the last epoch(s) of the search train with the gates
    projected onto the MACs budget (largest gate values first). The gates still get gradients
    while settling, the constraint term still acts on the free gates (they do not all saturate
    at the clamp under the re-opening pull), finalize
    does not calibrate and changes no prediction, the summary keeps the free search's reduction,
    and the settle state survives state_dict / load_state_dict."""
    from prunekit.pruning.hard_prune import probe_logits
    model, x, p = _setup(sparsity=0.6, gamma=10.0, constraint="lagrangian", dual_lr=2.0,
                         gate_lr_mult=1.0, settle_epochs=1, seed=0)
    p.begin_stage(3, 20)
    opt = torch.optim.SGD(list(p.gate_params), lr=0.05)
    for epoch in range(3):
        for step in range(20):
            pull = -2.0 * torch.cat([m for m in p.gate_params]).mean()  # re-opening pull
            loss = pull + p.penalty()
            opt.zero_grad()
            loss.backward()
            if p.settle.active:
                assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in p.gate_params)
            opt.step()
            p.on_step_end(epoch * 20 + step)
        p.on_epoch_end(epoch)
        assert p.settle.active == (epoch >= 1)
    assert p.settle.facts["settled_at_epoch"] == 2
    red = p.macs_reduction()
    assert 0.6 <= red < 0.6 + 0.02                      # feasible, within one block
    assert abs(p._free_reduction() - 0.6) < 0.05        # the free gates still near the target
    assert float(torch.cat([m.detach() for m in p.gate_params]).eq(1.0).float().mean()) < 0.5
    q = _setup(sparsity=0.6, constraint="lagrangian", settle_epochs=1, seed=0)[2]
    q.load_state_dict(p.state_dict())
    assert q.settle.active and [torch.equal(a, b) for a, b in
                                zip(q.keep_masks(), p.keep_masks())] == [True] * len(p.gate_params)
    model.eval()
    before = probe_logits(model, x)
    small = p.finalize(model)
    s = p.summary()
    assert s["calibrated"] is False and abs(s["final_reduction"] - red) < 1e-9
    assert {"free_reduction_at_settle", "free_reduction_end", "settled_at_epoch"} <= set(s)
    assert torch.equal(before.argmax(1), probe_logits(small.eval(), x).argmax(1))
    with pytest.raises(ValueError, match="settle_epochs must be"):
        PRUNERS.build("d2bc", sparsity=0.5, settle_epochs=-1)
