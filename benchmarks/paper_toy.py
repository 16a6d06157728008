"""The paper-scale grids (benchmarks/grids/paper-*.yaml) end to end on the CPU at toy size.

Every component the GPU configs use runs once, through ``prunekit bench GRID --set ...``: the
real vgg16 and resnet18 (width x0.25) on 32x32 images, a few hundred training images of the
shared CIFAR-10 JPEG archive through the ``imagefolder`` dataset (with a DataLoader worker), the
paper's multistep schedules, TRADES and MART, dense / d2bc / hydra / admm at 90 % with their
method sections (HYDRA's score stage, ADMM's Z/U updates, D2BC's gates and calibration), one epoch
per stage, and the evaluation the paper grids ask for (PGD-50-10, APGD-CE and the *standard*
AutoAttack) on a handful of test images.

The three paper grids differ only in their dataset, which the toy replaces by the same archive:
after ``--set`` they are the same runs (same run ids), so they share one output directory and
the second and third grid find every run finished (they are still loaded, overridden, expanded
and validated point by point). ``tests/test_paper_toy.py`` (``-m slow``) runs this with
``--only loss.name=trades``.

Usage::

    nice -n 10 python benchmarks/paper_toy.py --out /tmp/paper-toy [--only loss.name=trades]
    nice -n 10 python benchmarks/paper_toy.py --out /tmp/paper-toy-3 --third-wave   # HARP's grid
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from prunekit.cli import main as prunekit

GRIDS = Path(__file__).resolve().parent / "grids"
PAPER_GRIDS = ("paper-cifar10", "paper-cifar100", "paper-tinyimagenet")
#: the methods of the third wave (issue 22) with their official recipes: run into their own --out
THIRD_WAVE_GRIDS = ("paper-harp-cifar10",)
#: FlyingBird's own recipe (sparse training from scratch, tests/test_paper_toy.py)
FLYINGBIRD_GRIDS = ("paper-flyingbird-cifar10",)
ARCHIVE = "../shared/data/cifar10-jpeg-q75.tar.gz"  # resolved from the grid's ancestors


def toy_overrides(data_root: str = ARCHIVE, train: int = 256, n_eval: int = 12) -> list[str]:
    """``--set`` items that shrink a paper grid to toy size (recipes and methods unchanged)."""
    sets = {
        "device": "cpu",
        "data.dataset": "imagefolder", "data.root": data_root, "data.download": "false",
        "data.train_subset": train, "data.batch_size": 64, "data.num_workers": 1,
        "model.width": 0.25, "loss.steps": 2,
        "pretrain.epochs": 1, "prune.epochs": 1, "finetune.epochs": 1,
        "hydra.prune.epochs": 1, "hydra.finetune.epochs": 1,
        "admm.prune.epochs": 1, "admm.finetune.epochs": 1, "admm.admm_interval": 1,
        "flyingbird.update_frequency": 2, "flyingbird.second_frequency": 3,
        "eval.n_examples": n_eval, "eval.batch_size": n_eval,
    }
    return [f"{k}={v}" for k, v in sets.items()]


def run(out: str, only: list[str], data_root: str = ARCHIVE, train: int = 256,
        n_eval: int = 12, grids: tuple[str, ...] = PAPER_GRIDS) -> int:
    """Run every paper grid at toy size into ``out``; returns the worst exit status."""
    worst = 0
    for name in grids:
        args = ["bench", str(GRIDS / f"{name}.yaml"), "--out", out, "--threads", "1",
                "--no-table", "--only", "sparsity=0.0", "--only", "sparsity=0.9"]
        for item in toy_overrides(data_root, train, n_eval):
            args += ["--set", item]
        for item in only:
            args += ["--only", item]
        t0 = time.perf_counter()
        rc = prunekit(args)
        print(f"paper toy: {name}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        worst = max(worst, rc)
    if worst == 0:
        prunekit(["report", str(Path(out) / "results.csv")])
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (shared by the three grids)")
    ap.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                    help="a further subset, e.g. loss.name=trades")
    ap.add_argument("--data", default=ARCHIVE, help="the CIFAR-10 JPEG archive")
    ap.add_argument("--train", type=int, default=256, help="training images")
    ap.add_argument("--n-eval", type=int, default=12, help="evaluation images (every attack)")
    ap.add_argument("--third-wave", action="store_true",
                    help=f"run {', '.join(THIRD_WAVE_GRIDS)} instead of the ANAS-P paper grids")
    ap.add_argument("--flyingbird", action="store_true",
                    help=f"run {', '.join(FLYINGBIRD_GRIDS)} instead of the ANAS-P paper grids")
    args = ap.parse_args()
    grids = THIRD_WAVE_GRIDS if args.third_wave else PAPER_GRIDS
    grids = FLYINGBIRD_GRIDS if args.flyingbird else grids
    sys.exit(run(args.out, args.only, args.data, args.train, args.n_eval, grids))


if __name__ == "__main__":
    main()
