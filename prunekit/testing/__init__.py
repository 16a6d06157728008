"""prunekit's contract tests, shipped with the package (issue 24): a plug-in author runs them on
an installed prunekit against every registered component, their own included::

    python -m pytest --pyargs prunekit.testing            # every family
    python -m pytest --pyargs prunekit.testing -k my-name # one component

Modules: ``test_attack_contract``, ``test_dataset_contract``, ``test_loss_contract``,
``test_model_contract``, ``test_pruner_contract``, ``test_search_contract`` (each iterates its
registry's ``names()``, entry-point plug-ins included; docs/architecture.md, "Adding a
component"). Run them from any folder: they need no repository checkout and no data (built-in
datasets whose files are absent are skipped with the builder's reason). The repository's tests/
collect the same modules (no copies; its dataset shim swaps in tiny stand-ins for the
file-reading built-ins). Needs pytest (prunekit's ``dev`` extra).
"""
