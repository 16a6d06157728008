"""The attack contract tests: shipped in prunekit.testing (run them on an installed prunekit with
``python -m pytest --pyargs prunekit.testing``); collected here for the repository suite."""
from prunekit.testing.test_attack_contract import *  # noqa: F401,F403
