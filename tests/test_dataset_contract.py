"""The dataset contract tests: shipped in prunekit.testing (run them on an installed prunekit with
``python -m pytest --pyargs prunekit.testing``); collected here for the repository suite, where
the built-ins that read files run on the tiny stand-ins of tests/fake_data.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fake_data import tiny_source
from prunekit.testing.test_dataset_contract import *  # noqa: F401,F403
from prunekit.testing.test_dataset_contract import contract_kwargs


@pytest.fixture
def source(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The stand-in of a file-reading built-in, else the builder's own ``contract_kwargs``."""
    kw = tiny_source(name, tmp_path, monkeypatch)
    return contract_kwargs(name) if kw is None else kw
