"""Export to / import from the AdversarialPruningBenchmark (pralab/AdversarialPruningBenchmark).

The benchmark rebuilds its own dense ``resnet18`` / ``vgg16_bn`` (models/base_resnet18.py,
models/base_vgg16.py; prunekit's layouts ``resnet18-kuangliu`` and ``vgg16-bn-apb``) and loads a
checkpoint with ``model.load_state_dict(checkpoint['state_dict'])`` -- strict -- or
``checkpoint['net']`` (utils/utils.py l.80-88); its model key is
``{method}_{R18|V16}_{CIFAR10|SVHN}_{US|S}_{sparsity}`` (``model_key_maker``, l.25-53).

:func:`dense_layout_state` turns a finished run's model into that layout: weight masks are
folded into the weights; a physically compacted (channel-pruned) model is embedded into the
dense shapes with the kept channels first and every removed channel zero in its conv filter,
its BN (gamma = beta = running mean = 0, running var = 1) and its consumers' weights, so the
removed channels output exactly 0 and the dense model computes what the compact one does.
Deviation: the benchmark knows which original filter indices survived; a compacted prunekit
model keeps no channel identity, so the kept channels sit at the first indices (the function
is the same; the filter positions are not those of the dense pretrained model).
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunekit import checkpoint as ckpt
from prunekit.atomic import atomic_write_text
from prunekit.errors import UserError
from prunekit.models import Normalize, build_from_spec, model_spec
from prunekit.registry import MODELS
from prunekit.weights import load_into

__all__ = ["ARCH_KEYS", "DATASET_KEYS", "ExportError", "dense_layout_state", "apb_key",
           "export_apb", "import_apb", "model_for_key", "plain_model"]

#: prunekit model name -> the benchmark's architecture key
ARCH_KEYS = {"resnet18-kuangliu": "R18", "vgg16-bn-apb": "V16"}
#: prunekit dataset name -> the benchmark's dataset key
DATASET_KEYS = {"cifar10": "CIFAR10", "svhn": "SVHN"}


class ExportError(UserError, ValueError):
    """A run that cannot be written in the requested format (one line: why, what would do)."""


def plain_model(model: nn.Module) -> nn.Module:
    """A copy with every weight-mask parametrization folded into its weight."""
    out = copy.deepcopy(model)
    for mod in list(out.modules()):
        if parametrize.is_parametrized(mod):
            for name in list(mod.parametrizations.keys()):
                parametrize.remove_parametrizations(mod, name, leave_parametrized=True)
    return out


def dense_layout_state(model: nn.Module) -> tuple[dict[str, Tensor], bool]:
    """The state dict of ``model`` (possibly masked / compacted) in the dense shapes of its
    builder spec, and whether channels were removed (structured pruning)."""
    dense = build_from_spec(model_spec(model), allow_import=False)
    full = dense.state_dict()
    small = plain_model(model).state_dict()
    if set(small) != set(full):
        missing = sorted(set(full) ^ set(small))[:3]
        raise ExportError(f"the model's keys differ from its dense layout ({', '.join(missing)})")
    out: dict[str, Tensor] = {}
    structured = False
    for k, ref in full.items():
        v = small[k].detach().cpu()
        if v.shape == ref.shape:
            out[k] = v.clone()
            continue
        if v.dim() != ref.dim() or any(a > b for a, b in zip(v.shape, ref.shape)):
            raise ExportError(f"{k}: shape {tuple(v.shape)} does not fit the dense "
                              f"{tuple(ref.shape)}")
        structured = True
        fill = 1.0 if k.endswith("running_var") else 0.0
        t = torch.full(ref.shape, fill, dtype=v.dtype)
        t[tuple(slice(0, n) for n in v.shape)] = v
        out[k] = t
    return out, structured


def apb_key(method: str, model_name: str, dataset: str, structured: bool,
            sparsity: float) -> str:
    """``{method}_{R18|V16}_{CIFAR10|SVHN}_{US|S}_{sparsity %}``."""
    arch = ARCH_KEYS.get(model_name)
    if arch is None:
        raise ExportError(f"model {model_name!r} has no benchmark layout; valid: "
                          f"{', '.join(ARCH_KEYS)}")
    ds = DATASET_KEYS.get(dataset.lower(), dataset.upper())
    return f"{method}_{arch}_{ds}_{'S' if structured else 'US'}_{int(round(sparsity * 100))}"


def export_apb(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
               method: str | None = None, dataset: str | None = None) -> Path:
    """Write ``<out or RUN_DIR>/<key>.pt`` = ``{'state_dict': dense-layout weights}`` for the
    finished run in ``run_dir``; returns the path."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        raise ExportError(f"{run_dir} has no model.pt: not a finished prunekit run directory")
    model = ckpt.load_model(run_dir / "model.pt")
    spec = model_spec(model)
    norm = next(iter(model.children()))
    if spec["name"] not in ARCH_KEYS:
        raise ExportError(f"model {spec['name']!r} has no benchmark layout; valid: "
                          f"{', '.join(ARCH_KEYS)}")
    if isinstance(norm, Normalize) and not (bool((norm.mean == 0).all())
                                           and bool((norm.std == 1).all())):
        raise ExportError("the model normalises its inputs (normalize: true); the benchmark's "
                          "models take raw [0, 1] inputs, so this export would change outputs")
    meta: dict[str, Any] = getattr(model, "prunekit_meta", {}) or {}
    state, structured = dense_layout_state(model)
    key = apb_key(method or str(meta.get("method", "prunekit")), spec["name"],
                  dataset or str(meta.get("dataset", "")), structured,
                  float(meta.get("sparsity", 0.0)))
    path = Path(out) if out is not None else run_dir
    path.mkdir(parents=True, exist_ok=True)
    target = path / f"{key}.pt"
    ckpt.save(target, {"state_dict": state})
    atomic_write_text(path / f"{key}.json", json.dumps(
        {"key": key, "model": spec["name"], "run_dir": str(run_dir), "structured": structured,
         "config_hash": meta.get("config_hash")}, indent=1))
    return target


def model_for_key(path: str | os.PathLike) -> str:
    """The prunekit layout named by a benchmark file name (``..._R18_...`` / ``..._V16_...``)."""
    parts = Path(path).stem.split("_")
    for name, arch in ARCH_KEYS.items():
        if arch in parts:
            return name
    raise ExportError(f"{path}: the file name names no architecture ({' or '.join(ARCH_KEYS.values())}); "
                      f"pass --model ({', '.join(ARCH_KEYS)})")


def import_apb(path: str | os.PathLike, model_name: str | None = None, num_classes: int = 10,
               in_channels: int = 3, width: float = 1.0) -> nn.Module:
    """A benchmark checkpoint (``{'state_dict'|'net': ...}``) loaded strictly into prunekit's
    definition of its layout; a file with neither key is refused (the benchmark would keep
    random weights)."""
    model_name = model_name or model_for_key(path)
    if model_name not in ARCH_KEYS:
        raise ExportError(f"model {model_name!r} has no benchmark layout; valid: "
                          f"{', '.join(ARCH_KEYS)}")
    model = MODELS.build(model_name, num_classes=num_classes, in_channels=in_channels,
                         width=width)
    return load_into(model, path, f"benchmark checkpoint {path}", wrapped=True).eval()
