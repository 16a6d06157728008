"""Parameter targets for the channel pruners (issue 19): ``target: params`` makes ``sparsity``
the reduction of the compacted model's parameter count, measured by prunekit's accounting."""
from __future__ import annotations

import copy

import pytest
import torch

import prunekit
from prunekit.pruning import build_groups, measure
from prunekit.pruning.base import sparsity_target_of
from prunekit.pruning.compaction import compact
from prunekit.registry import PRUNERS


@pytest.mark.parametrize("arch", ["vgg-small", "resnet-small"])
def test_analytic_params_equal_the_compacted_count(arch: str) -> None:
    torch.manual_seed(0)
    model = prunekit.MODELS.build(arch, width=0.5)
    x = torch.zeros(1, 1, 28, 28)
    groups = build_groups(model, x, include_stem=True)
    assert groups.dense_params == sum(p.numel() for p in model.parameters())
    keep = [torch.rand(g.size) > 0.5 for g in groups]
    for k in keep:
        k[0] = True
    predicted = float(groups.params([k.float() for k in keep]))
    assert predicted == sum(p.numel() for p in compact(groups, keep).parameters())


@pytest.mark.parametrize("method", ["random-channel", "l1-channel", "hydra-channel", "d2bc"])
def test_params_target_is_met_and_reported(method: str) -> None:
    torch.manual_seed(0)
    model = prunekit.MODELS.build("vgg-small", width=0.5)
    dense = copy.deepcopy(model)
    x = torch.zeros(2, 1, 28, 28)
    p = PRUNERS.build(method, sparsity=0.6, target="params", include_stem=True)
    p.attach(model, x)
    assert sparsity_target_of(p) == "params"
    small = p.finalize(model)            # d2bc: no search steps, calibration makes the target
    m = measure(small, x[:1], dense=dense)
    assert abs(m.params_reduction - 0.6) < 0.03
    assert abs(m.params_reduction - m.macs_reduction) > 0.01    # a different constraint


def test_bad_target_is_one_clear_line() -> None:
    with pytest.raises(ValueError, match="target must be one of: macs, params"):
        PRUNERS.build("random-channel", sparsity=0.5, target="flops")
