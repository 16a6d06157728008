"""Run configuration: one typed, validated tree for one run of the three-stage pipeline.

A YAML file (``prunekit train --config``) or one expanded grid point (``prunekit bench``) is turned
into a :class:`RunConfig` by :meth:`RunConfig.from_dict`, which rejects unknown fields and bad
values with one line naming the field (docs/config.md lists every field).

The ``data``, ``model`` and ``loss`` sections are ``{name, **options}``: besides their typed
fields, every other key is an option of the named builder (``model: {name: wrn-28-4,
drop_rate: 0.3}``), kept in the section's ``options`` and checked against the builder's
signature (prunekit/sections.py). Options enter the hashes flattened into their section, so a
config without options hashes exactly as before options existed.

Method-specific settings live in a top-level section named after the pruner (``d2bc:``,
``hydra:``, ``admm:`` ...). Inside it, ``prune:`` and ``finetune:`` override the stage settings for
that method (HYDRA fine-tunes at lr 0.01, ANAS-P at 1e-4) and every other key is a pruner
hyperparameter passed to ``PRUNERS.build``. Only the section of the chosen ``method`` is used.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from prunekit.devices import DEVICE_FORMS, is_device_name
from prunekit.errors import ConfigError

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "LossConfig", "StageConfig", "EvalConfig",
    "TrackConfig", "RunConfig", "load_yaml", "set_dotted",
]


@dataclass
class DataConfig:
    dataset: str = "fashion_mnist"      #: name in ``prunekit.DATASETS``
    root: str | None = None             #: data folder / archive (None: the dataset's default)
    download: bool = False              #: passed to torchvision datasets
    train_subset: int | None = None     #: seeded subset of the training set (None: all)
    folds: int | None = None            #: K of K-fold cross-validation (None: no folds)
    fold: int | None = None             #: k (0-based) -- trains on the other K-1 folds
    augment: bool | None = None         #: None: the dataset's default (crop+flip for CIFAR-like)
    batch_size: int = 128
    num_workers: int = 0
    #: the dataset builder's own options (every other key of ``data:``)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str = "vgg-small"             #: name in ``prunekit.MODELS``
    width: float = 1.0                  #: channel-width multiplier
    #: the model builder's own options (every other key of ``model:``)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    name: str = "trades"                #: name in ``prunekit.LOSSES`` (pgd_at, trades, mart)
    eps: float | None = None            #: L-inf radius; None: the dataset's default eps
    step_size: float | None = None      #: None: eps / 4
    steps: int = 10
    beta: float = 6.0                   #: TRADES / MART regulariser weight (unused by pgd_at)
    #: the loss builder's own options (every other key of ``loss:``)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageConfig:
    epochs: int = 0
    lr: float = 0.1
    optimizer: str = "sgd"              #: sgd | adam
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 2e-4
    schedule: str = "cosine"            #: cosine | multistep | constant
    milestones: list[int] = field(default_factory=list)   #: epochs, for multistep
    lr_gamma: float = 0.1               #: multistep factor (ANAS-P halves: 0.5)


@dataclass
class EvalConfig:
    eps: float | None = None            #: None: the training loss's eps
    attacks: list[str] = field(default_factory=lambda: ["pgd-50-10", "apgd-ce", "autoattack"])
    n_examples: int | None = 1000       #: first N test examples (None: the whole test set)
    batch_size: int = 256
    seed: int = 0


@dataclass
class TrackConfig:
    """Experiment tracking (prunekit.train.tracking); never part of a run's hash."""

    tensorboard: bool = False           #: TensorBoard event files (torch.utils.tensorboard)
    wandb: bool = False                 #: Weights & Biases
    wandb_mode: str = "offline"         #: offline | online
    wandb_project: str = "prunekit"
    dir: str | None = None              #: None: <workdir>/tracking


@dataclass
class RunConfig:
    """One run: pretrain (dense) -> prune/search -> finalize -> fine-tune -> evaluate."""

    name: str = "run"
    seed: int = 0
    device: str = "auto"                #: auto | cpu | cuda | cuda:N
    amp: bool = False                   #: bf16 autocast in training where bf16 is native
    channels_last: bool = False         #: channels_last memory format in training
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    pretrain: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, lr=0.1))
    method: str = "dense"               #: name in ``prunekit.PRUNERS`` or ``prunekit.SEARCHERS``
    sparsity: float = 0.0               #: fraction removed, in [0, 1)
    prune: StageConfig = field(default_factory=lambda: StageConfig(epochs=5, lr=0.01))
    finetune: StageConfig = field(default_factory=lambda: StageConfig(epochs=5, lr=0.01))
    eval: EvalConfig = field(default_factory=EvalConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    #: per-method sections, keyed by pruner name: hyperparameters plus optional stage overrides
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    # ---------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, check_registries: bool = True) -> "RunConfig":
        """Build and validate. Top-level keys that are not fields are method sections only if
        they name a registered pruner; anything else is an error naming the field."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"config must be a mapping, got {type(d).__name__}")
        d = copy.deepcopy(dict(d))
        known = {f.name for f in dataclasses.fields(cls)}
        methods = dict(d.pop("methods", {}) or {})
        for key in list(d):
            if key not in known:
                if check_registries and (_is_pruner(key) or _is_searcher(key)):
                    methods[key] = d.pop(key) or {}
                else:
                    hint = (f"; pruner sections: {', '.join(_pruner_names())}; searcher "
                            f"sections: {', '.join(_searcher_names())}") if check_registries else ""
                    raise ConfigError(f"unknown config field {key!r}; valid fields: "
                                      f"{', '.join(sorted(known - {'methods'}))}{hint}")
        cfg = _build(cls, d, "")
        for name, sec in methods.items():
            if not isinstance(sec, Mapping):
                raise ConfigError(f"config field {name!r} must be a mapping of hyperparameters")
            _check_finite_tree(sec, name)
        cfg.methods = {k: dict(v) for k, v in methods.items()}
        cfg.validate(check_registries=check_registries)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = _asdict(self)
        methods = d.pop("methods")
        d.update(methods)
        return d

    # ---------------------------------------------------------------------------------------
    def method_section(self) -> dict[str, Any]:
        """The chosen method's section (empty if none)."""
        sec = self.methods.get(self.method)
        if sec is None and _is_pruner(self.method):
            # accept the canonical name when the config used an alias (or vice versa)
            from prunekit.registry import PRUNERS

            canon = PRUNERS.canonical(self.method)
            for k, v in self.methods.items():
                if k in PRUNERS and PRUNERS.canonical(k) == canon:
                    return dict(v)
        return dict(sec or {})

    def pruner_hparams(self) -> dict[str, Any]:
        """Hyperparameters for ``PRUNERS.build(method, sparsity=..., **hparams)``."""
        return {k: v for k, v in self.method_section().items() if k not in ("prune", "finetune")}

    def stage(self, name: str) -> StageConfig:
        """Stage settings (``pretrain``/``prune``/``finetune``) with the method's overrides."""
        if name not in ("pretrain", "prune", "finetune"):
            raise ConfigError(f"unknown stage {name!r}; valid stages: pretrain, prune, finetune")
        base: StageConfig = getattr(self, name)
        over = self.method_section().get(name) if name != "pretrain" else None
        if not over:
            return copy.deepcopy(base)
        merged = {**dataclasses.asdict(base), **over}
        return _build(StageConfig, merged, f"{self.method}.{name}.")

    @property
    def eps(self) -> float:
        """The training eps (after ``resolve``)."""
        if self.loss.eps is None:
            raise ConfigError("loss.eps is unresolved; call RunConfig.resolve(spec) first")
        return self.loss.eps

    def resolve(self, default_eps: float) -> "RunConfig":
        """Fill dataset-dependent defaults (eps, step sizes) in a copy."""
        cfg = copy.deepcopy(self)
        if cfg.loss.eps is None:
            cfg.loss.eps = default_eps
        if cfg.loss.step_size is None:
            cfg.loss.step_size = cfg.loss.eps / 4
        if cfg.eval.eps is None:
            cfg.eval.eps = cfg.loss.eps
        return cfg

    def resolved_for_hash(self) -> dict[str, Any]:
        """Everything that changes the result, with only the chosen method's section."""
        d = _asdict(self)
        d.pop("methods")
        d.pop("name")
        d.pop("track")  # where the curves go changes no result
        d["method_section"] = self.method_section()
        return d

    def config_hash(self) -> str:
        return _hash(self.resolved_for_hash())

    def pretrain_hash(self) -> str:
        """Key of the dense pretraining: shared by every method with the same value."""
        d = _asdict(self)
        keep = {k: d[k] for k in ("seed", "data", "model", "loss", "pretrain", "amp",
                                  "channels_last")}
        return _hash(keep)

    # ---------------------------------------------------------------------------------------
    def validate(self, check_registries: bool = True) -> None:
        """Value checks; raises :class:`ConfigError` naming the first bad field."""
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1) (fraction removed), got {self.sparsity}")
        if not is_device_name(self.device):
            raise ConfigError(f"device must be {DEVICE_FORMS}, got {self.device!r}")
        for sname in ("pretrain", "prune", "finetune"):
            st = getattr(self, sname)
            _check_stage(st, sname)
        d = self.data
        if d.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {d.batch_size}")
        if d.train_subset is not None and d.train_subset < 1:
            raise ConfigError(f"data.train_subset must be >= 1 or null, got {d.train_subset}")
        if (d.folds is None) != (d.fold is None):
            raise ConfigError("data.folds and data.fold go together (fold k of K folds)")
        if d.folds is not None and not (d.folds >= 2 and 0 <= d.fold < d.folds):  # type: ignore[operator]
            raise ConfigError(f"data.fold must be in [0, data.folds) with folds >= 2, got "
                              f"fold={d.fold}, folds={d.folds}")
        if self.model.width <= 0:
            raise ConfigError(f"model.width must be > 0, got {self.model.width}")
        lo = self.loss
        if lo.eps is not None and lo.eps < 0:
            raise ConfigError(f"loss.eps must be >= 0, got {lo.eps}")
        if lo.steps < 0:
            raise ConfigError(f"loss.steps must be >= 0, got {lo.steps}")
        if lo.step_size is not None and lo.step_size < 0:
            raise ConfigError(f"loss.step_size must be >= 0, got {lo.step_size}")
        if self.track.wandb_mode not in ("offline", "online"):
            raise ConfigError(f"track.wandb_mode must be offline or online, got "
                              f"{self.track.wandb_mode!r}")
        if self.eval.n_examples is not None and self.eval.n_examples < 1:
            raise ConfigError(f"eval.n_examples must be >= 1 or null, got {self.eval.n_examples}")
        if self.eval.eps is not None and self.eval.eps < 0:
            raise ConfigError(f"eval.eps must be >= 0, got {self.eval.eps}")
        if self.eval.batch_size < 1:
            raise ConfigError(f"eval.batch_size must be >= 1, got {self.eval.batch_size}")
        if not check_registries:
            return
        from prunekit.registry import PRUNERS, SEARCHERS
        from prunekit.sections import SECTIONS, check_section

        for key in SECTIONS:
            try:
                check_section(key, getattr(self, key))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        searchers = f"; searchers: {', '.join(SEARCHERS.names(aliases=True))}"
        if self.method not in PRUNERS and self.method not in SEARCHERS:
            raise ConfigError(f"method: unknown {PRUNERS.kind} {self.method!r}; valid: "
                              f"{', '.join(PRUNERS.names(aliases=True))}{searchers}")
        for name in self.methods:
            if name not in PRUNERS and name not in SEARCHERS:
                raise ConfigError(f"unknown pruner section {name!r}; valid: "
                                  f"{', '.join(PRUNERS.names(aliases=True))}{searchers}")
        for sname in ("prune", "finetune"):
            self.stage(sname)  # validates the overrides
        try:
            from prunekit.attacks.parse import parse_attack

            for a in self.eval.attacks:
                parse_attack(a)
        except ImportError:  # pragma: no cover - attacks package always present
            pass
        # the pruner (or searcher: prunekit.search.Searcher.check_config) validates its own
        # hyperparameters (one-line errors)
        try:
            if self.method in SEARCHERS:
                SEARCHERS.get(self.method).check_config(self)
            else:
                PRUNERS.build(self.method, sparsity=self.sparsity, **self.pruner_hparams())
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.method}: {exc}") from None


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


# ------------------------------------------------------------------------------------------------
def _check_stage(st: StageConfig, name: str) -> None:
    if st.epochs < 0:
        raise ConfigError(f"{name}.epochs must be >= 0, got {st.epochs}")
    if st.lr < 0:
        raise ConfigError(f"{name}.lr must be >= 0, got {st.lr}")
    if st.schedule not in ("cosine", "multistep", "constant"):
        raise ConfigError(f"{name}.schedule must be one of cosine, multistep, constant; "
                          f"got {st.schedule!r}")
    if st.optimizer not in ("sgd", "adam"):
        raise ConfigError(f"{name}.optimizer must be one of sgd, adam; got {st.optimizer!r}")


def _check_finite(value: Any, name: str) -> None:
    """NaN and +-inf are refused in every numeric field (one line naming it)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config field {name!r} must be a finite number, got {value!r}")


def _check_finite_tree(value: Any, name: str) -> None:
    """:func:`_check_finite` through a free-form method section (nested mappings, lists)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite_tree(v, f"{name}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite_tree(v, f"{name}[{i}]")
    elif isinstance(value, str):  # "nan" / "1e400" in a hyperparameter would become non-finite
        try:
            _check_finite(float(value), name)
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
    else:
        _check_finite(value, name)


def _hash(d: Any) -> str:
    blob = json.dumps(d, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _pruner_names() -> list[str]:
    from prunekit.registry import PRUNERS

    return PRUNERS.names(aliases=True)


def _searcher_names() -> list[str]:
    from prunekit.registry import SEARCHERS

    return SEARCHERS.names(aliases=True)


def _is_searcher(name: str) -> bool:
    from prunekit.registry import SEARCHERS

    return name in SEARCHERS


def _is_pruner(name: str) -> bool:
    try:
        from prunekit.registry import PRUNERS
    except ImportError:  # pragma: no cover
        return False
    return name in PRUNERS


def _asdict(cfg: "RunConfig") -> dict[str, Any]:
    """``dataclasses.asdict`` with each section's options flattened into it (hash-stable: no
    options, no new key)."""
    d = dataclasses.asdict(cfg)
    for key in ("data", "model", "loss"):
        d[key].update(d[key].pop("options"))
    return d


def _build(cls: type, d: Mapping[str, Any], prefix: str) -> Any:
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
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (int -> float allowed)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config field {name!r} must be a mapping")
        return _build(tp, value, name + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, name)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field {name!r} must be a list, got {value!r}")
        return [_coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config field {name!r} must be a mapping")
        # a section's free-form options are written as its own keys: model.options.x -> model.x
        _check_finite_tree(value, name[:-len(".options")] if name.endswith(".options") else name)
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
        _check_finite(value, name)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config field {name!r} must be a string, got {value!r}")
        return value
    _check_finite_tree(value, name)
    return value
