"""Baseline pruners shipped with prunekit as plug-ins: ``dense``, ``hydra``, ``hydra-channel``,
``admm`` and ``admm-filter``.

They import only public prunekit API and reach :data:`prunekit.PRUNERS` through the
``prunekit.pruners`` entry-point group (setup.cfg), exactly as a third-party package would
(docs/adding-a-pruner.md). Nothing is imported here: each entry point loads its own module.
"""
