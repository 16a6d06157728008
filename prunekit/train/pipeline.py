"""The three-stage pipeline (ANAS-P paper, Sec. 3; HYDRA; Robust ADMM): dense adversarial
pretraining -> prune/search with the pruner's own optimizer and schedule -> finalize ->
adversarial fine-tuning. Every stage checkpoints every epoch and resumes after a kill; a finished
pretraining is cached under ``cfg.pretrain_hash()`` and shared by every method using it.
"""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.config import RunConfig
from prunekit.devices import select_device
from prunekit.modes import eval_mode
from prunekit.pruning.base import sparsity_target_of
from prunekit.pruning.hard_prune import finalize_change, probe_inputs, probe_logits
from prunekit.registry import PRUNERS
from prunekit.sections import build_loss, build_model
from prunekit.seeding import derive_seed, seed_everything
from prunekit.train.data import build_train_set
from prunekit.train.env import DistEnv, dist_env, init_distributed
from prunekit.train.loader import build_loader, seeded_batches
from prunekit.train.loop import fit
from prunekit.train.optim import make_optimizer, make_scheduler
from prunekit.train.pretrain_stage import pretrain_stage
from prunekit.train.search_stage import is_searcher, run_search_stages
from prunekit.train.compute import ForwardCounter, cpu_seconds
from prunekit.train.records import StageRecord, append_warnings, compute_columns, stage_warnings
from prunekit.train.tracking import open_tracker
from prunekit.train.workdir import claim_workdir, save_final

__all__ = ["run_pipeline", "PipelineResult", "StageRecord", "uses_pretraining"]

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """Output of :func:`run_pipeline`.

    ``model``: the finalized, fine-tuned model (eval mode). ``dense_model``: the pretrained dense
    model (for MACs reduction / comparisons). ``spec``: the dataset's DataSpec. ``records``:
    ``{"pretrain"|"prune"|"finetune": StageRecord}``. ``example_inputs``: one zero input
    (1 x C x H x W, on the device). ``train_seconds``: sum of the stages' seconds (a cached
    pretraining counts with the seconds it took when it was trained, so runs stay comparable).
    ``cfg``: the resolved config (eps filled in). ``workdir``: where checkpoints and logs are.
    ``pruner``: ``{"name", "sparsity_target", "hparams", "summary"}`` (also in run.json).
    """

    model: nn.Module
    dense_model: nn.Module
    spec: Any
    records: dict[str, StageRecord]
    example_inputs: torch.Tensor
    train_seconds: float
    cfg: RunConfig | None = None
    workdir: Path | None = None
    #: the pruner's name, sparsity_target, hparams and summary (as in run.json); {} otherwise
    pruner: dict[str, Any] = field(default_factory=dict)
    #: "pruner" or "searcher"; a searcher's ``dense_model`` is the found model itself
    family: str = "pruner"
    #: the method's ``summary()`` (CSV ``method_summary``) and its declared ``sparsity_target``
    summary: dict[str, Any] = field(default_factory=dict)
    sparsity_target: str | None = None
    #: measured training compute: ``train_epochs`` (JSON), ``train_passes``, ``train_cpu_s``
    #: (:func:`prunekit.train.records.compute_columns`; None = unknown)
    compute: dict[str, Any] = field(default_factory=dict)


def run_pipeline(cfg: RunConfig, workdir: str | os.PathLike,
                 cache_dir: str | os.PathLike | None = None,
                 device: str | torch.device | None = None,
                 progress: bool | None = None, tracker: Any = None) -> PipelineResult:
    """Run (or resume) pretrain -> prune -> finalize -> fine-tune for one :class:`RunConfig`.

    Layout: ``<cache_dir or workdir>/pretrain/<pretrain_hash>/`` (ckpt.pt, log.jsonl, model.pt,
    done.json), ``workdir/prune/`` and ``workdir/finetune/`` (ckpt.pt, log.jsonl),
    ``workdir/model.pt`` (final model, :func:`prunekit.checkpoint.load_model`),
    ``workdir/run.json`` (config and records). Re-running the same call after a kill resumes every
    stage from its last epoch checkpoint; finished stages are not trained again.

    ``tracker`` (:mod:`prunekit.train.tracking`) gets every epoch's stats; when None and
    ``cfg.track`` enables a tracker, this call opens and closes one.
    """
    if tracker is None and (cfg.track.tensorboard or cfg.track.wandb):
        with open_tracker(cfg, workdir, dist_env().is_main) as own:
            return run_pipeline(cfg, workdir, cache_dir, device, progress, tracker=own)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    dev = select_device(device if device is not None else cfg.device)
    dist = init_distributed(dev)
    train_set, spec = build_train_set(cfg)
    cfg = cfg.resolve(spec.eps)
    claim_workdir(workdir, cfg, dist)
    world = dist.world_size
    loader = build_loader(train_set, max(1, cfg.data.batch_size // world), shuffle=True,
                          seed=cfg.seed, num_workers=cfg.data.num_workers, dist=dist,
                          pin_memory=dev.type == "cuda")
    loss = build_loss(cfg.loss)
    example_inputs = torch.zeros(1, *spec.input_shape, device=dev)
    common = dict(device=dev, amp=cfg.amp, channels_last=cfg.channels_last, progress=progress,
                  dist=dist, tracker=tracker)
    records: dict[str, StageRecord] = {}
    if is_searcher(cfg.method):  # search -> train from scratch (no dense pretraining)
        return _run_searcher(cfg, workdir, train_set, spec, loss, loader, dist, common,
                             example_inputs)

    # 1. dense adversarial pretraining (cached, shared between methods), unless the method
    #    trains sparse from scratch (Pruner.needs_pretrain False: FlyingBird, Twin-Rep) ---------
    seed_everything(derive_seed(cfg.seed, "init"))
    model = build_model(cfg.model, spec).to(dev)
    if uses_pretraining(cfg):
        pre_dir = (Path(cache_dir) if cache_dir is not None else workdir) / "pretrain" / \
            cfg.pretrain_hash()
        records["pretrain"] = pretrain_stage(model, cfg, loss, loader, pre_dir, dist, common)
    else:
        records["pretrain"] = StageRecord(skipped=True)
    dense_model = copy.deepcopy(model).eval()

    # 2. prune / search, then finalize ----------------------------------------------------------
    pruner = PRUNERS.build(cfg.method, sparsity=cfg.sparsity, **cfg.pruner_hparams())
    seed_everything(derive_seed(cfg.seed, "attach"))
    pruner.attach(model, example_inputs)
    if pruner.calibrates():
        seed_everything(derive_seed(cfg.seed, "calibrate"))
        cpu0 = cpu_seconds()
        with eval_mode(model), ForwardCounter(model) as counter:
            pruner.calibrate(model, seeded_batches(loader, derive_seed(cfg.seed, "calibrate"),
                                                   dev), loss)
        records["calibrate"] = StageRecord(passes=counter.passes, cpu_s=cpu_seconds() - cpu0)
    st = cfg.stage("prune")
    groups = pruner.param_groups(model)
    if groups and st.epochs > 0:
        opt = make_optimizer(groups, st)
        pruner.bind_optimizer(opt)
        sched = pruner.stage_scheduler(opt, st)
        sched = make_scheduler(opt, st) if sched is None else sched
        res = fit(model, loss, opt, sched, loader, st.epochs, pruner=pruner,
                  checkpoint=workdir / "prune" / "ckpt.pt", log_path=workdir / "prune" / "log.jsonl",
                  seed=derive_seed(cfg.seed, "prune"), stage="prune", **common)
        records["prune"] = StageRecord.from_fit(res)
    else:
        records["prune"] = StageRecord(skipped=True)
    probe = probe_inputs(train_set, dev)
    before = probe_logits(model, probe)
    model = pruner.finalize(model).to(dev)
    change = finalize_change(before, probe_logits(model, probe),
                             lossless_claimed=type(pruner).lossless_finalize)
    pruner_info = {"name": cfg.method, "sparsity_target": sparsity_target_of(pruner),
                   "hparams": pruner.hparams(), "summary": _merge_summary(pruner.summary(), change)}
    if pruner_info["summary"]:
        log.info("%s: %s", cfg.method, pruner_info["summary"])

    # 3. adversarial fine-tuning of the finalized model ----------------------------------------
    st = cfg.stage("finetune")
    params = [p for p in model.parameters() if p.requires_grad]
    if params and st.epochs > 0:
        opt = make_optimizer(params, st)
        res = fit(model, loss, opt, make_scheduler(opt, st), loader, st.epochs,
                  checkpoint=workdir / "finetune" / "ckpt.pt",
                  log_path=workdir / "finetune" / "log.jsonl",
                  seed=derive_seed(cfg.seed, "finetune"), stage="finetune", **common)
        records["finetune"] = StageRecord.from_fit(res)
    else:
        records["finetune"] = StageRecord(skipped=True)
    model.eval()
    train_seconds = float(sum(r.seconds for r in records.values()))
    pruner_info["summary"] = _with_warnings(pruner_info["summary"], records, spec.num_classes,
                                            len(train_set))
    if dist.is_main:
        save_final(workdir, model, cfg, records, spec, train_seconds, pruner_info)
    dist.barrier()
    return PipelineResult(model=model, dense_model=dense_model, spec=spec, records=records,
                          example_inputs=example_inputs, train_seconds=train_seconds, cfg=cfg,
                          workdir=workdir, pruner=pruner_info,
                          summary=dict(pruner_info.get("summary") or {}),
                          sparsity_target=pruner_info.get("sparsity_target"),
                          compute=compute_columns(records))


# ------------------------------------------------------------------------------------------------
def uses_pretraining(cfg: RunConfig) -> bool:
    """Whether the run's method starts from the dense pretraining: not a searcher, nor a pruner
    that trains sparse from scratch (``Pruner.needs_pretrain`` False)."""
    if is_searcher(cfg.method):
        return False
    return bool(getattr(PRUNERS.get(cfg.method), "needs_pretrain", True))


def _merge_summary(summary: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """The pruner's summary plus the hard-prune probe; ``warnings`` lists are concatenated."""
    out = {**summary, **{k: v for k, v in change.items() if k != "warnings"}}
    return append_warnings(out, list(change.get("warnings") or []))


def _with_warnings(summary: dict[str, Any], records: dict[str, StageRecord], num_classes: int,
                   n_train: int) -> dict[str, Any]:
    """``summary`` with the stages' training warnings (catastrophic overfitting, chance-level
    collapse, ...) appended to its ``warnings`` list (the CSV ``method_summary``)."""
    return append_warnings(summary, stage_warnings(records, num_classes, n_train))


def _run_searcher(cfg: RunConfig, workdir: Path, train_set: Any, spec: Any, loss: Any,
                  loader: Any, dist: DistEnv, common: dict[str, Any],
                  example_inputs: torch.Tensor) -> PipelineResult:
    model, recs, searcher = run_search_stages(cfg, workdir, train_set, spec, loss, loader, dist,
                                              common)
    records = {"pretrain": StageRecord(skipped=True),
               **{k: StageRecord(**v) for k, v in recs.items()}}
    train_seconds = float(sum(r.seconds for r in records.values()))
    summary = _with_warnings(searcher.summary(), records, spec.num_classes, len(train_set))
    info = {"name": cfg.method, "hparams": searcher.hparams(), "summary": summary}
    if dist.is_main:
        save_final(workdir, model, cfg, records, spec, train_seconds, info)
    return PipelineResult(model=model, dense_model=model, spec=spec, records=records,
                          example_inputs=example_inputs, train_seconds=train_seconds, cfg=cfg,
                          workdir=workdir, family="searcher", summary=summary,
                          sparsity_target=searcher.sparsity_target,
                          compute=compute_columns(records))


