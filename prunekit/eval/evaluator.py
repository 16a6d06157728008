"""The one robustness evaluator: clean accuracy, PGD-STEPS-RESTARTS, APGD and AutoAttack.

Protocol (ANAS-P paper sec. 4.1.4; docs/evaluation.md): L-inf PGD-50-10 (eps, 50 steps, 10
restarts, step eps/4, uniform random start), APGD (official, momentum 0.75) and AutoAttack
standard (official ``pyautoattack``). Each attack is run independently on all clean-correct
points so that its own accuracy is reported; ``worst_acc`` counts a point robust only if it
survives every attack. The model is evaluated in fp32 (autocast off on every device, whatever the
caller set up; non-fp32 logits are an error) and eval mode and returned to its mode.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from prunekit._version import __version__
from prunekit.attacks.base import Attack, AttackOutcome
from prunekit.attacks.ensemble import reuse_plan
from prunekit.attacks.parse import AttackNameError, parse_attack
from prunekit.attacks.precision import strict_fp32
from prunekit.certify.base import Certifier, build_certifier
from prunekit.certify.consistency import check_consistency
from prunekit.devices import model_device
from prunekit.eval import checks as C
from prunekit.eval._data import is_shuffled, iter_batches
from prunekit.eval.result import EvalResult
from prunekit.eval.state import EvalState, flags_to_str, model_hash, str_to_flags, tensor_hash
from prunekit.modes import eval_mode
from prunekit.seeding import derive_seed, preserve_rng

__all__ = ["RobustnessEvaluator", "DEFAULT_ATTACKS"]

log = logging.getLogger(__name__)
DEFAULT_ATTACKS = ("pgd-50-10", "apgd-ce", "autoattack")
#: called after each (attack, batch) is finished and saved: ``callback(attack_name, batch)``;
#: the clean pass reports ``"clean"``
Callback = Callable[[str, int], None]


class RobustnessEvaluator:
    """Evaluate a classifier (inputs in [0, 1]) under several attacks.

    Args:
        eps: perturbation radius.
        norm: ``"Linf"`` (all attacks) or ``"L2"`` / ``"L1"`` (pyautoattack attacks only).
        attacks: attack names (:func:`prunekit.attacks.parse_attack`); result keys use them as
            given.
        n_examples: evaluate the first N examples in dataset order (None: all).
        batch_size: evaluation batch (also AutoAttack's batch).
        seed: PGD batch ``b`` of attack ``a`` runs from ``torch.manual_seed(hash(seed, a, b))``
            and AutoAttack gets ``seed``; the global RNG state is restored afterwards.
        device: ``"auto"`` (the model's device) or a device the model is moved to (and back).
        state_path: JSON file for resuming an interrupted evaluation.
        reuse: read an attack's result from another attack that provides it exactly instead of
            running it again (APGD-CE from AutoAttack's first stage; ``EvalResult.reused``).
        certify: certifiers (:func:`prunekit.certify.build_certifier` specs: ``"ibp"``,
            ``{"name": "smoothing", "sigma": 0.25}``) run on every example after the attacks;
            their accuracies are ``EvalResult.certified`` (never in ``worst_acc``). An L-inf
            certificate at this eps contradicted by an L-inf attack raises
            :class:`~prunekit.certify.CertificationInconsistency`.

    Example::

        ev = RobustnessEvaluator(eps=8 / 255, n_examples=1000)
        res = ev.evaluate(model, test_set)
        res.clean_acc, res.robust_acc["autoattack"], res.warnings
    """

    def __init__(self, eps: float, norm: str = "Linf",
                 attacks: Sequence[str] = DEFAULT_ATTACKS, n_examples: int | None = None,
                 batch_size: int = 256, seed: int = 0, device: str | torch.device = "auto",
                 state_path: str | os.PathLike | None = None,
                 square_tol: float = C.SQUARE_TOL, pgd_aa_gap: float = C.PGD_AA_GAP,
                 reuse: bool = True, certify: Sequence[Any] = ()) -> None:
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps}")
        if norm not in ("Linf", "L2", "L1"):
            raise ValueError(f"norm must be one of Linf, L2, L1; got {norm!r}")
        if n_examples is not None and n_examples < 1:
            raise ValueError(f"n_examples must be >= 1 or None, got {n_examples}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(attacks, str):
            attacks = [a for a in attacks.replace(",", " ").split() if a]
        if not attacks:
            raise AttackNameError("no attacks given")
        if len(set(attacks)) != len(attacks):
            raise AttackNameError(f"duplicate attack names in {list(attacks)}")
        self.eps = float(eps)
        self.norm = norm
        self.specs = [parse_attack(a) for a in attacks]
        self.attacks = [s.name for s in self.specs]
        self.attack_list: list[Attack] = [s.build(self.eps, norm, int(seed)) for s in self.specs]
        #: ``{attack: provider}``: attacks read from another attack's run
        self.reuse = reuse_plan(self.attack_list) if reuse else {}
        self._units = self._run_units()
        self.certifiers: list[Certifier] = [build_certifier(c, self.eps) for c in certify]
        metrics = [m for c in self.certifiers for m in c.metrics()]
        if len(set(metrics)) != len(metrics) or set(metrics) & set(self.attacks):
            raise AttackNameError(f"certificate metric names must be unique and differ from "
                                  f"the attacks: {metrics}")
        self.n_examples = n_examples
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.device = device
        self.state_path = state_path
        self.square_tol = square_tol
        self.pgd_aa_gap = pgd_aa_gap

    def __repr__(self) -> str:
        return (f"RobustnessEvaluator(eps={self.eps:.5g}, norm={self.norm!r}, "
                f"attacks={self.attacks}, n_examples={self.n_examples}, "
                f"batch_size={self.batch_size}, seed={self.seed})")

    def _run_units(self) -> list[tuple[Attack, list[Attack]]]:
        """``(attack that runs, attacks read from it)`` in the order they are first needed."""
        by_name = {a.name: a for a in self.attack_list}
        units: list[tuple[Attack, list[Attack]]] = []
        for a in self.attack_list:
            unit = by_name[self.reuse.get(a.name, a.name)]
            if all(u is not unit for u, _ in units):
                units.append((unit, [d for d in self.attack_list
                                     if self.reuse.get(d.name) == unit.name]))
        return units

    # -------------------------------------------------------------------------------------------
    def fingerprint(self, model: nn.Module) -> str:
        """What a stored batch result depends on besides the batch data."""
        import pyautoattack

        key = {"model": model_hash(model), "eps": self.eps, "norm": self.norm,
               "attacks": [repr(a) for a in self.attack_list], "reuse": self.reuse,
               **({"certify": [c.record() for c in self.certifiers]} if self.certifiers else {}),
               "seed": self.seed,
               "batch_size": self.batch_size, "prunekit": __version__,
               "pyautoattack": pyautoattack.__version__, "torch": torch.__version__}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def batch_seed(self, attack: str, batch: int) -> int:
        """The torch seed for one (attack, batch): independent of the order batches run in, so
        a resumed evaluation reproduces an uninterrupted one."""
        return derive_seed(self.seed, attack, batch, sep="|")

    def _target_device(self, model: nn.Module) -> torch.device:
        if str(self.device) == "auto":
            return model_device(model)
        return torch.device(self.device)

    # -------------------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, data: Any,
                 callback: Callback | None = None) -> EvalResult:
        """Evaluate ``model`` on the first ``n_examples`` of ``data`` (a Dataset, a DataLoader /
        iterable of ``(x, y)`` batches, or an ``(x, y)`` tensor pair)."""
        C.check_finite_weights(model)  # NaN weights: fail loudly, never a fake accuracy
        failures: list[C.CheckFailure] = []
        for f in (C.check_train_mode(model), C.check_fp32(model)):
            if f is not None:
                failures.append(f)
        if is_shuffled(data):
            failures.append(C.CheckFailure("shuffled_loader", "the loader shuffles: the first "
                                           "n_examples differ between runs"))
        work = model if C.check_fp32(model) is None else copy.deepcopy(model).float()
        device = self._target_device(work)
        home = model_device(work)
        if home != device:
            work.to(device)
        try:
            with eval_mode(work), strict_fp32():  # evaluation is fp32 whatever the caller set
                records, index, resumed = self._run(work, data, device, failures, callback)
        finally:
            if home != device:
                work.to(home)
        return self._assemble(records, index, resumed, failures)

    def _run(self, model: nn.Module, data: Any, device: torch.device,
             failures: list[C.CheckFailure],
             callback: Callback | None
             ) -> tuple[list[dict[str, Any]], Tensor | None, int]:
        state = EvalState(self.state_path,
                          self.fingerprint(model) if self.state_path is not None else "")
        records: list[dict[str, Any]] = []
        indices: list[Tensor | None] = []
        resumed = 0
        for b, (x, y, idx) in enumerate(iter_batches(data, self.n_examples, self.batch_size)):
            indices.append(idx)
            x = x.to(device=device, dtype=torch.float32)
            y = y.to(device=device, dtype=torch.long)
            rec = state.batch(b, tensor_hash(x, y))
            records.append(rec)
            if b == 0:
                f = C.check_randomized(model, x, y)
                if f is not None:
                    failures.append(f)
            if "clean" in rec:
                clean = str_to_flags(rec["clean"]).to(device)
            else:
                t0 = time.perf_counter()
                with torch.no_grad():
                    logits = model(x)
                if logits.dtype != torch.float32:
                    raise RuntimeError(f"evaluation must run in fp32, the model returned "
                                       f"{logits.dtype} logits")
                clean = logits.argmax(1) == y
                rec["clean"] = flags_to_str(clean)
                rec["seconds_clean"] = time.perf_counter() - t0
                state.save()
                if callback is not None:
                    callback("clean", b)
            for unit, deps in self._units:
                names = [a.name for a in self.attack_list if a is unit or a in deps]
                if all(n in rec["attacks"] for n in names):
                    resumed += len(names)
                    continue
                t0 = time.perf_counter()
                with preserve_rng(device):
                    torch.manual_seed(self.batch_seed(unit.name, b))
                    out = unit(model, x, y)
                seconds = time.perf_counter() - t0
                rec["attacks"][unit.name] = self._record(model, x, y, clean, out, seconds)
                for d in deps:   # read from the unit's first stages, not run again
                    k = len(d.stages)
                    rec["attacks"][d.name] = {
                        **self._record(model, x, y, clean, out.prefix(k, x),
                                       sum(out.stage_seconds[:k]), messages=False),
                        "reused": unit.name}
                state.save()
                for n in names:
                    log.info("batch %d: %s robust %d/%d (%.1f s)%s", b, n,
                             rec["attacks"][n]["robust"].count("1"), x.shape[0],
                             rec["attacks"][n]["seconds"],
                             f" (from {unit.name})" if n != unit.name else "")
                    if callback is not None:
                        callback(n, b)
            self._certify_batch(model, x, y, b, rec, state, callback)
        if not records:
            raise ValueError("no examples to evaluate (empty dataset or loader)")
        index = None if any(i is None for i in indices) else torch.cat(indices)  # type: ignore
        return records, index, resumed

    def _certify_batch(self, model: nn.Module, x: Tensor, y: Tensor, b: int,
                       rec: dict[str, Any], state: EvalState, callback: Callback | None) -> None:
        """Run every certifier on one batch (seeded like an attack; resumable)."""
        done = rec.setdefault("certify", {})
        for cert in self.certifiers:
            if cert.name in done:
                continue
            t0 = time.perf_counter()
            with preserve_rng(x.device), torch.no_grad():
                torch.manual_seed(self.batch_seed("certify:" + cert.name, b))
                out = cert.certify(model, x, y)
            done[cert.name] = {
                "flags": {m: flags_to_str(f) for m, f in out.flags.items()},
                "radius": None if out.radius is None else [float(r) for r in out.radius],
                "seconds": time.perf_counter() - t0, **out.extra}
            state.save()
            log.info("batch %d: %s certified %s (%.1f s)", b, cert.name,
                     {m: f.count("1") for m, f in done[cert.name]["flags"].items()},
                     done[cert.name]["seconds"])
            if callback is not None:
                callback("certify:" + cert.name, b)

    def _certificates(self, records: list[dict[str, Any]]
                      ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, float]]:
        """``(flags per metric, radii per certifier, seconds per certifier)``."""
        flags: dict[str, Tensor] = {}
        radii: dict[str, Tensor] = {}
        seconds: dict[str, float] = {}
        for cert in self.certifiers:
            recs = [r["certify"][cert.name] for r in records]
            for m in cert.metrics():
                flags[m] = torch.cat([str_to_flags(c["flags"][m]) for c in recs])
            if recs and recs[0]["radius"] is not None:
                radii[cert.name] = torch.tensor([v for c in recs for v in c["radius"]],
                                                dtype=torch.float64)
            seconds["certify:" + cert.name] = float(sum(c["seconds"] for c in recs))
        return flags, radii, seconds

    def _record(self, model: nn.Module, x: Tensor, y: Tensor, clean: Tensor,
                out: AttackOutcome, seconds: float, messages: bool = True) -> dict[str, Any]:
        """One (batch, attack) entry of the state: flags, cost, messages, re-verification."""
        return {"robust": flags_to_str(out.robust), "seconds": seconds,
                "grad_evals": out.grad_evals, "messages": out.messages if messages else [],
                "unverified": C.count_unverified(model, x, y, clean, out.robust, out.x_adv,
                                                 self.eps, self.norm)}

    def _assemble(self, records: list[dict[str, Any]], index: Tensor | None, resumed: int,
                  failures: list[C.CheckFailure]) -> EvalResult:
        flags = {"clean": torch.cat([str_to_flags(r["clean"]) for r in records])}
        seconds = {"clean": float(sum(r.get("seconds_clean", 0.0) for r in records))}
        grad_evals: dict[str, int] = {}
        messages: list[str] = []
        for name in self.attacks:
            recs = [r["attacks"][name] for r in records]
            flags[name] = torch.cat([str_to_flags(a["robust"]) for a in recs])
            seconds[name] = float(sum(a["seconds"] for a in recs))
            grad_evals[name] = int(sum(a.get("grad_evals", 0) for a in recs))
            for a in recs:
                messages.extend(a.get("messages", []))
            counts = [sum(c) for c in zip(*(a.get("unverified", [0] * 4) for a in recs))]
            f = C.unverified_failure(name, counts, self.norm)
            if f is not None:
                failures.append(f)
        meta = {a.name: a.meta for a in self.attack_list}
        failures.extend(C.check_accuracies(list(meta.values()), flags, self.square_tol,
                                           self.pgd_aa_gap))
        failures.extend(C.autoattack_failures(messages))
        cert_flags, radii, cert_seconds = self._certificates(records)
        seconds.update(cert_seconds)
        if self.norm == "Linf":   # fails loudly: a sound certificate cannot be broken
            check_consistency({m: cert_flags[m] for c in self.certifiers for m in c.metrics()
                               if c.norm == "Linf" and c.eps == self.eps},
                              {a: flags[a] for a in self.attacks}, index)
        for f in failures:
            log.warning("check %s: %s", f.code, f.message)
        return EvalResult.from_flags(
            eps=self.eps, norm=self.norm, attacks=self.attacks, flags=flags, seconds=seconds,
            grad_evals=grad_evals, warnings=[f.message for f in failures],
            checks=[f.code for f in failures], seed=self.seed, batch_size=self.batch_size,
            resumed_batches=resumed, index=index, meta=meta, reused=dict(self.reuse),
            cert_flags=cert_flags, radii=radii,
            cert_meta={c.name: c.record() for c in self.certifiers})


def evaluate(model: nn.Module, data: Iterable, eps: float, **kw: Any) -> EvalResult:
    """Shorthand: ``RobustnessEvaluator(eps, **kw).evaluate(model, data)``."""
    return RobustnessEvaluator(eps, **kw).evaluate(model, data)
