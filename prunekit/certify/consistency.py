"""The cross-check between certificates and attacks (issue 21 acceptance): an example verified
robust at L-inf eps by a sound bound can never be broken by an L-inf attack at the same eps. If
one is, the bounds (or the attack's projection, or the data) are wrong, and the run must not
produce numbers: :func:`check_consistency` raises."""
from __future__ import annotations

from typing import Mapping

from torch import Tensor

__all__ = ["CertificationInconsistency", "check_consistency"]


class CertificationInconsistency(RuntimeError):
    """An example both verified robust and broken by an attack at the same eps and norm."""


def check_consistency(certified: Mapping[str, Tensor], attacked: Mapping[str, Tensor],
                      index: Tensor | None = None) -> None:
    """``certified``: ``{certificate: bool [n]}`` (L-inf at the attacks' eps); ``attacked``:
    ``{attack: bool [n] robust}``. Raises naming the pair and up to 5 example indices."""
    for c, v in certified.items():
        for a, r in attacked.items():
            bad = (v.bool().cpu() & ~r.bool().cpu()).nonzero().flatten()
            if bad.numel():
                ids = bad[:5] if index is None else index.cpu()[bad[:5]]
                raise CertificationInconsistency(
                    f"{bad.numel()} example(s) verified robust by {c} but broken by {a} at the "
                    f"same eps (examples {ids.tolist()}): the bounds or the attack are unsound")
