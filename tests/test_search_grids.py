"""The LRNAS grids: paper-lrnas-cifar10 is the official recipe (train_search.py + adv_train.py,
../shared/LRNAS.md); lrnas-fmnist is CPU scale with matched-parameter D2BC / hydra-channel rows.
(tests/test_bench_grid.py validates every shipped grid as well.)"""
from __future__ import annotations

from pathlib import Path

from prunekit import SEARCHERS
from prunekit.bench.grid import expand
from prunekit.data.fashion_mnist import FASHION_MNIST_SPEC
from prunekit.search import LRNAS

GRIDS = Path(__file__).resolve().parents[1] / "benchmarks" / "grids"


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


def test_fmnist_grid_budget_and_matched_rows() -> None:
    runs = expand(GRIDS / "lrnas-fmnist.yaml")
    by_method = {r.config.method: r.config for r in runs}
    assert {"lrnas", "d2bc", "hydra-channel"} <= set(by_method)
    lr = by_method["lrnas"]
    s = SEARCHERS.build("lrnas", **lr.pruner_hparams())
    s.check_budget(FASHION_MNIST_SPEC)  # above the smallest network
    assert s.min_budget(FASHION_MNIST_SPEC) < s.budget
    # the pruners start from the same data and loss as the searched network is trained with
    for m in ("d2bc", "hydra-channel"):
        assert by_method[m].data == lr.data and by_method[m].loss == lr.loss
