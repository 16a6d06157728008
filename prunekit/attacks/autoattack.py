"""Wrapper around the official AutoAttack (Croce & Hein, ICML 2020; PyPI ``pyautoattack``,
the fra31/auto-attack code). APGD, APGD-T, FAB and Square are *called*, never re-implemented.

What the wrapper adds around ``pyautoattack.AutoAttack.run_standard_evaluation``:

- it runs on the device the model is on, in fp32, with the model in eval mode (pyautoattack
  never calls ``model.eval()`` itself); the caller's mode is restored;
- per-example robust flags (``y_adv == y``, AutoAttack's own bookkeeping);
- AutoAttack reseeds the *global* torch RNG inside every ``perturb`` (``torch.manual_seed(seed)``
  per batch); the global CPU/CUDA RNG state is saved and restored around the call, so prunekit's
  own random stream is not disturbed;
- its check messages (randomised defence, probability outputs, zero gradients, Square beating
  the rest, ...) go to the logger ``"auto-attack"``; they are captured (not printed) and returned
  as ``messages``; anything it prints to stdout is captured too;
- single attacks (``apgd-ce``, ``apgd-t``, ...) and ``autoattack-fast`` use the parameters of
  the *standard* version (APGD-CE 100 iterations, 1 restart; APGD-T 9 target classes x 1
  restart; FAB-T 9 targets; Square 5000 queries), so APGD-CE alone equals AutoAttack's first
  stage. Deviation: with fewer than 10 classes the targeted attacks use ``n_classes - 1``
  target classes (the official code would index out of range).

APGD's momentum is fixed at 0.75 inside pyautoattack (``a = 0.75``, Croce & Hein eq. 3-4); its
``rho = 0.75`` is the step-size-halving threshold, not the momentum. Neither is configurable here.
"""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from prunekit.attacks.base import AttackOutcome
from prunekit.attacks.precision import strict_fp32
from prunekit.devices import model_device
from prunekit.modes import eval_mode
from prunekit.seeding import preserve_rng

__all__ = ["AutoAttackRunner", "capture_autoattack_messages", "AA_LOGGER"]

log = logging.getLogger(__name__)
AA_LOGGER = "auto-attack"


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def capture_autoattack_messages() -> Iterator[list[str]]:
    """Capture pyautoattack's logger (and stdout) while active.

    WARNING-and-above records and printed lines are appended to the yielded list; DEBUG/INFO
    progress records are forwarded to prunekit's logger at DEBUG level.
    """
    lg = logging.getLogger(AA_LOGGER)
    handler = _ListHandler()
    saved = (lg.level, lg.propagate)
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    lg.addHandler(handler)
    out: list[str] = []
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield out
    finally:
        lg.removeHandler(handler)
        lg.setLevel(saved[0])
        lg.propagate = saved[1]
        for rec in handler.records:
            msg = rec.getMessage()
            if rec.levelno >= logging.WARNING:
                out.append(msg)
            else:
                log.debug("autoattack: %s", msg)
        out.extend(line.strip() for line in buf.getvalue().splitlines() if line.strip())


class AutoAttackRunner:
    """Run official AutoAttack attacks on a batch and return per-example robust flags.

    Args:
        eps: radius; norm: ``"Linf"``, ``"L2"`` or ``"L1"``.
        attacks: pyautoattack attack names, run in this order, each only on the points still
            robust (AutoAttack's own scheme).
        version: ``"standard"`` (attacks must then be the standard list) or ``"custom"``.
        seed: passed to AutoAttack (it reseeds with it for every batch); never None, so a run
            is reproducible.

    Example::

        out = AutoAttackRunner(8 / 255, attacks=("apgd-ce",)).run(model, x, y)
        out.robust.float().mean()
    """

    STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")

    def __init__(self, eps: float, norm: str = "Linf", attacks: Sequence[str] = STANDARD,
                 version: str = "standard", seed: int = 0) -> None:
        if norm not in ("Linf", "L2", "L1"):
            raise ValueError(f"norm must be one of Linf, L2, L1; got {norm!r}")
        if version not in ("standard", "custom"):
            raise ValueError(f"version must be 'standard' or 'custom'; got {version!r}")
        if version == "standard" and tuple(attacks) != self.STANDARD:
            raise ValueError(f"version 'standard' runs {', '.join(self.STANDARD)}; "
                             "use version='custom' for another list")
        self.eps = float(eps)
        self.norm = norm
        self.attacks = tuple(attacks)
        self.version = version
        self.seed = int(seed)

    def __repr__(self) -> str:
        return (f"AutoAttackRunner(eps={self.eps:.5g}, norm={self.norm!r}, "
                f"attacks={self.attacks}, version={self.version!r}, seed={self.seed})")

    def build(self, model: nn.Module, device: torch.device, n_classes: int = 10):  # -> AutoAttack
        """The configured ``pyautoattack.AutoAttack`` object (standard-version parameters)."""
        from pyautoattack import AutoAttack

        if self.version == "standard":
            aa = AutoAttack(model, eps=self.eps, norm=self.norm, seed=self.seed,
                            device=device, version="standard")
        else:
            aa = AutoAttack(model, attacks=list(self.attacks), eps=self.eps, norm=self.norm,
                            seed=self.seed, device=device, version="custom")
            _standard_parameters(aa, self.norm)
        aa.verbose = True  # its progress goes to the captured logger at DEBUG level
        targets = max(1, min(aa.apgd_targeted.n_target_classes, n_classes - 1))
        aa.apgd_targeted.n_target_classes = targets
        aa.fab.n_target_classes = min(aa.fab.n_target_classes, max(1, n_classes - 1))
        return aa

    def run(self, model: nn.Module, x: Tensor, y: Tensor,
            batch_size: int | None = None) -> AttackOutcome:
        """Attack ``(x, y)`` (moved to the model's device); robust flags come back on the CPU."""
        device = model_device(model)
        x = x.detach().to(device=device, dtype=torch.float32)
        y = y.detach().to(device=device, dtype=torch.long)
        bs = int(batch_size or x.shape[0])
        with eval_mode(model), strict_fp32(), preserve_rng(device), \
                capture_autoattack_messages() as messages:
            with torch.no_grad():
                n_classes = int(model(x[:1]).shape[-1])
            aa = self.build(model, device, n_classes)
            x_adv, y_adv = aa.run_standard_evaluation(x, y, batch_size=bs)
        robust = (y_adv.to(y.device) == y).cpu()
        return AttackOutcome(robust=robust, x_adv=x_adv.detach(), messages=list(messages))


def _standard_parameters(aa, norm: str) -> None:
    """The parameters ``AutoAttack._set_version('standard')`` sets, without touching the list
    of attacks (so a custom list runs each attack as the standard version would)."""
    if norm in ("Linf", "L2"):
        aa.apgd.n_restarts = 1
        aa.apgd_targeted.n_target_classes = 9
    else:  # L1
        aa.apgd.use_largereps = True
        aa.apgd_targeted.use_largereps = True
        aa.apgd.n_restarts = 5
        aa.apgd_targeted.n_target_classes = 5
    aa.fab.n_restarts = 1
    aa.apgd_targeted.n_restarts = 1
    aa.fab.n_target_classes = 9
    aa.square.n_queries = 5000
