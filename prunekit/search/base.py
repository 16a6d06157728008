"""The Searcher lifecycle every architecture-search method implements (docs/search.md).

A searcher finds an architecture on training data, scores it on validation data and selects a
final network under a budget; the pipeline then trains that network adversarially from scratch
and evaluates it like every pruned model::

    searcher = SEARCHERS.build("lrnas", budget=2.0e6, **hparams)   # validates hyperparameters
    searcher.check_budget(spec)              # one-line error below the smallest network
    train, valid = searcher.split(train_set)
    result = searcher.run(train, valid, spec, workdir=..., seed=0, eps=8/255)
    result.genotype      # plain JSON (dict / list / str / number)
    result.model         # the final network built from it (fresh initialisation)
    searcher.summary()   # {"genotype": ..., "budget": ..., "params": ..., ...} -> CSV

``run`` resumes a killed search from the searcher's per-epoch checkpoint in ``workdir`` and
returns the stored result of a finished one; ``build(genotype, spec)`` rebuilds the same network
from the JSON genotype alone (same state_dict keys and shapes).

Retraining a known architecture (the NAS protocol "search once, retrain with several seeds",
or a published genotype): a searcher built with ``genotype=...`` skips :meth:`search` -- ``run``
builds that genotype (0 search epochs) and ``check_budget`` requires it to fit the budget.
"""
from __future__ import annotations

import abc
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from prunekit.atomic import atomic_write_text
from prunekit.data.splits import SpecSubset
from prunekit.hparams import Hyperparameters
from prunekit.modes import eval_mode
from prunekit.pruning.accounting import count_macs_params
from prunekit.registry import MODELS, SEARCHERS
from prunekit.seeding import derive_seed_numpy

__all__ = ["Searcher", "SearchResult"]

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"


@dataclass
class SearchResult:
    """What a search produced: the genotype (plain JSON), the final network built from it, its
    parameter count by the searcher's budget convention, the budget and the per-epoch history."""

    genotype: Any
    model: nn.Module
    params: int
    budget: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: conv + linear MACs per example of the final network (torch-pruning's counter, as the
    #: CSV's ``macs``), so the summary names both costs a pruned row can be matched at
    macs: int | None = None


class Searcher(Hyperparameters, abc.ABC):
    """Base class of every architecture-search method.

    Subclasses validate their hyperparameters in ``__init__`` (one-line ``ValueError`` naming the
    parameter), and implement :meth:`search`, :meth:`build`, :meth:`count` and
    :meth:`smallest`. Register with ``@SEARCHERS.register("name")`` or the
    ``prunekit.searchers`` entry-point group; tests/test_search_contract.py then checks it.
    """

    #: what a CSV row's ``granularity`` says for every searcher
    granularity: ClassVar[str] = "architecture"
    #: what ``budget`` limits (the CSV column ``sparsity_target``): "params" of the final network
    sparsity_target: ClassVar[str] = "params"
    registry_name: ClassVar[str] = ""
    #: hyperparameters / budget that make the contract tests' searches take a second or two
    contract_hparams: ClassVar[dict[str, Any]] = {}
    contract_budget: ClassVar[float] = 0.0
    #: fraction of the training set that trains the weights (the rest scores the architecture)
    train_portion: float = 0.5
    #: the model builder of the final network: a run config must name it as ``model.name`` (so
    #: the CSV's ``model`` column is honest) and give it no options (the searcher sets them)
    network: ClassVar[str] = "darts"

    def __init__(self, budget: float, genotype: Any = None, **hparams: Any) -> None:
        self._reject_unknown(hparams)
        budget = self._number(budget, f"budget must be a number of parameters, got {budget!r}")
        self._check(budget >= 0 and budget != float("inf"),
                    f"budget must be a finite number of parameters >= 0, got {budget:g}")
        self.budget = budget
        #: the given architecture to train instead of searching (plain JSON), None = search
        self._given: Any = None if genotype is None else self.parse_genotype(genotype)
        self._result: SearchResult | None = None

    def parse_genotype(self, genotype: Any) -> Any:
        """A given ``genotype`` hyperparameter as plain JSON (one-line ``ValueError`` if
        malformed); searchers with their own genotype format override it."""
        return json.loads(json.dumps(genotype))

    # -- what a method implements -------------------------------------------------------------
    @abc.abstractmethod
    def search(self, train: Dataset, valid: Dataset, spec: Any, *, seed: int = 0,
               device: str | torch.device = "cpu", workdir: str | os.PathLike | None = None,
               eps: float | None = None,
               on_epoch_end: Callable[[int], None] | None = None) -> tuple[Any, list[dict]]:
        """Search; return ``(genotype as plain JSON, per-epoch history)``. With ``workdir``,
        checkpoint every epoch there and resume from it. ``eps`` is the run's attack radius."""

    @abc.abstractmethod
    def build(self, genotype: Any, spec: Any) -> nn.Module:
        """The final network of ``genotype`` for a dataset with DataSpec ``spec``."""

    @abc.abstractmethod
    def count(self, genotype: Any, spec: Any) -> int:
        """Parameters of the final network of ``genotype``, as the budget counts them."""

    @abc.abstractmethod
    def smallest(self, spec: Any) -> Any:
        """The genotype of the smallest network the search can return."""

    def train_options(self) -> dict[str, Any]:
        """How the pipeline trains the found network: ``grad_clip`` (max gradient norm or
        None), ``auxiliary_weight`` (weight of the auxiliary head's loss, 0 = none) and
        ``drop_path_prob`` (final drop-path rate, linearly increased over the epochs)."""
        return {"grad_clip": None, "auxiliary_weight": 0.0, "drop_path_prob": 0.0}

    # -- shared behaviour ---------------------------------------------------------------------
    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Validate a run config that uses this searcher (called by ``RunConfig.validate``;
        one-line ``ValueError`` / ``TypeError``): ``sparsity`` 0 (the budget limits the
        network), ``model`` = :attr:`network` without options, no ``prune`` stage override, and
        the hyperparameters of its section (built once)."""
        name = cls.registry_name
        if cfg.sparsity != 0:
            raise ValueError(f"sparsity is not used by the searcher {name!r} (its budget is "
                             f"{name}.budget); leave it at 0")
        if cfg.model.name not in MODELS or MODELS.canonical(cfg.model.name) != cls.network:
            raise ValueError(f"the searcher {name!r} trains a {cls.network!r} network: set "
                             f"model.name: {cls.network}")
        if cfg.model.options or cfg.model.width != 1.0:
            raise ValueError(f"model options and width are not used by the searcher {name!r}; "
                             f"its section sets the final network")
        if "prune" in cfg.method_section():
            raise ValueError(f"the searcher {name!r} has no prune stage (its search settings "
                             f"are {name} hyperparameters); valid stage override: finetune")
        SEARCHERS.build(name, **cfg.pruner_hparams())

    def min_budget(self, spec: Any) -> int:
        """Parameters of the smallest possible network."""
        return self.count(self.smallest(spec), spec)

    def check_budget(self, spec: Any) -> None:
        """Raise a one-line ``ValueError`` if no network fits the budget (before any training)."""
        if self._given is not None:
            n = self.count(self._given, spec)
            if n > self.budget:
                raise ValueError(f"{self.registry_name or type(self).__name__}: the given "
                                 f"genotype has {n} parameters, above the budget "
                                 f"{self.budget:.6g}; raise the budget or give another genotype")
            return
        low = self.min_budget(spec)
        if self.budget < low:
            raise ValueError(f"{self.registry_name or type(self).__name__}: budget "
                             f"{self.budget:.6g} parameters is below the smallest possible "
                             f"network ({low} parameters for {spec.name}); raise the budget")

    def split(self, dataset: Dataset) -> tuple[Dataset, Dataset]:
        """First ``train_portion`` of the examples trains the weights, the rest is for scoring
        (the official split is by index, not shuffled)."""
        n = len(dataset)  # type: ignore[arg-type]
        cut = int(np.floor(self.train_portion * n))
        if cut < 1 or cut >= n:
            raise ValueError(f"train_portion {self.train_portion} leaves an empty split of "
                             f"{n} examples")
        return SpecSubset(dataset, range(cut)), SpecSubset(dataset, range(cut, n))

    def run(self, train: Dataset, valid: Dataset, spec: Any, *, seed: int = 0,
            device: str | torch.device = "cpu", workdir: str | os.PathLike | None = None,
            eps: float | None = None,
            on_epoch_end: Callable[[int], None] | None = None) -> SearchResult:
        """:meth:`search` (resumed from ``workdir``; a finished search is read back from
        ``workdir/result.json``), then :meth:`build` with a seeded initialisation."""
        done = Path(workdir) / RESULT_FILE if workdir is not None else None
        t0 = time.perf_counter()
        if self._given is not None:
            genotype, history = self._given, []
            log.info("%s: training the given genotype (no search)", self.registry_name)
        elif done is not None and done.exists():
            stored = json.loads(done.read_text())
            genotype, history = stored["genotype"], stored["history"]
            log.info("%s: using the finished search in %s", self.registry_name, done)
        else:
            genotype, history = self.search(train, valid, spec, seed=seed, device=device,
                                            workdir=workdir, eps=eps, on_epoch_end=on_epoch_end)
            genotype = json.loads(json.dumps(genotype))  # plain JSON, as stored
            if done is not None:
                atomic_write_text(done, json.dumps({"genotype": genotype, "history": history},
                                              indent=1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed_numpy(seed, "final-init"))
            model = self.build(genotype, spec)
        seconds = float(sum(r.get("seconds", 0.0) for r in history)) or time.perf_counter() - t0
        with eval_mode(model):  # no BN statistics update, no auxiliary head
            macs, _ = count_macs_params(model, torch.zeros(1, *spec.input_shape,
                                                           device=next(model.parameters()).device))
        self._result = SearchResult(genotype=genotype, model=model,
                                    params=self.count(genotype, spec), budget=self.budget,
                                    history=list(history), seconds=seconds, macs=int(macs))
        return self._result

    @property
    def result(self) -> SearchResult | None:
        """The last :meth:`run` result."""
        return self._result

    def summary(self) -> dict[str, Any]:
        """Plain-JSON facts for the CSV column ``method_summary``: the genotype, the budget, the
        measured parameters and MACs of the final network (empty before :meth:`run`)."""
        r = self._result
        if r is None:
            return {}
        return {"genotype": r.genotype, "budget": self.budget, "budget_kind": self.sparsity_target,
                "params": int(r.params), "macs": r.macs, "within_budget": bool(r.params <= self.budget),
                "search_epochs": len(r.history), "search_seconds": round(r.seconds, 3),
                "genotype_given": self._given is not None}

    def hparams(self) -> dict[str, Any]:
        """The searcher's settings as resolved by its constructor, plain values only (for logs,
        provenance and LRNAS's checkpoint fingerprint): its public attributes, unlike a
        pruner's :meth:`constructor_arguments` (a searcher's attributes never evolve, and the
        resolved form records e.g. LRNAS's ``score_batch_size`` default)."""
        out = {}
        for k, v in vars(self).items():
            if k.startswith("_"):
                continue
            if isinstance(v, tuple):
                v = list(v)
            if isinstance(v, (int, float, str, bool, type(None), list)):
                out[k] = v
        return out
