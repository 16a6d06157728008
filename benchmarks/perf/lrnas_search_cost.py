"""Cost of one LRNAS search epoch vs one plain training epoch of the same supernet
(docs/search.md, "Cost").

A plain epoch trains the supernet's weights on the training half (clean CE, as every search
epoch does); a scoring epoch (from ``warmup_epochs`` on) adds the contribution scoring
(``samples`` permutations x ``2 E n_ops`` removals, one forward of clean + FGSM batch each), the
alpha update and the greedy selection. The scoring cost does not depend on the dataset size, the
training cost does, so both are measured per unit and the epoch ratio is computed for the
dataset size of the recipe::

    ratio(scoring epoch) = 1 + samples * t(one permutation) / (steps per epoch * t(one step))

Measured: one plain epoch of ``--measure-steps`` training steps, then one scoring epoch with
``--measure-samples`` permutations (the permutation time is the mean; the recipe's ``samples``
multiplies it); both in wall time and in process CPU time (the CPU is shared: CPU time is the
steadier figure, wall time what a user waits on a quiet machine is close to it). Presets: ``official``
(train_search.py on CIFAR-10 shapes: 3x32x32, C 16, 8 cells, 8 ops, 25,000 training-half
images, 10 permutations of 64 images) and ``fmnist`` (the lrnas section of
benchmarks/grids/lrnas-fmnist.yaml on Fashion-MNIST shapes). Random data (the cost does not
depend on the values).

    nice -n 10 python benchmarks/perf/lrnas_search_cost.py --preset fmnist --threads 1
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from prunekit import DATASETS
from prunekit.config import load_yaml
from prunekit.search import LRNAS

GRID = Path(__file__).resolve().parents[1] / "grids" / "lrnas-fmnist.yaml"


def _preset(name: str) -> tuple[dict, tuple[int, int, int], int]:
    """(LRNAS hyperparameters, input shape, training-half size)."""
    if name == "official":
        return {}, (3, 32, 32), 25000
    grid = load_yaml(str(GRID))
    base = grid["base"]
    hp = {k: v for k, v in base["lrnas"].items() if k != "finetune"}
    n = int(base["data"].get("train_subset") or 60000)
    return hp, (1, 28, 28), int(math.floor(n * hp.get("train_portion", 0.5)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=["official", "fmnist"], default="fmnist")
    ap.add_argument("--measure-steps", type=int, default=4, help="training steps timed")
    ap.add_argument("--measure-samples", type=int, default=1, help="permutations timed")
    ap.add_argument("--no-mkldnn", action="store_true", help="disable oneDNN (CPU)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hp, shape, n_half = _preset(args.preset)
    searcher = LRNAS(**{**hp, "warmup_epochs": 1, "epochs": max(2, int(hp.get("epochs", 50))),
                        "samples": args.measure_samples})
    recipe = LRNAS(**hp)
    n_train = args.measure_steps * searcher.batch_size
    ds = DATASETS.build("synthetic", split="train", input_shape=shape, num_classes=10,
                        size=n_train + 4 * searcher.score_batch_size, seed=0)
    train = torch.utils.data.Subset(ds, range(n_train))
    valid = torch.utils.data.Subset(ds, range(n_train, len(ds)))
    dev = torch.device("cpu")
    with torch.backends.mkldnn.flags(enabled=not args.no_mkldnn):
        net, opt, _, prev = searcher.setup(ds.spec, 0, dev)
        cpu = []
        recs = []
        for epoch in (0, 1):  # 0: plain (weights only), 1: weights + scoring
            c0 = time.process_time()
            recs.append(searcher.epoch(net, opt, train, valid, ds.spec, 0, epoch, 0.1, prev, dev))
            cpu.append(time.process_time() - c0)
    steps = math.ceil(n_half / recipe.batch_size)
    out = {"preset": args.preset, "mkldnn": not args.no_mkldnn, "threads": args.threads,
           "players": 2 * net.num_edges * len(recipe.ops), "samples": recipe.samples,
           "score_batch": recipe.score_batch_size, "train_half": n_half, "steps": steps}
    scored = recipe.epochs - recipe.warmup_epochs
    for clock, t_step, t_perm in (
            ("wall", recs[0]["train_seconds"] / args.measure_steps,
             recs[1]["score_seconds"] / args.measure_samples),
            ("cpu", cpu[0] / args.measure_steps, (cpu[1] - cpu[0]) / args.measure_samples)):
        train_epoch, score_epoch = steps * t_step, recipe.samples * t_perm
        ratio = 1.0 + score_epoch / train_epoch
        out[clock] = {"t_step_s": round(t_step, 4), "t_permutation_s": round(t_perm, 3),
                      "train_epoch_s": round(train_epoch, 1), "scoring_s": round(score_epoch, 1),
                      "ratio_scoring_epoch": round(ratio, 3),
                      "ratio_whole_search": round((recipe.warmup_epochs + scored * ratio)
                                                  / recipe.epochs, 3),
                      "search_s_estimate": round(recipe.epochs * train_epoch
                                                 + scored * score_epoch, 1)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
