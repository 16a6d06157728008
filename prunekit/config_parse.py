"""Reading a run config: mappings to typed dataclasses with one-line errors naming the field
(:func:`build_dataclass`, :func:`coerce`: unknown fields, wrong types, NaN / inf refused), the
YAML loader, dotted-key writes (``--set a.b=c``), and the stable digest the config hashes use.
Used by :class:`prunekit.config.RunConfig`; ``prunekit.config`` re-exports the public names."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import types
import typing
from typing import Any, Mapping

from prunekit.config_types import StageConfig
from prunekit.errors import ConfigError

__all__ = ["SEED_MAX", "check_data_options", "load_yaml", "set_dotted", "build_dataclass", "coerce", "check_stage", "check_finite",
           "check_finite_tree", "digest"]


def set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    """Write ``value`` at ``a.b.c`` in a nested mapping, creating missing sections; a path
    through a non-mapping is a :class:`ConfigError` naming it."""
    parts = dotted.strip().split(".")
    cur = d
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {dotted!r}: {'.'.join(parts[:i + 1])!r} is not a section")
        cur = nxt
    cur[parts[-1]] = copy.deepcopy(value)


def load_yaml(path: str) -> dict[str, Any]:
    """Read a YAML mapping (safe loader)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a YAML text file (it holds binary data); give a YAML "
                          f"file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def check_stage(st: StageConfig, name: str) -> None:
    """Value checks of one training stage (``name``: pretrain, prune, finetune)."""
    if st.epochs < 0:
        raise ConfigError(f"{name}.epochs must be >= 0, got {st.epochs}")
    if st.lr < 0:
        raise ConfigError(f"{name}.lr must be >= 0, got {st.lr}")
    if st.schedule not in ("cosine", "multistep", "constant"):
        raise ConfigError(f"{name}.schedule must be one of cosine, multistep, constant; "
                          f"got {st.schedule!r}")
    if st.optimizer not in ("sgd", "adam"):
        raise ConfigError(f"{name}.optimizer must be one of sgd, adam; got {st.optimizer!r}")


def check_finite(value: Any, name: str) -> None:
    """NaN and +-inf are refused in every numeric field (one line naming it)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config field {name!r} must be a finite number, got {value!r}")


def check_finite_tree(value: Any, name: str) -> None:
    """:func:`check_finite` through a free-form method section (nested mappings, lists)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_finite_tree(v, f"{name}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite_tree(v, f"{name}[{i}]")
    elif isinstance(value, str):  # "nan" / "1e400" in a hyperparameter would become non-finite
        try:
            check_finite(float(value), name)
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
    else:
        check_finite(value, name)


#: the largest seed: torch generators and numpy take a 64-bit seed, prunekit derives signed ones
SEED_MAX = 2 ** 63 - 1


def check_data_options(options: Mapping[str, Any]) -> None:
    """The dataset options whose meaning is fixed across builders, checked before anything
    runs (a builder would otherwise fail deep inside torch): ``num_classes`` >= 2, ``size`` >= 1,
    ``input_shape`` positive integers, ``seed`` in [0, 2**63 - 1]."""
    def _int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if "num_classes" in options and not (_int(options["num_classes"])
                                         and options["num_classes"] >= 2):
        raise ConfigError(f"data.num_classes must be an integer >= 2 (a classifier needs two "
                          f"classes), got {options['num_classes']!r}")
    if "size" in options and options["size"] is not None and not (_int(options["size"])
                                                                   and options["size"] >= 1):
        raise ConfigError(f"data.size must be an integer >= 1 or null, got {options['size']!r}")
    if "input_shape" in options:
        shape = options["input_shape"]
        if (not isinstance(shape, (list, tuple)) or len(shape) != 3
                or not all(_int(v) and v >= 1 for v in shape)):
            raise ConfigError(f"data.input_shape must be [channels, height, width], positive "
                              f"integers, got {shape!r}")
    if "seed" in options and not (_int(options["seed"]) and 0 <= options["seed"] <= SEED_MAX):
        raise ConfigError(f"data.seed must be an integer in [0, 2**63 - 1], got "
                          f"{options['seed']!r}")


def digest(d: Any) -> str:
    """First 16 hex digits of the SHA-256 of ``d`` as canonical JSON (the config hashes)."""
    blob = json.dumps(d, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_dataclass(cls: type, d: Mapping[str, Any], prefix: str) -> Any:
    """``cls(**d)`` with every value checked against its annotation (:func:`coerce`); a
    ``{name, **options}`` section keeps its unknown keys as ``options``; ``prefix`` names the
    section in errors (``"data."``)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    if "options" in fields:  # a {name, **options} section: unknown keys are builder options
        d = dict(d)
        extra = {k: d.pop(k) for k in list(d) if k not in fields}
        opts = d.pop("options", None) or {}
        if not isinstance(opts, Mapping):
            raise ConfigError(f"config field {prefix + 'options'!r} must be a mapping")
        d["options"] = {**dict(opts), **extra}
    for key, value in d.items():
        if key not in fields or key == "methods":
            valid = ", ".join(sorted(k for k in fields if k != "methods"))
            raise ConfigError(f"unknown config field {prefix + str(key)!r}; valid fields: {valid}")
        kwargs[key] = coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (int -> float allowed)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config field {name!r} must be a mapping")
        return build_dataclass(tp, value, name + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, name)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field {name!r} must be a list, got {value!r}")
        return [coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config field {name!r} must be a mapping")
        # a section's free-form options are written as its own keys: model.options.x -> model.x
        check_finite_tree(value, name[:-len(".options")] if name.endswith(".options") else name)
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config field {name!r} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config field {name!r} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML reads 1e-4 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config field {name!r} must be a number, got {value!r}")
        check_finite(value, name)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config field {name!r} must be a string, got {value!r}")
        return value
    check_finite_tree(value, name)
    return value
