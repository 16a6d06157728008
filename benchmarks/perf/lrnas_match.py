"""Run only the searches of a grid's LRNAS rows and print what the pruned rows must match.

For every LRNAS row of the grid (one per seed) the search runs exactly as ``prunekit bench``
runs it (same training set, split, seed derivation ``derive_seed(seed, "search")`` and eps; the
adversarial training and the evaluation are skipped), then prints one JSON line per seed: the
genotype, its exact parameter count (``count_params``, the official oracle convention), the
final network's MACs (torch-pruning's counter, as the CSV), the scoring eps, the supernet's
FGSM accuracy at it and the eps probe. The last line gives the dense model of the grid's pruned
rows and the sparsity that matches the seeds' mean parameters (``target: params``) and MACs
(``target: macs``), and how far each seed is from it.

``--final C,LAYERS,BUDGET`` re-selects the genotype from each finished search's alphas for
another final network / budget (the alphas do not depend on them), to choose a grid's final
network without searching again. ``--write FILE`` stores the searched networks (genotype,
params, MACs, the searcher's hyperparameters) as the record tests/test_search_grids.py checks
the grid's pruner targets against (tests/golden/lrnas_fmnist_searched.json).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/perf/lrnas_match.py \\
        benchmarks/grids/lrnas-fmnist.yaml --workdir /tmp/lrmatch [--seeds 0 1 2] \\
        [--final 6,5,25000 --final 8,5,34000]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from prunekit import checkpoint as ckpt
from prunekit.bench.grid import expand
from prunekit.sections import build_model
from prunekit.pruning.accounting import count_macs_params
from prunekit.registry import SEARCHERS
from prunekit.seeding import derive_seed
from prunekit.train.data import build_train_set
from prunekit.train.search_stage import is_searcher


def _macs(model: torch.nn.Module, spec) -> int:
    with torch.no_grad():
        return count_macs_params(model.eval(), torch.zeros(1, *spec.input_shape))[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grid")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seeds", type=int, nargs="*")
    ap.add_argument("--final", action="append", default=[],
                    help="C,LAYERS,BUDGET of another final network to re-select for")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", help="store the searched networks as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    runs = expand(args.grid)
    searched, pruned_cfg = [], None
    for run in runs:
        cfg = run.config
        if not is_searcher(cfg.method):
            pruned_cfg = pruned_cfg or cfg
            continue
        if args.seeds is not None and cfg.seed not in args.seeds:
            continue
        train_set, spec = build_train_set(cfg)
        cfg = cfg.resolve(spec.eps)
        s = SEARCHERS.build(cfg.method, **cfg.pruner_hparams())
        train, valid = s.split(train_set)
        wd = Path(args.workdir) / run.run_id / "search"
        res = s.run(train, valid, spec, seed=derive_seed(cfg.seed, "search"), device="cpu",
                    workdir=wd, eps=cfg.eps)
        summ = s.summary()
        row = {"run_id": run.run_id, "seed": cfg.seed, "params": res.params, "macs": res.macs,
               **{k: summ.get(k) for k in ("score_eps", "score_adv_acc", "score_fgsm_acc",
                                           "score_clean_acc", "eps_probe", "warnings")},
               "search_seconds": round(res.seconds, 1), "genotype": res.genotype}
        alt = {}
        state = ckpt.load(wd / "ckpt.pt")["net"]
        alphas = {"normal": state["alphas_normal"], "reduce": state["alphas_reduce"]}
        for f in args.final:
            C, L, B = (int(v) for v in f.split(","))
            hp = {**cfg.pruner_hparams(), "final_C": C, "final_layers": L}
            other = SEARCHERS.build(cfg.method, **{**hp, "budget": B})
            g = other.select(alphas, spec)
            alt[f] = {"params": other.count(g, spec), "macs": _macs(other.build(g, spec), spec)}
        if alt:
            row["final_alternatives"] = alt
        print(json.dumps(row), flush=True)
        row["search_hparams"] = s.hparams()
        searched.append((spec, row))
    if pruned_cfg is None or not searched:
        return
    spec = searched[0][0]
    dense = build_model(pruned_cfg.model, spec)
    d_macs, d_params = count_macs_params(dense.eval(), torch.zeros(1, *spec.input_shape))
    out = {"dense_params": d_params, "dense_macs": d_macs}
    for key, dense_v in (("params", d_params), ("macs", d_macs)):
        vals = [r[key] for _, r in searched]
        mean = sum(vals) / len(vals)
        out[f"{key}_match_sparsity"] = round(1.0 - mean / dense_v, 4)
        out[f"{key}_seeds_off_mean"] = [round(v / mean - 1.0, 4) for v in vals]
    print(json.dumps(out), flush=True)
    if args.write:
        keep = ("seed", "run_id", "params", "macs", "score_eps", "score_adv_acc", "genotype")
        record = {"grid": Path(args.grid).name, "search_hparams": searched[0][1]["search_hparams"],
                  "searched": [{k: r[k] for k in keep} for _, r in searched], **out}
        Path(args.write).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
