"""ONNX export of a finished run's physically compacted model, checked against PyTorch.

The model is loaded from ``RUN_DIR/model.pt`` as the pipeline saved it (channel pruners'
models are already physically smaller), weight masks are folded into the weights
(:func:`prunekit.export.apb.plain_model`), and ``torch.onnx.export`` writes it with a dynamic
batch axis. The check runs onnxruntime (CPU) and PyTorch on the first ``n`` test images of the
run's dataset and reports the largest absolute logit difference and the top-1 agreement;
:func:`export_onnx` refuses (and removes the file) when they disagree beyond ``atol``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit import checkpoint as ckpt
from prunekit.export.apb import ExportError, plain_model
from prunekit.modes import eval_mode
from prunekit.registry import DATASETS

__all__ = ["OnnxCheck", "export_onnx", "to_onnx", "check_onnx", "test_images", "ort_session"]

OPSET = 17


@dataclass
class OnnxCheck:
    """onnxruntime vs PyTorch on ``n`` images: max |logit difference|, top-1 agreement."""

    n: int
    max_abs_diff: float
    top1_agree: float


def to_onnx(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...]) -> Path:
    """Write ``model`` (masks folded, eval mode) to ``path`` with a dynamic batch axis."""
    net = plain_model(model).cpu().eval()
    dummy = torch.rand(2, *input_shape)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad():
        torch.onnx.export(net, (dummy,), str(tmp), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    os.replace(tmp, path)
    return path


def ort_session(path: str | os.PathLike, threads: int = 1) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads (one inter-op thread)."""
    import onnxruntime as ort  # deferred: optional extra [onnx]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_images(meta: dict[str, Any], n: int, root: str | None = None) -> torch.Tensor:
    """The first ``n`` test images of the run's dataset (from the model file's metadata)."""
    data = DATASETS.build(meta["dataset"], root=root, split="test",
                          **dict(meta.get("dataset_options") or {}))
    n = min(n, len(data))
    return torch.stack([data[i][0] for i in range(n)])


def check_onnx(model: nn.Module, path: str | os.PathLike, x: torch.Tensor) -> OnnxCheck:
    """Run both on ``x``; the largest |difference| of the logits and the top-1 agreement."""
    sess = ort_session(path, threads=1)
    with torch.no_grad(), eval_mode(model):
        ref = model(x).float().numpy()
    got = sess.run(["logits"], {"input": x.numpy().astype(np.float32)})[0]
    return OnnxCheck(n=int(x.shape[0]), max_abs_diff=float(np.abs(ref - got).max()),
                     top1_agree=float((ref.argmax(1) == got.argmax(1)).mean()))


def export_onnx(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                n: int = 256, atol: float = 1e-4, root: str | None = None
                ) -> tuple[Path, OnnxCheck]:
    """``RUN_DIR/model.onnx`` (or ``out``) for the run's compacted model, checked on ``n`` test
    images; raises :class:`ExportError` (file removed) beyond ``atol`` or on a top-1 change."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        raise ExportError(f"{run_dir} has no model.pt: not a finished prunekit run directory")
    model = ckpt.load_model(run_dir / "model.pt").cpu().eval()
    meta = dict(getattr(model, "prunekit_meta", {}) or {})
    shape = getattr(model, "prunekit_input_shape", None)
    x = test_images(meta, n, root)
    path = to_onnx(model, Path(out) if out is not None else run_dir / "model.onnx",
                   tuple(shape) if shape else tuple(x.shape[1:]))
    check = check_onnx(model, path, x)
    if check.max_abs_diff > atol or check.top1_agree < 1.0:
        path.unlink()
        raise ExportError(f"onnxruntime disagrees with PyTorch on {check.n} test images: max "
                          f"|diff| {check.max_abs_diff:.3g} (limit {atol:g}), top-1 agreement "
                          f"{check.top1_agree:.4f}; not written")
    return path, check
