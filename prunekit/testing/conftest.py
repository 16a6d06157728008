"""pytest set-up for ``python -m pytest --pyargs prunekit.testing``: the ``slow`` marker, one
torch thread (small models gain nothing from more)."""
from __future__ import annotations

import torch


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest's hook signature
    config.addinivalue_line("markers", "slow: long-running contract cases (deselect: -m 'not slow')")
    torch.set_num_threads(1)
