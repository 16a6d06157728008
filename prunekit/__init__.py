"""prunekit: adversarially robust neural-network pruning.

Train adversarially (PGD-AT, TRADES, MART), prune with a pluggable method (D2BC/ANAS-P, HYDRA,
ADMM, your own), fine-tune, evaluate under PGD-50-10 / APGD / AutoAttack with one evaluator, and
tabulate. See README.md and docs/architecture.md.
"""
from __future__ import annotations

import logging

from prunekit._version import __version__
from prunekit.registry import ATTACKS, CERTIFIERS, DATASETS, LOSSES, MODELS, PRUNERS, SEARCHERS, \
    Registry, RegistryError

# Built-in entries register themselves on import; import them explicitly (no wildcard magic).
from prunekit import data as data  # noqa: E402
from prunekit import models as models  # noqa: E402
from prunekit import losses as losses  # noqa: E402
from prunekit import attacks as attacks  # noqa: E402
from prunekit import pruning as pruning  # noqa: E402
from prunekit import search as search  # noqa: E402  (the DARTS model, searchers)
from prunekit import certify as certify  # noqa: E402  (ibp, crown-ibp, smoothing)
from prunekit.eval import EvalResult, RobustnessEvaluator  # noqa: E402

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__", "Registry", "RegistryError", "MODELS", "DATASETS", "LOSSES", "PRUNERS",
    "SEARCHERS", "ATTACKS", "RobustnessEvaluator", "EvalResult", "data", "models", "losses", "attacks",
    "pruning", "search", "CERTIFIERS", "certify",
]
