"""FlyingBird (``flyingbird``): dynamic sparse adversarial training from scratch.

Chen, Zhang, Wang, Balachandra, Ma, Wang, Wang, *Sparsity Winning Twice: Better Robust
Generalization from More Efficient Training*, ICLR 2022 (Sec. 3.2, "Flying Bird"); official code
VITA-Group/Sparsity-Win-Robust-Generalization at 6e9a862 (``main_adv.py``, ``utils.py``,
``sparselearning/core.py``, ``sparselearning/igq.py``; README "Flying Bird" command =
``scripts/fb.sh``: ``--density 0.2 --dynamic_fre --fb``).

What is followed (file:line of the official code):

* no dense pretraining (``needs_pretrain = False``): the sparse network is adversarially trained
  from the seeded initialisation for the whole budget (``main_adv.py:188-200``);
* the sparse initialisation: per-layer densities by IGQ (``--sparse_init`` default ``igq``,
  ``main_adv.py:64``; ``igq.py:29-40``), ERK (``fixed_ERK``, ``core.py:99-162``) or uniform,
  then a uniformly random subset of each layer (``core.py:212-227``);
* after every optimizer step the weights *and the SGD momentum buffers* are multiplied by the
  masks (``Masking.step`` / ``apply_mask``, ``core.py:282-292, 343-352``): pruned weights stay
  exactly zero and carry no momentum into a later regrowth;
* every ``update_frequency`` optimizer steps (``utils.py:283-289``: the global ``ite_step``,
  900 by default, 1200 once ``epoch > epochs / 2`` with ``--dynamic_fre``, which the README
  command sets) each layer drops the ``ceil(death_rate * active)`` active weights of smallest
  ``|w|`` and regrows as many, randomly (``--growth random``, default) or by largest ``|grad|``
  of the last step (``gradient``) (``core.py:424-480``); regrown weights start at zero
  (they were zero) with zero momentum; a layer dense at initialisation is never updated;
* the death rate starts at 0.5 and decays by a cosine over the whole training to 0.005,
  stepped every optimizer step (``CosineDecay(death_rate, len(loader) * epochs)``,
  ``main_adv.py:127``, ``core.py:15-24, 285-291``); ``decay="constant"`` is the official
  ``--decay-schedule constant``.

Deliberate deviations (docs/baselines.md, FlyingBird):

* exact counts: every drop removes exactly ``k`` weights and every regrowth adds exactly ``k``
  (official random growth is Bernoulli(k / n), magnitude drop a ``>``-threshold that drops more
  on ties), and the initial per-layer counts sum to exactly ``(1 - sparsity)`` of the pruned
  layers (official ``int(s * n)`` per layer) -- the density is constant, as the paper states;
* layers: prunekit's prunable layers (stem conv and classifier unpruned) unless
  ``include_stem`` / ``include_classifier`` (official: every 2-D and 4-D weight, both on);
  ``sparsity`` is prunekit's weight sparsity of those layers (official ``--density`` = 1 - it);
* no update at the very last step of the stage (its regrown weights would stay zero, never
  trained);
* the stage length (``T_max`` of the cosine, the ``epoch > epochs / 2`` switch) comes from the
  :meth:`~prunekit.pruning.base.Pruner.begin_stage` hook (issue 22), with ``steps_per_epoch``
  counting optimizer steps (replays of free adversarial training included);
* the official best-checkpoint selection on validation robust accuracy is not done (the last
  epoch is kept, as for every prunekit method).

FlyingBird+ (``--fbp``: dynamic density from the per-epoch validation loss and train/val
robust-accuracy gap, ``core.py:355-420``) is left out: it needs a validation adversarial
evaluation fed into the pruner every epoch, and the official code reads an undefined
``args.dynamic_sparse`` (``core.py:402``; no such argument in ``main_adv.py``), so its published
behaviour cannot be run as shipped.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from prunekit.pruning.base import Pruner
from prunekit.pruning.masking import apply_weight_masks

from baselines._common import check_choice, draw_seed, select_layers
from baselines.flyingbird_masks import GROWTHS, INITS, death_rate_at, drop_and_grow, \
    integer_counts, layer_densities, random_mask

__all__ = ["FlyingBird"]

log = logging.getLogger(__name__)


class FlyingBird(Pruner):
    """Dynamic sparse adversarial training from scratch (``flyingbird``).

    Args:
        sparsity: fraction of the pruned layers' weights that are zero throughout training.
        init: per-layer densities of the sparse start: ``"igq"`` (official default), ``"erk"``,
            ``"uniform"``.
        growth: regrowth criterion: ``"random"`` (official default) or ``"gradient"``.
        death_rate: initial fraction of each layer's active weights dropped per update (0.5).
        death_rate_min: floor of the cosine decay (official ``eta_min`` 0.005).
        decay: ``"cosine"`` (official default) or ``"constant"``.
        update_frequency: optimizer steps between topology updates (official 900).
        second_frequency: steps between updates once ``epoch > epochs / 2`` (official
            ``--dynamic_fre``: 1200); None keeps ``update_frequency`` throughout.
        fix: never update the topology (official ``--fix``, ``main_adv.py:63``,
            ``utils.py:288``): static random sparse training from the same start -- the
            control that isolates the dynamic topology.
        seed: mask-sampling seed; None = drawn at ``attach`` from the run's RNG stream.
        include_stem / include_classifier: also sparsify the first conv / the last linear.

    Example::

        pruner = PRUNERS.build("flyingbird", sparsity=0.8, update_frequency=900)
    """

    granularity = "weight"
    needs_pretrain = False
    lossless_finalize = True
    contract_tolerance = 0.01
    contract_hparams = {"update_frequency": 2, "second_frequency": None}

    def __init__(self, sparsity: float, *, init: str = "igq", growth: str = "random",
                 death_rate: float = 0.5, death_rate_min: float = 0.005, decay: str = "cosine",
                 update_frequency: int = 900, second_frequency: int | None = 1200,
                 fix: bool = False, seed: int | None = None, include_stem: bool = False,
                 include_classifier: bool = False) -> None:
        super().__init__(sparsity)
        self.init = check_choice("init", init, INITS)
        self.growth = check_choice("growth", growth, GROWTHS)
        self.decay = check_choice("decay", decay, ("cosine", "constant"))
        self.death_rate = self._number(death_rate, f"death_rate must be a number, got "
                                                   f"{death_rate!r}")
        self._check(0.0 < self.death_rate < 1.0, f"death_rate must be in (0, 1), got {death_rate}")
        self.death_rate_min = self._number(death_rate_min, f"death_rate_min must be a number, "
                                                           f"got {death_rate_min!r}")
        self._check(0.0 <= self.death_rate_min <= self.death_rate,
                    f"death_rate_min must be in [0, death_rate], got {death_rate_min}")
        def positive_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 1

        self._check(positive_int(update_frequency),
                    f"update_frequency must be an integer >= 1, got {update_frequency!r}")
        self._check(second_frequency is None or positive_int(second_frequency),
                    f"second_frequency must be an integer >= 1 or null, got {second_frequency!r}")
        self._check(seed is None or (isinstance(seed, int) and not isinstance(seed, bool)),
                    f"seed must be an integer or null, got {seed!r}")
        self.update_frequency, self.second_frequency = update_frequency, second_frequency
        self.seed, self.fix = seed, bool(fix)
        self.include_stem, self.include_classifier = bool(include_stem), bool(include_classifier)
        self._layers: dict[str, nn.Module] = {}
        self._masks: dict[str, Tensor] = {}
        self._fired: dict[str, Tensor] = {}
        self._optimizer: torch.optim.Optimizer | None = None
        self._gen = torch.Generator()
        self._stage: tuple[int, int] | None = None        # (epochs, steps per epoch)
        self.init_seed: int | None = None
        self.updates = 0
        self.last_death_rate: float | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def attach(self, model: nn.Module, example_inputs: Tensor) -> None:
        """Draw the sparse start (per-layer densities by ``init``, random positions) and zero
        the pruned weights of the freshly initialised ``model`` in place."""
        if self._layers:
            raise RuntimeError("FlyingBird.attach called twice; build a new pruner per model")
        self._layers = select_layers(model, include_stem=self.include_stem,
                                     include_classifier=self.include_classifier)
        shapes = [tuple(m.weight.shape) for m in self._layers.values()]
        sizes = [m.weight.numel() for m in self._layers.values()]
        total = max(1, int(round((1.0 - self.sparsity) * sum(sizes))))
        counts = integer_counts(layer_densities(self.init, shapes, 1.0 - self.sparsity), sizes,
                                total)
        self.init_seed = draw_seed(self.seed, self.registry_name or "flyingbird")
        self._gen.manual_seed(self.init_seed)
        for (name, mod), shape, k in zip(self._layers.items(), shapes, counts):
            self._masks[name] = random_mask(shape, k, self._gen).to(mod.weight.device)
        self._fired = {n: m.clone() for n, m in self._masks.items()}
        self.model = model
        self._apply()
        log.info("flyingbird: %d layers, init %s, density %.4f (%d of %d weights), layer "
                 "densities %.3f..%.3f", len(sizes), self.init, total / sum(sizes), total,
                 sum(sizes), min(c / n for c, n in zip(counts, sizes)),
                 max(c / n for c, n in zip(counts, sizes)))

    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Keep the prune stage's optimizer: its momentum buffers are masked after every step."""
        self._optimizer = optimizer

    def begin_stage(self, epochs: int, steps_per_epoch: int) -> None:
        """The stage length: ``T_max = epochs * steps_per_epoch`` of the cosine death rate and
        the ``epoch > epochs / 2`` switch to ``second_frequency``."""
        self._stage = (int(epochs), max(1, int(steps_per_epoch)))

    def on_step_end(self, step: int) -> None:
        """Mask weights and momentum; every ``update_frequency`` steps drop and regrow."""
        if self._stage is None:
            raise RuntimeError("flyingbird: begin_stage(epochs, steps_per_epoch) must be called "
                               "before the first step (the pipeline's fit() does)")
        epochs, per_epoch = self._stage
        done, total = step + 1, epochs * per_epoch          # official ite_step after increment
        freq = self.update_frequency
        if self.second_frequency is not None and step // per_epoch > epochs / 2:
            freq = self.second_frequency                    # utils.py:283-285 (--dynamic_fre)
        self._apply()        # first, so regrown weights start at zero with zero momentum
        if not self.fix and done % freq == 0 and done < total:
            self._update(death_rate_at(done, total, self.death_rate, self.death_rate_min,
                                       self.decay))
            self._apply()

    def _update(self, rate: float) -> None:
        """One topology update of every layer at death rate ``rate``."""
        changed = 0
        for name, mod in self._layers.items():
            new, dropped = drop_and_grow(mod.weight, self._masks[name], rate, self.growth,
                                         mod.weight.grad, self._gen)
            self._masks[name] = new
            self._fired[name] |= new
            changed += dropped
        self.updates += 1
        self.last_death_rate = float(rate)
        log.debug("flyingbird: update %d, death rate %.4f, %d weights moved", self.updates,
                  rate, changed)

    def _apply(self) -> None:
        """``W *= mask`` and ``momentum *= mask`` (official ``apply_mask``)."""
        state = self._optimizer.state if self._optimizer is not None else {}
        with torch.no_grad():
            for name, mod in self._layers.items():
                w, m = mod.weight, self._masks[name]
                w.mul_(m.to(w.dtype))
                buf = state.get(w, {}).get("momentum_buffer") if state else None
                if buf is not None:
                    buf.mul_(m.to(buf.dtype))

    def masks(self) -> dict[str, Tensor]:
        return {n: m.clone() for n, m in self._masks.items()}

    def finalize(self, model: nn.Module) -> nn.Module:
        """Bake the current masks (``weight = original * mask``); the function is unchanged."""
        if not self._masks:
            raise RuntimeError("flyingbird: finalize() before attach()")
        self._apply()
        apply_weight_masks(model, self._masks)
        self.model, self._optimizer = None, None
        return model

    # -- state / reporting ----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """``updates`` (topology updates done), ``death_rate_last``, ``fired_fraction`` (share
        of the pruned layers' weights ever active: the official ``total_fired_weights``),
        per-layer density range, ``init_seed``."""
        if not self._masks:
            return {}
        dens = [float(m.float().mean()) for m in self._masks.values()]
        fired = sum(int(f.sum()) for f in self._fired.values())
        size = sum(f.numel() for f in self._fired.values())
        return {"init": self.init, "growth": self.growth, "updates": self.updates,
                "death_rate_last": self.last_death_rate,
                "fired_fraction": round(fired / size, 6), "layer_density_min": round(min(dens), 6),
                "layer_density_max": round(max(dens), 6), "init_seed": self.init_seed}

    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks(), "fired": {n: f.clone() for n, f in self._fired.items()},
                "generator": self._gen.get_state(), "updates": self.updates,
                "last_death_rate": self.last_death_rate, "init_seed": self.init_seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        masks = dict(state["masks"])
        if set(masks) != set(self._masks):
            raise ValueError(f"flyingbird state has layers {sorted(masks)}, the attached model "
                             f"{sorted(self._masks)}")
        self._masks = {n: masks[n].to(self._masks[n].device, torch.bool) for n in self._masks}
        self._fired = {n: dict(state["fired"])[n].to(self._masks[n].device, torch.bool)
                       for n in self._masks}
        self._gen.set_state(state["generator"])
        self.updates = int(state["updates"])
        self.last_death_rate = state.get("last_death_rate")
        self.init_seed = state.get("init_seed", self.init_seed)
        if self.model is not None:
            self._apply()
