"""Bring-your-own models: a plain PyTorch factory turned into a prunekit model builder.

Three ways in, one wrapper (:func:`wrap_factory`):

* ``model: {name: "package.module:factory", ...}`` in a run config (:func:`import_model`);
* an entry point in the ``prunekit.models`` group (``MODELS.adapter``);
* ``torchvision:<name>``, any torchvision classification model (``MODELS.resolver``), built
  from scratch (``weights=None``; pretrained weights are never loaded).

The factory is called with ``num_classes`` and, when its signature names them, ``in_channels``
and ``width``, plus the section's options. If it does not take ``in_channels`` and its first
``nn.Conv2d`` expects another channel count (torchvision's 3 for a 1-channel dataset), that conv
is replaced by one with the dataset's channels (same shape otherwise, PyTorch's default init).
Unless the factory takes both ``mean`` and ``std`` (then it normalises itself, like prunekit's
own builders), the network is wrapped as ``ForeignModel(normalize=Normalize(mean, std),
net=factory(...))`` so inputs are in [0, 1] like every prunekit model. The builder records
``model.prunekit_spec`` (the registry name and every keyword), so checkpoints rebuild it.

Trust: a checkpoint alone never imports code. ``package.module:factory`` names are imported by
a run config (the user chose to run it, like a plug-in) or by an explicit :func:`import_model`;
:func:`prunekit.checkpoint.load_model` needs ``allow_import=True`` for them.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import re
from typing import Any, Callable, Sequence

from torch import Tensor, nn

from prunekit.models.common import Normalize, find_stem, set_spec
from prunekit.registry import MODELS, OptionError, RegistryError, builder_params

__all__ = ["ForeignModel", "wrap_factory", "import_model", "is_import_path", "torchvision_model"]

log = logging.getLogger(__name__)

#: keywords every prunekit model builder takes (set by the pipeline from the dataset's spec)
BUILDER_ARGS = ("num_classes", "in_channels", "width", "mean", "std")
_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
TORCHVISION = "torchvision:"


class ForeignModel(nn.Module):
    """``net(normalize(x))``: a foreign network behind prunekit's input normalisation."""

    def __init__(self, normalize: Normalize, net: nn.Module) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x: Tensor) -> Any:
        return self.net(self.normalize(x))


def _replace_stem(net: nn.Module, in_channels: int, name: str) -> None:
    """Swap the first conv for one taking ``in_channels`` inputs (if it takes another count)."""
    first = find_stem(net)
    if first is None or first[1].in_channels == in_channels:
        return  # no conv (an MLP takes what its first layer takes) or nothing to adapt
    path, conv = first
    if conv.groups != 1:
        raise OptionError(f"model {name!r}: its first conv is grouped; cannot adapt it to "
                          f"{in_channels} input channels")
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, 1, conv.bias is not None, conv.padding_mode)
    parent, _, attr = path.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, new.to(conv.weight.device))
    log.info("model %s: stem conv %s now takes %d input channels (was %d)", name, path,
             in_channels, conv.in_channels)


def wrap_factory(name: str, factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """A prunekit model builder ``(num_classes, in_channels, width, mean, std, **options)`` for
    ``factory``; its signature lists the factory's own options (for config validation)."""
    params = builder_params(factory)
    if "num_classes" not in params.names and not params.var_keyword:
        raise OptionError(f"model {name!r}: the factory {_qualname(factory)} must take "
                          f"num_classes (it takes {', '.join(params.names) or 'nothing'})")
    takes = set(params.names)
    normalises = {"mean", "std"} <= takes
    width_default = next((p.default for p in _signature(factory) if p.name == "width"), None)

    def build(num_classes: int = 10, in_channels: int = 3, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None, **options: Any) -> nn.Module:
        # in the signature only if the factory takes it (then always recorded in the spec)
        width = options.pop("width", width_default if "width" in takes else None)
        kw: dict[str, Any] = {**options, "num_classes": num_classes}
        if width is not None:
            kw["width"] = width
        if "in_channels" in takes:
            kw["in_channels"] = in_channels
        if normalises:
            kw.update(mean=mean, std=std)
        try:
            net = factory(**kw)
        except TypeError as exc:  # e.g. an option a **kwargs factory passes on and rejects
            raise OptionError(f"model {name!r}: {str(exc).splitlines()[0]}") from None
        if not isinstance(net, nn.Module):
            raise OptionError(f"model {name!r}: the factory returned a {type(net).__name__}, "
                              f"not an nn.Module")
        if "in_channels" not in takes:
            _replace_stem(net, in_channels, name)
        model = net if normalises else ForeignModel(Normalize(mean, std, in_channels), net)
        set_spec(model, name, num_classes, in_channels, 1.0 if width is None else width, mean,
                 std, **options)
        if width is None:  # the spec holds exactly the builder's keywords
            model.prunekit_spec.pop("width")  # type: ignore[union-attr]
        return model

    # the signature: prunekit's keywords, then the factory's own (``width`` only if it takes it)
    base = [p for p in inspect.signature(build).parameters.values()
            if p.kind is not p.VAR_KEYWORD]
    own = [p for p in _signature(factory) if p.name not in BUILDER_ARGS or p.name == "width"]
    rest = [p.replace(kind=p.KEYWORD_ONLY) for p in own if p.kind is not p.VAR_KEYWORD]
    var = [p for p in own if p.kind is p.VAR_KEYWORD]
    build.__signature__ = inspect.Signature(base + rest + var)  # type: ignore[attr-defined]
    build.__doc__ = factory.__doc__
    build.__name__ = build.__qualname__ = getattr(factory, "__name__", "build")
    build.factory = factory  # type: ignore[attr-defined]
    return build


def _signature(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]
    return [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY,
                                            p.VAR_KEYWORD)]


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def is_import_path(name: str) -> bool:
    """``package.module:attr`` (and not ``torchvision:<name>``)."""
    return bool(_PATH.match(name)) and not name.startswith(TORCHVISION)


def import_model(path: str) -> str:
    """Import the factory at ``package.module:attr``, register it in ``MODELS`` under ``path``
    (wrapped by :func:`wrap_factory`) and return ``path``. Idempotent."""
    if path in MODELS:
        return path
    if not is_import_path(path):
        raise RegistryError(f"model {path!r} is not of the form package.module:factory")
    module, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise RegistryError(f"model {path!r}: cannot import {module!r} ({exc}); install its "
                            f"package or put it on PYTHONPATH") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RegistryError(f"model {path!r}: {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise RegistryError(f"model {path!r}: {attr!r} is not callable")
    MODELS.add(path, wrap_factory(path, obj))
    return path


def torchvision_model(name: str) -> Callable[..., nn.Module] | None:
    """Builder for ``torchvision:<name>`` (``MODELS.resolver``); None for other names."""
    if not name.startswith(TORCHVISION):
        return None
    from torchvision import models as tvm

    tv_name = name[len(TORCHVISION):]
    available = tvm.list_models(module=tvm)
    if tv_name not in available:
        raise RegistryError(f"unknown model {name!r}: torchvision has no classification model "
                            f"{tv_name!r}; valid: {', '.join(available)}")
    fn = tvm.get_model_builder(tv_name)

    def factory(num_classes: int = 1000, **kwargs: Any) -> nn.Module:
        if "weights" in kwargs or "progress" in kwargs:
            raise OptionError(f"model {name!r}: pretrained weights are not loaded (prunekit "
                              f"trains from scratch); remove the 'weights' option")
        return fn(weights=None, progress=False, num_classes=num_classes, **kwargs)

    factory.__doc__ = f"torchvision.models.{tv_name} (from scratch); {fn.__doc__ or ''}".strip()
    factory.__name__ = tv_name
    return wrap_factory(name, factory)


def _adapt_entry_point(name: str, obj: Any) -> Callable[..., nn.Module]:
    return wrap_factory(name, obj)


MODELS.adapter = _adapt_entry_point
MODELS.resolver = torchvision_model
MODELS.resolver_hint = ("; or 'torchvision:<name>' (torchvision classification models) or "
                        "'package.module:factory' (your own)")
