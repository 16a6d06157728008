"""LRNAS: differentiable search for adversarially robust lightweight architectures (Feng et al.,
IEEE TNNLS 36(3), 2025, doi 10.1109/TNNLS.2024.3382724; official code fyqsama/LRNAS,
``train_search.py``, ``ranking.py``, ``model_search.py``).

One search epoch (official ``train_search.main``):

1. train the supernet's weights (not the alphas) on the first half of the training set with
   clean cross-entropy: SGD lr 0.1 (cosine to ``lr_min`` over ``epochs``), momentum 0.9,
   weight decay 3e-4, batch 128, gradient-norm clip 5;
2. from epoch ``warmup_epochs`` (15) on: contribution scores of every (cell, edge, op) from
   ``samples`` (10) permutations on random validation batches of ``batch_size // 2`` (FGSM,
   eps 8/255 in the official script) (:mod:`prunekit.search.scoring`), the alpha update
   ``alpha += 0.1 (0.8 prev + 0.2 z)`` and the greedy selection of the epoch's genotype under
   the budget (:mod:`prunekit.search.selection`), measured on the *final* network
   (``final_C`` = 36, ``final_layers`` = 20 in the official recipe; threshold 2.0 M params).

The result is the genotype selected after the last epoch (``genotype=`` a named or JSON
genotype skips the search and trains that one: retraining a searched or published network). Search network: C = 16, 8 cells,
partial channels k = 4, all 8 ops (:class:`prunekit.search.supernet.SearchNetwork`).

**Dataset line**: the released ``train_search.py`` loads SVHN (the CIFAR-10 line is commented
out). prunekit searches on the run's own dataset (``data.dataset``): the paper-scale grid
(benchmarks/grids/paper-lrnas-cifar10.yaml) follows the *commented CIFAR-10 line*, since the
released ``search_cifar10`` genotype and the CIFAR-10 training script belong to it.

Deviations (docs/search.md): the per-epoch validation pass of the official script (``infer``,
logging only) is not run -- the full supernet's clean / FGSM accuracy on the scoring batches is
logged instead; the scoring runs in eval mode explicitly (the official code relies on ``infer``
having set it); z-scores of all-equal values are 0 (official: NaN); ``strict=True`` optionally
never exceeds the budget; the search checkpoints every epoch and resumes exactly.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from prunekit import checkpoint as ckpt
from prunekit.atomic import atomic_write_text
from prunekit.data.splits import make_loader
from prunekit.registry import MODELS, SEARCHERS
from prunekit.search.base import Searcher
from prunekit.search.genotype import PRIMITIVES, Genotype, genotype_from
from prunekit.search.network import count_params
from prunekit.search.probe import DEAD_ADV_ACC, choose_radius, default_candidates, probe_radii
from prunekit.search.scoring import contribution_scores, update_alphas
from prunekit.search.selection import greedy_select, placeholder_genotype
from prunekit.search.supernet import SearchNetwork
from prunekit.seeding import derive_seed_numpy

__all__ = ["LRNAS"]

log = logging.getLogger(__name__)
CKPT_FORMAT = "prunekit.lrnas/1"


@SEARCHERS.register("lrnas")
class LRNAS(Searcher):
    """LRNAS searcher (see the module docstring; defaults = the official recipe).

    Args:
        budget: parameter threshold of the final network (official 2.0e6).
        C, layers, k, ops: search network (16, 8, 4, all 8 ops).
        final_C, final_layers: the final network the budget is measured on and that is trained
            (36, 20). ``auxiliary``, ``auxiliary_weight``, ``drop_path_prob``, ``train_grad_clip``:
            its training (official: off, 0.4, 0.0, 5.0).
        epochs, batch_size, lr, lr_min, momentum, weight_decay, grad_clip: supernet training.
        warmup_epochs: first epoch that scores (the official ``epoch >= 15``).
        samples: permutations (= validation batches) per scoring epoch.
        score_batch_size: validation batch size (default ``batch_size // 2``, official).
        fgsm_eps: FGSM radius of the scoring (default: the run's eps; official 8/255), or
            ``"auto"``: chosen at the first scoring epoch by the radius probe
            (:mod:`prunekit.search.probe`; candidates ``run eps x 2^-i``, i = 0..5) and kept.
        probe_ratio: ``auto``'s rule: the largest candidate whose FGSM accuracy is at least this
            fraction of the clean accuracy (0.5).
        alpha_step, alpha_momentum: the update's 0.1 and 0.8.
        train_portion: fraction of the training set for the weights (0.5).
        strict: never exceed the budget (prunekit option; official: checked before adding).
        bn_clean_forward: before every training step of the found network, a train-mode clean
            forward updating the BN statistics (official ``adv_train.py:106``; off by default).
    """

    #: the report's method label
    label = "LRNAS"
    contract_hparams = {"C": 4, "layers": 3, "k": 2, "final_C": 4, "final_layers": 3,
                        "ops": ["none", "sep_conv_3x3"], "epochs": 2, "warmup_epochs": 0,
                        "samples": 1, "batch_size": 16, "score_batch_size": 8, "strict": True,
                        "budget": 3000}

    def __init__(self, budget: float = 2.0e6, *, C: int = 16, layers: int = 8, k: int = 4,
                 ops: Sequence[str] = PRIMITIVES, final_C: int = 36, final_layers: int = 20,
                 epochs: int = 50, batch_size: int = 128, lr: float = 0.1, lr_min: float = 0.0,
                 momentum: float = 0.9, weight_decay: float = 3e-4, grad_clip: float = 5.0,
                 warmup_epochs: int = 15, samples: int = 10, score_batch_size: int | None = None,
                 fgsm_eps: float | str | None = None, probe_ratio: float = 0.5,
                 alpha_step: float = 0.1,
                 alpha_momentum: float = 0.8, train_portion: float = 0.5, strict: bool = False,
                 auxiliary: bool = False, auxiliary_weight: float = 0.4,
                 drop_path_prob: float = 0.0, train_grad_clip: float | None = 5.0,
                 bn_clean_forward: bool = False, genotype: Any = None) -> None:
        super().__init__(budget, genotype)
        chk = self._check
        for name, v in (("C", C), ("layers", layers), ("k", k), ("final_C", final_C),
                        ("final_layers", final_layers), ("epochs", epochs),
                        ("batch_size", batch_size), ("samples", samples)):
            chk(isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                f"{name} must be an integer >= 1, got {v!r}")
        chk(C % k == 0 and (2 * C) % k == 0, f"C={C} must be divisible by k={k} (partial "
                                             f"channels)")
        ops = list(ops)
        chk("skip_connect" not in ops or (2 * C // k) % 2 == 0,
            f"2C/k={2 * C // k} must be even: skip_connect on a reduction edge is a "
            f"factorized reduction of the partial channels")
        chk(bool(ops) and len(set(ops)) == len(ops) and all(o in PRIMITIVES for o in ops),
            f"ops must be distinct names from {', '.join(PRIMITIVES)}; got {ops}")
        chk(isinstance(warmup_epochs, int) and 0 <= warmup_epochs < epochs,
            f"warmup_epochs must be in [0, epochs={epochs}) so that some epoch scores the ops, "
            f"got {warmup_epochs!r}")
        chk(score_batch_size is None or (isinstance(score_batch_size, int) and
                                         score_batch_size >= 1),
            f"score_batch_size must be an integer >= 1 or null, got {score_batch_size!r}")
        for name, v in (("lr", lr), ("lr_min", lr_min), ("momentum", momentum),
                        ("weight_decay", weight_decay), ("grad_clip", grad_clip),
                        ("alpha_step", alpha_step), ("auxiliary_weight", auxiliary_weight)):
            chk(isinstance(v, (int, float)) and v >= 0, f"{name} must be a number >= 0, got {v!r}")
        chk(0.0 <= alpha_momentum < 1.0, f"alpha_momentum must be in [0, 1), got {alpha_momentum}")
        chk(0.0 < train_portion < 1.0, f"train_portion must be in (0, 1), got {train_portion}")
        chk(fgsm_eps is None or fgsm_eps == "auto" or (
            isinstance(fgsm_eps, (int, float)) and not isinstance(fgsm_eps, bool)
            and fgsm_eps >= 0), f"fgsm_eps must be a number >= 0, auto or null, got {fgsm_eps!r}")
        chk(isinstance(probe_ratio, (int, float)) and 0 < probe_ratio <= 1,
            f"probe_ratio must be in (0, 1], got {probe_ratio!r}")
        chk(0.0 <= drop_path_prob < 1.0, f"drop_path_prob must be in [0, 1), got {drop_path_prob}")
        chk(train_grad_clip is None or train_grad_clip > 0,
            f"train_grad_clip must be > 0 or null, got {train_grad_clip}")
        self.C, self.layers, self.k, self.ops = C, layers, k, tuple(ops)
        self.final_C, self.final_layers = final_C, final_layers
        self.epochs, self.batch_size, self.lr, self.lr_min = epochs, batch_size, float(lr), lr_min
        self.momentum, self.weight_decay, self.grad_clip = momentum, weight_decay, grad_clip
        self.warmup_epochs, self.samples = warmup_epochs, samples
        self.score_batch_size = score_batch_size or max(1, batch_size // 2)
        self.fgsm_eps, self.probe_ratio = fgsm_eps, float(probe_ratio)
        self.alpha_step, self.alpha_momentum = alpha_step, alpha_momentum
        self.train_portion, self.strict = float(train_portion), bool(strict)
        self.auxiliary, self.auxiliary_weight = bool(auxiliary), float(auxiliary_weight)
        self.drop_path_prob = float(drop_path_prob)
        self.train_grad_clip = None if train_grad_clip is None else float(train_grad_clip)
        chk(isinstance(bn_clean_forward, bool), f"bn_clean_forward must be true or false, got "
                                                f"{bn_clean_forward!r}")
        self.bn_clean_forward = bn_clean_forward

    # -- the final network --------------------------------------------------------------------
    def parse_genotype(self, genotype: Any) -> Any:
        """A name of :data:`~prunekit.search.genotype.GENOTYPES` or a JSON genotype (as a
        searched row's ``method_summary`` holds it), as its JSON dict."""
        return genotype_from(genotype).to_dict()

    def build(self, genotype: Any, spec: Any) -> nn.Module:
        return MODELS.build("darts", num_classes=spec.num_classes, in_channels=spec.in_channels,
                            mean=spec.mean, std=spec.std, genotype=genotype_from(genotype).to_dict(),
                            C=self.final_C, layers=self.final_layers, auxiliary=self.auxiliary,
                            image_size=list(spec.input_shape[1:]))

    def count(self, genotype: Any, spec: Any) -> int:
        return count_params(genotype_from(genotype), C=self.final_C, layers=self.final_layers,
                            num_classes=spec.num_classes, in_channels=spec.in_channels)

    def smallest(self, spec: Any) -> Any:
        return placeholder_genotype().to_dict()

    def train_options(self) -> dict[str, Any]:
        return {"grad_clip": self.train_grad_clip, "auxiliary_weight":
                self.auxiliary_weight if self.auxiliary else 0.0,
                "drop_path_prob": self.drop_path_prob, "bn_clean_forward": self.bn_clean_forward}

    def select(self, alphas: dict[str, torch.Tensor], spec: Any) -> Genotype:
        """The greedy selection of the genotype from ``alphas`` under the budget."""
        return greedy_select(alphas, self.ops, lambda g: self.count(g, spec), self.budget,
                             strict=self.strict)

    # -- the search ---------------------------------------------------------------------------
    def search(self, train: Dataset, valid: Dataset, spec: Any, *, seed: int = 0,
               device: str | torch.device = "cpu", workdir: str | os.PathLike | None = None,
               eps: float | None = None,
               on_epoch_end: Callable[[int], None] | None = None) -> tuple[Any, list[dict]]:
        dev = torch.device(device)
        run_eps = float(eps if eps is not None else spec.eps)
        with torch.random.fork_rng(devices=[]):
            net, opt, sched, prev = self.setup(spec, seed, dev)
            path = Path(workdir) / "ckpt.pt" if workdir is not None else None
            start, history = 0, []
            if path is not None and path.exists():
                start, history, prev = self._restore(path, net, opt, sched, dev)
                log.info("lrnas: resumed the search from %s at epoch %d/%d", path, start,
                         self.epochs)
            for epoch in range(start, self.epochs):
                torch.manual_seed(derive_seed_numpy(seed, "search-epoch", epoch))
                rec = self.epoch(net, opt, train, valid, spec, seed, epoch,
                                 self.scoring_radius(history, run_eps), prev, dev, run_eps)
                sched.step()
                history.append(rec)
                log.info("lrnas epoch %d/%d: %s", epoch + 1, self.epochs,
                         ", ".join(f"{k}={v:.4g}" for k, v in rec.items()
                                   if isinstance(v, float)))
                if path is not None:
                    ckpt.save(path, self._state(epoch + 1, net, opt, sched, prev, history))
                    atomic_write_text(path.with_name("log.jsonl"),
                                      "".join(json.dumps(r) + "\n" for r in history))
                if on_epoch_end is not None:
                    on_epoch_end(epoch)
            genotype = self.select(_alphas(net), spec)
        return genotype.to_dict(), history

    def setup(self, spec: Any, seed: int, dev: torch.device) -> tuple[
            SearchNetwork, torch.optim.Optimizer, Any, dict[str, torch.Tensor]]:
        """The seeded supernet (alphas ``1e-3 N(0, 1)``; channels_last on the CPU), its SGD
        optimizer, the cosine schedule and the initial momentum term ``prev`` (``1e-3 N(0, 1)``,
        official)."""
        torch.manual_seed(derive_seed_numpy(seed, "supernet"))
        net = SearchNetwork(C=self.C, layers=self.layers, num_classes=spec.num_classes,
                            in_channels=spec.in_channels, k=self.k, ops=self.ops,
                            mean=spec.mean, std=spec.std).to(dev)
        if dev.type == "cpu":  # ~1.2x faster on the CPU (docs/search.md, "Cost")
            net = net.to(memory_format=torch.channels_last)
        prev = {c: 1e-3 * torch.randn(net.alphas_normal.shape).to(dev)
                for c in ("normal", "reduce")}
        opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(self.epochs),
                                                           eta_min=self.lr_min)
        return net, opt, sched, prev

    def scoring_radius(self, history: Sequence[dict[str, Any]], run_eps: float) -> float | None:
        """The FGSM radius of the scoring: ``fgsm_eps``, else the run's eps; with ``"auto"`` the
        radius the probe chose at the first scoring epoch (read back from the history, so a
        resumed search keeps it), or None before it (the next scoring epoch probes)."""
        if self.fgsm_eps != "auto":
            return float(self.fgsm_eps if self.fgsm_eps is not None else run_eps)
        return next((float(r["score_eps"]) for r in history if "score_eps" in r), None)

    def epoch(self, net: SearchNetwork, opt: torch.optim.Optimizer, train: Dataset,
              valid: Dataset, spec: Any, seed: int, epoch: int, eps: float | None,
              prev: dict[str, torch.Tensor], dev: torch.device,
              run_eps: float | None = None) -> dict[str, Any]:
        """One search epoch (weights on ``train``; from ``warmup_epochs`` on also scoring, the
        alpha update and the epoch's selection); returns its log record (``train_seconds``,
        ``score_seconds``, ...). ``eps`` None (``fgsm_eps: auto`` before its choice): the probe
        on a held-out validation batch picks it among ``run_eps x 2^-i``; with ``auto`` every
        scoring epoch records the probe (``eps_probe``)."""
        t0 = time.perf_counter()
        lr = float(opt.param_groups[0]["lr"])
        loss_sum, hits, n = 0.0, 0, 0
        net.train()
        loader = make_loader(train, self.batch_size, shuffle=True,
                             seed=derive_seed_numpy(seed, "search-loader", epoch))
        for x, y in loader:
            x, y = x.to(dev), y.to(dev)
            opt.zero_grad(set_to_none=True)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"lrnas: search loss is {loss.item()} at epoch {epoch}; "
                                         f"lower the learning rate")
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
            opt.step()
            loss_sum += float(loss.detach()) * len(y)
            hits += int((logits.detach().argmax(1) == y).sum())
            n += len(y)
        rec: dict[str, Any] = {"epoch": epoch, "lr": lr, "loss": loss_sum / max(n, 1),
                               "clean_acc": hits / max(n, 1),
                               "train_seconds": round(time.perf_counter() - t0, 3)}
        if epoch >= self.warmup_epochs:
            t1 = time.perf_counter()
            if self.fgsm_eps == "auto":
                pgen = torch.Generator().manual_seed(derive_seed_numpy(seed, "eps-probe", epoch))
                px, py = _batch(valid, self.batch_size, pgen, dev)
                rec["eps_probe"] = probe_radii(net, px, py, default_candidates(
                    float(run_eps if run_eps is not None else spec.eps)))
                if eps is None:
                    eps = choose_radius(rec["eps_probe"], self.probe_ratio)
            assert eps is not None
            gen = torch.Generator().manual_seed(derive_seed_numpy(seed, "score", epoch))
            batches = [_batch(valid, self.score_batch_size, gen, dev) for _ in range(self.samples)]
            scores, base = contribution_scores(net, batches, eps, gen)
            prev.update(update_alphas(scores, prev, self.alpha_step, self.alpha_momentum))
            net.alphas_normal += prev["normal"]
            net.alphas_reduce += prev["reduce"]
            geno = self.select(_alphas(net), spec)
            rec.update(score_clean_acc=base["clean_acc"], score_fgsm_acc=base["fgsm_acc"],
                       score_eps=float(eps),
                       params=self.count(geno, spec), genotype=geno.to_dict(),
                       score_seconds=round(time.perf_counter() - t1, 3))
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        return rec

    def summary(self) -> dict[str, Any]:
        """The base summary plus the scoring's health: the FGSM radius ``score_eps``, per
        scoring epoch the full supernet's clean / FGSM accuracy on the scoring batches, their
        means ``score_clean_acc_mean`` / ``score_adv_acc`` and, with ``fgsm_eps: auto``, the
        probe that chose the radius (``eps_probe``). A mean FGSM accuracy below
        :data:`~prunekit.search.probe.DEAD_ADV_ACC` adds a ``warnings`` entry (the report marks
        the row): the adversarial half of the contribution score carried ~no information."""
        out = super().summary()
        scored = [r for r in (self._result.history if self._result else [])
                  if "score_fgsm_acc" in r]
        if scored:
            out["score_eps"] = scored[-1].get("score_eps", self.fgsm_eps)
            clean = [float(r["score_clean_acc"]) for r in scored]
            adv = [float(r["score_fgsm_acc"]) for r in scored]
            out["score_clean_acc"] = [round(v, 4) for v in clean]
            out["score_fgsm_acc"] = [round(v, 4) for v in adv]
            out["score_clean_acc_mean"] = round(sum(clean) / len(clean), 4)
            out["score_adv_acc"] = round(sum(adv) / len(adv), 4)
            probe = next((r["eps_probe"] for r in scored if r.get("eps_probe")), None)
            if probe is not None:
                out["eps_probe"] = [{k: round(float(v), 4) for k, v in p.items()} for p in probe]
            if out["score_adv_acc"] < DEAD_ADV_ACC:
                out["warnings"] = [f"lrnas: the supernet's FGSM accuracy at the scoring eps "
                                   f"{float(out['score_eps']):.4g} was {out['score_adv_acc']:.1%} "
                                   f"(mean over the scoring epochs): the adversarial term of the "
                                   f"contribution scores was ~dead; lower lrnas.fgsm_eps or set "
                                   f"it to auto"]
        return out

    # -- checkpoints --------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        hp = {k: v for k, v in self.hparams().items()}
        return json.dumps(hp, sort_keys=True, default=str)

    def _state(self, done: int, net: nn.Module, opt: torch.optim.Optimizer, sched: Any,
               prev: dict[str, torch.Tensor], history: list[dict]) -> dict[str, Any]:
        return {"format": CKPT_FORMAT, "epoch": done, "hparams": self._fingerprint(),
                "net": net.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "prev": {k: v.cpu() for k, v in prev.items()},
                "history": history}

    def _restore(self, path: Path, net: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                 dev: torch.device) -> tuple[int, list[dict], dict[str, torch.Tensor]]:
        state = ckpt.load(path)
        if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
            raise ValueError(f"{path} is not an LRNAS search checkpoint")
        if state["hparams"] != self._fingerprint():
            raise ValueError(f"{path} was written by an LRNAS search with other "
                             f"hyperparameters; use a fresh work directory")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        prev = {k: v.to(dev) for k, v in state["prev"].items()}
        return int(state["epoch"]), list(state["history"]), prev


def _alphas(net: SearchNetwork) -> dict[str, torch.Tensor]:
    return {"normal": net.alphas_normal, "reduce": net.alphas_reduce}


def _batch(ds: Dataset, size: int, gen: torch.Generator,
           dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch without replacement (the official ``next(iter(valid_queue))`` over a
    ``SubsetRandomSampler``: a fresh random batch for every permutation)."""
    idx = torch.randperm(len(ds), generator=gen)[:size].tolist()  # type: ignore[arg-type]
    items = [ds[i] for i in idx]
    x = torch.stack([it[0] for it in items]).to(dev)
    y = torch.as_tensor([int(it[1]) for it in items], device=dev)
    return x, y

