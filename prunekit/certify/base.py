"""The :class:`Certifier` interface: a certification method the evaluator runs beside the
attacks (docs/evaluation.md, "Certified robustness").

A certifier returns, per example, whether it is *certified* robust for each of its metrics
(e.g. ``ibp`` at the evaluator's eps; ``smooth0.25@0.5`` at L2 radius 0.5) and optionally a
per-example certified radius. Certified accuracy is a lower bound on robust accuracy; it is
reported in the ``certified_acc`` column and never enters ``worst_acc``.

A new certifier is one class with ``@CERTIFIERS.register(name)`` (or the
``prunekit.certifiers`` entry-point group) implementing :meth:`metrics` and :meth:`certify`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from torch import Tensor, nn

from prunekit.errors import ConfigError
from prunekit.registry import CERTIFIERS, OptionError, RegistryError

__all__ = ["Certifier", "CertOutcome", "build_certifier"]


@dataclass
class CertOutcome:
    """One batch: ``flags[metric]`` bool ``[B]`` (certified and correct); ``radius`` float
    ``[B]`` (the certified radius, ``-inf`` where not certified/abstained) or None."""

    flags: dict[str, Tensor]
    radius: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Certifier(abc.ABC):
    """A certification method.

    Attributes:
        name: the registry name (set by :func:`build_certifier`).
        norm: the threat model's norm (``"Linf"`` or ``"L2"``).
        eps: the L-inf radius a ``Linf`` certifier certifies (the evaluator's eps if None).
    """

    name: str = ""
    norm: ClassVar[str] = "Linf"
    eps: float | None = None

    @abc.abstractmethod
    def metrics(self) -> list[str]:
        """The metric names this certifier fills, in order (unique across certifiers)."""

    @abc.abstractmethod
    def certify(self, model: nn.Module, x: Tensor, y: Tensor) -> CertOutcome:
        """Certify a batch (model in eval mode, fp32; the RNG seeded by the evaluator)."""

    def record(self) -> dict[str, Any]:
        """JSON metadata (examples file, fingerprint)."""
        return {"name": self.name, "norm": self.norm, "repr": repr(self)}


def build_certifier(spec: str | Mapping[str, Any], eps: float) -> Certifier:
    """A certifier from ``"ibp"`` or ``{"name": "smoothing", "sigma": 0.25, ...}``; a Linf
    certifier without its own ``eps`` gets ``eps``."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(f"eval.certify entries are a name or a mapping with 'name'; got "
                          f"{spec!r} (valid names: {', '.join(CERTIFIERS.names())})")
    opts = {k: v for k, v in spec.items() if k != "name"}
    try:
        cert = CERTIFIERS.build(str(spec["name"]), **opts)
    except (RegistryError, OptionError, ValueError) as e:
        raise ConfigError(f"eval.certify {spec['name']!r}: {e}") from None
    cert.name = str(spec["name"])
    if cert.norm == "Linf" and cert.eps is None:
        cert.eps = float(eps)
    return cert
