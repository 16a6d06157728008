"""No Python module of the library, the baselines, the benchmarks or the examples is over 400
lines (the project's size rule: one concept per module; split by concept when one grows)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 400


def test_no_module_over_the_limit() -> None:
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines())
             for d in ("prunekit", "baselines", "benchmarks", "examples")
             for p in (ROOT / d).rglob("*.py")}
    assert sizes, "no modules found"
    big = {str(p): n for p, n in sizes.items() if n > LIMIT}
    assert not big, f"modules over {LIMIT} lines (split them by concept): {big}"
