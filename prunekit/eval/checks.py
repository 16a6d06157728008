"""Sanity checks run on every evaluation (docs/evaluation.md#checks).

Each check returns ``None`` or a :class:`CheckFailure` (a short code for the CSV ``checks``
column and a one-line message for ``EvalResult.warnings``). The accuracy checks read only the
attacks' declared metadata (:class:`~prunekit.attacks.AttackMeta`: box, components, reference,
seeded), never their names. The gradient-masking checks follow
Carlini et al. 2019 ("On evaluating adversarial robustness", sec. 5) and AutoAttack's
``checks`` module (Croce & Hein 2020): a black-box attack beating white-box ones, or PGD far
above AutoAttack, mean the gradients are not informative.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from prunekit.attacks.base import AttackMeta
from prunekit.errors import UserError

__all__ = ["NonFiniteModelError", "check_finite_weights", "CheckFailure", "check_train_mode", "check_fp32", "check_randomized",
           "count_unverified", "unverified_failure", "check_accuracies", "autoattack_failures",
           "SQUARE_TOL", "PGD_AA_GAP"]

#: Square must beat the best white-box accuracy by more than this (AutoAttack's own 0.2 %).
SQUARE_TOL = 0.002
#: PGD accuracy this far above AutoAttack's (10 points) signals gradient masking.
PGD_AA_GAP = 0.10


class NonFiniteModelError(UserError, ValueError):
    """The model to evaluate has NaN or infinite weights: every accuracy would be meaningless."""


def check_finite_weights(model: nn.Module) -> None:
    """Raise :class:`NonFiniteModelError` naming the first floating-point parameter or buffer
    holding a NaN or an infinity (a NaN weight makes every output NaN, argmax then picks class 0:
    a constant "accuracy" under every attack and a false "randomised outputs" diagnosis)."""
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise NonFiniteModelError(
                    f"the model has non-finite weights ({bad} NaN/inf value(s) in {name!r}); "
                    f"its accuracies would be meaningless: re-train or use another checkpoint")


@dataclass(frozen=True)
class CheckFailure:
    code: str
    message: str


def check_train_mode(model: nn.Module) -> CheckFailure | None:
    """The model was handed over in train mode (it is evaluated in eval mode anyway)."""
    n = sum(1 for m in model.modules() if m.training)
    if n == 0:
        return None
    return CheckFailure("train_mode", f"model handed over in train mode ({n} modules training); "
                                      "evaluated in eval mode and returned to train mode")


def check_fp32(model: nn.Module) -> CheckFailure | None:
    """Floating parameters/buffers that are not fp32 (fp16 gradients mask attacks)."""
    bad = sorted({str(t.dtype) for t in [*model.parameters(), *model.buffers()]
                  if t.is_floating_point() and t.dtype != torch.float32})
    if not bad:
        return None
    return CheckFailure("not_fp32", f"model has {', '.join(bad)} tensors; evaluated an fp32 copy")


@torch.no_grad()
def check_randomized(model: nn.Module, x: Tensor, y: Tensor,
                     tol: float = 1e-4) -> CheckFailure | None:
    """Two forward passes on the same batch (model already in eval mode) disagree: a
    randomised model, whose robustness PGD/APGD without EOT overestimate."""
    a, b = model(x), model(x)
    na = a / (a.flatten(1).norm(dim=1).view(-1, *[1] * (a.dim() - 1)) + 1e-10)
    nb = b / (b.flatten(1).norm(dim=1).view(-1, *[1] * (b.dim() - 1)) + 1e-10)
    diff = float((na - nb).flatten(1).norm(dim=1).max()) if a.numel() else 0.0
    flips = int(((a.argmax(1) == y) != (b.argmax(1) == y)).sum())
    if diff <= tol and flips == 0:
        return None
    return CheckFailure("randomized", f"randomised outputs: two forward passes on the same batch "
                                      f"differ (normalised L2 diff {diff:.2e}, {flips} "
                                      "correctness flips); use EOT-aware attacks")


@torch.no_grad()
def count_unverified(model: nn.Module, x: Tensor, y: Tensor, clean: Tensor, robust: Tensor,
                     x_adv: Tensor, eps: float, norm: str) -> list[int]:
    """Re-check every point an attack broke (clean-correct, not robust): inside the eps-ball,
    in [0, 1], misclassified. Returns ``[n_bad, n_outside, n_still_correct, n_broken]``."""
    broken = (clean.bool() & ~robust.bool()).to(x.device)
    if not bool(broken.any()):
        return [0, 0, 0, 0]
    xb, ab, yb = x[broken], x_adv.to(x.device)[broken], y[broken]
    d = (ab - xb).flatten(1)
    dist = {"Linf": d.abs().amax(1), "L2": d.norm(dim=1), "L1": d.abs().sum(1)}[norm]
    outside = (dist > eps * (1 + 1e-4) + 1e-6) | (ab.flatten(1).amin(1) < -1e-6) \
        | (ab.flatten(1).amax(1) > 1 + 1e-6)
    still_right = model(ab).argmax(1) == yb
    return [int((outside | still_right).sum()), int(outside.sum()), int(still_right.sum()),
            int(broken.sum())]


def unverified_failure(name: str, counts: Sequence[int], norm: str) -> CheckFailure | None:
    """A failure if any adversarial example of attack ``name`` did not re-verify."""
    bad, outside, right, broken = counts
    if bad == 0:
        return None
    return CheckFailure("unverified_adv", f"{name}: {bad} of {broken} adversarial examples do "
                                          f"not re-verify ({outside} outside the {norm} ball or "
                                          f"[0,1], {right} classified correctly on re-check)")


def _is_prefix(a: AttackMeta, e: AttackMeta) -> bool:
    return len(a.components) < len(e.components) and \
        e.components[:len(a.components)] == a.components


def check_accuracies(metas: Sequence[AttackMeta], flags: Mapping[str, Tensor],
                     square_tol: float = SQUARE_TOL,
                     pgd_aa_gap: float = PGD_AA_GAP) -> list[CheckFailure]:
    """Consistency of the accuracies of the attacks run (``flags`` keyed by ``meta.name``):

    - ``robust_above_clean``: any attack above clean, or robust points not clean-correct;
    - ``aa_above_apgd``: a ``seeded`` ensemble above an attack that is a prefix of its stages
      (AutoAttack above APGD-CE): impossible for a deterministic model;
    - ``square_beats_whitebox``: a black-box attack below the best white-box one;
    - ``pgd_far_above_aa``: a non-reference white-box attack (PGD, plug-ins) far above the
      strongest reference (official AutoAttack) attack that is not black-box.
    """
    out: list[CheckFailure] = []
    clean = flags["clean"].bool()
    acc = {m.name: int(flags[m.name].sum()) / max(1, clean.numel()) for m in metas}
    clean_acc = int(clean.sum()) / max(1, clean.numel())
    for m in metas:
        extra = int((flags[m.name].bool() & ~clean).sum())
        if acc[m.name] > clean_acc or extra:
            out.append(CheckFailure("robust_above_clean",
                                    f"{m.name}: robust accuracy {acc[m.name]:.2%} above clean "
                                    f"{clean_acc:.2%} ({extra} points robust but not clean-"
                                    "correct)"))
    for e in metas:
        for a in metas:
            if not (e.seeded and a.seeded and _is_prefix(a, e)):
                continue
            extra = int((flags[e.name].bool() & ~flags[a.name].bool()).sum())
            if acc[e.name] > acc[a.name] or extra:
                out.append(CheckFailure("aa_above_apgd",
                                        f"{e.name} accuracy {acc[e.name]:.2%} above "
                                        f"{a.name}'s {acc[a.name]:.2%} ({extra} points "
                                        f"survive it but not {a.label}): non-deterministic "
                                        "model?"))
    white = [m for m in metas if m.box == "white"]
    for m in metas:
        if m.box == "black" and white:
            best = min(white, key=lambda w: acc[w.name])
            if acc[m.name] < acc[best.name] - square_tol:
                out.append(CheckFailure("square_beats_whitebox",
                                        f"gradient masking? black-box {m.name} ({acc[m.name]:.2%})"
                                        f" beats the best white-box attack {best.name} "
                                        f"({acc[best.name]:.2%})"))
    refs = [m for m in metas if m.reference and m.box != "black"]
    if refs:
        strongest = min(refs, key=lambda w: acc[w.name])
        for m in metas:
            if m.box == "white" and not m.reference and \
                    acc[m.name] - acc[strongest.name] > pgd_aa_gap:
                out.append(CheckFailure("pgd_far_above_aa",
                                        f"gradient masking? {m.name} accuracy {acc[m.name]:.2%} "
                                        f"is {100 * (acc[m.name] - acc[strongest.name]):.1f} "
                                        f"points above {strongest.name}'s "
                                        f"{acc[strongest.name]:.2%}"))
    return out


def autoattack_failures(messages: Sequence[str]) -> list[CheckFailure]:
    """AutoAttack's own check messages (pyautoattack ``checks``), de-duplicated."""
    return [CheckFailure("autoattack_check", f"AutoAttack: {m}") for m in dict.fromkeys(messages)]
