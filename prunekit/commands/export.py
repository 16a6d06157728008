"""``prunekit export apb|onnx RUN_DIR`` and ``prunekit import apb FILE``: a finished run to the
AdversarialPruningBenchmark's dense-layout checkpoint or to ONNX (checked against PyTorch), and
a benchmark checkpoint into a prunekit model file that ``prunekit eval`` evaluates."""
from __future__ import annotations

import argparse
import json
import logging

from prunekit import checkpoint as ckpt
from prunekit.commands import _args
from prunekit.errors import UserError
from prunekit.export.apb import ARCH_KEYS, export_apb, import_apb
from prunekit.paths import output_file
from prunekit.registry import DATASETS

__all__ = ["add_parser", "add_import_parser"]

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a finished run (apb: the adversarial-pruning "
                                      "benchmark's checkpoint; onnx: the compacted model)")
    p.add_argument("format", choices=("apb", "onnx"))
    p.add_argument("run_dir", help="a finished run's directory (holds model.pt, run.json)")
    p.add_argument("--out", default=None, help="apb: output folder (default RUN_DIR); onnx: "
                                               "output file (default RUN_DIR/model.onnx)")
    p.add_argument("--method", default=None, help="apb: the method part of the benchmark key "
                                                  "(default: the run's method)")
    p.add_argument("--dataset", default=None, help="apb: the dataset part of the key (default: "
                                                   "the run's dataset, cifar10 -> CIFAR10)")
    p.add_argument("--n", type=_args.positive_int, default=256,
                   help="onnx: test images of the check (default 256)")
    p.add_argument("--atol", type=_args.finite_float, default=1e-4,
                   help="onnx: largest |logit difference| allowed (default 1e-4)")
    p.add_argument("--root", default=None, help="onnx: dataset root folder")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.format == "apb":
        path = export_apb(args.run_dir, args.out, method=args.method, dataset=args.dataset)
        print(path)
        return 0
    from prunekit.export.onnx_export import export_onnx  # deferred: torch.onnx, onnxruntime

    path, check = export_onnx(args.run_dir, args.out, n=args.n, atol=args.atol, root=args.root)
    print(json.dumps({"onnx": str(path), "n": check.n, "max_abs_diff": check.max_abs_diff,
                      "top1_agree": check.top1_agree}))
    return 0


def add_import_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("import", help="import a benchmark checkpoint as a prunekit model file")
    p.add_argument("format", choices=("apb",))
    p.add_argument("file", help="the benchmark's checkpoint ({'state_dict'|'net': ...})")
    p.add_argument("--out", required=True, help="prunekit model file to write (for prunekit eval)")
    p.add_argument("--model", default=None, choices=tuple(ARCH_KEYS),
                   help="layout (default: from _R18_ / _V16_ in the file name)")
    p.add_argument("--dataset", default="cifar10", help="dataset it evaluates on (default cifar10)")
    p.add_argument("--num-classes", type=_args.positive_int, default=10)
    p.add_argument("--width", type=_args.finite_float, default=1.0,
                   help="width multiplier of the layout (1: the published model)")
    p.set_defaults(func=run_import)
    return p


def run_import(args: argparse.Namespace) -> int:
    if args.dataset not in DATASETS:
        raise UserError(f"unknown dataset {args.dataset!r}; valid: {', '.join(DATASETS.names())}")
    model = import_apb(args.file, args.model, num_classes=args.num_classes,
                       width=args.width)
    out = output_file(args.out, "--out", "a prunekit model file", _is_model_file)
    ckpt.save_model(out, model, {"dataset": args.dataset, "method": "apb-import",
                                 "source": str(args.file)})
    print(out)
    return 0


def _is_model_file(path: object) -> bool:
    try:
        ckpt.read_model_meta(path)  # type: ignore[arg-type]
        return True
    except ckpt.CheckpointError:
        return False
