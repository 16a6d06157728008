"""Config sections as builder calls: ``data``, ``model`` and ``loss`` are ``{name, **options}``.

A section names a registry entry (``data.dataset``, ``model.name``, ``loss.name``) and carries
typed fields (docs/config.md) plus free *options*: every other key, passed to the builder as a
keyword. Both are checked against the builder's signature before any training
(:func:`check_section`), so a misspelt or foreign option is a one-line error naming it and the
builder's valid options. :func:`build_dataset`, :func:`build_model` and :func:`build_loss` make
the pipeline's calls.

Which typed fields reach the builder (``forwarded``): only those its signature names (a
``**kwargs`` catch-all does not count); one it does not name must stay at its default (a ``beta`` for a loss without one is an error, the
unused default is not). ``supplied`` keywords come from prunekit itself (the dataset's spec for
a model, the split for a dataset) and cannot be set as options.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from prunekit.errors import ConfigError, UserError, one_line
from prunekit.models.foreign import import_model, is_import_path
from prunekit.registry import DATASETS, LOSSES, MODELS, OptionError, Params, Registry

__all__ = ["Section", "SECTIONS", "check_section", "builder_kwargs", "build_dataset",
           "build_model", "build_loss"]


@dataclass(frozen=True)
class Section:
    """How one config section maps onto a registry's builders."""

    key: str                        #: config field: "data", "model", "loss"
    name_field: str                 #: the field naming the entry: "dataset" / "name"
    registry: Registry
    forwarded: tuple[str, ...]      #: typed fields passed on when the builder takes them
    supplied: tuple[str, ...] = ()  #: keywords prunekit sets (never options)


SECTIONS: dict[str, Section] = {
    "data": Section("data", "dataset", DATASETS, forwarded=("root", "download", "augment"),
                    supplied=("split",)),
    "model": Section("model", "name", MODELS, forwarded=("width",),
                     supplied=("num_classes", "in_channels", "mean", "std")),
    "loss": Section("loss", "name", LOSSES, forwarded=("eps", "step_size", "steps", "beta")),
}


def _fields(sec: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(sec) if f.name != "options"]


def _params(section: Section, name: str) -> Params:
    if section.registry is MODELS and is_import_path(name):
        import_model(name)  # a config names it: the user chose to run this code
    return section.registry.params(name)


def check_section(key: str, sec: Any) -> None:
    """Validate section ``key`` (a DataConfig / ModelConfig / LossConfig) against its builder;
    raises :class:`OptionError` (one line) naming the bad field or option and the valid ones."""
    section = SECTIONS[key]
    reg = section.registry
    name = getattr(sec, section.name_field)
    where = f"{key}.{section.name_field}"
    try:
        params = _params(section, name)
    except KeyError as exc:  # RegistryError: unknown name, bad import path
        raise OptionError(f"{where}: {exc}") from None
    own = [p for p in params.names if p not in section.forwarded + section.supplied]
    listed = own + (["any keyword"] if params.var_keyword else [])
    valid = f"its options: {', '.join(listed) or '(none)'}"
    lacking = [s for s in section.supplied if not params.accepts(s)]
    if lacking:
        raise OptionError(f"{where}: {reg.kind} {name!r} must take {', '.join(section.supplied)}"
                          f" (prunekit supplies them); it takes no {', '.join(lacking)}")
    fields = ", ".join(_fields(sec))
    for opt in sec.options:
        if opt in section.supplied:
            raise OptionError(f"{key}.{opt} is set by prunekit, not by the config "
                              f"({reg.kind} {name!r}, {valid})")
        if not params.accepts(opt):
            raise OptionError(f"unknown config field {key + '.' + opt!r}: neither a {key} field "
                              f"({fields}) nor an option of {reg.kind} {name!r} ({valid})")
    defaults = type(sec)()
    for f in section.forwarded:
        if f not in params.names and getattr(sec, f) != getattr(defaults, f):
            raise OptionError(f"{key}.{f}: {reg.kind} {name!r} takes no {f!r} ({valid})")
    given = [*sec.options, *section.supplied, *(f for f in section.forwarded if f in params.names)]
    missing = params.problems(given)[1]
    if missing:
        raise OptionError(f"{key}: {reg.kind} {name!r} needs option(s) {', '.join(missing)} "
                          f"({valid})")


def builder_kwargs(key: str, sec: Any, **supplied: Any) -> dict[str, Any]:
    """The keywords for section ``key``'s builder: the forwarded typed fields it takes, the
    prunekit-supplied ones, then the options."""
    section = SECTIONS[key]
    params = _params(section, getattr(sec, section.name_field))
    kw = {f: getattr(sec, f) for f in section.forwarded if f in params.names}
    kw.update(supplied)
    kw.update(sec.options)
    return kw


def build_dataset(data: Any, split: str, augment: Any) -> Dataset:
    """``DATASETS.build`` for a DataConfig; ``augment`` overrides ``data.augment``."""
    sec = dataclasses.replace(data, augment=augment)
    try:
        return DATASETS.build(data.dataset, **builder_kwargs("data", sec, split=split))
    except UserError:
        raise
    except ValueError as exc:  # a builder refusing its options: one line, not a traceback
        raise ConfigError(f"data ({data.dataset}): {one_line(exc)}") from None


def build_model(model: Any, spec: Any) -> nn.Module:
    """``MODELS.build`` for a ModelConfig on a dataset with DataSpec ``spec``."""
    return MODELS.build(model.name, **builder_kwargs(
        "model", model, num_classes=spec.num_classes, in_channels=spec.input_shape[0],
        mean=spec.mean, std=spec.std))


def build_loss(loss: Any) -> Any:
    """``LOSSES.build`` for a (resolved) LossConfig."""
    return LOSSES.build(loss.name, **builder_kwargs("loss", loss))
