"""The LRNAS grids: paper-lrnas-cifar10 is the official recipe (train_search.py + adv_train.py,
../shared/LRNAS.md); lrnas-fmnist is CPU scale, like for like: every row trained alike, each
pruner at a parameter- and a MACs-matched point within 5 % of the recorded searched networks.
(tests/test_bench_grid.py validates every shipped grid as well.)"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from prunekit import SEARCHERS
from prunekit.pruning import measure
from prunekit.pruning.accounting import count_macs_params
from prunekit.registry import PRUNERS
from prunekit.sections import build_model
from prunekit.bench.grid import expand
from prunekit.data.fashion_mnist import FASHION_MNIST_SPEC
from prunekit.search import LRNAS

GRIDS = Path(__file__).resolve().parents[1] / "benchmarks" / "grids"
#: the grid's searched networks (benchmarks/perf/lrnas_match.py --write; docs/search.md)
SEARCHED = Path(__file__).resolve().parent / "golden" / "lrnas_fmnist_searched.json"


def test_paper_grid_is_the_official_recipe() -> None:
    (run,) = expand(GRIDS / "paper-lrnas-cifar10.yaml")
    cfg = run.config
    s = SEARCHERS.build("lrnas", **cfg.pruner_hparams())
    official = LRNAS(fgsm_eps=8 / 255).hparams()
    assert s.hparams() == official
    st = cfg.stage("finetune")
    assert (st.epochs, st.lr, st.weight_decay, st.momentum, st.schedule, st.milestones,
            st.lr_gamma) == (110, 0.1, 1e-4, 0.9, "multistep", [99, 104], 0.1)
    assert (cfg.loss.name, cfg.loss.steps, cfg.loss.step_size) == ("pgd_at_normal", 7, 0.01)
    assert abs(cfg.loss.eps - 8 / 255) < 1e-9 and cfg.data.batch_size == 64
    assert cfg.data.dataset == "cifar10" and cfg.model.name == "darts"


def _fmnist_runs() -> tuple[list, list]:
    runs = expand(GRIDS / "lrnas-fmnist.yaml")
    lr = [r.config for r in runs if r.config.method == "lrnas"]
    return lr, [r.config for r in runs if r.config.method != "lrnas"]


def test_fmnist_grid_trains_every_row_alike() -> None:
    """Issue 25: the same data, loss, adversarial epochs after any pretraining, clipping (none)
    and peak lr with a cosine last stage for LRNAS and every pruned row; >= 3 seeds each."""
    lr, pruned = _fmnist_runs()
    s = SEARCHERS.build("lrnas", **lr[0].pruner_hparams())
    s.check_budget(FASHION_MNIST_SPEC)  # above the smallest network
    assert s.train_options()["grad_clip"] is None
    train = lr[0].stage("finetune")
    for cfg in pruned:
        assert cfg.data == lr[0].data and cfg.loss == lr[0].loss and cfg.eval == lr[0].eval
        pr, ft = cfg.stage("prune"), cfg.stage("finetune")
        assert pr.epochs + ft.epochs == train.epochs
        assert ft.lr == train.lr and ft.schedule == train.schedule == "cosine"
        assert (ft.optimizer, ft.momentum, ft.weight_decay) == (
            train.optimizer, train.momentum, train.weight_decay)
    for method in ("lrnas", "d2bc", "hydra-channel", "random-channel"):
        for target in (("params", "macs") if method != "lrnas" else ("params",)):
            seeds = {c.seed for c in lr + pruned if c.method == method and
                     (method == "lrnas" or (c.pruner_hparams().get("target") or "macs") == target)}
            assert len(seeds) >= 3, (method, target)


def test_fmnist_recorded_searches_are_the_grids_and_counted_exactly() -> None:
    """The record of the grid's searches (benchmarks/perf/lrnas_match.py --write) was made with
    the grid's searcher settings; its counts are the oracle's (exact) and torch-pruning's."""
    lr, _ = _fmnist_runs()
    rec = json.loads(SEARCHED.read_text())
    s = SEARCHERS.build("lrnas", **lr[0].pruner_hparams())
    assert rec["search_hparams"] == s.hparams(), "grid changed: re-run lrnas_match.py --write"
    spec = FASHION_MNIST_SPEC
    for r in rec["searched"]:
        assert s.count(r["genotype"], spec) == r["params"] <= s.budget
        with torch.no_grad():
            macs, params = count_macs_params(s.build(r["genotype"], spec).eval(),
                                             torch.zeros(1, *spec.input_shape))
        assert (macs, params) == (r["macs"], r["params"])


@pytest.mark.parametrize("method", ["d2bc", "hydra-channel", "random-channel"])
def test_fmnist_pruned_points_match_every_searched_network_within_5_percent(method: str) -> None:
    """Every LRNAS row retrains the recorded seed-0 search's network; each pruner's
    parameter-matched point (``target: params``) lands within 5 % of its parameters, its
    MACs-matched point within 5 % of its MACs
    (finalized from the attached model: the kept set is the target's, as after training)."""
    lr, pruned = _fmnist_runs()
    rec = json.loads(SEARCHED.read_text())
    (retrained,) = [r for r in rec["searched"] if r["seed"] == rec["retrained_seed"]]
    assert all(c.pruner_hparams()["genotype"] == retrained["genotype"] for c in lr)
    x = torch.zeros(2, *FASHION_MNIST_SPEC.input_shape)
    points = {}
    for cfg in pruned:
        if cfg.method == method and cfg.seed == 0:
            points[cfg.pruner_hparams().get("target") or "macs"] = cfg
    assert set(points) == {"params", "macs"}
    for target, cfg in points.items():
        torch.manual_seed(0)
        model = build_model(cfg.model, FASHION_MNIST_SPEC)
        dense = copy.deepcopy(model)
        p = PRUNERS.build(method, sparsity=cfg.sparsity, **cfg.pruner_hparams())
        p.attach(model, x)
        m = measure(p.finalize(model), x[:1], dense=dense)
        got = m.nonzero_params if target == "params" else m.macs
        assert abs(got / retrained[target] - 1.0) <= 0.05, (target, got, retrained[target])
