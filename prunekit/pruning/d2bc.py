"""D2BC / ANAS-P: differentiable binary channel gates trained with a MACs penalty.

Li et al., *Neural architecture search for adversarial robustness via learnable pruning*,
Front. HPC 2024 (DESIGN.md). One trainable value ``m`` per channel of every dependency group
(residual-coupled channels share one gate, so in ResNet the gate acts on the conv path and the
identity path together), binarised as ``b = 1[m > thres]`` with the straight-through estimator
``dL/dm = dL/db``; ``m ~ U[0, 1]`` (or a constant); loss ``L = L_adv + gamma * L_MAC``; weights
and gates are trained together (SGD); after the search the gated channels are removed physically.

Where the gate acts: on the channel as its consumers read it (after BN, ReLU, pooling and the
residual add; :mod:`prunekit.pruning.gating`). A closed channel is exactly zero downstream, yet
its gate still gets the adversarial loss's gradient, so channels pruned early can come back --
the paper trains masks jointly with the weights. (prunekit < 0.2 folded the gate into the BN
affine before the ReLU, where a closed gate's gradient is exactly 0: no channel ever re-opened
and the final architecture was essentially the random initial one; issue 10.)

Deliberate deviations from the paper (docs/pruning.md, "D2BC choices"):

* **Normalised MAC loss.** The paper writes ``L_MAC = |MACs(b) - T|^2`` with ``gamma = 0.01``.
  With MACs ~ 3e8 (VGG-16) that term is ~1e15 and its gradient swamps the adversarial loss by
  ten orders of magnitude (every gate jumps across the threshold on the first step), so it cannot
  work as written. prunekit uses ``L_MAC = (MACs(b) / MACs_dense - (1 - sparsity))^2``: scale
  free, in [0, 1], and the same minimiser ``MACs(b) = T``.
* **What T counts.** ``MACs(b)`` is the analytic conv + linear count of the *whole* model
  (stem, classifier and the unprunable stage-1 stream included, since they are part of what the
  finalized model costs): ``sum_l o_l * i_l * k_l^2 * H_l * W_l`` with kept in/out channels
  coupled through the groups (:meth:`ChannelGroups.macs`). ``sparsity`` is therefore the target
  reduction of the model's conv + linear MACs, the quantity ``measure`` reports up to the small
  BN/ReLU/pooling share.
* **Clamp.** ``m`` is clamped to ``[0, 1]`` after every step (``clamp=True``; the paper only
  states the initial range). Without it a gate pushed far below the threshold by the penalty
  needs arbitrarily many steps to come back; with it every gate is at most ``thres`` away from
  flipping.
* **Gate step size.** The normalised penalty's gradient per channel is ~1/(number of channels),
  so the gates get their own gradient multiplier ``gate_lr_mult`` (equal to an lr multiplier
  under SGD with momentum, as the gates have no weight decay).
* **Constraint handling** (``constraint``, issue 19). ``"penalty"`` (default; the paper's
  form ``L_adv + gamma * L_MAC`` with a fixed weight -- the paper-faithful setting is
  ``constraint: penalty, gamma: 0.01`` on prunekit's normalised L_MAC): the minimiser of a
  quadratic penalty balances the adversarial loss's pull to re-open channels *off* the target,
  so the search ends 5-20 points short of high targets and calibration makes the cut.
  ``"lagrangian"``: the method of multipliers (augmented Lagrangian, Hestenes 1969 / Powell
  1969) on the equality ``c = MACs(b)/MACs_dense - (1 - sparsity) = 0``: the loss term is
  ``lam * c + gamma * c^2`` and after every step ``lam += dual_lr * c`` (dual ascent), so the
  pressure grows until the constraint holds instead of settling at the penalty's biased
  equilibrium. ``anneal_steps`` > 0 moves the target linearly from the initial gates'
  reduction to ``sparsity`` over that many steps (fewer channels flip at once early on). The
  search should end within ``calibrate_tol`` of the target by itself; calibration is then a
  fallback only.
* **Calibration** (``calibrate=True``, default): the gates flip in discrete steps, so the search
  ends near, not at, the target. At :meth:`finalize` the kept set is corrected to the target by
  ranking all channels by ``m`` (:func:`select_by_macs`; equal ``m`` -- common, the clamp piles
  gates up at 0 and 1 -- ranked by the RMS of the channel's coupled filters, never by position)
  if the analytic reduction is off by more than ``calibrate_tol`` (or always when
  ``round_to > 1``: widths rounded to multiples of ``round_to``); the correction is logged and
  reported by :meth:`summary`.
* **Seeds.** The initialisation is drawn from ``seed``; by default (``seed=None``) that seed is
  drawn from torch's global generator at ``attach``, which the pipeline seeds from the run seed,
  so every run seed gets its own initialisation (the seed used is in :meth:`summary`).
  ``init="constant"`` adds a seeded jitter of ``init_jitter`` (default 0.01) so that the gates
  do not move in lockstep and are not tied at calibration.
"""
from __future__ import annotations

import logging
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.channel import ChannelPruner, select_by_macs
from prunekit.pruning.groups import ChannelGroups, channel_norms
from prunekit.pruning.settle import Settler
from prunekit.registry import PRUNERS
from prunekit.seeding import method_seed

__all__ = ["D2BC", "binarize_ste"]

log = logging.getLogger(__name__)


def binarize_ste(m: Tensor, thres: float) -> Tensor:
    """``b = 1[m > thres]`` in the forward pass, identity gradient (``dL/dm = dL/db``)."""
    b = (m > thres).to(m.dtype)
    return b + (m - m.detach())


def _one_hot(n: int, device: torch.device) -> Tensor:
    t = torch.zeros(n, device=device)
    t[0] = 1.0
    return t


@PRUNERS.register("d2bc", aliases=("anas-p",))
class D2BC(ChannelPruner):
    """D2BC channel gates (ANAS-P search stage).

    Args:
        sparsity: target reduction of the conv + linear MACs, in [0, 1).
        gamma: weight of ``L_MAC`` (normalised form, see the module docstring). Default 5.
        thres: binarisation threshold (paper: 0.5), in (0, 1).
        init: "uniform" (``m ~ U[0, 1]``, the paper) or "constant" (``m ~ init_value`` plus a
            seeded jitter).
        init_value: the constant for ``init="constant"`` (> thres keeps every channel).
        init_jitter: half-width of the uniform jitter around ``init_value`` (the interval is
            shifted to stay inside [0, 1]); 0 = exactly constant (gates then move in lockstep).
        gate_lr_mult: multiplier of the gates' gradient (= lr multiplier under SGD). Default 20.
        clamp: clamp ``m`` to [0, 1] after each step.
        calibrate: correct the kept set to the target at finalize (see module docstring).
        calibrate_tol: absolute error in MACs reduction tolerated before calibrating.
        round_to: with ``calibrate``, keep a multiple of ``round_to`` channels per group (8 makes
            compacted models much faster on CPUs); forces the calibration step when > 1.
        seed: seed of the initialisation; None (default) = drawn from torch's global generator
            at ``attach`` (seeded from the run seed by the pipeline). Reported by ``summary()``.
        constraint: "penalty" (fixed ``gamma``; the paper's form) or "lagrangian" (dual variable
            on the MACs constraint, see the module docstring).
        dual_lr: step of the dual ascent ``lam += dual_lr * c`` per optimizer step
            (``constraint="lagrangian"``).
        anneal_steps: steps over which the target moves from the initial reduction to
            ``sparsity`` (0 = the target from the first step; ``constraint="lagrangian"``).
        settle_epochs: the last ``settle_epochs`` epochs of the prune stage train with the gates
            projected onto the budget (:mod:`prunekit.pruning.settle`); 0 = off (default).

    Example::

        pruner = PRUNERS.build("anas-p", sparsity=0.9)
        pruner.attach(model, x[:2])
        opt = torch.optim.SGD(pruner.param_groups(model), lr=0.01, momentum=0.9, weight_decay=2e-4)
    """

    contract_hparams: ClassVar[dict[str, Any]] = {}

    def __init__(self, sparsity: float, *, gamma: float = 5.0, thres: float = 0.5,
                 init: str = "uniform", init_value: float = 1.0, init_jitter: float = 0.01,
                 gate_lr_mult: float = 20.0, clamp: bool = True, calibrate: bool = True,
                 calibrate_tol: float = 0.005, round_to: int = 1, seed: int | None = None,
                 include_stem: bool = False,
                 include_classifier: bool = False, constraint: str = "penalty",
                 dual_lr: float = 1.0, anneal_steps: int = 0, settle_epochs: int = 0,
                 **hparams: Any) -> None:
        super().__init__(sparsity, include_stem=include_stem,
                         include_classifier=include_classifier, **hparams)
        self._check(isinstance(gamma, (int, float)) and gamma >= 0,
                    f"gamma must be a number >= 0, got {gamma!r}")
        self._check(isinstance(thres, (int, float)) and 0.0 < thres < 1.0,
                    f"thres must be in (0, 1), got {thres!r}")
        self._check(init in ("uniform", "constant"),
                    f"init must be one of: uniform, constant; got {init!r}")
        self._check(isinstance(init_value, (int, float)) and 0.0 <= init_value <= 1.0,
                    f"init_value must be in [0, 1], got {init_value!r}")
        self._check(isinstance(gate_lr_mult, (int, float)) and gate_lr_mult > 0,
                    f"gate_lr_mult must be a number > 0, got {gate_lr_mult!r}")
        self._check(isinstance(calibrate_tol, (int, float)) and 0.0 <= calibrate_tol < 1.0,
                    f"calibrate_tol must be in [0, 1), got {calibrate_tol!r}")
        self._check(isinstance(round_to, int) and round_to >= 1,
                    f"round_to must be an integer >= 1, got {round_to!r}")
        self._check(isinstance(init_jitter, (int, float)) and 0.0 <= init_jitter <= 0.5,
                    f"init_jitter must be in [0, 0.5], got {init_jitter!r}")
        self._check(seed is None or (isinstance(seed, int) and not isinstance(seed, bool)),
                    f"seed must be an integer or null, got {seed!r}")
        self._check(constraint in ("penalty", "lagrangian"),
                    f"constraint must be one of: penalty, lagrangian; got {constraint!r}")
        self._check(isinstance(dual_lr, (int, float)) and dual_lr >= 0,
                    f"dual_lr must be a number >= 0, got {dual_lr!r}")
        self._check(isinstance(anneal_steps, int) and not isinstance(anneal_steps, bool)
                    and anneal_steps >= 0,
                    f"anneal_steps must be an integer >= 0, got {anneal_steps!r}")
        self._check(isinstance(settle_epochs, int) and not isinstance(settle_epochs, bool)
                    and settle_epochs >= 0,
                    f"settle_epochs must be an integer >= 0, got {settle_epochs!r}")
        self.settle = Settler(settle_epochs, self._projection, self._free_reduction)
        self.constraint = constraint
        self.dual_lr = float(dual_lr)
        self.anneal_steps = anneal_steps
        #: dual variable of the MACs constraint, steps taken, the last violation, reduction at init
        self.lam = 0.0
        self._steps = 0
        self._violation: float | None = None
        self._start_ratio: float | None = None
        self.gamma = float(gamma)
        self.thres = float(thres)
        self.init = init
        self.init_value = float(init_value)
        self.init_jitter = float(init_jitter)
        self.gate_lr_mult = float(gate_lr_mult)
        self.clamp = bool(clamp)
        self.calibrate = bool(calibrate)
        self.calibrate_tol = float(calibrate_tol)
        self.round_to = round_to
        self.seed = seed
        self.init_seed: int | None = None
        self.gate_params: list[nn.Parameter] = []
        self._m0: list[Tensor] = []
        #: set by finalize: search/final reduction, calibrated, channel recovery counts
        self.calibration: dict[str, Any] = {}

    # -- gates ----------------------------------------------------------------------------------
    def init_gates(self, groups: ChannelGroups) -> None:
        seed = method_seed(self.registry_name or "d2bc", self.seed)  # its own stream
        self.init_seed = seed
        gen = torch.Generator().manual_seed(seed)
        device = next(iter(groups.model.parameters())).device
        j = self.init_jitter
        low = min(max(self.init_value - j, 0.0), 1.0 - 2 * j)
        self.gate_params = []
        for g in groups:
            u = torch.rand(g.size, generator=gen)
            m = u if self.init == "uniform" else low + 2 * j * u
            p = nn.Parameter(m.to(device))
            if self.gate_lr_mult != 1.0:
                p.register_hook(lambda grad, k=self.gate_lr_mult: grad * k)
            self.gate_params.append(p)
        self._m0 = [p.detach().clone() for p in self.gate_params]
        floor = 1.0 - float(groups.macs([_one_hot(g.size, device) for g in groups])) / groups.dense_macs
        if self.sparsity > floor:
            log.warning("d2bc: target MACs reduction %.4f is above the largest reachable %.4f "
                        "(one channel per group)%s", self.sparsity, floor,
                        "" if self.include_stem else "; include_stem=True lifts the limit")

    def group_gates(self) -> list[Tensor]:
        if self.settle.active and self.settle.masks is not None:  # projected, straight-through
            return [k.to(m.dtype) + (m - m.detach()) for m, k in zip(self.gate_params,
                                                                     self.settle.masks)]
        return self._free_gates()

    def _free_gates(self) -> list[Tensor]:  # 1[m > thres], straight-through, no projection
        return [binarize_ste(m, self.thres) for m in self.gate_params]

    def _projection(self) -> list[Tensor]:
        """The budget-feasible kept set with the largest gate values (calibration's ranking)."""
        assert self.groups is not None
        keep = select_by_macs(self.groups, [m.detach() for m in self.gate_params], self.sparsity,
                              multiple_of=self.round_to, tiebreak=self._filter_rms(),
                              cost=self.target)
        return [k.to(m.device) for m, k in zip(self.gate_params, keep)]

    def _free_reduction(self) -> float:
        """Reduction of the unprojected gates ``1[m > thres]`` (after ``attach``)."""
        kept = self.groups.cost(self.target, [g.detach() for g in self._free_gates()])
        return 1.0 - float(kept) / self.groups.dense_cost(self.target)

    def begin_stage(self, epochs: int, steps_per_epoch: int) -> None:
        """The prune stage's length, for the settle phase (``fit`` calls it)."""
        self.settle.begin_stage(epochs)

    def on_epoch_end(self, epoch: int) -> None:
        self.settle.epoch_end(epoch)

    def group_scores(self) -> list[Tensor]:
        return [m.detach() for m in self.gate_params]

    # -- training -------------------------------------------------------------------------------
    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Model weights (optimizer defaults) and the gates (no weight decay)."""
        weights = [p for p in model.parameters() if p.requires_grad]
        return [{"params": weights}, {"params": list(self.gate_params), "weight_decay": 0.0}]

    def mac_ratio(self) -> Tensor:
        """``MACs(b) / MACs_dense`` (or ``params(b) / params_dense`` with ``target="params"``)
        with the current binarised gates (differentiable)."""
        assert self.groups is not None, "attach() first"
        return (self.groups.cost(self.target, self.current_gates())
                / self.groups.dense_cost(self.target))

    def target_ratio(self) -> float:
        """The MACs ratio the constraint asks for now: ``1 - sparsity``, or with
        ``anneal_steps`` the linear path from the initial gates' ratio to it."""
        final = 1.0 - self.sparsity
        if self.constraint != "lagrangian" or not self.anneal_steps or self._start_ratio is None:
            return final
        frac = min(1.0, self._steps / self.anneal_steps)
        return self._start_ratio + frac * (final - self._start_ratio)

    def penalty(self) -> Tensor:
        """``gamma * c^2`` (penalty) or ``lam * c + gamma * c^2`` (lagrangian), with
        ``c = MACs(b)/MACs_dense - target_ratio()``; while settling ``b`` are the free gates
        ``1[m > thres]``, so ``m`` keeps ranking the channels (:mod:`prunekit.pruning.settle`)."""
        if self.groups is None or not len(self.groups):
            return torch.zeros(())
        if self.constraint == "penalty" and self.gamma == 0.0:
            return torch.zeros(())
        if self.settle.active:
            ratio = (self.groups.cost(self.target, self._free_gates())
                     / self.groups.dense_cost(self.target))
        else:
            ratio = self.mac_ratio()
        if self._start_ratio is None:
            self._start_ratio = float(ratio.detach())
        c = ratio - self.target_ratio()
        self._violation = float(c.detach())
        if self.constraint == "penalty":
            return self.gamma * c ** 2
        return self.lam * c + self.gamma * c ** 2

    def on_step_end(self, step: int) -> None:
        if self.constraint == "lagrangian" and self._violation is not None:
            self.lam += self.dual_lr * self._violation       # dual ascent on c = 0
            self._steps += 1
        if self.clamp:
            with torch.no_grad():
                for m in self.gate_params:
                    m.clamp_(0.0, 1.0)
        self.settle.refresh()

    # -- finalize -------------------------------------------------------------------------------
    def finalize(self, model: nn.Module) -> nn.Module:
        """Optionally calibrate the kept set to the target, then compact (see ChannelPruner)."""
        if self.groups is None:
            raise ValueError("finalize() must be given the model passed to attach()")
        search = self.reduction()        # of the projected gates while settling
        settle = self.settle.finish()
        recovery = self._recovery()
        if self.settle.active and self.settle.masks is not None:   # bake the projection into m
            self._set_kept(self.settle.masks)
            self.settle.active = False
        calibrated = False
        # after a settle phase the kept set already is calibration's selection
        off = not settle and (abs(search - self.sparsity) > self.calibrate_tol
                              or self.round_to > 1)
        if self.calibrate and off and len(self.groups):
            self._set_kept(self._projection())
            calibrated = True
        final = self.reduction()
        kept = int(sum(int(k.sum()) for k in self.keep_masks()))
        self.calibration = {"search_reduction": search, "final_reduction": final,
                            "calibrated": calibrated, **settle, **recovery, "kept_final": kept}
        log.info("d2bc: analytic MACs reduction %.4f at the end of search, %.4f final (target "
                 "%.4f, calibrated=%s); %d of %d channels closed at init re-opened",
                 search, final, self.sparsity, calibrated, recovery["reopened"],
                 recovery["closed_at_init"])
        return super().finalize(model)

    def _set_kept(self, keep: list[Tensor]) -> None:
        """Move ``m`` across the threshold where the kept set changes to ``keep``."""
        with torch.no_grad():
            for m, k in zip(self.gate_params, keep):
                on = (m > self.thres)
                k = k.to(m.device)
                m[k & ~on] = min(1.0, self.thres + 1e-3)
                m[~k & on] = self.thres

    def _recovery(self) -> dict[str, int]:
        """Channel counts of the search: closed at init, re-opened, closed during the search."""
        closed0 = torch.cat([m0 <= self.thres for m0 in self._m0]) if self._m0 else None
        open_now = torch.cat([k.cpu() for k in self.keep_masks()])
        if closed0 is None or closed0.numel() != open_now.numel():
            return {"channels": int(open_now.numel())}
        closed0 = closed0.cpu()
        return {"channels": int(open_now.numel()), "closed_at_init": int(closed0.sum()),
                "reopened": int((closed0 & open_now).sum()),
                "closed_in_search": int((~closed0 & ~open_now).sum()),
                "kept_after_search": int(open_now.sum())}

    def _filter_rms(self) -> list[Tensor]:
        """Calibration tie-break: RMS weight of each channel's coupled filters (comparable
        across groups of different fan-in)."""
        assert self.groups is not None
        named = dict(self.groups.model.named_modules())
        out = []
        for g, n in zip(self.groups, channel_norms(self.groups)):
            fan = sum(named[c].weight[0].numel() for c in g.convs)
            out.append(n / max(fan, 1) ** 0.5)
        return out

    def summary(self) -> dict[str, Any]:
        """Initialisation (``init``, ``init_seed``) and, after ``finalize``, the calibration
        (``search_reduction``, ``final_reduction``, ``calibrated``) and the channel recovery of
        the search (``channels``, ``closed_at_init``, ``reopened``, ``closed_in_search``,
        ``kept_after_search``, ``kept_final``)."""
        out = {"init": self.init, "init_seed": self.init_seed, **self.calibration}
        if self.constraint == "lagrangian":
            out["dual"] = round(self.lam, 6)
        return out

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"m": [m.detach().clone() for m in self.gate_params],
                "m0": [m.clone() for m in self._m0], "init_seed": self.init_seed,
                "calibration": dict(self.calibration), "lam": self.lam, "steps": self._steps,
                "start_ratio": self._start_ratio, "settle": self.settle.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        ms = list(state["m"])
        if len(ms) != len(self.gate_params):
            raise ValueError(f"state has {len(ms)} gate vectors, the attached model "
                             f"{len(self.gate_params)}")
        with torch.no_grad():
            for p, m in zip(self.gate_params, ms):
                if p.shape != m.shape:
                    raise ValueError(f"gate shape mismatch: {tuple(m.shape)} vs {tuple(p.shape)}")
                p.copy_(m)
        if "m0" in state and len(state["m0"]) == len(self.gate_params):
            self._m0 = [m.detach().cpu().clone() for m in state["m0"]]
        if state.get("init_seed") is not None:
            self.init_seed = int(state["init_seed"])
        self.calibration = dict(state.get("calibration", {}))
        self.lam = float(state.get("lam", 0.0))
        self._steps = int(state.get("steps", 0))
        self._start_ratio = state.get("start_ratio")
        self.settle.load_state_dict(state.get("settle"))
