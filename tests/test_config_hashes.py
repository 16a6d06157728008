"""Config hashes are part of the on-disk contract: the pretraining cache is keyed by
``pretrain_hash``, run ids and the results CSV by ``config_hash``, a work directory by the
pipeline's train key. This test pins them for every point of every grid and config file under
benchmarks/ (recorded in tests/golden/config_hashes.json), so a refactor of the config tree that
would orphan caches or re-run finished grids fails here.

After a *deliberate* change of what a config means, regenerate the file with
``.venv/bin/python tests/test_config_hashes.py --write`` and say so in the commit message.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "config_hashes.json"


def current() -> dict[str, Any]:
    """``{file: [[run_id, config_hash, pretrain_hash, train_key], ...]}`` for every grid point
    and config file under benchmarks/."""
    from prunekit.bench.grid import expand
    from prunekit.config import RunConfig, load_yaml
    from prunekit.train.workdir import train_key as _train_key

    out: dict[str, Any] = {}
    for path in sorted((ROOT / "benchmarks" / "grids").glob("*.yaml")):
        out[f"grids/{path.name}"] = [[r.run_id, r.config.config_hash(), r.config.pretrain_hash(),
                                      _train_key(r.config)] for r in expand(path)]
    for path in sorted((ROOT / "benchmarks" / "configs").glob("*.yaml")):
        cfg = RunConfig.from_dict(load_yaml(str(path)))
        out[f"configs/{path.name}"] = [[cfg.name, cfg.config_hash(), cfg.pretrain_hash(),
                                        _train_key(cfg)]]
    return out


def test_every_benchmark_config_hash_is_unchanged() -> None:
    golden = json.loads(GOLDEN.read_text())
    now = current()
    assert sorted(now) == sorted(golden), "benchmark files added/removed: regenerate (see doc)"
    for name, rows in golden.items():
        assert now[name] == rows, f"{name}: hashes / run ids changed"


if __name__ == "__main__":  # pragma: no cover - regeneration helper
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: tests/test_config_hashes.py --write")
    body = ",\n".join(f"{json.dumps(k)}: [\n  " + ",\n  ".join(json.dumps(r) for r in rows) + "]"
                       for k, rows in current().items())
    GOLDEN.write_text("{\n" + body + "\n}\n")
    print(f"wrote {GOLDEN}")
