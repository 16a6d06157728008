"""Issue 23 acceptance: a kuangliu-layout ResNet-18 state dict saved elsewhere with plain
``torch.save(model.state_dict())`` starts a grid through ``pretrain.init``, is pruned by d2bc
(channels, physically compacted) and hydra (weights), and every result exported to the
AdversarialPruningBenchmark format loads ``strict=True`` into an independent reference
definition (written here, after kuangliu/pytorch-cifar models/resnet.py) with the same outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.bench.runner import run_grid
from prunekit.checkpoint import load_model
from prunekit.config import ConfigError, RunConfig
from prunekit.export.apb import ExportError, export_apb, import_apb
from prunekit.weights import WeightsError, read_state_dict

WIDTHS = (8, 16, 32, 64)  # the published 64-512 layout at width 0.125


class RefBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class RefResNet18(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        cin = WIDTHS[0]
        for i, (w, s) in enumerate(zip(WIDTHS, (1, 2, 2, 2))):
            setattr(self, f"layer{i + 1}", nn.Sequential(RefBlock(cin, w, s), RefBlock(w, w, 1)))
            cin = w
        self.linear = nn.Linear(WIDTHS[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, out.shape[-1])  # kuangliu: avg_pool2d(out, 4) on 32x32
        return self.linear(out.flatten(1))


def _reference(seed: int = 0) -> RefResNet18:
    torch.manual_seed(seed)
    ref = RefResNet18()
    bns = [m for m in ref.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for t, lo, hi in [(t, lo, hi) for m in bns for t, lo, hi in (
                (m.running_mean, -0.3, 0.3), (m.running_var, 0.5, 1.5), (m.weight, 0.5, 1.5),
                (m.bias, -0.2, 0.2))]:
            t.uniform_(lo, hi)
    return ref.eval()


def _grid(init: Path) -> dict:
    return {
        "name": "apb-roundtrip",
        "base": {"data": {"dataset": "synthetic", "input_shape": [3, 16, 16], "size": 32,
                          "batch_size": 16},
                 "model": {"name": "resnet18-kuangliu", "width": 0.125},
                 "loss": {"name": "pgd_at", "steps": 1},
                 "pretrain": {"init": str(init), "epochs": 0},
                 "prune": {"epochs": 1}, "finetune": {"epochs": 1},
                 "eval": {"attacks": ["pgd-2-1"], "n_examples": 16}},
        "axes": {"method": ["d2bc", "hydra"], "sparsity": [0.5]},
    }


def test_state_dict_from_elsewhere_to_benchmark_and_back(tmp_path: Path) -> None:
    ref = _reference()
    init = tmp_path / "kuangliu_r18.pt"
    torch.save(ref.state_dict(), init)
    summary = run_grid(_grid(init), tmp_path / "out")
    assert len(summary.ran_ok) == 2, summary
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    runs = sorted((tmp_path / "out" / "runs").iterdir())
    assert len(runs) == 2
    keys = set()
    for run in runs:
        info = json.loads((run / "run.json").read_text())
        assert info["records"]["pretrain"]["last"]["init"] == str(init)  # no dense training
        model = load_model(run / "model.pt").eval()
        path = export_apb(run, tmp_path / "apb")
        keys.add(path.stem)
        blob = torch.load(path, weights_only=True)
        assert set(blob) == {"state_dict"}
        back = RefResNet18().eval()
        back.load_state_dict(blob["state_dict"], strict=True)
        with torch.no_grad():
            torch.testing.assert_close(back(x), model(x), atol=1e-5, rtol=1e-5)
            assert not torch.allclose(back(x), ref(x), atol=1e-3)  # it was pruned + fine-tuned
        # the importer gives the same function through prunekit's own definition
        again = import_apb(path, "resnet18-kuangliu", width=0.125)
        with torch.no_grad():
            torch.testing.assert_close(again(x), back(x), atol=1e-6, rtol=1e-6)
    assert keys == {"d2bc_R18_SYNTHETIC_S_50", "hydra_R18_SYNTHETIC_US_50"}


def test_init_changes_hash_by_content_and_refuses_misfits(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(_reference(0).state_dict(), a)
    torch.save(_reference(1).state_dict(), b)
    base = _grid(a)["base"]
    plain = RunConfig.from_dict({k: v for k, v in base.items() if k != "pretrain"})
    with_a = RunConfig.from_dict(base)
    with_b = RunConfig.from_dict({**base, "pretrain": {"init": str(b), "epochs": 0}})
    assert len({plain.config_hash(), with_a.config_hash(), with_b.config_hash()}) == 3
    assert len({plain.pretrain_hash(), with_a.pretrain_hash(), with_b.pretrain_hash()}) == 3
    c = tmp_path / "copy_of_a.pt"
    c.write_bytes(a.read_bytes())  # same content, other path: same hash
    assert RunConfig.from_dict({**base, "pretrain": {"init": str(c), "epochs": 0}}
                               ).config_hash() == with_a.config_hash()
    with pytest.raises(ConfigError, match="pretrain.init: no file"):
        RunConfig.from_dict({**base, "pretrain": {"init": str(tmp_path / "none.pt")}})
    # a misfit is one line naming the first mismatches
    from prunekit.train.pretrain_stage import init_from_file
    from prunekit import MODELS
    wide = MODELS.build("resnet18-kuangliu", width=0.25)
    with pytest.raises(WeightsError) as err:
        init_from_file(wide, str(a))
    assert "\n" not in str(err.value) and "conv1.weight (8, 3, 3, 3) vs (16, 3, 3, 3)" in str(err.value)
    vgg = MODELS.build("vgg16-bn-apb", width=0.125)
    with pytest.raises(WeightsError, match="missing .*features.0.weight.*unexpected .*conv1.weight"):
        init_from_file(vgg, str(a))


def test_importer_refuses_files_without_state_dict_or_net(tmp_path: Path) -> None:
    sd = _reference().state_dict()
    bare, other, net = tmp_path / "x_R18_a.pt", tmp_path / "y_R18_b.pt", tmp_path / "z_R18_c.pt"
    torch.save(sd, bare)
    torch.save({"model_state": sd}, other)
    torch.save({"net": sd}, net)
    for p in (bare, other):
        with pytest.raises(WeightsError, match="'state_dict' or 'net'"):
            import_apb(p, "resnet18-kuangliu")
    with pytest.raises(WeightsError, match="does not fit"):  # full-width model, 0.125 weights
        import_apb(net, "resnet18-kuangliu")
    assert import_apb(net, width=0.125) is not None  # layout from _R18_ in the name
    assert set(read_state_dict(net, wrapped=True)) == set(sd)
    with pytest.raises(ExportError, match="names no architecture"):
        import_apb(tmp_path / "nothing.pt")


def test_compacted_vgg16_bn_apb_exports_to_dense_layout(tmp_path: Path) -> None:
    """The benchmark's VGG: removed channels of the last conv shrink the flattened 2x2 head
    input; the dense-layout export must place them consistently (same function, dense shapes)."""
    from prunekit.train import run_pipeline
    from prunekit import MODELS

    cfg = RunConfig.from_dict({
        "data": {"dataset": "synthetic", "input_shape": [3, 16, 16], "size": 32, "batch_size": 16},
        "model": {"name": "vgg16-bn-apb", "width": 0.125}, "loss": {"name": "pgd_at", "steps": 1},
        "pretrain": {"epochs": 1}, "prune": {"epochs": 1}, "finetune": {"epochs": 0},
        "method": "d2bc", "sparsity": 0.5})
    res = run_pipeline(cfg, tmp_path / "run")
    head_in = res.model.classifier[0].in_features
    assert head_in < 2048 // 8  # the last conv lost channels: physically smaller head
    path = export_apb(tmp_path / "run", tmp_path / "apb")
    assert path.stem == "d2bc_V16_SYNTHETIC_S_50"
    dense = MODELS.build("vgg16-bn-apb", width=0.125).eval()
    dense.load_state_dict(torch.load(path, weights_only=True)["state_dict"], strict=True)
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(dense(x), res.model.eval()(x), atol=1e-5, rtol=1e-5)
