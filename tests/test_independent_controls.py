"""Random controls draw from their own streams (issue 19): under the same run seed, the pipeline
seeds torch's generator identically before every method's ``attach``; random-channel's selection
must nevertheless be independent of D2BC's initial gates (it used to keep exactly their top-k)."""
from __future__ import annotations

import copy

import torch

from prunekit import MODELS, PRUNERS
from prunekit.seeding import derive_seed


def test_random_channel_is_independent_of_d2bc_init():
    dense = MODELS.build("vgg-small", num_classes=10, in_channels=1, width=0.5)
    x = torch.zeros(1, 1, 28, 28)
    overlaps, fractions, seeds = [], [], set()
    for run_seed in range(12):
        torch.manual_seed(derive_seed(run_seed, "attach"))   # what the pipeline does
        d2bc = PRUNERS.build("d2bc", sparsity=0.5)
        d2bc.attach(copy.deepcopy(dense), x)
        torch.manual_seed(derive_seed(run_seed, "attach"))
        rand = PRUNERS.build("random-channel", sparsity=0.5)
        rand.attach(copy.deepcopy(dense), x)
        assert d2bc.init_seed != rand.init_seed
        seeds.add(rand.init_seed)
        assert len(rand.keep) == len(d2bc.gate_params)          # the same groups, in order
        for keep, gate in zip(rand.keep, d2bc.gate_params):
            k = int(keep.sum())
            top = torch.zeros_like(keep)
            top[torch.topk(gate.detach(), k).indices] = True
            overlaps.append(int((top & keep).sum()))
            fractions.append(k * k / keep.numel())          # hypergeometric expectation
    assert len(seeds) == 12                                   # varies with the run seed
    # independent selections overlap like chance (before the fix: overlap == k every time)
    ratio = sum(overlaps) / sum(fractions)
    assert 0.75 < ratio < 1.25, ratio
