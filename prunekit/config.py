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

This module holds :class:`RunConfig` (composition, method sections, stages, hashes,
validation); the section dataclasses are in prunekit/config_types.py and the reading helpers
(typed coercion, YAML, dotted keys, the digest) in prunekit/config_parse.py.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from prunekit.atomic import file_sha256
from prunekit.attacks.parse import parse_attack
from prunekit.certify.base import build_certifier
from prunekit.config_parse import (SEED_MAX, build_dataclass, check_data_options,
                                   check_finite_tree, check_stage, digest, load_yaml, set_dotted)
from prunekit.config_types import (DataConfig, EvalConfig, LossConfig, ModelConfig,
                                   PretrainConfig, StageConfig, TrackConfig)
from prunekit.devices import DEVICE_FORMS, is_device_name
from prunekit.errors import ConfigError
from prunekit.registry import PRUNERS, SEARCHERS
from prunekit.sections import SECTIONS, check_section

# the sections (prunekit/config_types.py), the reading helpers (prunekit/config_parse.py) and
# ConfigError (prunekit/errors.py) are public here too: ``from prunekit.config import X``
__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "LossConfig", "StageConfig", "PretrainConfig",
    "EvalConfig",
    "TrackConfig", "RunConfig", "load_yaml", "set_dotted",
]


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
    pretrain: PretrainConfig = field(default_factory=lambda: PretrainConfig(epochs=10, lr=0.1))
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
                if check_registries and (key in PRUNERS or key in SEARCHERS):
                    methods[key] = d.pop(key) or {}
                else:
                    hint = (f"; pruner sections: {', '.join(PRUNERS.names(aliases=True))}; "
                            f"searcher sections: {', '.join(SEARCHERS.names(aliases=True))}"
                            ) if check_registries else ""
                    raise ConfigError(f"unknown config field {key!r}; valid fields: "
                                      f"{', '.join(sorted(known - {'methods'}))}{hint}")
        cfg = build_dataclass(cls, d, "")
        for name, sec in methods.items():
            if not isinstance(sec, Mapping):
                raise ConfigError(f"config field {name!r} must be a mapping of hyperparameters")
            check_finite_tree(sec, name)
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
        if sec is None and self.method in PRUNERS:
            # accept the canonical name when the config used an alias (or vice versa)
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
        return build_dataclass(StageConfig, merged, f"{self.method}.{name}.")

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
        return _hash_init(d)

    def config_hash(self) -> str:
        return digest(self.resolved_for_hash())

    def pretrain_hash(self) -> str:
        """Key of the dense pretraining: shared by every method with the same value."""
        d = _asdict(self)
        keep = {k: d[k] for k in ("seed", "data", "model", "loss", "pretrain", "amp",
                                  "channels_last")}
        return digest(_hash_init(keep))

    # ---------------------------------------------------------------------------------------
    def validate(self, check_registries: bool = True) -> None:
        """Value checks; raises :class:`ConfigError` naming the first bad field."""
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1) (fraction removed), got {self.sparsity}")
        if not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed!r}")
        if not is_device_name(self.device):
            raise ConfigError(f"device must be {DEVICE_FORMS}, got {self.device!r}")
        for sname in ("pretrain", "prune", "finetune"):
            st = getattr(self, sname)
            check_stage(st, sname)
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
        init = self.pretrain.init
        if init is not None and not os.path.isfile(init):
            raise ConfigError(f"pretrain.init: no file {init!r} (a prunekit checkpoint or a "
                              f"state dict saved with torch.save)")
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
        if not self.eval.attacks:
            raise ConfigError("eval.attacks is empty; give at least one attack, e.g. "
                              "[pgd-10-4, apgd-ce, aa] (docs/evaluation.md)")
        check_data_options(self.data.options)
        if not check_registries:
            return
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
        for a in self.eval.attacks:
            parse_attack(a)
        if not isinstance(self.eval.certify, list):
            raise ConfigError(f"eval.certify must be a list of certifiers, got "
                              f"{self.eval.certify!r}")
        for c in self.eval.certify:
            build_certifier(c, float(self.eval.eps or 0.0))
        # the pruner (or searcher: prunekit.search.Searcher.check_config) validates its own
        # hyperparameters (one-line errors)
        try:
            if self.method in SEARCHERS:
                SEARCHERS.get(self.method).check_config(self)
            else:
                PRUNERS.build(self.method, sparsity=self.sparsity, **self.pruner_hparams())
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.method}: {exc}") from None


def _hash_init(d: dict[str, Any]) -> dict[str, Any]:
    """``pretrain.init`` in a hash: the file's content digest, the key absent when unset (so
    every hash of a config without it is unchanged)."""
    pre = d["pretrain"]
    init = pre.pop("init", None)
    if init is not None:
        pre["init_sha256"] = _init_digest(init)
    return d


def _init_digest(path: str) -> str:
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _asdict(cfg: "RunConfig") -> dict[str, Any]:
    """``dataclasses.asdict`` with each section's options flattened into it (hash-stable: no
    options, no new key)."""
    d = dataclasses.asdict(cfg)
    for key in ("data", "model", "loss"):
        d[key].update(d[key].pop("options"))
    if not d["eval"]["certify"]:    # optional field: existing hashes unchanged
        d["eval"].pop("certify")
    return d
