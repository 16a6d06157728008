"""Channel groups from torch-pruning's ``DependencyGraph`` and the analytic MAC count.

Channels coupled through residual additions (or concatenations) must be removed together, so
every channel pruner works on *groups* (DESIGN.md "Facts verified"): a CIFAR ResNet-18 has 12
groups (4 residual streams + 8 block-internal), VGG-16-BN 13 (one per conv).

Default exclusions (DESIGN.md conventions): the first ``nn.Conv2d`` (stem) and the last
``nn.Linear`` (classifier) are ignored. Like torch-pruning's own ``get_all_groups``, a group is
dropped entirely when any module whose *out*-channels it controls is ignored. In a ResNet the stem
feeds the stage-1 residual stream, so with the stem excluded the whole stage-1 stream group
(stem, every ``layer1.*.conv2`` / ``bn2`` and ``bn1``) is left dense: "first conv not pruned"
means its output channels are kept too. ``include_stem=True`` prunes that group (stem
out-channels included). The classifier's out-channels (the classes) only matter when
``root_module_types`` contains ``nn.Linear``; ``include_classifier=True`` then stops ignoring it.
Its *input* channels are always pruned together with the group that feeds them.

Gates act on a group's ``consumers`` (prunekit/pruning/gating.py). ``ChannelGroup.mask_sites``,
where a gate acts only for a group no layer consumes (the logits), are the output of every
normalisation module of the group, plus the output of every conv of the group that does not
feed *only* normalisation modules of the group (pre-activation blocks such as WRN add the conv
output to the stream before any BN). Either way a masked channel is exactly zero wherever it is
consumed, so removing it physically changes nothing (tests/test_compaction.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import torch
import torch_pruning as tp
from torch import Tensor, nn

from prunekit.models.common import stem_and_classifier
from prunekit.modes import eval_mode

__all__ = ["ChannelGroup", "ChannelGroups", "LayerInfo", "build_groups",
           "scatter_gate", "channel_norms"]

_CONV_LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class Slice:
    """The channels of one module that belong to a group: ``idxs`` in the module's own channel
    dimension, aligned with ``root_idxs`` (positions in the group's gate vector)."""

    idxs: Tensor
    root_idxs: Tensor

    @property
    def identity(self) -> bool:
        return bool(torch.equal(self.idxs, self.root_idxs))


def scatter_gate(sl: Slice, gate: Tensor, n: int, base: Tensor | None = None) -> Tensor:
    """Per-index multiplier of length ``n`` for one module dimension: ``gate[root_idxs]`` at
    ``idxs`` and ``base`` (ones by default) elsewhere."""
    if base is None:
        if sl.identity and n == gate.numel():
            return gate
        base = gate.new_ones(n)
    dev = gate.device
    return base.index_put((sl.idxs.to(dev),), gate[sl.root_idxs.to(dev)])


@dataclass
class ChannelGroup:
    """One set of coupled channels (one gate vector of length ``size``)."""

    index: int
    root: str                       #: name of the root conv (the graph's choice)
    size: int                       #: number of channels (= gate length)
    convs: list[str]                #: conv/linear modules whose OUT-channels the group controls
    norms: list[str]                #: normalisation modules of the group (masked at their output)
    mask_sites: list[str]           #: modules whose output is multiplied by the gate
    consumers: list[str]            #: conv/linear modules whose IN-channels the group feeds
    out_slices: dict[str, Slice] = field(default_factory=dict, repr=False)
    in_slices: dict[str, Slice] = field(default_factory=dict, repr=False)

    def site_gate(self, name: str, gate: Tensor, channels: int) -> Tensor:
        """The per-channel multiplier of mask site ``name`` (length ``channels``) from the group
        gate, honouring the idxs/root_idxs pairing."""
        return scatter_gate(self.out_slices[name], gate, channels)


@dataclass
class LayerInfo:
    """A conv / linear layer for the analytic MAC count: ``macs = out * in * per_pair``."""

    name: str
    in_channels: int
    out_channels: int
    per_pair: float      #: k^2 * H_out * W_out / groups for a conv, 1 (x extra dims) for a linear
    per_out: float = 0.0  #: bias MACs per kept out-channel (H_out * W_out, as torch-pruning counts)


class ChannelGroups:
    """The dependency groups of a model plus what the analytic MAC count needs.

    Attributes:
        groups: the prunable groups (order = the graph's order).
        dg: the torch-pruning ``DependencyGraph`` (holds references to ``model``'s modules and is
            used by :func:`prunekit.pruning.compaction.compact`).
        layers: every conv / linear module of the model, in module order.
        stem, classifier: names of the first conv and the last linear ("" if none).
    """

    def __init__(self, model: nn.Module, dg: tp.DependencyGraph, groups: list[ChannelGroup],
                 layers: dict[str, LayerInfo], stem: str, classifier: str) -> None:
        self.model = model
        self.dg = dg
        self.groups = groups
        self.layers = layers
        self.stem = stem
        self.classifier = classifier
        self.dense_macs = float(self.macs())
        self._param_info = _param_info(model, layers)
        self.dense_params = float(self.params())

    def cost(self, kind: str, gates: Sequence[Tensor] | None = None) -> Tensor:
        """``macs(gates)`` for ``kind="macs"``, ``params(gates)`` for ``kind="params"``."""
        return self.params(gates) if kind == "params" else self.macs(gates)

    def dense_cost(self, kind: str) -> float:
        """The dense model's MACs (``"macs"``) or parameter count (``"params"``)."""
        return self.dense_params if kind == "params" else self.dense_macs

    def params(self, gates: Sequence[Tensor] | None = None) -> Tensor:
        """Parameter count of the model with the given per-group gates (differentiable): every
        conv / linear weight ``kept_out * kept_in * k^2 / groups`` plus its bias per kept
        out-channel, every normalisation module's affine parameters per kept channel, every
        other parameter in full. For hard 0/1 gates it equals the physically compacted model's
        parameter count (what :func:`prunekit.pruning.accounting.measure` reports as
        ``nonzero_params`` for a channel-pruned model; tests/test_channel_params.py)."""
        per_pair, per_out, norm_per, other = self._param_info
        kept: dict[str, Tensor | float] = {n: float(l.out_channels) for n, l in self.layers.items()}
        kin: dict[str, Tensor | float] = {n: float(l.in_channels) for n, l in self.layers.items()}
        nk: dict[str, Tensor | float] = {n: float(c) for n, (c, _) in norm_per.items()}
        if gates is not None:
            for g, gate in zip(self.groups, gates):
                for name, sl in g.out_slices.items():
                    d = kept if name in kept else nk if name in nk else None
                    if d is not None:
                        d[name] = d[name] - len(sl.idxs) + gate[sl.root_idxs].sum()
                for name, sl in g.in_slices.items():
                    if name in kin:
                        kin[name] = kin[name] - len(sl.idxs) + gate[sl.root_idxs].sum()
        total: Tensor | float = float(other)
        for name in self.layers:
            total = total + kept[name] * (kin[name] * per_pair[name] + per_out[name])
        for name, (_, per) in norm_per.items():
            total = total + nk[name] * per
        return total if isinstance(total, Tensor) else torch.tensor(total)

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[ChannelGroup]:
        return iter(self.groups)

    def __getitem__(self, i: int) -> ChannelGroup:
        return self.groups[i]

    def sizes(self) -> list[int]:
        return [g.size for g in self.groups]

    def macs(self, gates: Sequence[Tensor] | None = None) -> Tensor:
        """Conv + linear MACs per example with the given per-group gates (soft or hard values,
        differentiable in them): ``sum_l kept_out_l * kept_in_l * k_l^2 * H_l * W_l / groups_l``
        plus ``kept_in * kept_out`` for linear layers (ANAS-P's L_MAC sum, DESIGN.md), plus one
        MAC per output element for a bias (as torch-pruning counts it). Without
        gates: the dense count. Equals torch-pruning's per-layer conv + linear count of the
        physically compacted model for hard 0/1 gates (tests/test_compaction.py)."""
        out_kept: dict[str, Tensor | float] = {n: float(l.out_channels) for n, l in self.layers.items()}
        in_kept: dict[str, Tensor | float] = {n: float(l.in_channels) for n, l in self.layers.items()}
        if gates is not None:
            if len(gates) != len(self.groups):
                raise ValueError(f"expected {len(self.groups)} gate vectors, got {len(gates)}")
            for g, gate in zip(self.groups, gates):
                for name, sl in g.out_slices.items():
                    if name in out_kept:
                        out_kept[name] = out_kept[name] - len(sl.idxs) + gate[sl.root_idxs].sum()
                for name, sl in g.in_slices.items():
                    if name in in_kept:
                        in_kept[name] = in_kept[name] - len(sl.idxs) + gate[sl.root_idxs].sum()
        total: Tensor | float = 0.0
        for name, layer in self.layers.items():
            total = total + out_kept[name] * (in_kept[name] * layer.per_pair + layer.per_out)
        return total if isinstance(total, Tensor) else torch.tensor(total)

    def name_of(self, module: nn.Module) -> str:
        return self.dg._module2name.get(module, "")


def _param_info(model: nn.Module, layers: Mapping[str, LayerInfo]) -> tuple[dict, dict, dict, int]:
    """Per conv/linear: weight parameters per (out, in) channel pair and bias per out-channel;
    per 1-D-affine normalisation module: (channels, parameters per channel); the rest."""
    named = dict(model.named_modules())
    per_pair, per_out, norm_per = {}, {}, {}
    counted = 0
    for name, info in layers.items():
        mod = named[name]
        w = mod.weight
        per_pair[name] = w.numel() / max(info.out_channels * info.in_channels, 1)
        per_out[name] = 1.0 if getattr(mod, "bias", None) is not None else 0.0
        counted += sum(p.numel() for p in mod.parameters(recurse=False))
    for name, mod in named.items():
        own = list(mod.parameters(recurse=False))
        if name in layers or not own or not all(p.dim() == 1 for p in own):
            continue
        c = own[0].numel()
        if isinstance(mod, nn.modules.batchnorm._NormBase) and all(p.numel() == c for p in own):
            norm_per[name] = (c, float(len(own)))
            counted += sum(p.numel() for p in own)
    other = sum(p.numel() for p in model.parameters()) - counted
    return per_pair, per_out, norm_per, other


def _layer_infos(model: nn.Module, example_inputs: Tensor) -> dict[str, LayerInfo]:
    infos: dict[str, LayerInfo] = {}
    handles = []

    def hook(name: str):
        def fn(mod: nn.Module, inp: tuple, out: Tensor) -> None:
            if isinstance(mod, nn.Linear):
                per = float(out[0].numel() // mod.out_features) if out.dim() > 1 else 1.0
                bias = per if mod.bias is not None else 0.0
                infos[name] = LayerInfo(name, mod.in_features, mod.out_features, per, bias)
            else:
                hw = float(out[0, 0].numel())
                per = float(mod.weight[0, 0].numel()) * hw / mod.groups
                bias = hw if mod.bias is not None else 0.0
                infos[name] = LayerInfo(name, mod.in_channels, mod.out_channels, per, bias)
        return fn

    for name, mod in model.named_modules():
        if isinstance(mod, _CONV_LINEAR):
            handles.append(mod.register_forward_hook(hook(name)))
    try:
        with eval_mode(model), torch.no_grad():
            model(example_inputs[:1])
    finally:
        for h in handles:
            h.remove()
    order = [n for n, m in model.named_modules() if n in infos]
    return {n: infos[n] for n in order}


def build_groups(model: nn.Module, example_inputs: Tensor, *, include_stem: bool = False,
                 include_classifier: bool = False, ignored_layers: Sequence[str] = (),
                 root_module_types: Sequence[type] = (nn.Conv2d,)) -> ChannelGroups:
    """Trace ``model`` with ``example_inputs`` and return its prunable channel groups.

    ``ignored_layers`` are extra module names whose out-channels must not be pruned (their
    groups are dropped). Tracing runs in eval mode (BN statistics untouched).
    Build the groups *before* adding hooks or gate parameters to the model.
    """
    named = dict(model.named_modules())
    stem, classifier = stem_and_classifier(model)
    ignore = [named[n] for n in ignored_layers]
    if stem and not include_stem:
        ignore.append(named[stem])
    if classifier and not include_classifier:
        ignore.append(named[classifier])
    for n in ignored_layers:
        if n not in named:
            raise ValueError(f"ignored layer {n!r} is not a module of the model")
    with eval_mode(model), torch.enable_grad():  # the graph traces through autograd
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
    layers = _layer_infos(model, example_inputs)
    out_fns = dg._out_channel_pruning_fn
    groups: list[ChannelGroup] = []
    for tg in dg.get_all_groups(ignored_layers=ignore, root_module_types=tuple(root_module_types)):
        root_mod = tg[0].dep.target.module
        root = dg._module2name.get(root_mod, "")
        size = len(tg[0].idxs)
        convs: list[str] = []
        norms: list[str] = []
        consumers: list[str] = []
        out_sl: dict[str, Slice] = {}
        in_sl: dict[str, Slice] = {}
        for item in tg.items:
            mod = item.dep.target.module
            name = dg._module2name.get(mod)
            if not isinstance(mod, nn.Module) or name is None or name not in named:
                continue  # functional ops (add, relu, flatten ...) and unwrapped parameters
            idxs = torch.as_tensor(list(item.idxs), dtype=torch.long)
            root_idxs = torch.as_tensor(list(item.root_idxs), dtype=torch.long)
            sl = Slice(idxs, root_idxs)
            if item.dep.handler in out_fns:
                if name in out_sl:
                    continue
                out_sl[name] = sl
                (convs if isinstance(mod, _CONV_LINEAR) else norms).append(name)
            elif isinstance(mod, _CONV_LINEAR) and name not in in_sl:
                in_sl[name] = sl
                consumers.append(name)
        sites = list(norms)
        norm_mods = {named[n] for n in norms}
        for c in convs:
            outs = [n.module for n in dg.module2node[named[c]].outputs]
            if not outs or not all(o in norm_mods for o in outs):
                sites.append(c)
        groups.append(ChannelGroup(len(groups), root, size, convs, norms, sites, consumers,
                                   out_sl, in_sl))
    return ChannelGroups(model, dg, groups, layers, stem, classifier)


def channel_norms(groups: ChannelGroups, weights: Mapping[str, Tensor] | None = None,
                  p: int = 2, detach: bool = True) -> list[Tensor]:
    """Per-channel norm of each group (root channel order) over the output filters of *all* the
    group's convs (coupled channels share one norm): the L2 norm of the concatenated filters
    (``p=2``) or the sum of their absolute values (``p=1``). ``weights`` maps conv name to the
    weight to use (default: every group conv's own weight); convs absent from it are skipped.
    ``detach=False`` keeps the graph (a differentiable group-lasso term, ``twin-rep-channel``)."""
    if weights is None:
        named = dict(groups.model.named_modules())
        weights = {n: named[n].weight for g in groups for n in g.convs}
    out = []
    for g in groups:
        acc = None
        for name in g.convs:
            if name not in weights:
                continue
            w = weights[name].detach() if detach else weights[name]
            sl = g.out_slices[name]
            rows = w.flatten(1)[sl.idxs.to(w.device)]
            v = rows.abs().sum(1) if p == 1 else rows.pow(2).sum(1)
            part = torch.zeros(g.size, dtype=v.dtype, device=v.device)
            part.index_add_(0, sl.root_idxs.to(v.device), v)
            acc = part if acc is None else acc + part
        if acc is None:
            raise ValueError(f"group {g.index} (root {g.root}) has no conv weight")
        out.append(acc if p == 1 else acc.sqrt())
    return out
