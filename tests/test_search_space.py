"""DARTS search space and final network (prunekit.search): the official parameter counts as
oracles (../shared/LRNAS.md, measured by building the official NetworkCIFAR), cell structure,
partial-channel mixed op, genotype JSON, any input size, auxiliary head, drop path, save/load."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import prunekit
from prunekit import checkpoint as ckpt
from prunekit.search import GENOTYPES, Genotype, GenotypeError, count_params, genotype_from
from prunekit.search.genotype import PRIMITIVES
from prunekit.search.network import DARTSNetwork, reduction_layers
from prunekit.search.supernet import MixedOp, SearchNetwork, channel_shuffle, num_edges

#: official NetworkCIFAR(C=36, 20 cells) parameter counts without the auxiliary head, exact:
#: measured by building the official model.py NetworkCIFAR with the official genotypes.py
#: (fyqsama/LRNAS aa13ec2; DARTS, search_cifar10, search_cifar100, RACL, ADVRUSH) and summing
#: the numel of every parameter whose name lacks "auxiliary" (count_parameters_in_MB x 1e6)
ORACLES = [("darts_v2", 10, 3_349_342), ("lrnas_cifar10", 10, 2_179_702),
           ("lrnas_cifar100", 100, 2_321_488), ("racl", 10, 3_571_174),
           ("advrush", 10, 4_158_046)]


@pytest.mark.parametrize("name, classes, official", ORACLES, ids=[o[0] for o in ORACLES])
def test_official_parameter_counts(name: str, classes: int, official: int) -> None:
    n = count_params(name, C=36, layers=20, num_classes=classes, in_channels=3)
    assert n == official  # exact, not within a tolerance


def test_count_params_matches_the_built_network() -> None:
    for name in ("lrnas_cifar10", "darts_v2"):
        net = prunekit.MODELS.build("darts", genotype=name, num_classes=10, in_channels=3)
        assert sum(p.numel() for p in net.parameters()) == count_params(name)
    small = prunekit.MODELS.build("darts", genotype="racl", C=8, layers=5, num_classes=4,
                                  in_channels=1, auxiliary=True, image_size=28)
    own = sum(p.numel() for n, p in small.named_parameters() if "auxiliary" not in n)
    assert own == count_params("racl", C=8, layers=5, num_classes=4, in_channels=1)
    assert own < sum(p.numel() for p in small.parameters())  # the head exists, is not counted


def test_cells_edges_and_reductions() -> None:
    assert num_edges(4) == 14
    assert reduction_layers(20) == (6, 13) and reduction_layers(8) == (2, 5)
    net = SearchNetwork(C=8, layers=5, num_classes=3, in_channels=1)
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert all(len(c._ops) == 14 for c in net.cells)
    assert net.alphas_normal.shape == (14, 8) and not net.alphas_normal.requires_grad
    assert "alphas_normal" in dict(net.named_buffers())
    assert all(p is not net.alphas_normal for p in net.parameters())
    # partial channels: the ops see C/4 channels (8 -> 2 in normal cells, 16 -> 4 in reductions)
    sep = net.cells[0]._ops[0]._ops[PRIMITIVES.index("sep_conv_3x3")]
    assert sep[1].in_channels == 2
    assert net.cells[1]._ops[0]._ops[PRIMITIVES.index("sep_conv_3x3")][1].in_channels == 4
    # search BN is not affine (official), final network BN is
    assert not any(isinstance(m, nn.BatchNorm2d) and m.affine for c in net.cells
                   for m in c.modules())
    out = net(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 3)


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert torch.equal(channel_shuffle(channel_shuffle(x, 4), 2), x)


def test_mixed_op_bypass_and_zero_weight_skip() -> None:
    torch.manual_seed(0)
    op = MixedOp(8, 1, 4, PRIMITIVES).eval()
    x = torch.randn(2, 8, 6, 6)
    w = torch.softmax(torch.randn(8), 0)
    y = op(x, w)
    # the 6 bypass channels come through unchanged (un-shuffling 4 groups = shuffling 2)
    assert torch.equal(channel_shuffle(y, 2)[:, 2:], x[:, 2:])
    w0 = w.clone()
    w0[[4, 5]] = 0.0
    active = (w0 != 0).tolist()
    assert torch.allclose(op(x, w0), op(x, w0, active), atol=1e-7)
    none = op(x, torch.zeros(8), [False] * 8)
    assert none.shape == y.shape and torch.isfinite(none).all()
    red = MixedOp(8, 2, 4, PRIMITIVES).eval()
    assert red(torch.randn(2, 8, 7, 7), w).shape == (2, 8, 4, 4)  # odd size: ceil


def test_supernet_given_weights_equal_softmax_and_removal_changes_output() -> None:
    torch.manual_seed(0)
    net = SearchNetwork(C=8, layers=3, num_classes=4, in_channels=1).eval()
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        base = net(x)
        w = {k: v.clone() for k, v in net.op_weights().items()}
        assert torch.allclose(net(x, w), base)
        w["normal"][:, PRIMITIVES.index("sep_conv_3x3")] = 0.0
        assert not torch.allclose(net(x, w), base)


def test_genotype_json_round_trip_and_names() -> None:
    for g in GENOTYPES.values():
        assert Genotype.from_json(g.to_json()) == g
        assert genotype_from(json.loads(g.to_json())) == g
    assert genotype_from(None) == GENOTYPES["darts_v2"]
    assert GENOTYPES["lrnas_cifar10"].reduce[0] == ("none", 0)


@pytest.mark.parametrize("bad, needle", [
    ({"normal": [["conv_9x9", 0], ["none", 1]], "normal_concat": [2],
      "reduce": [["none", 0], ["none", 1]], "reduce_concat": [2]}, "unknown op"),
    ({"normal": [["none", 0], ["none", 2]], "normal_concat": [2],
      "reduce": [["none", 0], ["none", 1]], "reduce_concat": [2]}, "valid inputs are 0..1"),
    ({"normal": [["none", 0]], "normal_concat": [2],
      "reduce": [["none", 0], ["none", 1]], "reduce_concat": [2]}, "two (op, input) pairs"),
    ({"normal": [["none", 0], ["none", 1]], "normal_concat": [5],
      "reduce": [["none", 0], ["none", 1]], "reduce_concat": [2]}, "normal_concat"),
    ({"normal": []}, "exactly the keys"),
    ("no_such_genotype", "named genotypes"),
])
def test_bad_genotypes_are_one_line_errors(bad, needle: str) -> None:
    with pytest.raises(GenotypeError) as exc:
        genotype_from(bad)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 27, 27), (2, 64, 48)])
def test_final_network_any_input(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    net = prunekit.MODELS.build("darts", genotype="lrnas_cifar10", C=8, layers=5,
                                num_classes=6, in_channels=shape[0], auxiliary=True,
                                image_size=shape[1:]).train()
    out = net(torch.rand(2, *shape))
    assert out.shape == (2, 6) and net.aux_logits is not None and net.aux_logits.shape == (2, 6)
    net.eval()
    net(torch.rand(2, *shape))
    assert net.aux_logits is None


def test_auxiliary_head_is_the_official_cifar_head_on_8x8() -> None:
    net = DARTSNetwork(GENOTYPES["darts_v2"], C=36, layers=20, auxiliary=True, image_size=32)
    feats = net.auxiliary_head.features
    assert feats[1].kernel_size == (5, 5) and feats[1].stride == 3
    assert feats[5].kernel_size == (2, 2) and feats[2].in_channels == 576


def test_drop_path_only_in_training_and_not_on_identity() -> None:
    torch.manual_seed(0)
    net = prunekit.MODELS.build("darts", genotype="darts_v2", C=8, layers=3, in_channels=1,
                                drop_path_prob=0.5)
    x = torch.rand(4, 1, 16, 16)
    net.eval()
    with torch.no_grad():
        a, b = net(x), net(x)
    assert torch.equal(a, b)
    net.train()
    with torch.no_grad():
        c, d = net(x), net(x)
    assert not torch.equal(c, d)
    with pytest.raises(ValueError, match="drop_path_prob"):
        net.drop_path_prob = 1.0


def test_model_spec_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    net = prunekit.MODELS.build("darts", genotype="lrnas_cifar10", C=6, layers=4,
                                in_channels=1, num_classes=10, mean=[0.286], std=[0.353]).eval()
    assert isinstance(next(iter(net.children())), prunekit.models.Normalize)
    ckpt.save_model(tmp_path / "m.pt", net, {"method": "lrnas"}, input_shape=(1, 28, 28))
    back = ckpt.load_model(tmp_path / "m.pt").eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(back(x), net(x))
    assert back.genotype == GENOTYPES["lrnas_cifar10"]
