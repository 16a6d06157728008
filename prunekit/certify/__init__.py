"""Certified robustness: the :class:`Certifier` family (registered in
``prunekit.CERTIFIERS``): ``ibp`` and ``crown-ibp`` (verified L-inf accuracy at eps) and
``smoothing`` (Cohen et al. CERTIFY, certified L2 accuracy at a list of radii), the bound
propagation they share (:mod:`prunekit.certify.bounds`) and the certificate/attack consistency
check. Configure with ``eval: {certify: [ibp, {name: smoothing, sigma: 0.25}]}``."""
from __future__ import annotations

from prunekit.certify.base import Certifier, CertOutcome, build_certifier
from prunekit.certify.bounds import BoundError, Bounds
from prunekit.certify.consistency import CertificationInconsistency, check_consistency
from prunekit.certify.smoothed import SmoothingCertifier
from prunekit.certify.verified import VerifiedCROWNIBP, VerifiedIBP

__all__ = ["Certifier", "CertOutcome", "build_certifier", "Bounds", "BoundError",
           "CertificationInconsistency", "check_consistency", "SmoothingCertifier",
           "VerifiedIBP", "VerifiedCROWNIBP"]
