"""The built-in models: output shape on 1x28x28 / 3x32x32 / 3x64x64, prunekit's own layout
conventions (classifier named ``classifier``, no in-place ReLU), group counts, width, Normalize;
registry errors. What every model (plug-ins too) must satisfy -- tracing, masked == compacted,
checkpoint rebuild -- is tests/test_model_contract.py."""
from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

import prunekit
from prunekit.models import Normalize, build_from_spec, classifier_of, model_spec, scale_width
from prunekit.registry import RegistryError

MODELS = prunekit.MODELS
#: width multipliers keeping the big models fast in tests
TEST_WIDTH = {"vgg16": 0.125, "vgg11": 0.125, "resnet18": 0.125, "wrn-16-4": 0.25,
              "wrn-28-4": 0.125, "wrn-34-10": 0.05, "darts": 0.25}
SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64)]


def _build(name: str, in_channels: int = 3, num_classes: int = 10, **kw) -> nn.Module:
    torch.manual_seed(0)
    return MODELS.build(name, num_classes=num_classes, in_channels=in_channels,
                        width=TEST_WIDTH.get(name, 1.0), **kw)


def test_expected_models_registered() -> None:
    for name in ["vgg16", "vgg11", "resnet18", "wrn-16-4", "wrn-28-4", "wrn-34-10", "vgg-small",
                 "resnet-small"]:
        assert name in MODELS.names()


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(RegistryError) as err:
        MODELS.build("vgg17")
    msg = str(err.value)
    assert "vgg17" in msg and "vgg16" in msg and "resnet18" in msg and "\n" not in msg


def test_unknown_builder_kwarg_is_one_line_error() -> None:
    with pytest.raises(ValueError, match="has no option.*widht.*valid: num_classes"):
        MODELS.build("vgg-small", widht=0.5)


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_output_shape(name: str, shape: tuple[int, int, int]) -> None:
    model = _build(name, in_channels=shape[0], num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.rand(2, *shape))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS.names())
def test_structure_conventions(name: str) -> None:
    model = _build(name)
    assert isinstance(next(iter(model.children())), Normalize)
    if name in ("resnet18-kuangliu", "vgg16-bn-apb"):  # published layouts keep their names
        assert classifier_of(model) is dict(model.named_modules())[
            "linear" if name == "resnet18-kuangliu" else "classifier.4"]
    else:
        assert classifier_of(model) is model.classifier
        assert isinstance(model.classifier, nn.Linear)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            assert not m.inplace
    spec = model_spec(model)
    assert spec["name"] == name and spec["num_classes"] == 10 and spec["in_channels"] == 3
    rebuilt = build_from_spec(spec)
    assert [p.shape for p in rebuilt.state_dict().values()] == \
        [p.shape for p in model.state_dict().values()]


@pytest.mark.parametrize("name, n_groups", [("resnet18", 12), ("vgg16", 13), ("vgg11", 8),
                                            ("vgg-small", 5), ("resnet-small", 10),
                                            ("resnet18-kuangliu", 12), ("vgg16-bn-apb", 13)])
def test_group_counts(name: str, n_groups: int) -> None:
    """DESIGN.md: ResNet-18 gives 4 residual streams + 8 block-internal groups, VGG one per conv
    (conv-rooted groups; the benchmark's VGG too, its MLP head aside);
    resnet-small: stem + 3 stage streams + 6 block-internal."""
    model = _build(name).eval()
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.rand(1, 3, 32, 32))
    groups = list(dg.get_all_groups(ignored_layers=[classifier_of(model)],
                                    root_module_types=[nn.Conv2d]))
    assert len(groups) == n_groups


def test_pruning_a_residual_group_keeps_model_working() -> None:
    model = _build("resnet-small", in_channels=1).eval()
    ex = torch.rand(2, 1, 28, 28)
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=ex)
    group = dg.get_pruning_group(model.layer1[0].conv2, tp.prune_conv_out_channels, idxs=[0, 1])
    group.prune()
    assert model.layer1[1].conv2.out_channels == scale_width(12, 1.0) - 2
    assert model(ex).shape == (2, 10)


def test_normalize_and_width() -> None:
    norm = Normalize([0.5, 0.25, 0.0], [0.5, 0.5, 1.0], 3)
    x = torch.ones(1, 3, 2, 2)
    assert torch.allclose(norm(x)[0, :, 0, 0], torch.tensor([1.0, 1.5, 1.0]))
    assert torch.equal(Normalize(None, None, 1)(x[:, :1]), x[:, :1])
    with pytest.raises(ValueError, match="input channels"):
        Normalize([0.1, 0.2], [1.0, 1.0], 3)
    assert scale_width(64, 0.125) == 8 and scale_width(3, 0.5) == 2 and scale_width(1, 0.01) == 1
    model = MODELS.build("vgg-small", in_channels=1, mean=[0.286], std=[0.353])
    assert model_spec(model)["mean"] == pytest.approx([0.286])
    assert torch.allclose(model.normalize.std.flatten(), torch.tensor([0.353]))


def test_width_multiplier_scales_channels() -> None:
    convs = [m for m in MODELS.build("resnet18", width=0.5).modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels == 32 and convs[-1].out_channels == 256
