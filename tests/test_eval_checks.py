"""The accuracy sanity checks read the attacks' declared metadata only: the same flags under any
attack names give the same check codes, and each check fires exactly on its trigger."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from prunekit.attacks import build_attack
from prunekit.eval.checks import check_accuracies


def _flags(**rows: str) -> dict[str, torch.Tensor]:
    return {k.replace("_", "-"): torch.tensor([c == "1" for c in v]) for k, v in rows.items()}


def _metas(*names: str, eps: float = 0.1):
    return [build_attack(n, eps).meta for n in names]


def _codes(metas, flags, **kw) -> list[str]:
    return sorted({f.code for f in check_accuracies(metas, flags, **kw)})


CASES = [
    # (attacks, rows (clean first), expected codes)
    (("pgd-10-1", "apgd-ce"), dict(clean="1111111111", pgd_10_1="1111110000",
                                   apgd_ce="1111100000"), []),
    (("pgd-10-1", "apgd-ce"), dict(clean="1111111111", pgd_10_1="1111111100",
                                   apgd_ce="1100000000"), ["pgd_far_above_aa"]),
    (("apgd-ce", "autoattack-fast"), dict(clean="1111111111", apgd_ce="1111000000",
                                          autoattack_fast="1110100000"), ["aa_above_apgd"]),
    (("apgd-ce", "square"), dict(clean="1111111111", apgd_ce="1111100000",
                                 square="1110000000"), ["square_beats_whitebox"]),
    (("pgd-10-1", "autoattack"), dict(clean="1111111111", pgd_10_1="1111100000",
                                      autoattack="1111000000"), []),     # mixed box: no square
    (("pgd-10-1",), dict(clean="1111100000", pgd_10_1="1111110000"), ["robust_above_clean"]),
]


@pytest.mark.parametrize("attacks,rows,expected", CASES)
def test_checks_fire_on_their_trigger(attacks, rows, expected) -> None:
    assert _codes(_metas(*attacks), _flags(**rows)) == expected


@pytest.mark.parametrize("attacks,rows,expected", CASES)
def test_checks_ignore_names(attacks, rows, expected) -> None:
    """Rename every attack: same metadata, same flags -> same codes."""
    flags = _flags(**rows)
    metas = _metas(*attacks)
    renamed = [dataclasses.replace(m, name=f"plugin-{i}") for i, m in enumerate(metas)]
    new_flags = {"clean": flags["clean"]}
    new_flags.update({r.name: flags[m.name] for m, r in zip(metas, renamed)})
    assert _codes(renamed, new_flags) == expected


def test_declared_metadata_decides() -> None:
    """A plug-in declared black-box is checked against white-box attacks; one declared a
    reference is the yardstick of the PGD check; the AA dominance check needs seeded attacks."""
    flags = _flags(clean="1111111111", a="1111100000", b="1100000000")
    white = dataclasses.replace(build_attack("pgd-10-1", 0.1).meta, name="a")
    other = dataclasses.replace(white, name="b")
    assert _codes([white, other], flags) == []
    assert _codes([white, dataclasses.replace(other, box="black")], flags) == \
        ["square_beats_whitebox"]
    assert _codes([white, dataclasses.replace(other, reference=True)], flags) == \
        ["pgd_far_above_aa"]
    flags = _flags(clean="1111111111", a="1100000000", b="1110000000")
    stage = dataclasses.replace(white, components=("x",), seeded=True)
    ens = dataclasses.replace(other, components=("x", "y"), seeded=True)
    assert _codes([stage, ens], flags) == ["aa_above_apgd"]
    assert _codes([stage, dataclasses.replace(ens, seeded=False)], flags) == []
    assert _codes([stage, dataclasses.replace(ens, components=("y", "x"))], flags) == []
