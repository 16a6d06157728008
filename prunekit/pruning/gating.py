"""Where a channel gate acts: on the *consumers* of the gated channels.

A channel pruner has one gate vector per dependency group (forward values 0/1). prunekit
multiplies each gated channel into the **in-channel weights of every layer that reads it** (the
group's ``consumers``: the next convs, the shortcut convs, the classifier), i.e.
``conv(x, W * g[in])`` instead of ``conv(x, W)``. That is the same as gating the channel after
everything that is channel-wise (BN, ReLU, pooling, the residual add and its ReLU) and just before
it is consumed, so:

* a gated channel is exactly zero at every consumer, and removing it physically
  (:mod:`prunekit.pruning.compaction`) leaves every output unchanged -- in train mode too, as
  batch-norm statistics are per channel (tests/test_compaction.py);
* a **closed gate still receives the training loss's gradient**:
  ``dL/dg_c = sum dL/d(W * g)[:, c] * W[:, c]``, i.e. the gradient of the consumers' input
  ``x_c`` (the activation the channel *would* contribute) -- non-zero although ``g_c = 0``.
  A gate folded into the BN affine *before* the ReLU (prunekit < 0.2) gets exactly zero there
  (``ReLU'(0) = 0``), so a closed channel could never re-open (issue 10).

The multiply is weight-sized, not activation-sized (cheap). Grouped convs and any other consumer
type get their *input* multiplied instead (a forward pre-hook, same values and gradient). A group
whose channels no layer consumes (a linear root's outputs = the logits) is gated at its mask
sites' outputs (:attr:`ChannelGroup.mask_sites`), the only place left.

Limitation: a channel-*mixing* op that is not a conv/linear (GroupNorm/LayerNorm over channels,
channel attention) between a group's convs and its consumers would see the un-gated channel; the
shipped models have none (masked == compacted is tested on each).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from prunekit.pruning.groups import ChannelGroups, Slice, scatter_gate

__all__ = ["ChannelGating"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _in_dim(mod: nn.Module) -> int:
    if isinstance(mod, nn.Linear):
        return mod.in_features
    return int(getattr(mod, "in_channels"))


def _gated_conv_forward(conv: nn.Module, multiplier: Callable[[], Tensor], x: Tensor) -> Tensor:
    w = conv.weight
    m = multiplier().to(device=w.device, dtype=w.dtype)
    return conv._conv_forward(x, w * m.view(1, -1, *([1] * (w.dim() - 2))), conv.bias)


def _gated_linear_forward(lin: nn.Linear, multiplier: Callable[[], Tensor], x: Tensor) -> Tensor:
    w = lin.weight
    return F.linear(x, w * multiplier().to(device=w.device, dtype=w.dtype), lin.bias)


class ChannelGating:
    """Installs a set of per-group gates on ``groups.model`` (see the module docstring).

    ``compute_gates()`` returns one gate per group; it is called once per model forward (a
    forward pre-hook on the model) and the result is shared by every consumer of that forward.
    """

    def __init__(self, groups: ChannelGroups, compute_gates: Callable[[], list[Tensor]]) -> None:
        self.groups = groups
        self.compute_gates = compute_gates
        self._gates: list[Tensor] | None = None
        self._handles: list[RemovableHandle] = []
        self._patched: list[nn.Module] = []

    def gates(self) -> list[Tensor]:
        """The gates of the forward in progress (computed now outside a forward)."""
        return self._gates if self._gates is not None else self.compute_gates()

    # -- install / remove -----------------------------------------------------------------------
    def install(self) -> None:
        self.remove()
        model = self.groups.model
        named = dict(model.named_modules())
        self._handles.append(model.register_forward_pre_hook(self._pre_forward))
        feeds: dict[str, list[tuple[int, Slice]]] = {}
        for gi, g in enumerate(self.groups):
            if not g.consumers:
                for site in g.mask_sites:
                    self._handles.append(named[site].register_forward_hook(self._site_hook(gi, site)))
                continue
            for name in g.consumers:
                feeds.setdefault(name, []).append((gi, g.in_slices[name]))
        for name, parts in feeds.items():
            mod = named[name]
            mult = self._multiplier(parts, _in_dim(mod))
            if isinstance(mod, _CONV) and mod.groups == 1:
                mod.forward = functools.partial(_gated_conv_forward, mod, mult)
                self._patched.append(mod)
            elif isinstance(mod, nn.Linear):
                mod.forward = functools.partial(_gated_linear_forward, mod, mult)
                self._patched.append(mod)
            else:
                self._handles.append(mod.register_forward_pre_hook(self._input_hook(mult)))

    def remove(self) -> None:
        """Remove every hook and forward patch (needed before ``deepcopy`` / compaction)."""
        for h in self._handles:
            h.remove()
        for mod in self._patched:
            mod.__dict__.pop("forward", None)
        self._handles, self._patched, self._gates = [], [], None

    # -- pieces ---------------------------------------------------------------------------------
    def _pre_forward(self, module: nn.Module, args: Any) -> None:
        self._gates = self.compute_gates()

    def _multiplier(self, parts: Sequence[tuple[int, Slice]], n: int) -> Callable[[], Tensor]:
        def mult() -> Tensor:
            gates = self.gates()
            out: Tensor | None = None
            for gi, sl in parts:
                out = scatter_gate(sl, gates[gi], n, out)
            assert out is not None
            return out

        return mult

    @staticmethod
    def _input_hook(mult: Callable[[], Tensor]):
        def hook(module: nn.Module, args: tuple) -> tuple:
            x = args[0]
            m = mult().to(device=x.device, dtype=x.dtype)
            return (x * m.view(1, -1, *([1] * (x.dim() - 2))), *args[1:])

        return hook

    def _site_hook(self, gi: int, site: str):
        sl = self.groups[gi].out_slices[site]

        def hook(module: nn.Module, inp: Any, out: Tensor) -> Tensor:
            gate = scatter_gate(sl, self.gates()[gi], out.shape[1]).to(out.device, out.dtype)
            return out * gate.view(1, -1, *([1] * (out.dim() - 2)))

        return hook
