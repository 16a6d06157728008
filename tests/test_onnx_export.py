"""``prunekit export onnx``: a physically compacted d2bc model, exported, agrees with PyTorch
within 1e-4 on 256 test images with the same top-1 (issue 23 acceptance)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")

from prunekit.checkpoint import load_model  # noqa: E402
from prunekit.cli import main  # noqa: E402
from prunekit.config import RunConfig  # noqa: E402
from prunekit.export.onnx_export import ort_session  # noqa: E402
from prunekit.train import run_pipeline  # noqa: E402


def test_compacted_d2bc_model_matches_pytorch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = RunConfig.from_dict({
        "data": {"dataset": "synthetic", "train_subset": 64, "batch_size": 32},
        "model": {"name": "resnet-small", "width": 0.5}, "loss": {"name": "pgd_at", "steps": 1},
        "pretrain": {"epochs": 1}, "prune": {"epochs": 1}, "finetune": {"epochs": 0},
        "method": "d2bc", "sparsity": 0.5})
    res = run_pipeline(cfg, tmp_path / "run")
    dense_params = sum(p.numel() for p in res.dense_model.parameters())
    assert sum(p.numel() for p in res.model.parameters()) < 0.8 * dense_params  # compacted
    assert main(["export", "onnx", str(tmp_path / "run")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the JSON line
    assert out["n"] == 256 and out["max_abs_diff"] <= 1e-4 and out["top1_agree"] == 1.0
    # an independent check: the ONNX graph's conv weights have the compacted shapes
    import onnx

    graph = onnx.load(out["onnx"]).graph
    shapes = {tuple(t.dims) for t in graph.initializer}
    model = load_model(tmp_path / "run" / "model.pt").eval()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert tuple(conv.weight.shape) in shapes
    x = torch.rand(5, 3, 32, 32)
    got = ort_session(out["onnx"], threads=2).run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), atol=1e-4, rtol=1e-4)
