"""The pipeline's hard-prune probe (prunekit.pruning.hard_prune): the formulas, and the case it
exists for: a filter-ADMM run converged by its weights whose hard prune still changes the
function through the removed channels' BatchNorm shift (invisible to ||W - Z|| / ||W||)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from prunekit import PRUNERS
from prunekit.bench.cells import method_warnings
from prunekit.pruning.hard_prune import finalize_change, probe_logits


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv1, self.bn1 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(self.bn1(self.conv1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_finalize_change_formulas() -> None:
    before = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [1.0, 2.0]])
    after = torch.tensor([[2.0, 0.0], [1.0, 0.0], [3.0, 1.0], [1.0, 2.0]])
    d = finalize_change(before, after)
    assert math.isclose(d["finalize_logit_change"], math.sqrt(2) / before.norm().item(),
                        rel_tol=1e-5)
    assert d["finalize_agreement"] == 0.75       # any method is flagged below 95 % (issue 19)
    assert method_warnings(d) == ["finalize changed 25.0 % of the predictions on a training "
                                  "batch (logits by 32 %)"]
    flagged = finalize_change(before, after, lossless_claimed=True)
    assert method_warnings(flagged) == ["hard prune changed 25.0 % of the predictions on a "
                                        "training batch (logits by 32 %)"]
    assert finalize_change(before, before, lossless_claimed=True)["finalize_agreement"] == 1.0
    assert "warnings" not in finalize_change(before, before)


def test_admm_filter_converged_weights_but_bn_shift_is_flagged() -> None:
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.rand(64, 1, 10, 10)
    # the official variable set: conv weights only
    p = PRUNERS.build("admm-filter", sparsity=0.5, admm_interval=1, interval_unit="step",
                      norm_affine=False)
    assert type(p).lossless_finalize and "bn1.bias" not in p._proj.setup(_Net(), x[:2])
    p.attach(net, x[:2])
    keep = p._proj.keep_masks({n: w.detach() for n, w in p._weights.items()})
    with torch.no_grad():     # W = proj(W): the filters due for removal are exactly zero
        for name, w in p._weights.items():
            w.mul_(keep[name].to(w.dtype))
        p.admm_update()
        # ... but a removed channel of conv1 still outputs relu(beta) through its BatchNorm
        dropped = ~keep["conv1"].expand_as(p._weights["conv1"]).flatten(1).any(1)
        assert dropped.any()
        net.bn1.bias[dropped] = 5.0
    before = probe_logits(net, x)
    small = p.finalize(net)
    summary = p.summary()
    assert summary["converged"] and summary["rel_residual"] < 1e-6    # the weights say converged
    d = finalize_change(before, probe_logits(small, x), lossless_claimed=True)
    assert d["finalize_logit_change"] > 0.1
    assert d["finalize_agreement"] < 0.95 and d["warnings"]          # the function says not


def test_probe_logits_restores_modes() -> None:
    net = _Net().train()
    probe_logits(net, torch.rand(4, 1, 10, 10))
    assert all(m.training for m in net.modules())


def test_admm_filter_with_norm_affine_projects_the_channel_output() -> None:
    """With norm_affine (default) gamma / beta of a removed channel are ADMM variables: at
    W = proj(W) the removed channels output exactly zero, and the hard prune is lossless."""
    torch.manual_seed(0)
    net = _Net().eval()
    with torch.no_grad():
        for bn in (net.bn0, net.bn1):
            bn.bias.uniform_(-1.0, 1.0)      # a non-trivial shift in every channel
            bn.running_mean.uniform_(-0.5, 0.5)
    x = torch.rand(64, 1, 10, 10)
    p = PRUNERS.build("admm-filter", sparsity=0.5, admm_interval=1, interval_unit="step",
                      include_stem=True)
    p.attach(net, x[:2])
    assert {"bn0.weight", "bn0.bias", "bn1.weight", "bn1.bias"} <= set(p._weights)
    keep = p._proj.keep_masks({n: w.detach() for n, w in p._weights.items()})
    assert keep["bn1.bias"].shape == (16,) and int(keep["bn1.bias"].sum()) < 16
    row_keep = keep["conv1"].flatten()
    assert torch.equal(row_keep, keep["bn1.weight"])          # one channel set per group
    with torch.no_grad():
        for name, w in p._weights.items():
            w.mul_(keep[name].to(w.dtype).expand_as(w))
        p.admm_update()
    before = probe_logits(net, x)
    small = p.finalize(net)
    assert p.summary()["converged"] and p.summary()["rel_residual"] < 1e-6
    d = finalize_change(before, probe_logits(small, x), lossless_claimed=True)
    assert d["finalize_logit_change"] < 1e-5 and d["finalize_agreement"] == 1.0
    assert "warnings" not in d
