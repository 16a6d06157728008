"""The typed sections of a run config (docs/config.md): data, model, loss, a training stage,
evaluation, tracking. :class:`prunekit.config.RunConfig` composes them; ``prunekit.config``
re-exports every class here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DataConfig", "ModelConfig", "LossConfig", "StageConfig", "PretrainConfig", "EvalConfig",
           "TrackConfig"]


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
class PretrainConfig(StageConfig):
    """The dense stage; ``init`` (a prunekit checkpoint or a plain state dict of the configured
    model) replaces the training: the weights are loaded, strictly checked, and nothing is
    trained. In the config hashes it is the file's SHA-256, and absent when unset."""

    init: str | None = None


@dataclass
class EvalConfig:
    eps: float | None = None            #: None: the training loss's eps
    attacks: list[str] = field(default_factory=lambda: ["pgd-50-10", "apgd-ce", "autoattack"])
    n_examples: int | None = 1000       #: first N test examples (None: the whole test set)
    batch_size: int = 256
    seed: int = 0
    #: certifiers (prunekit.CERTIFIERS): ``ibp``, ``crown-ibp``, ``{name: smoothing, sigma: ..}``;
    #: an empty list is left out of the config hash
    certify: list[Any] = field(default_factory=list)


@dataclass
class TrackConfig:
    """Experiment tracking (prunekit.train.tracking); never part of a run's hash."""

    tensorboard: bool = False           #: TensorBoard event files (torch.utils.tensorboard)
    wandb: bool = False                 #: Weights & Biases
    wandb_mode: str = "offline"         #: offline | online
    wandb_project: str = "prunekit"
    dir: str | None = None              #: None: <workdir>/tracking
