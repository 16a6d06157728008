"""FlyingBird's mask arithmetic (Chen et al., ICLR 2022; official code
VITA-Group/Sparsity-Win-Robust-Generalization, ``sparselearning/core.py``, ``sparselearning/igq.py``):
per-layer densities of the sparse initialisation (IGQ, ERK, uniform) in exact integer counts,
the cosine-decaying death rate, and one drop/regrow update of a layer's mask.

Pure functions on tensors (no model, no optimizer) so the mechanism is testable in isolation;
:mod:`baselines.flyingbird` drives them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["INITS", "GROWTHS", "layer_densities", "integer_counts", "random_mask",
           "death_rate_at", "drop_and_grow"]

INITS = ("igq", "erk", "uniform")
GROWTHS = ("random", "gradient")


def _igq(counts: np.ndarray, keep: float) -> np.ndarray:
    """IGQ quotas (official ``igq.py:igq_quotas`` / ``bs_force_igq``): layer ``l`` keeps the
    fraction ``1 / (1 + F n_l)`` of its ``n_l`` weights, ``F`` found by bisection so the total
    kept is ``keep``. (Official: a recursive bisection on ``F`` in ``[0, 1e20]``; here on
    ``log F``, to float precision.)"""
    def kept(f: float) -> float:
        return float((counts / (1.0 + f * counts)).sum())

    lo, hi = -60.0, 60.0              # log F; kept() decreases in F
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if kept(math.exp(mid)) > keep:
            lo = mid
        else:
            hi = mid
    return 1.0 / (1.0 + math.exp(0.5 * (lo + hi)) * counts)


def _erk(shapes: Sequence[Sequence[int]], counts: np.ndarray, keep: float,
         power: float = 1.0) -> np.ndarray:
    """Erdos-Renyi-Kernel densities (official ``core.py:Masking.init`` mode ``fixed_ERK``,
    lines 99-162): density ``eps * (sum(shape) / prod(shape)) ** power``; a layer whose density
    would exceed 1 is made dense and ``eps`` re-solved for the rest."""
    raw = np.array([(sum(s) / float(np.prod(s))) ** power for s in shapes])
    dense = np.zeros(len(shapes), dtype=bool)
    while True:
        eps = (keep - counts[dense].sum()) / (raw[~dense] * counts[~dense]).sum()
        over = (~dense) & (eps * raw > 1.0)
        if not over.any():
            break
        dense |= raw == raw[over].max()
    return np.where(dense, 1.0, eps * raw)


def layer_densities(init: str, shapes: Sequence[Sequence[int]], density: float) -> list[float]:
    """Per-layer densities of the sparse initialisation over layers of ``shapes`` whose
    weighted mean (by weight count) is ``density``."""
    counts = np.array([float(np.prod(s)) for s in shapes])
    keep = density * counts.sum()
    if init == "igq":
        d = _igq(counts, keep)
    elif init == "erk":
        d = _erk(shapes, counts, keep)
    elif init == "uniform":
        d = np.full(len(shapes), density)
    else:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    return [float(x) for x in np.clip(d, 0.0, 1.0)]


def integer_counts(densities: Sequence[float], sizes: Sequence[int], total: int) -> list[int]:
    """Kept weights per layer: ``density * size`` rounded so the counts sum to exactly
    ``total`` (largest remainder), each in ``[1, size]``."""
    real = [d * n for d, n in zip(densities, sizes)]
    out = [min(n, max(1, int(math.floor(r)))) for r, n in zip(real, sizes)]
    order = sorted(range(len(out)), key=lambda i: real[i] - math.floor(real[i]), reverse=True)
    while sum(out) < total:
        room = [i for i in order if out[i] < sizes[i]]
        if not room:
            break
        for i in room[:total - sum(out)]:
            out[i] += 1
    while sum(out) > total:
        spare = [i for i in reversed(order) if out[i] > 1]
        if not spare:
            break
        for i in spare[:sum(out) - total]:
            out[i] -= 1
    return out


def random_mask(shape: Sequence[int], count: int, generator: torch.Generator) -> Tensor:
    """Bool mask with exactly ``count`` ones at uniformly random positions (CPU)."""
    n = int(np.prod(shape))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=generator)[:count]] = True
    return mask.view(*shape)


def death_rate_at(step: int, total: int, rate: float, rate_min: float, decay: str) -> float:
    """The death rate after ``step`` optimizer steps of ``total``: the official ``CosineDecay``
    (``core.py:15-24``: ``CosineAnnealingLR(T_max = len(loader) * epochs, eta_min=0.005)`` on
    the rate, stepped once per optimizer step in ``Masking.step``) in closed form, or constant
    (``decay_schedule="constant"``)."""
    if decay == "constant":
        return rate
    return rate_min + (rate - rate_min) * (1.0 + math.cos(math.pi * step / max(total, 1))) / 2.0


def _pick(scores: Tensor, eligible: Tensor, k: int, largest: bool) -> Tensor:
    """Flat indices of the ``k`` eligible entries of largest (smallest) ``scores``."""
    fill = float("-inf") if largest else float("inf")
    s = torch.where(eligible, scores.float(), torch.full_like(scores, fill, dtype=torch.float))
    return torch.topk(s.flatten(), k, largest=largest, sorted=False).indices


def drop_and_grow(weight: Tensor, mask: Tensor, death_rate: float, growth: str,
                  grad: Tensor | None, generator: torch.Generator) -> tuple[Tensor, int]:
    """One FlyingBird topology update of a layer (official ``core.py:truncate_weights``,
    ``magnitude_death`` lines 528-551, ``random_growth`` 622-637, ``gradient_growth`` 647-671).

    Drop the ``ceil(death_rate * active)`` active weights of smallest ``|w|``, then regrow as
    many among the inactive ones (the just-dropped included, as the official candidate set
    ``new_mask == 0``): ``growth="random"`` uniformly at random, ``"gradient"`` those of largest
    ``|grad|`` (RigL). A fully dense layer is left alone (official ``magnitude_death`` returns
    early). Returns the new bool mask (same count of ones) and the number dropped.

    Deviation: exact counts. The official random growth draws each inactive weight with
    probability ``k / n`` (the count only in expectation) and the magnitude drop thresholds at
    the k-th smallest ``|w|`` (ties drop more); here exactly ``k`` leave and ``k`` return, so the
    density is constant through every update.
    """
    mask = mask.bool()
    active = int(mask.sum())
    if active == mask.numel() or active == 0:
        return mask.clone(), 0
    n_drop = min(active, int(math.ceil(death_rate * active)))
    if n_drop == 0:
        return mask.clone(), 0
    flat = mask.flatten().clone()
    flat[_pick(weight.detach().abs().flatten(), flat, n_drop, largest=False)] = False
    inactive = ~flat
    if growth == "random":
        scores = torch.rand(flat.numel(), generator=generator).to(flat.device)
    elif growth == "gradient":
        if grad is None:
            raise RuntimeError("flyingbird: gradient growth needs the weight's .grad of the last "
                               "step (on_step_end must run before the next zero_grad)")
        scores = grad.detach().abs().flatten()
    else:
        raise ValueError(f"growth must be one of {', '.join(GROWTHS)}; got {growth!r}")
    flat[_pick(scores, inactive, n_drop, largest=True)] = True
    return flat.view_as(mask), n_drop
