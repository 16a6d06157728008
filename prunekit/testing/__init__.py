"""prunekit's contract tests, shipped with the package (issue 24): a plug-in author runs them on
an installed prunekit against every registered component, their own included::

    python -m pytest --pyargs prunekit.testing            # every family
    python -m pytest --pyargs prunekit.testing -k my-name # one component

Modules: ``test_loss_contract``, ``test_model_contract``, ``test_pruner_contract``,
``test_search_contract`` (each iterates its registry's ``names()``, entry-point plug-ins
included; docs/architecture.md, "Adding a component"). The repository's tests/ collect the same
modules (no copies). Needs pytest (prunekit's ``dev`` extra).
"""
