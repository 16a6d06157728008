"""``prunekit eval CHECKPOINT --dataset NAME``: evaluate a saved model under attacks, print a
table, optionally append one row to a results CSV (docs/evaluation.md)."""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import prunekit
from prunekit.attacks.parse import parse_attack, valid_forms
from prunekit.checkpoint import load_model
from prunekit.commands import _args
from prunekit.errors import ConfigError
from prunekit.eval import RobustnessEvaluator
from prunekit.eval.evaluator import DEFAULT_ATTACKS
from prunekit.eval.examples import is_examples_file
from prunekit.eval.state import check_state_path
from prunekit.paths import output_file
from prunekit.plugins import component_plugins
from prunekit.pruning.accounting import measure_loaded, measured_columns
from prunekit.registry import DATASETS


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("eval", help="evaluate a checkpoint: clean, PGD-50-10, APGD, AutoAttack",
                       description="Evaluate a model saved by prunekit (checkpoint.save_model) "
                                   "on the first N test examples of a dataset.")
    p.add_argument("checkpoint", help="model file written by prunekit (save_model)")
    p.add_argument("--dataset", help="dataset name (default: the checkpoint's meta 'dataset')")
    p.add_argument("--root", default=None, help="dataset root folder")
    p.add_argument("--attacks", nargs="+", default=None, metavar="ATTACK",
                   help=f"attack names, space or comma separated (default: "
                        f"{' '.join(DEFAULT_ATTACKS)}); forms: {', '.join(valid_forms())}")
    p.add_argument("--eps", type=_args.finite_float, default=None,
                   help="radius (default: the checkpoint's meta 'eps', else the dataset's)")
    p.add_argument("--norm", default="Linf", choices=("Linf", "L2", "L1"))
    p.add_argument("--n", type=_args.n_examples, default=1000, help="first N test examples ('all': every one;"
                                                      " default 1000)")
    p.add_argument("--batch-size", type=_args.positive_int, default=256)
    p.add_argument("--csv", default=None, help="append one result row to this CSV")
    p.add_argument("--device", type=_args.device, default="auto", help="auto (the model's), cpu, cuda, cuda:1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--state", default=None, help="resume file (JSON) for a long evaluation")
    p.add_argument("--examples", default=None, metavar="PATH",
                   help="write the per-example flags to this .npz (docs/results-schema.md); "
                        "with --csv its path is the row's 'examples' column")
    p.add_argument("--threads", type=_args.positive_int, default=None,
                   help="torch intra-op threads (default: torch's; 1 is best on a busy CPU)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--allow-import", action="store_true",
                   help="let the checkpoint import its model factory (a package.module:factory "
                        "model runs that module's code)")
    p.set_defaults(func=run)
    return p


def _load(path: str, device: str, allow_import: bool = False) -> tuple[Any, dict[str, Any]]:
    if not Path(path).exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    model = load_model(path, map_location="cpu" if device == "auto" else device,
                       allow_import=allow_import)
    meta = dict(getattr(model, "prunekit_meta", None) or {})
    if device != "auto":
        model.to(device)
    model.eval()  # a freshly rebuilt module starts in train mode; a checkpoint has no mode
    return model, meta


def _check_input_shape(path: str, model: Any, dataset: str, spec: Any) -> None:
    """The model's recorded input shape (or, for files without one, its builder's
    ``in_channels``) must be the dataset's: a mismatch is one line naming both."""
    want = getattr(spec, "input_shape", None)
    if want is None:
        return
    want = tuple(int(v) for v in want)
    have = getattr(model, "prunekit_input_shape", None)
    if have is None:
        channels = (getattr(model, "prunekit_spec", None) or {}).get("kwargs", {}).get(
            "in_channels")
        if channels is None or int(channels) == want[0]:
            return
        have_txt = f"{channels}-channel inputs"
    elif tuple(have) == want:
        return
    else:
        have_txt = "inputs of shape " + "x".join(map(str, have))
    trained = (getattr(model, "prunekit_meta", None) or {}).get("dataset")
    raise ConfigError(f"{path} expects {have_txt}"
                      + (f" (it was trained on {trained})" if trained else "")
                      + f" but {dataset} gives {'x'.join(map(str, want))}; evaluate it on a "
                        "dataset of its input shape (--dataset)")


def run(args: argparse.Namespace) -> int:
    import torch

    attacks = tuple(a for item in (args.attacks or DEFAULT_ATTACKS)
                    for a in item.replace(",", " ").split() if a)
    for a in attacks:  # fail on a bad name before loading anything
        parse_attack(a)
    # outputs are checked before anything is evaluated: nothing is overwritten, no work is lost
    if args.examples:
        _check_examples_target(args.examples)
    if args.state:
        check_state_path(args.state, "--state")
    if args.csv:
        # deferred: prunekit.bench loads pandas, scipy and statsmodels (only --csv needs it)
        from prunekit.bench.store import ResultsStore

        ResultsStore(args.csv).check_appendable()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, meta = _load(args.checkpoint, args.device, args.allow_import)
    dataset = args.dataset or meta.get("dataset")
    if not dataset:
        raise ConfigError("--dataset is required (the checkpoint does not name its dataset); "
                          f"valid: {', '.join(DATASETS.names())}")
    # a run's model file records its dataset's options (e.g. synthetic's input_shape)
    options = dict(meta.get("dataset_options") or {}) if not args.dataset else {}
    data = DATASETS.build(dataset, root=args.root, split="test", **options)
    spec = getattr(data, "spec", None)
    _check_input_shape(args.checkpoint, model, dataset, spec)
    eps = args.eps if args.eps is not None else meta.get("eps", getattr(spec, "eps", None))
    if eps is None:
        raise ConfigError("--eps is required (neither the checkpoint nor the dataset gives one)")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ConfigError(f"the checkpoint's eps is {eps!r}, not a finite number >= 0; give "
                          f"--eps")
    try:
        ev = RobustnessEvaluator(float(eps), norm=args.norm, attacks=attacks, n_examples=args.n,
                                 batch_size=args.batch_size, seed=args.seed, device=args.device,
                                 state_path=args.state)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    # the checks are printed below with the table; do not also log them to stderr
    import logging

    ev_log = logging.getLogger("prunekit.eval.evaluator")
    if not getattr(args, "verbose", 0):
        ev_log.setLevel(logging.ERROR)
    try:
        res = ev.evaluate(model, data)
    finally:
        ev_log.setLevel(logging.NOTSET)
    if args.json:
        print(json.dumps(res.summary(), indent=2))
    else:
        print(f"prunekit eval {args.checkpoint}: {dataset}, {args.norm} eps={float(eps):.5g}, "
              f"n={res.n_examples}, seed={args.seed}, device={ev._target_device(model)}")
        print(res.table())
        print(f"checks: {res.checks_str}")
        for w in res.warnings:
            print(f"  warning: {w}")
    row = _row(args, res, meta, dataset, float(eps), str(ev._target_device(model)), prunekit,
               torch)
    # what this evaluation used (the training's loss and pruner are in the run's own row)
    row["plugins"] = json.dumps(component_plugins(
        model=(getattr(model, "prunekit_spec", None) or {}).get("name"), dataset=dataset,
        attacks=res.attacks), sort_keys=True)
    if args.examples:
        _check_examples_target(args.examples)  # again: it may have appeared meanwhile
        res.write_examples(args.examples, run_id=row["run_id"], dataset=dataset)
        print(f"per-example flags: {args.examples}")
        if args.csv:
            row["examples"] = Path(os.path.relpath(os.path.abspath(args.examples),
                                                   os.path.dirname(os.path.abspath(args.csv)))
                                   ).as_posix()
    if args.csv:
        from prunekit.bench.store import COLUMNS, ResultsStore  # deferred: as above

        if getattr(model, "prunekit_spec", None) is not None and spec is not None:
            # measured on the loaded model (not copied from its metadata): params, MACs,
            # non-zero params and the reductions against the dense model of its spec
            row.update(measured_columns(measure_loaded(model, tuple(spec.input_shape))))

        written = ResultsStore(args.csv).append({k: v for k, v in row.items() if k in COLUMNS})
        print(f"{'appended' if written else 'already present (not written)'}: "
              f"{row['run_id']} -> {args.csv}")
    return 0


def _check_examples_target(path: str) -> None:
    """Refuse to overwrite anything but a per-example file (a one-line error)."""
    output_file(path, "--examples", "a prunekit per-example file", is_examples_file)


#: file names a run writes (``runs/<name>/model.pt``): the folder names the model instead
_GENERIC_STEMS = frozenset({"model", "final", "best", "last", "checkpoint", "ckpt"})


def _ckpt_name(path: str) -> str:
    """``runs/trades-d2bc/model.pt`` -> ``trades-d2bc-model``; ``vgg_pruned.pt`` ->
    ``vgg_pruned`` (an eval row is named after its model file)."""
    p = Path(path).resolve()
    name = f"{p.parent.name}-{p.stem}" if p.stem in _GENERIC_STEMS and p.parent.name else p.stem
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def _row(args: argparse.Namespace, res: Any, meta: dict[str, Any], dataset: str, eps: float,
         device: str, prunekit: Any, torch: Any) -> dict[str, Any]:
    key = json.dumps({"ckpt": os.path.abspath(args.checkpoint), "dataset": dataset, "eps": eps,
                      "norm": args.norm, "attacks": res.attacks, "n": res.n_examples,
                      "seed": args.seed}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    row: dict[str, Any] = {
        "run_id": f"eval-{_ckpt_name(args.checkpoint)}-{digest}", "dataset": dataset,
        "seed": args.seed, "status": "ok", "error": "", "attacks": ";".join(res.attacks),
        "prunekit_version": prunekit.__version__, "torch_version": torch.__version__,
        "device": device,
    }
    for k in ("method", "granularity", "loss", "model", "target_sparsity", "weight_sparsity",
              "macs_reduction", "params", "macs", "fold", "train_s", "config_hash", "git_sha"):
        if k in meta and not isinstance(meta[k], (dict, list)):
            row[k] = meta[k]
    row.update(res.to_row())
    return row


if __name__ == "__main__":  # pragma: no cover
    from prunekit.cli import main

    sys.exit(main(["eval", *sys.argv[1:]]))
