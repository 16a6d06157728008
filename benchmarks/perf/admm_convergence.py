"""Does ADMM converge under a grid's recipe? The convergence diagnostic of ``ADMM.summary()``
(relative residual ``||W - Z|| / ||W||`` and the fraction of the pruned weights' norm that
survived the ADMM stage, both at the hard prune) for the ADMM points of a grid, with optional
overrides of the ADMM settings, so that rho / interval values can be chosen before a grid runs.

Only pretraining (cached, shared with the grid's own cache if ``--cache`` points there) and the
ADMM prune stage run: no fine-tuning, no evaluation.

    nice -n 10 python benchmarks/perf/admm_convergence.py benchmarks/grids/demo.yaml \
        --rho 0.3 1 3 --interval 8 --out /tmp/admm_conv --threads 1
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import time
from pathlib import Path

import torch
import yaml

from prunekit.bench import expand, load_grid
from prunekit.bench.grid import resolve_data_root
from prunekit.config import RunConfig, set_dotted
from prunekit.train import run_pipeline


def admm_points(grid_path: str, methods: list[str], losses: list[str] | None,
                sparsities: list[float] | None) -> list[RunConfig]:
    grid = load_grid(grid_path)
    out = []
    for run in expand(grid):
        cfg = run.config
        if cfg.method not in methods:
            continue
        if losses and cfg.loss.name not in losses:
            continue
        if sparsities and not any(abs(cfg.sparsity - s) < 1e-9 for s in sparsities):
            continue
        cfg.data = dataclasses.replace(cfg.data, root=resolve_data_root(cfg.data.root, grid.path))
        out.append(cfg)
    return out


def with_overrides(cfg: RunConfig, settings: dict, extra: list[str]) -> RunConfig:
    """The method section with ``settings`` and ``extra`` (``dotted.key=yaml``) written over it,
    fine-tuning switched off."""
    d = cfg.to_dict()
    section = d.setdefault(cfg.method, {}) or {}
    d[cfg.method] = section
    section.update({k: v for k, v in settings.items() if k != "prune_epochs"})
    if settings.get("prune_epochs") is not None:
        section.setdefault("prune", {})["epochs"] = settings["prune_epochs"]
    for item in extra:
        key, _, value = item.partition("=")
        set_dotted(section, key, yaml.safe_load(value))
    section.setdefault("finetune", {})["epochs"] = 0
    return RunConfig.from_dict(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid")
    ap.add_argument("--methods", nargs="+", default=["admm", "admm-filter"])
    ap.add_argument("--losses", nargs="*", default=None)
    ap.add_argument("--sparsities", type=float, nargs="*", default=None)
    ap.add_argument("--rho", type=float, nargs="*", default=[None],
                    help="initial rho values to try (default: the grid's)")
    ap.add_argument("--interval", type=int, nargs="*", default=[None],
                    help="admm_interval values to try (default: the grid's)")
    ap.add_argument("--rho-max", type=float, default=None)
    ap.add_argument("--prune-epochs", type=int, default=None)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="more overrides of the method section, e.g. prune.momentum=0")
    ap.add_argument("--out", default="runs/admm_convergence")
    ap.add_argument("--cache", default=None, help="pretraining cache (default OUT/cache)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out / "cache"
    print(f"overrides: {' '.join(args.set) or '-'}")
    print("| method | loss | sparsity | rho | interval | unit | updates | rho final | "
          "\\|\\|W-Z\\|\\|/\\|\\|W\\|\\| | pruned norm survived | converged | "
          "hard-prune agreement | prune s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cfg0 in admm_points(args.grid, args.methods, args.losses, args.sparsities):
        for rho, interval in itertools.product(args.rho, args.interval):
            settings = {k: v for k, v in (("rho", rho), ("admm_interval", interval),
                                          ("rho_max", args.rho_max),
                                          ("prune_epochs", args.prune_epochs)) if v is not None}
            cfg = with_overrides(copy.deepcopy(cfg0), settings, args.set)
            hp = cfg.pruner_hparams()
            tag = f"{cfg.method}-{cfg.loss.name}-s{cfg.sparsity:g}-{cfg.config_hash()[:8]}"
            t0 = time.perf_counter()
            res = run_pipeline(cfg, out / "runs" / tag, cache_dir=cache, progress=False)
            s = res.pruner["summary"]
            h = res.pruner["hparams"]
            print(f"| {cfg.method} | {cfg.loss.name} | {cfg.sparsity:g} | {h['rho']:g} | "
                  f"{h['admm_interval']} | {h['interval_unit']} | {s['n_updates']} | "
                  f"{s['rho_final']:.3g} | {s['rel_residual']:.3f} | "
                  f"{s['pruned_norm_survived']:.3f} | {s['converged']} | "
                  f"{s.get('finalize_agreement', float('nan')):.3f} | {res.records['prune'].seconds:.0f} |", flush=True)
            (out / "runs" / tag / "summary.json").write_text(json.dumps(
                {"hparams": hp, "summary": s}, indent=1))


if __name__ == "__main__":
    main()
