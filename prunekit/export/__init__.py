"""Exports of finished runs: the AdversarialPruningBenchmark's dense-layout checkpoints
(:mod:`prunekit.export.apb`) and ONNX for deployment (:mod:`prunekit.export.onnx_export`)."""
from __future__ import annotations

from prunekit.export.apb import (ExportError, apb_key, dense_layout_state, export_apb,
                                 import_apb)

__all__ = ["ExportError", "apb_key", "dense_layout_state", "export_apb", "import_apb"]
