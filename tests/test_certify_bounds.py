"""Soundness of IBP / CROWN-IBP (issue 21 acceptance): bounds contain sampled perturbations,
IBP is exact for one linear layer, CROWN-IBP is never looser than IBP."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.certify.bounds import BoundError, Bounds, input_box, margin_spec
from prunekit.models.common import Normalize


class _Res(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = Normalize([0.5], [0.25], 1)
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.c1(self.norm(x))))
        h = torch.relu(h + self.c2(h))            # residual add
        return self.fc(torch.flatten(self.pool(h), 1))


def _models() -> list[nn.Module]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                        nn.Linear(16, 5))
    cnn_max = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(27, 5))
    res = _Res()
    with torch.no_grad():
        res.bn.running_mean.uniform_(-0.5, 0.5)
        res.bn.running_var.uniform_(0.5, 2.0)
        res.bn.weight.uniform_(-1, 1)
    return [m.eval() for m in (mlp, cnn_max, res)]


@pytest.mark.parametrize("k", [0, 1, 2])
def test_bounds_contain_sampled_perturbations(k: int) -> None:
    model = _models()[k]
    torch.manual_seed(1)
    x = torch.rand(3, 1, 6, 6)
    y = torch.tensor([0, 2, 4])
    eps = 0.05
    b = Bounds(model)
    lo, up = input_box(x, eps)
    spec = margin_spec(y, 5)
    l, u = b.ibp(lo, up)
    ml = b.ibp(lo, up, spec)[0]
    methods = [ml, b.crown_ibp(lo, up, spec)]
    xs = lo.unsqueeze(0) + (up - lo).unsqueeze(0) * torch.rand(1000, *x.shape)
    xs[:100] = torch.where(torch.rand(100, *x.shape) < 0.5, lo, up)   # corners too
    with torch.no_grad():
        z = model(xs.flatten(0, 1)).view(1000, 3, 5)
    assert (z >= l - 1e-5).all() and (z <= u + 1e-5).all()
    m = torch.einsum("bsk,nbk->nbs", spec, z)
    for lb in methods:
        assert (m >= lb - 1e-5).all()


def test_ibp_exact_for_one_linear_layer() -> None:
    torch.manual_seed(2)
    lin = nn.Linear(7, 4)
    x = torch.rand(2, 7) * 0.8 + 0.1
    lo, up = input_box(x, 0.05)
    l, u = Bounds(lin).ibp(lo, up)
    w = lin.weight
    # the maximiser / minimiser of each output is a corner of the box
    x_up = torch.where(w.unsqueeze(0) > 0, up.unsqueeze(1), lo.unsqueeze(1))   # [B, out, in]
    x_lo = torch.where(w.unsqueeze(0) > 0, lo.unsqueeze(1), up.unsqueeze(1))
    exact_u = (x_up * w).sum(-1) + lin.bias
    exact_l = (x_lo * w).sum(-1) + lin.bias
    assert torch.allclose(u, exact_u, atol=1e-6) and torch.allclose(l, exact_l, atol=1e-6)


def test_crown_ibp_never_looser_and_tighter_somewhere() -> None:
    tighter = 0
    for seed in range(5):
        torch.manual_seed(seed)
        mlp = nn.Sequential(nn.Flatten(), nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
        x, y = torch.rand(8, 20), torch.randint(0, 10, (8,))
        b = Bounds(mlp)
        ibp = b.margins(x, y, 0.02, "ibp")
        crown = b.margins(x, y, 0.02, "crown-ibp")
        pure = b.crown_ibp(*input_box(x, 0.02), margin_spec(y, 10))
        assert (crown >= ibp - 1e-6).all()
        tighter += int((pure > ibp + 1e-4).sum())
    assert tighter > 0   # the backward relaxation is doing work, not only the max


def test_unsupported_node_is_one_line() -> None:
    with pytest.raises(BoundError, match="does not support"):
        Bounds(nn.Sequential(nn.Linear(3, 3), nn.Tanh()))
    bn = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).train()
    with pytest.raises(BoundError, match="eval mode"):
        Bounds(bn)


def _frozen_at_batch_stats(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """An independent oracle: a copy whose BN running statistics are the batch's (torch's own
    train-mode BN with momentum 1 stores the mean and the unbiased variance), in eval mode."""
    import copy
    ref = copy.deepcopy(model)
    bns = [m for m in ref.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    sizes = {}
    for m in bns:
        m.momentum = 1.0
        m.register_forward_pre_hook(lambda mod, a: sizes.__setitem__(
            mod, a[0].numel() // a[0].shape[1]))
    ref.train()
    with torch.no_grad():
        ref(x)
    for m in bns:
        m.running_var.mul_((sizes[m] - 1) / sizes[m])        # unbiased -> biased
        m._forward_pre_hooks.clear()
    return ref.eval()


@pytest.mark.parametrize("k", [2, 3])
def test_batch_stats_bounds_contain_sampled_perturbations(k: int) -> None:
    from prunekit.models.vgg import vgg_small
    torch.manual_seed(3)
    model = _models()[2] if k == 2 else vgg_small(5, 1, width=0.125).eval()
    size = 6 if k == 2 else 12
    x, y = torch.rand(4, 1, size, size), torch.tensor([0, 1, 3, 4])
    ref = _frozen_at_batch_stats(model, x)
    before = {n: b.clone() for n, b in model.named_buffers()}
    b = Bounds(model).use_batch_stats(x)
    assert all(torch.equal(before[n], t) for n, t in model.named_buffers())   # untouched
    with torch.no_grad():
        assert torch.allclose(b.ibp(x, x)[0], ref(x), atol=1e-5)   # the frozen network
    eps = 0.03
    lo, up = input_box(x, eps)
    spec = margin_spec(y, 5)
    l, u = b.ibp(lo, up)
    xs = lo.unsqueeze(0) + (up - lo).unsqueeze(0) * torch.rand(1000, *x.shape)
    xs[:100] = torch.where(torch.rand(100, *x.shape) < 0.5, lo, up)
    with torch.no_grad():
        z = ref(xs.flatten(0, 1)).view(1000, *l.shape)
    assert (z >= l - 1e-4).all() and (z <= u + 1e-4).all()
    m = torch.einsum("bsk,nbk->nbs", spec, z)
    for lb in (b.ibp(lo, up, spec)[0], b.crown_ibp(lo, up, spec)):
        assert (m >= lb - 1e-4).all()


def test_batch_stats_bounds_are_scale_invariant_like_train_mode_bn() -> None:
    """The mechanism: with the batch's statistics, scaling a conv followed by BN leaves the
    bounds unchanged (as it leaves the train-mode output); with running statistics it scales
    them -- the shortcut the robust term took in the collapsed fmnist-certify runs."""
    model = _models()[2]
    torch.manual_seed(4)
    x, y = torch.rand(6, 1, 6, 6), torch.randint(0, 5, (6,))
    lo, up = input_box(x, 0.05)
    spec = margin_spec(y, 5)
    batch1 = Bounds(model).use_batch_stats(x).ibp(lo, up, spec)[0]
    run1 = Bounds(model).ibp(lo, up, spec)[0]
    with torch.no_grad():
        model.c1.weight.mul_(2.0)
        model.c1.bias.mul_(2.0)
    batch2 = Bounds(model).use_batch_stats(x).ibp(lo, up, spec)[0]
    run2 = Bounds(model).ibp(lo, up, spec)[0]
    assert torch.allclose(batch1, batch2, atol=1e-4)
    assert not torch.allclose(run1, run2, atol=1e-2)

