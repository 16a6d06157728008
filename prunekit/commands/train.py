"""``prunekit train --config FILE.yaml``: one run through the three-stage pipeline (pretrain ->
prune -> finalize -> fine-tune), then a short robustness evaluation (docs/training.md,
docs/config.md). Re-running the same command after a kill resumes from the last checkpoints."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from prunekit._version import __version__
from prunekit.commands import _args
from prunekit.config import RunConfig, load_yaml
from prunekit.errors import ConfigError
from prunekit.eval import RobustnessEvaluator
from prunekit.overrides import apply_overrides
from prunekit.paths import output_dir
from prunekit.train import NonFiniteLossError, build_test_set, dist_env, run_pipeline
from prunekit.train.tracking import open_tracker

__all__ = ["add_parser", "run", "apply_overrides"]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", help="train one run: pretrain -> prune -> fine-tune -> evaluate",
        description="Run one config through adversarial pretraining, pruning/search, finalize "
                    "and adversarial fine-tuning, then evaluate the final model. Every config "
                    "field is documented in docs/config.md. Re-run the same command after an "
                    "interruption to resume.")
    p.add_argument("--config", required=True, help="run config (YAML)")
    p.add_argument("--workdir", default=None,
                   help="checkpoints, logs and the final model.pt (default: runs/<name>)")
    p.add_argument("--cache", default=None,
                   help="pretraining cache shared by runs (default: inside --workdir)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set pretrain.epochs=2 "
                        "--set d2bc.gamma=0.01 (value parsed as YAML; repeatable)")
    p.add_argument("--device", type=_args.device, default=None,
                   help="override the config's device (auto, cpu, cuda, cuda:N)")
    p.add_argument("--threads", type=_args.positive_int, default=None,
                   help="torch intra-op threads (default: torch's; 1 is best on a busy CPU)")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


class _Stdout(logging.StreamHandler):
    """A handler on whatever ``sys.stdout`` is now (flushed after every record)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _show_progress() -> None:
    """The epoch lines (prunekit.train.loop.progress_log) on stdout, flushed per line, so
    ``prunekit train ... > log.txt`` (SLURM, nohup) reads as it goes; tqdm bars stay on stderr,
    on a terminal only."""
    plog = logging.getLogger("prunekit.progress")
    if not any(getattr(h, "_prunekit", False) for h in plog.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("  %(message)s"))
        handler._prunekit = True  # type: ignore[attr-defined]
        plog.addHandler(handler)
    plog.setLevel(logging.INFO)
    plog.propagate = False


def run(args: argparse.Namespace) -> int:
    cfg = RunConfig.from_dict(apply_overrides(load_yaml(args.config), args.overrides))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    workdir = output_dir(args.workdir or Path("runs") / cfg.name, "--workdir")
    if args.cache:
        output_dir(args.cache, "--cache")
    if dist_env().is_main:
        print(f"prunekit train: {cfg.name} ({cfg.method}, sparsity {cfg.sparsity:g}, "
              f"{cfg.loss.name}, {cfg.model.name} on {cfg.data.dataset}); prunekit "
              f"{__version__}", flush=True)
        _show_progress()
    with open_tracker(cfg, workdir, dist_env().is_main) as tracker:  # no-op unless cfg.track
        return _train(cfg, args, workdir, tracker)


def _train(cfg: Any, args: argparse.Namespace, workdir: Path, tracker: Any) -> int:
    try:
        result = run_pipeline(cfg, workdir, cache_dir=args.cache, device=args.device,
                              progress=False if args.no_progress else None, tracker=tracker)
    except NonFiniteLossError as exc:  # diverged: a failed run, not a usage error
        print(f"prunekit train: failed: {exc}", file=sys.stderr)
        return 1
    if not dist_env().is_main:
        return 0
    rcfg = result.cfg
    print(f"prunekit train: {cfg.name} done ({rcfg.method}, sparsity {rcfg.sparsity:g}, "
          f"{rcfg.loss.name} eps {rcfg.eps:.5g}, {rcfg.model.name} on {rcfg.data.dataset})")
    for stage, rec in result.records.items():
        if rec.skipped:
            print(f"  {stage:<9s} skipped")
            continue
        last = rec.last
        print(f"  {stage:<9s} {rec.epochs:3d} epochs {rec.seconds:8.1f} s"
              f"{' (cached)' if rec.cached else ''}  loss {last.get('loss', float('nan')):.4f}"
              f"  train clean {100 * last.get('clean_acc', float('nan')):.1f} %"
              f"  train adv {100 * last.get('adv_acc', float('nan')):.1f} %")
    print(f"  train seconds {result.train_seconds:.1f}; workdir {workdir}")
    if not args.no_eval:
        _evaluate(result, args, workdir, tracker)
    return 0


def _evaluate(result: Any, args: argparse.Namespace, workdir: Path, tracker: Any) -> None:
    cfg = result.cfg
    test_set = build_test_set(cfg)
    try:
        ev = RobustnessEvaluator(float(cfg.eval.eps), attacks=tuple(cfg.eval.attacks),
                                 n_examples=cfg.eval.n_examples,
                                 batch_size=cfg.eval.batch_size, seed=cfg.eval.seed,
                                 certify=tuple(cfg.eval.certify))
    except ValueError as exc:
        raise ConfigError(f"eval: {exc}") from None
    res = ev.evaluate(result.model, test_set)
    print(f"evaluation: {cfg.data.dataset} test, first {res.n_examples} examples, "
          f"Linf eps {float(cfg.eval.eps):.5g}")
    print(res.table())
    for w in res.warnings:
        print(f"  warning: {w}")
    (workdir / "eval.json").write_text(json.dumps(res.summary(), indent=1, default=str))
    tracker.log_final({**res.to_row(), "train_s": result.train_seconds})
