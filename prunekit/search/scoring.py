"""LRNAS contribution scores and the alpha update (official ``ranking.compute_value`` and
``ranking.update_alpha``, fyqsama/LRNAS).

Players are the ``2 x E x n_ops`` (cell type, edge, op) triples of the supernet (224 for 14
edges and 8 ops). For each of ``samples`` random permutations, on one validation batch:

1. clean and FGSM accuracy of the full supernet (``softmax(alpha)`` weights); the FGSM batch is
   computed once, on the full supernet;
2. the players are removed one by one in the permutation's order (their op weight set to 0,
   cumulatively) and after each removal the clean and FGSM accuracy are measured again;
3. a player's value on this permutation is the drop in clean accuracy and the drop in FGSM
   accuracy relative to the **full** supernet (not to the previous coalition: a cumulative
   removal curve, not a true Shapley marginal -- as in the official code); each of the two
   value vectors is z-normalised over the players, and they are summed.

The score of a player is its mean over the permutations. The update (``update_alphas``)
z-normalises the scores of each cell type over its ``E x n_ops`` entries (sample std) and
returns ``step * (momentum * prev + (1 - momentum) * z)``; the caller adds it to the alphas and
feeds it back as ``prev`` (the *scaled* increment is the momentum term, as in the official loop).

The supernet is in eval mode throughout (the official ``compute_value`` runs right after
``infer``, which sets eval mode); BatchNorm uses its running statistics, so the clean and the
adversarial batch are scored in one forward pass (identical to two passes).

Deviations (docs/search.md): a z-normalisation over values that are all equal (std 0) gives 0
instead of NaN (the official code would write NaN into the alphas); FGSM is prunekit's PGD with
one step of size eps from the clean point (torchattacks' FGSM: the same) in pixel space.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from prunekit.attacks.pgd import PGD
from prunekit.modes import eval_mode
from prunekit.search.supernet import SearchNetwork

__all__ = ["contribution_scores", "update_alphas", "zscore"]

CELLS = ("normal", "reduce")


def zscore(v: Tensor, unbiased: bool) -> Tensor:
    """``(v - mean) / std`` over all entries; all-equal values give zeros."""
    std = v.std(unbiased=unbiased) if v.numel() > 1 else v.new_zeros(())
    if not bool(std > 0):
        return torch.zeros_like(v)
    return (v - v.mean()) / std


@torch.no_grad()
def _accuracies(net: SearchNetwork, x: Tensor, x_adv: Tensor, y: Tensor,
                weights: dict[str, Tensor] | None) -> tuple[float, float]:
    logits = net(torch.cat([x, x_adv]), weights)
    hit = (logits.argmax(1) == torch.cat([y, y])).float()
    n = y.shape[0]
    return float(hit[:n].mean()), float(hit[n:].mean())


def contribution_scores(net: SearchNetwork, batches: Sequence[tuple[Tensor, Tensor]], eps: float,
                        generator: torch.Generator
                        ) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Mean z-scored contribution of every (cell, edge, op): ``{"normal": [E, n_ops],
    "reduce": [E, n_ops]}`` (float64, on the CPU), and the full supernet's mean clean / FGSM
    accuracy on the batches. One permutation per batch, drawn from ``generator``."""
    E, n_ops = net.alphas_normal.shape
    per_cell = E * n_ops
    n_players = 2 * per_cell
    total = torch.zeros(n_players, dtype=torch.float64)
    fgsm = PGD(eps, step_size=eps, steps=1, start=None)
    base = {"clean_acc": 0.0, "fgsm_acc": 0.0}
    with eval_mode(net):
        for x, y in batches:
            perm = torch.randperm(n_players, generator=generator).tolist()
            x_adv = fgsm(net, x, y)
            acc0, adv0 = _accuracies(net, x, x_adv, y, None)
            base["clean_acc"] += acc0 / len(batches)
            base["fgsm_acc"] += adv0 / len(batches)
            full = net.op_weights()
            weights = {k: v.detach().clone() for k, v in full.items()}
            drop_clean = torch.zeros(n_players, dtype=torch.float64)
            drop_adv = torch.zeros(n_players, dtype=torch.float64)
            for p in perm:
                cell, rest = divmod(p, per_cell)
                edge, op = divmod(rest, n_ops)
                weights[CELLS[cell]][edge, op] = 0.0
                acc, adv = _accuracies(net, x, x_adv, y, weights)
                drop_clean[p] = acc0 - acc
                drop_adv[p] = adv0 - adv
            total += zscore(drop_clean, unbiased=False) + zscore(drop_adv, unbiased=False)
    mean = total / max(len(batches), 1)
    return ({"normal": mean[:per_cell].view(E, n_ops), "reduce": mean[per_cell:].view(E, n_ops)},
            base)


def update_alphas(scores: dict[str, Tensor], prev: dict[str, Tensor], step: float = 0.1,
                  momentum: float = 0.8) -> dict[str, Tensor]:
    """The alpha increment per cell type: ``step * (momentum * prev + (1 - momentum) *
    zscore(scores))`` (sample std, as ``torch.Tensor.std`` in the official code)."""
    out = {}
    for cell in CELLS:
        z = zscore(scores[cell].to(prev[cell]), unbiased=True)
        out[cell] = step * (momentum * prev[cell] + (1.0 - momentum) * z)
    return out
