"""SEARCHERS: built-in lrnas, third-party searchers through the ``prunekit.searchers``
entry-point group, ``prunekit list``."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import prunekit
from prunekit import SEARCHERS
from prunekit.registry import RegistryError
from prunekit.search import LRNAS, Searcher


def test_lrnas_is_registered() -> None:
    assert SEARCHERS.get("lrnas") is LRNAS and issubclass(LRNAS, Searcher)
    assert prunekit.SEARCHERS is SEARCHERS and SEARCHERS.entry_point_group == "prunekit.searchers"
    with pytest.raises(RegistryError, match="valid searchers: lrnas"):
        SEARCHERS.build("no-such-searcher")


def test_plugin_discovered_by_entry_point(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "my_searcher"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from prunekit.search import LRNAS

        class Greedy(LRNAS):
            '''LRNAS with a stricter default (a stand-in for a third-party searcher).'''
    """))
    dist = tmp_path / "my_searcher-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-searcher\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[prunekit.searchers]\ngreedy = my_searcher:Greedy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(SEARCHERS, "_entries", dict(SEARCHERS._entries))
    monkeypatch.setattr(SEARCHERS, "_aliases", dict(SEARCHERS._aliases))
    monkeypatch.setattr(SEARCHERS, "_plugins_loaded", False)
    try:
        assert {"greedy", "lrnas"} <= set(SEARCHERS.names())
        assert SEARCHERS.get("greedy").__module__ == "my_searcher"
    finally:
        sys.modules.pop("my_searcher", None)


def test_prunekit_list_shows_searchers() -> None:
    out = subprocess.run([sys.executable, "-m", "prunekit", "list"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("searchers"))
    assert "lrnas" in line
    assert "darts" in next(ln for ln in out.splitlines() if ln.startswith("models"))
