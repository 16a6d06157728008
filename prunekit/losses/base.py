"""The :class:`AdvLoss` interface shared by every adversarial training loss."""
from __future__ import annotations

import abc
import contextlib
from typing import Any, ClassVar, Iterator

import torch
from torch import Tensor, nn

from prunekit.attacks.pgd import PGD
from prunekit.attacks.precision import attack_precision
from prunekit.modes import eval_mode

__all__ = ["AdvLoss", "official_start_attack", "fp32", "accuracy", "adv_ce_outer"]


class AdvLoss(abc.ABC):
    """An adversarial training objective: inner maximisation (an attack) + outer loss.

    Args:
        eps: L-inf radius of the inner attack (inputs in [0, 1]).
        step_size: attack step; default ``eps / 4``.
        steps: attack iterations.
        beta: regulariser weight (TRADES / MART; ignored by ``pgd_at``).

    ``loss(model, x, y)`` returns ``(loss_tensor, stats)`` with ``stats`` a dict of floats
    (``loss``, ``clean_acc`` unless :attr:`clean_stats` is False, ``adv_acc``; accuracies in
    [0, 1] on this batch). The inner attack
    runs with the model in eval mode and in fp32 (no autocast) unless the training loop opted it
    into bf16 (:func:`prunekit.attacks.precision.training_attack_autocast`); the outer loss runs
    in whatever mode the caller had (``model.train()`` in training) and every module's mode is
    restored.

    A subclass writes two methods: :meth:`attack` (the inner maximisation) and :meth:`outer`
    (the objective on given clean and adversarial batches); ``loss(model, x, y)`` is
    ``outer(model, x, attack(model, x, y), y)`` and :meth:`clean` is its clean counterpart
    ``outer(model, x, x, y)``. The contract tests (tests/test_loss_contract.py) check, for every
    registered loss, that at ``eps = 0`` the two agree and that module modes are restored.

    Hooks of the training loop (:func:`prunekit.train.fit`), all optional:

    * :attr:`replays` -- ``fit`` runs every minibatch this many times, each replay a full step
      (forward, backward, ``optimizer.step()``, the pruner's ``on_step_end``). A replaying loss
      (free adversarial training) carries its perturbation from one call to the next: it reads
      the input gradient the loop's ``backward`` left on it at its next call.
    * :meth:`begin_epoch` -- called at every epoch start, after the epoch's re-seeding, with the
      stage's history so far (restored on resume): reset per-epoch state here, so that resuming
      at an epoch boundary stays exact.
    * :meth:`end_epoch` -- called after the epoch's last step; numbers it returns join the epoch
      record (the JSONL log), a ``"warnings"`` list of strings the stage's warnings.
    """

    registry_name: str = ""
    #: the perturbation model: ``"linf"`` (an attack in the eps-ball), ``"gaussian"`` (random
    #: noise, randomized smoothing) or ``"verified"`` (no attack: bounds over the whole ball)
    threat: ClassVar[str] = "linf"
    #: how many times the training loop runs each minibatch (free AT: ``m``); 1 for every
    #: loss that computes its perturbation afresh for each batch
    replays: int = 1
    #: whether the stats carry ``clean_acc``; False for a loss that never runs the model on the
    #: clean batch (free AT, FGSM-RS: a clean forward would add a third to a half to its step)
    clean_stats: bool = True

    def __init__(self, eps: float, step_size: float | None = None, steps: int = 10,
                 beta: float = 6.0) -> None:
        if eps is None or float(eps) < 0:
            raise ValueError(f"eps must be a number >= 0, got {eps!r}")
        if int(steps) < 0:
            raise ValueError(f"steps must be >= 0, got {steps!r}")
        if float(beta) < 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.eps = float(eps)
        self.step_size = float(self.eps / 4 if step_size is None else step_size)
        self.steps = int(steps)
        self.beta = float(beta)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Loss on the batch ``(x, y)`` (differentiable w.r.t. the model's parameters)."""
        return self.outer(model, x, self.attack(model, x, y), y)

    def clean(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The clean counterpart: the outer objective with no perturbation (``x_adv = x``)."""
        return self.outer(model, x, x.detach(), y)

    @abc.abstractmethod
    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The inner maximisation alone (adversarial batch, detached; the caller's module modes
        restored)."""

    @abc.abstractmethod
    def outer(self, model: nn.Module, x: Tensor, x_adv: Tensor,
              y: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The outer objective on the clean batch ``x`` and its adversarial version ``x_adv``,
        in the caller's mode."""

    def begin_epoch(self, epoch: int, history: list[dict[str, Any]]) -> None:
        """Called by ``fit`` at the start of epoch ``epoch`` (no-op by default)."""

    def end_epoch(self, model: nn.Module) -> dict[str, Any]:
        """Called by ``fit`` after the epoch's last step; extra epoch-record entries."""
        return {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(eps={self.eps:.5g}, step_size={self.step_size:.5g}, "
                f"steps={self.steps}, beta={self.beta:g})")


@contextlib.contextmanager
def fp32(x: Tensor) -> Iterator[None]:
    """Disable autocast (the outer loss' softmax/KL run in fp32)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def official_start_attack(model: nn.Module, x: Tensor, target: Tensor, pgd: PGD) -> Tensor:
    """Inner maximisation as in the official TRADES / MART code.

    The model is put in eval mode (and returned to the caller's mode afterwards), the iterate
    starts at ``x + 0.001 * N(0, 1)`` **without** clamping (as the official code), and each step
    is ``pgd.step``: ascend ``pgd.loss_fn(f(x_adv), target).sum()``, sign step, projection onto
    the eps-ball and clamp to [0, 1]. With ``steps == 0`` the start is clamped to [0, 1] (the
    official code clamps before the outer loss too).
    """
    x = x.detach()
    with eval_mode(model), attack_precision(x):
        # the noise is drawn in logical order, so a channels_last x gets the same start
        x_adv = x + 0.001 * torch.randn_like(x, memory_format=torch.contiguous_format)
        for _ in range(pgd.steps):
            x_adv = pgd.step(model, x, x_adv, target)
    return x_adv.clamp(0.0, 1.0).detach()


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Fraction of ``argmax(logits) == y``."""
    return float((logits.detach().argmax(1) == y).float().mean().item())


def adv_ce_outer(model: nn.Module, x: Tensor, x_adv: Tensor,
                 y: Tensor) -> tuple[Tensor, dict[str, float]]:
    """``CE(f(x_adv), y)`` (batch mean, fp32) in the caller's mode, with ``loss`` and ``adv_acc``
    only (the outer loss of ``free_at`` and ``fgsm_rs``, which never run the clean batch)."""
    logits = model(x_adv)
    with fp32(x):
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
    return loss, {"loss": float(loss.detach().item()), "adv_acc": accuracy(logits, y)}


def _stats(loss: Tensor, clean_logits: Tensor, adv_logits: Tensor, y: Tensor,
           **extra: Any) -> dict[str, float]:
    out = {"loss": float(loss.detach().item()), "clean_acc": accuracy(clean_logits, y),
           "adv_acc": accuracy(adv_logits, y)}
    out.update({k: float(v) for k, v in extra.items()})
    return out
