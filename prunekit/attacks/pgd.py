"""L-inf projected gradient descent (Madry et al., ICLR 2018, eq. 2), shared by the training
losses (inner maximisation) and the evaluator (PGD-STEPS-RESTARTS).

``x_{t+1} = clip_[0,1]( Proj_{B_inf(x, eps)}( x_t + alpha * sign(grad_x L(f(x_t), y)) ) )``

Starts: ``"uniform"`` (U[-eps, eps], Madry / the evaluation protocol), ``"normal"``
(``x + 0.001 * N(0, 1)``, the official TRADES and MART code), or ``None`` (start at x).
"""
from __future__ import annotations

from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.attacks.precision import attack_precision
from prunekit.modes import eval_mode

__all__ = ["PGD", "LossFn"]

#: per-example loss to ascend: ``loss_fn(logits, y) -> Tensor[B]``
LossFn = Callable[[Tensor, Tensor], Tensor]
Start = Optional[Literal["uniform", "normal"]]


def _ce(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits, y, reduction="none")


class PGD:
    """L-inf PGD with restarts.

    Args:
        eps: L-inf radius (inputs are in [0, 1]).
        step_size: alpha; default ``eps / 4`` (2/255 for eps 8/255).
        steps: iterations per restart.
        restarts: independent starts (:meth:`robust_flags` counts an example as robust only if it
            survives all of them).
        start: ``"uniform"``, ``"normal"`` (x + 0.001 N(0,1)) or ``None``.
        loss_fn: per-example loss to ascend; default cross-entropy.

    Calling ``pgd(model, x, y)`` returns the adversarial batch of one restart (the model is put in
    eval mode for the attack and returned to its mode). It runs in fp32 (no autocast) unless the
    training loop opted the training-time attack into bf16
    (:func:`prunekit.attacks.precision.training_attack_autocast`).

    Example::

        x_adv = PGD(eps=8/255, steps=10)(model, x, y)
    """

    def __init__(self, eps: float, step_size: float | None = None, steps: int = 10,
                 restarts: int = 1, start: Start = "uniform",
                 loss_fn: LossFn | None = None) -> None:
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if steps < 0 or restarts < 1:
            raise ValueError(f"steps must be >= 0 and restarts >= 1, got {steps}, {restarts}")
        if start not in ("uniform", "normal", None):
            raise ValueError(f"start must be one of 'uniform', 'normal', None; got {start!r}")
        self.eps = float(eps)
        self.step_size = float(eps / 4 if step_size is None else step_size)
        self.steps = int(steps)
        self.restarts = int(restarts)
        self.start = start
        self.loss_fn: LossFn = loss_fn or _ce
        #: number of per-example input-gradient evaluations so far (for cost accounting)
        self.grad_evals = 0

    def __repr__(self) -> str:
        return (f"PGD(eps={self.eps:.5g}, step_size={self.step_size:.5g}, steps={self.steps}, "
                f"restarts={self.restarts}, start={self.start!r})")

    # -------------------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with eval_mode(model), attack_precision(x):
            return self.perturb(model, x, y)

    def init(self, x: Tensor) -> Tensor:
        """The starting point of one restart."""
        if self.start == "uniform":
            x0 = x + torch.empty_like(x, memory_format=torch.contiguous_format).uniform_(
                -self.eps, self.eps)
        elif self.start == "normal":
            x0 = x + 0.001 * torch.randn_like(x, memory_format=torch.contiguous_format)
        else:
            x0 = x.clone()
        return x0.clamp(0.0, 1.0)

    def step(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        """One ascent step with projection; returns the new (detached) iterate."""
        x_adv = x_adv.detach().requires_grad_(True)
        loss = self.loss_fn(model(x_adv), y).sum()
        (grad,) = torch.autograd.grad(loss, [x_adv])
        self.grad_evals += x.shape[0]
        x_adv = x_adv.detach() + self.step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - self.eps), x + self.eps)
        return x_adv.clamp(0.0, 1.0)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """One restart: ``steps`` ascent steps from :meth:`init` (mode left as the caller set)."""
        x = x.detach()
        x_adv = self.init(x)
        for _ in range(self.steps):
            x_adv = self.step(model, x, x_adv, y)
        return x_adv.detach()

    # -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _correct(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return model(x).argmax(1) == y

    def robust_flags(self, model: nn.Module, x: Tensor, y: Tensor,
                     early_exit: bool = True) -> tuple[Tensor, Tensor]:
        """Per-example robustness under all restarts.

        An example is broken as soon as any iterate (of any restart) is misclassified; that
        iterate is a valid adversarial example inside the eps-ball, so it is recorded and the
        example is dropped from further attacking when ``early_exit`` (the default). Examples
        misclassified when clean are not attacked (robust = False).

        Returns ``(robust: bool[B], x_adv: [B, ...])`` with x_adv the recorded adversarial
        example for broken points and the last iterate for robust ones.
        """
        with eval_mode(model), attack_precision(x):
            x = x.detach()
            x_best = x.clone()
            robust = self._correct(model, x, y)
            for _ in range(self.restarts):
                idx = robust.nonzero().flatten() if early_exit else torch.arange(x.shape[0],
                                                                                 device=x.device)
                if idx.numel() == 0:
                    break
                xs, ys = x[idx], y[idx]
                x_adv = self.init(xs)
                alive = torch.ones(idx.numel(), dtype=torch.bool, device=x.device)
                for _ in range(self.steps):
                    sub = alive.nonzero().flatten() if early_exit else torch.arange(
                        idx.numel(), device=x.device)
                    if sub.numel() == 0:
                        break
                    new = self.step(model, xs[sub], x_adv[sub], ys[sub])
                    x_adv[sub] = new
                    ok = self._correct(model, new, ys[sub])
                    broken_now = sub[~ok]
                    alive[broken_now] = False
                    # record the first adversarial example found for each newly broken point
                    g = idx[broken_now]
                    fresh = robust[g]
                    x_best[g[fresh]] = x_adv[broken_now][fresh]
                    robust[g] = False
                still = idx[alive]
                x_best[still] = x_adv[alive]
            return robust, x_best
