"""Contract tests run on every registered model (built-ins and ``prunekit.models`` entry-point
plug-ins, over ``MODELS.names()``) plus torchvision models by name.

What a model must do for the pipeline (docs/architecture.md, "Add a model"): build from
``(num_classes, in_channels, width, mean, std, **options)`` with prunekit's ``Normalize`` first
and a linear classifier; rebuild from its spec; trace with torch-pruning's ``DependencyGraph``
into channel groups; and, gated by the channel-pruning machinery every channel method uses
(``ChannelPruner``), give the same outputs as after physical compaction (<= 1e-5), also
once saved and reloaded from a checkpoint. A builder may declare ``contract_kwargs`` (options
for a small, fast instance); inputs are 3x32x32.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from prunekit import MODELS
from prunekit.checkpoint import load_model, save_model
from prunekit.models import Normalize, build_from_spec, classifier_of, model_spec
from prunekit.pruning import build_groups
from prunekit.pruning.channel import ChannelPruner
from prunekit.pruning.groups import ChannelGroups

#: torchvision classification models by name: the default suite runs the first two, ``-m slow``
#: the survey behind the table in docs/data-and-models.md (options keep them small)
TORCHVISION: dict[str, dict[str, Any]] = {
    "torchvision:resnet18": {}, "torchvision:mobilenet_v2": {"width_mult": 0.25},
    "torchvision:resnet50": {}, "torchvision:wide_resnet50_2": {}, "torchvision:vgg11_bn": {},
    "torchvision:vgg11": {}, "torchvision:mobilenet_v3_small": {"width_mult": 0.5},
    "torchvision:mobilenet_v3_large": {"width_mult": 0.5}, "torchvision:efficientnet_b0": {},
    "torchvision:googlenet": {"aux_logits": False, "init_weights": True},
    "torchvision:densenet121": {},
}
_FAST = ("torchvision:resnet18", "torchvision:mobilenet_v2")
NAMES = MODELS.names() + [n if n in _FAST else pytest.param(n, marks=pytest.mark.slow)
                          for n in TORCHVISION]
SHAPE = (3, 32, 32)
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _build(name: str, in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    kw = TORCHVISION.get(name) or dict(getattr(MODELS.get(name), "contract_kwargs", {}) or {})
    torch.manual_seed(0)
    return MODELS.build(name, num_classes=num_classes, in_channels=in_channels,
                        mean=MEAN[:in_channels], std=STD[:in_channels], **kw)


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so a wrong mask site would show."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)


class RandomChannels(ChannelPruner):
    """Gates every dependency group (stem included) with a fixed random keep mask (about half
    of each group, at least one channel): the ChannelPruner machinery the real methods use."""

    def init_gates(self, groups: ChannelGroups) -> None:
        g = torch.Generator().manual_seed(2)
        self.keep = [torch.rand(grp.size, generator=g) < 0.5 for grp in groups]

    def group_gates(self) -> list[Tensor]:
        return [k.float() for k in self.keep]


@pytest.mark.parametrize("name", NAMES)
def test_builds_with_normalize_first_and_a_classifier(name: str) -> None:
    model = _build(name).eval()
    first = next(iter(model.children()))
    assert isinstance(first, Normalize), f"{name}: first child is {type(first).__name__}"
    assert torch.allclose(first.mean.flatten(), torch.tensor(MEAN))
    assert isinstance(classifier_of(model), nn.Linear)
    with torch.no_grad():
        out = model(torch.rand(2, *SHAPE))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        gray = _build(name, in_channels=1, num_classes=4).eval()
        assert gray(torch.rand(2, 1, *SHAPE[1:])).shape == (2, 4)


@pytest.mark.parametrize("name", NAMES)
def test_spec_rebuilds_the_same_model(name: str) -> None:
    model = _build(name).eval()
    spec = model_spec(model)
    assert spec["name"] == name and spec["num_classes"] == 10 and spec["in_channels"] == 3
    rebuilt = build_from_spec(spec).eval()
    rebuilt.load_state_dict(model.state_dict())       # same keys and shapes
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_traces_gates_and_compacts(name: str, tmp_path: Path) -> None:
    model = _build(name)
    _randomize_bn(model)
    x = torch.rand(4, *SHAPE)
    groups = build_groups(model, x[:1], include_stem=True)
    assert len(groups) >= 1, f"{name}: no prunable channel group"
    pruner = RandomChannels(sparsity=0.5, include_stem=True)
    pruner.attach(model, x[:1])
    assert any(not bool(k.all()) for k in pruner.keep_masks())
    n_dense = sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        masked = model(x)
    compacted = pruner.finalize(model).eval()
    assert sum(p.numel() for p in compacted.parameters()) < n_dense
    with torch.no_grad():
        out = compacted(x)
    assert (out - masked).abs().max() <= 1e-5, f"{name}: {(out - masked).abs().max():.2e}"
    save_model(tmp_path / "m.pt", compacted, input_shape=SHAPE)
    reloaded_model = load_model(tmp_path / "m.pt").eval()
    with torch.no_grad():
        reloaded = reloaded_model(x)
    assert torch.equal(reloaded, out), f"{name}: the checkpoint does not rebuild the model"
