"""The pipeline of a searcher (``method: lrnas``): budget check -> search -> adversarial training
from scratch of the found network -> (the caller evaluates). Called by
:func:`prunekit.train.run_pipeline` in place of pretrain / prune / fine-tune (docs/search.md).

Layout under the run's work directory: ``search/`` (the searcher's ``ckpt.pt``, ``log.jsonl``,
``result.json``) and ``train/`` (``fit``'s ``ckpt.pt``, ``log.jsonl``); both stages checkpoint
every epoch and resume after a kill. The dense ``pretrain`` stage is not used: the found network
is trained from scratch with the run's loss and the (method-overridable) ``finetune`` stage
settings, plus the searcher's :meth:`~prunekit.search.Searcher.train_options` (gradient clipping,
drop path, auxiliary loss).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.atomic import atomic_write_text
from prunekit.config import RunConfig
from prunekit.errors import ConfigError
from prunekit.registry import SEARCHERS
from prunekit.search.base import Searcher
from prunekit.search.training import CleanBNForward, DropPathSchedule, WithAuxiliary, \
    clip_gradients, strip_auxiliary
from prunekit.seeding import derive_seed
from prunekit.train.compute import ForwardCounter, cpu_seconds, sum_or_none
from prunekit.train.env import DistEnv
from prunekit.train.loop import fit
from prunekit.train.optim import make_optimizer, make_scheduler

__all__ = ["run_search_stages", "is_searcher"]

log = logging.getLogger(__name__)


def is_searcher(method: str) -> bool:
    """Whether ``method`` names a registered searcher (else a pruner)."""
    return method in SEARCHERS


def _numeric(rec: dict[str, Any]) -> dict[str, Any]:
    """A search epoch's numbers; ``adv_acc`` = the supernet's FGSM accuracy on the scoring
    batches (the stage summary shows clean / adversarial accuracy for every stage)."""
    out = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "score_fgsm_acc" in out:
        out["adv_acc"] = out["score_fgsm_acc"]
    return out


def run_search_stages(cfg: RunConfig, workdir: Path, train_set: Any, spec: Any, loss: Any,
                      loader: Any, dist: DistEnv, common: dict[str, Any]
                      ) -> tuple[nn.Module, dict[str, dict[str, Any]], Searcher]:
    """Search and train; returns ``(trained model, {"search"|"train": record fields},
    searcher)``. The budget is checked before any training (one-line :class:`ConfigError`)."""
    if dist.enabled:
        raise ConfigError(f"{cfg.method}: the search does not run under torch.distributed; "
                          f"run it in one process")
    searcher: Searcher = SEARCHERS.build(cfg.method, **cfg.pruner_hparams())
    try:
        searcher.check_budget(spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    dev = common["device"]
    train, valid = searcher.split(train_set)
    meter = _SearchMeter(workdir / "search" / "compute.json")
    with meter.counter:
        res = searcher.run(train, valid, spec, seed=derive_seed(cfg.seed, "search"), device=dev,
                           workdir=workdir / "search", eps=cfg.eps, on_epoch_end=meter.epoch_done)
    log.info("%s: genotype %s (%d params, budget %.6g)", cfg.method, res.genotype, res.params,
             searcher.budget)
    records: dict[str, dict[str, Any]] = {
        "search": {"epochs": len(res.history), "seconds": res.seconds,
                   "last": _numeric(res.history[-1]) if res.history else {},
                   **meter.totals(len(res.history))}}

    model = res.model.to(dev)
    if dev.type == "cpu":  # depthwise convs and 3x3 max-pools: ~2x faster (docs/search.md)
        model = model.to(memory_format=torch.channels_last)
    st = cfg.stage("finetune")
    opts = searcher.train_options()
    params = [p for p in model.parameters() if p.requires_grad]
    if st.epochs > 0 and params:
        opt = make_optimizer(params, st)
        if opts.get("grad_clip"):
            clip_gradients(opt, params, float(opts["grad_clip"]))
        sched: Any = make_scheduler(opt, st)
        if opts.get("drop_path_prob"):
            sched = DropPathSchedule(sched, model, float(opts["drop_path_prob"]), st.epochs)
        train_loss = WithAuxiliary(loss, model, opts["auxiliary_weight"]) \
            if opts.get("auxiliary_weight") else loss
        if opts.get("bn_clean_forward"):
            train_loss = CleanBNForward(train_loss)
        fitted = fit(model, train_loss, opt, sched, loader, st.epochs,
                     checkpoint=workdir / "train" / "ckpt.pt",
                     log_path=workdir / "train" / "log.jsonl",
                     seed=derive_seed(cfg.seed, "train"), stage="train", **common)
        records["train"] = {"epochs": fitted.epochs, "seconds": fitted.seconds,
                            "last": fitted.last, "passes": fitted.passes,
                            "cpu_s": fitted.cpu_s, "warnings": fitted.warnings}
    else:
        records["train"] = {"skipped": True}
    model = strip_auxiliary(model).eval()
    if hasattr(model, "drop_path_prob"):
        model.drop_path_prob = 0.0
    return model, records, searcher


class _SearchMeter:
    """The search's measured compute, per epoch, in ``compute.json`` beside its checkpoint:
    forward passes through any outermost module (the searcher builds its own networks) and
    process CPU seconds since the previous epoch's end, written by the searcher's
    ``on_epoch_end``. A resumed search keeps the finished epochs' figures; an epoch without one
    (a searcher that never calls ``on_epoch_end``, a kill between its checkpoint and the
    callback) makes the total unknown (None), never 0."""

    def __init__(self, path: Path) -> None:
        self.path, self.counter = path, ForwardCounter(None)
        try:
            self.epochs: dict[str, dict[str, float]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.epochs = {}
        self._passes, self._cpu = 0, cpu_seconds()

    def epoch_done(self, epoch: int) -> None:
        now = cpu_seconds()
        self.epochs[str(epoch)] = {"passes": self.counter.passes - self._passes,
                                   "cpu_s": round(now - self._cpu, 3)}
        self._passes, self._cpu = self.counter.passes, now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.epochs, indent=1))

    def totals(self, n_epochs: int) -> dict[str, Any]:
        per = [self.epochs.get(str(e)) for e in range(n_epochs)]
        passes = sum_or_none(None if p is None else p["passes"] for p in per)
        cpu = sum_or_none(None if p is None else p["cpu_s"] for p in per)
        return {"passes": None if passes is None else int(passes), "cpu_s": cpu}
