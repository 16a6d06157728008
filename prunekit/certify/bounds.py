"""Interval bound propagation (Gowal et al. 2018, eq. 6) and CROWN-IBP (Zhang et al. 2020,
sec. 3) for the layers prunekit's models use, on a ``torch.fx`` trace of the model.

Own implementation (auto_LiRPA 0.3 on PyPI requires torch < 1.13; docs/design-decisions.md).
Supported nodes: ``Conv2d``, ``Linear``, ``BatchNorm1d/2d`` (an affine map: with the running
statistics, or -- :meth:`Bounds.use_batch_stats`, for training -- with a clean batch's),
``Normalize``, ``ReLU``, ``Flatten`` / ``flatten`` / ``view`` / ``reshape``, ``AvgPool2d`` /
``AdaptiveAvgPool2d`` / ``avg_pool2d`` / ``adaptive_avg_pool2d``, ``MaxPool2d`` (CROWN: the lower line
through the window's largest lower bound, upper the constant max of the upper bounds),
``Identity`` / ``Dropout`` (eval) and the residual ``add``. Any other node is an
:class:`~prunekit.errors.BoundError` naming it. Masks baked into ``weight`` (parametrizations,
HYDRA's scores) are seen; forward hooks are not, so a submodule with hooks is refused (hooks on
the root model, such as the training loop's forward counter, are ignored).

Specification: margins ``C z`` with ``C[b, j] = e_{y_b} - e_{j}`` over the ``j != y_b``
(:func:`margin_spec`); a point is verified when every lower margin bound is > 0. IBP folds ``C``
into the last ``Linear`` (Gowal et al. sec. 3, "elision of the last layer"). CROWN-IBP runs the
backward linear relaxation from ``C`` with IBP bounds for every ReLU's input; its ReLU lower
line is the adaptive one (slope 1 if ``u > -l`` else 0; Zhang et al. 2020 appendix, HYDRA
crown/bound_layers.py with ``same-slope`` and ``zero-lb`` False).

BatchNorm with batch statistics (auto_LiRPA's ``BoundBatchNormalization`` in training mode, as
used by Shi et al. 2021, shizhouxing/Fast-Certified-Robust-Training): after
:meth:`Bounds.use_batch_stats` ``(x)`` every BN node is the affine map ``gamma (t - mu) /
sqrt(var + eps) + beta`` with ``mu`` / ``var`` (biased) the per-channel statistics of the clean
batch ``x`` at that node -- differentiable, so the robust loss sees BN's scale invariance like the
clean train-mode pass does. The bounds are then sound for the network with BN frozen at those
statistics (not for the eval-mode network): a training device, never a certificate.
"""
from __future__ import annotations

import operator
from typing import Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.errors import UserError
from prunekit.models.common import Normalize

__all__ = ["BoundError", "Bounds", "margin_spec", "input_box", "verified"]

_RESHAPE_FN = (torch.flatten, torch.reshape)
_RESHAPE_METHOD = ("view", "reshape", "flatten", "contiguous")
_POOL_FN = (F.avg_pool2d, F.adaptive_avg_pool2d)
_RELU_FN = (F.relu, torch.relu)
_ADD_FN = (operator.add, torch.add)
_AFFINE_MODULES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, Normalize,
                   nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity, nn.Dropout)


class BoundError(UserError, ValueError):
    """A model the bound propagation cannot handle (one line naming the node)."""


def margin_spec(y: Tensor, num_classes: int) -> Tensor:
    """``C`` of shape ``[B, K-1, K]``: row ``j`` is ``e_y - e_j`` for every class ``j != y``."""
    eye = torch.eye(num_classes, device=y.device)
    c = eye[y].unsqueeze(1) - eye.unsqueeze(0)                     # [B, K, K]
    keep = torch.arange(num_classes, device=y.device).unsqueeze(0) != y.unsqueeze(1)
    return c[keep].view(y.shape[0], num_classes - 1, num_classes)


def input_box(x: Tensor, eps: float, lo: float = 0.0, hi: float = 1.0) -> tuple[Tensor, Tensor]:
    """The L-inf ball of radius ``eps`` around ``x`` intersected with the image box."""
    return (x - eps).clamp(min=lo), (x + eps).clamp(max=hi)


def _relu_lines(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """CROWN's linear bounds ``a_lo*x <= relu(x) <= a_up*x + b_up`` on ``[l, u]``."""
    active = l >= 0
    unstable = (l < 0) & (u > 0)
    denom = (u - l).clamp(min=1e-12)
    a_up = torch.where(unstable, u / denom, active.to(l.dtype))
    b_up = torch.where(unstable, -l * u / denom, torch.zeros_like(l))
    a_lo = torch.where(unstable, (u > -l).to(l.dtype), active.to(l.dtype))
    return a_lo, torch.zeros_like(l), a_up, b_up


def _bn_affine(t: Tensor, mu: Tensor, var: Tensor, m: nn.Module) -> Tensor:
    """BatchNorm ``m`` as the affine map with the given (differentiable) statistics."""
    shape = (1, -1) + (1,) * (t.dim() - 2)
    scale = (var + m.eps).rsqrt()
    if m.weight is not None:
        scale = scale * m.weight
    out = (t - mu.view(shape)) * scale.view(shape)
    return out + m.bias.view(shape) if m.bias is not None else out


class _LeafTracer(fx.Tracer):
    """Keep ``Normalize`` (and the torch leaves) as one node each."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, Normalize) or super().is_leaf_module(m, qualname)


class Bounds:
    """Bound propagation for one model (traced once).

    Example::

        b = Bounds(model)
        lo, up = b.ibp(*input_box(x, 8 / 255))                  # logit intervals
        m = b.margins(x, y, 8 / 255, method="crown-ibp")        # [B, K-1] lower margins
    """

    def __init__(self, model: nn.Module) -> None:
        for name, m in model.named_modules():
            hooks = [*m._forward_hooks.values(), *m._forward_pre_hooks.values()]
            # observers (the training-compute counter) do not change the function: allowed
            if any(not getattr(getattr(h, "__self__", None), "observes_only", False)
                   for h in hooks):
                raise BoundError(f"module {name or type(m).__name__!r} has forward hooks, which "
                                 f"bound propagation cannot see; finalize the pruner first")
        if not list(model.children()):   # a bare layer: trace it as one leaf node
            model = nn.Sequential(model)
        self.model = model
        try:
            self.graph = _LeafTracer().trace(model)
        except Exception as e:  # fx raises many types
            raise BoundError(f"cannot trace {type(model).__name__} with torch.fx: {e}") from e
        self.modules = dict(model.named_modules())
        self.bn_stats: dict[fx.Node, tuple[Tensor, Tensor]] = {}   # use_batch_stats
        self.nodes = [n for n in self.graph.nodes if n.op not in ("output",)]
        self.output = next(n for n in self.graph.nodes if n.op == "output").args[0]
        for n in self.nodes:
            self._kind(n)   # fail early on an unsupported node

    # ------------------------------------------------------------------------------------------
    def _kind(self, n: fx.Node) -> str:
        if n.op == "placeholder":
            return "input"
        if n.op == "call_module":
            m = self.modules[n.target]
            if isinstance(m, nn.ReLU):
                return "relu"
            if isinstance(m, nn.MaxPool2d):
                return "maxpool"
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.training \
                    and n not in self.bn_stats:
                raise BoundError(f"{n.target}: BatchNorm must be in eval mode for bounds "
                                 f"(or use Bounds.use_batch_stats)")
            if isinstance(m, _AFFINE_MODULES):
                return "affine"
        if n.op == "call_function":
            if n.target in _RELU_FN:
                return "relu"
            if n.target in _ADD_FN and all(isinstance(a, fx.Node) for a in n.args):
                return "add"
            if n.target in _RESHAPE_FN or n.target in _POOL_FN:
                return "affine"
        if n.op == "call_method" and n.target in _RESHAPE_METHOD:
            return "affine"
        raise BoundError(f"bound propagation does not support node {n.op} {n.target!r}; "
                         f"supported: conv, linear, BN (eval), Normalize, ReLU, max/avg pooling, "
                         f"flatten/view, residual add")

    def _fn(self, n: fx.Node) -> Callable[[Tensor], Tensor]:
        """The node as a function of its first (tensor) argument."""
        rest = n.args[1:]
        if n in self.bn_stats:
            m, (mu, var) = self.modules[n.target], self.bn_stats[n]
            return lambda t: _bn_affine(t, mu, var, m)
        if n.op == "call_module":
            return self.modules[n.target]
        if n.op == "call_function":
            return lambda t: n.target(t, *rest, **n.kwargs)
        return lambda t: getattr(t, n.target)(*rest, **n.kwargs)

    def use_batch_stats(self, x: Tensor) -> "Bounds":
        """Freeze every BatchNorm node at the per-channel mean / biased variance of the clean
        batch ``x`` at its input (kept differentiable; running statistics untouched)."""
        self.bn_stats = {}
        env: dict[fx.Node, Tensor] = {}
        for n in self.nodes:
            if n.op == "placeholder":
                env[n] = x
                continue
            args = [env[a] if isinstance(a, fx.Node) else a for a in n.args]
            m = self.modules.get(n.target) if n.op == "call_module" else None
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                t = args[0]
                dims = [0] + list(range(2, t.dim()))
                self.bn_stats[n] = (t.mean(dims), t.var(dims, unbiased=False))
            if self._kind(n) in ("affine", "relu", "maxpool"):
                env[n] = self._fn(n)(args[0])
            else:   # add
                env[n] = args[0] + args[1]
        return self

    def _affine_interval(self, n: fx.Node, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """``W`` positive/negative split through the centre-radius form (Gowal et al. eq. 6)."""
        f = self._fn(n)
        mid, rad = (u + l) / 2, (u - l) / 2
        m = self.modules.get(n.target) if n.op == "call_module" else None
        c = f(mid)
        if isinstance(m, nn.Conv2d):
            r = F.conv2d(rad, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)
        elif isinstance(m, nn.Linear):
            r = F.linear(rad, m.weight.abs())
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, Normalize)):
            r = (f(rad) - f(torch.zeros_like(rad))).abs()
        else:   # pooling, reshapes, identity: non-negative linear maps
            r = f(rad)
        return c - r, c + r

    def ibp(self, lo: Tensor, up: Tensor, spec: Tensor | None = None,
            keep: dict[fx.Node, tuple[Tensor, Tensor]] | None = None) -> tuple[Tensor, Tensor]:
        """Interval bounds of the output (``spec`` given: of ``spec @ output``, folded into a
        final ``Linear``). ``keep`` receives every node's interval."""
        env: dict[fx.Node, tuple[Tensor, Tensor]] = {} if keep is None else keep
        for n in self.nodes:
            k = self._kind(n)
            if k == "input":
                env[n] = (lo, up)
                continue
            if spec is not None and n is self.output and isinstance(
                    self.modules.get(n.target) if n.op == "call_module" else None, nn.Linear):
                m = self.modules[n.target]
                w = spec @ m.weight                                 # [B, S, in]
                b = spec @ m.bias if m.bias is not None else 0.0
                l, u = env[n.args[0]]
                mid, rad = (u + l) / 2, (u - l) / 2
                c = torch.einsum("bsi,bi->bs", w, mid) + b
                r = torch.einsum("bsi,bi->bs", w.abs(), rad)
                return c - r, c + r
            if k == "add":
                (l1, u1), (l2, u2) = env[n.args[0]], env[n.args[1]]
                env[n] = (l1 + l2, u1 + u2)
            elif k == "relu":
                l, u = env[n.args[0]]
                env[n] = (l.clamp(min=0), u.clamp(min=0))
            elif k == "maxpool":   # monotone: the max of the bounds
                f = self._fn(n)
                l, u = env[n.args[0]]
                env[n] = (f(l), f(u))
            else:
                env[n] = self._affine_interval(n, *env[n.args[0]])
        l, u = env[self.output]
        if spec is None:
            return l, u
        pos, neg = spec.clamp(min=0), spec.clamp(max=0)
        return (torch.einsum("bsk,bk->bs", pos, l) + torch.einsum("bsk,bk->bs", neg, u),
                torch.einsum("bsk,bk->bs", pos, u) + torch.einsum("bsk,bk->bs", neg, l))

    def crown_ibp(self, lo: Tensor, up: Tensor, spec: Tensor) -> Tensor:
        """Lower bound of ``spec @ output`` (``[B, S]``) by the backward linear relaxation with
        IBP intermediate bounds (Zhang et al. 2020 eq. 5-7); differentiable for training."""
        env: dict[fx.Node, tuple[Tensor, Tensor]] = {}
        self.ibp(lo, up, keep=env)
        bsz, s = spec.shape[:2]
        coef: dict[fx.Node, Tensor] = {self.output: spec}          # [B, S, *node shape]
        bias = torch.zeros(bsz, s, device=spec.device, dtype=spec.dtype)
        for n in reversed(self.nodes):
            a = coef.pop(n, None)
            if a is None:
                continue
            k = self._kind(n)
            if k == "input":
                pos, neg = a.clamp(min=0), a.clamp(max=0)
                dims = tuple(range(2, a.dim()))
                return bias + (pos * lo.unsqueeze(1)).sum(dims) + (neg * up.unsqueeze(1)).sum(dims)
            if k == "maxpool":
                a_in, b = self._maxpool_back(n, a, *env[n.args[0]])
                bias = bias + b
                src = n.args[0]
                coef[src] = coef[src] + a_in if src in coef else a_in
                continue
            if k == "add":
                for p in n.args:
                    coef[p] = coef[p] + a if p in coef else a
                continue
            src = n.args[0]
            if k == "relu":
                l, u = env[src]
                a_lo, b_lo, a_up, b_up = _relu_lines(l, u)
                pos, neg = a.clamp(min=0), a.clamp(max=0)
                a_in = pos * a_lo.unsqueeze(1) + neg * a_up.unsqueeze(1)
                dims = tuple(range(2, a.dim()))
                bias = bias + (pos * b_lo.unsqueeze(1)).sum(dims) + \
                    (neg * b_up.unsqueeze(1)).sum(dims)
            else:
                a_in, b = self._affine_back(n, a, env[src][0].shape[1:])
                bias = bias + b
            coef[src] = coef[src] + a_in if src in coef else a_in
        raise BoundError("the output does not depend on the input")

    def _affine_back(self, n: fx.Node, a: Tensor, in_shape: torch.Size) -> tuple[Tensor, Tensor]:
        """``A W`` (the vector-Jacobian product of the affine node) and ``A g(0)``."""
        f = self._fn(n)
        bsz, s = a.shape[:2]
        z = torch.zeros(1, *in_shape, device=a.device, dtype=a.dtype)
        g0 = f(z)                                                   # the affine offset
        x0 = torch.zeros(bsz * s, *in_shape, device=a.device, dtype=a.dtype, requires_grad=True)
        with torch.enable_grad():
            out = f(x0) - g0
            (a_in,) = torch.autograd.grad(out, x0, a.reshape(bsz * s, *a.shape[2:]),
                                          create_graph=torch.is_grad_enabled())
        dims = tuple(range(2, a.dim()))
        return a_in.view(bsz, s, *in_shape), (a * g0.unsqueeze(1)).sum(dims)

    def _maxpool_back(self, n: fx.Node, a: Tensor, l: Tensor,
                      u: Tensor) -> tuple[Tensor, Tensor]:
        """Max pooling: lower line ``x_i*`` (the input with the largest lower bound in the
        window, sound since max >= every input), upper bound the constant ``max u``."""
        f = self._fn(n)
        bsz, s = a.shape[:2]
        pos, neg = a.clamp(min=0), a.clamp(max=0)
        dims = tuple(range(2, a.dim()))
        bias = (neg * f(u).unsqueeze(1)).sum(dims)
        x0 = l.detach().unsqueeze(1).expand(bsz, s, *l.shape[1:]).reshape(bsz * s, *l.shape[1:])
        x0 = x0.clone().requires_grad_(True)
        with torch.enable_grad():
            (a_in,) = torch.autograd.grad(f(x0), x0, pos.reshape(bsz * s, *a.shape[2:]),
                                          create_graph=torch.is_grad_enabled())
        return a_in.view(bsz, s, *l.shape[1:]), bias

    # ------------------------------------------------------------------------------------------
    def margins(self, x: Tensor, y: Tensor, eps: float, method: str = "ibp",
                num_classes: int | None = None) -> Tensor:
        """Lower bounds ``[B, K-1]`` of ``z_y - z_j`` over the L-inf ``eps``-ball (clipped to
        [0, 1]). ``method``: ``ibp``, ``crown-ibp`` (the element-wise max of both, each sound)."""
        lo, up = input_box(x, eps)
        if num_classes is None:
            with torch.no_grad():
                num_classes = int(self.model(x[:1]).shape[1])
        spec = margin_spec(y, num_classes).to(x.dtype)
        lb = self.ibp(lo, up, spec)[0]
        if method == "ibp":
            return lb
        if method == "crown-ibp":
            return torch.maximum(lb, self.crown_ibp(lo, up, spec))
        raise BoundError(f"unknown bound method {method!r}; valid: ibp, crown-ibp")


def verified(model: nn.Module, x: Tensor, y: Tensor, eps: float, method: str = "ibp") -> Tensor:
    """Bool ``[B]``: every margin's lower bound > 0 (the point is verified robust at ``eps``)."""
    with torch.no_grad():
        return Bounds(model).margins(x, y, eps, method).gt(0).all(1)

