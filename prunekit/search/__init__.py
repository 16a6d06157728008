"""Architecture search, the second method family beside pruning (docs/search.md): DARTS
genotypes, ops, the final network (model ``darts``), the partial-channel search network, the
:class:`Searcher` base and LRNAS (registered in :data:`prunekit.SEARCHERS`)."""
from __future__ import annotations

from prunekit.search.base import SearchResult, Searcher
from prunekit.search.genotype import GENOTYPES, PRIMITIVES, Genotype, GenotypeError, genotype_from
from prunekit.search.network import DARTSNetwork, count_params
from prunekit.search.supernet import SearchNetwork
from prunekit.search.lrnas import LRNAS
from prunekit.search import training as training  # noqa: F401  (registers loss pgd_at_normal)
from prunekit.registry import SEARCHERS

__all__ = ["Searcher", "SearchResult", "SEARCHERS", "LRNAS", "Genotype", "GenotypeError",
           "GENOTYPES", "PRIMITIVES", "genotype_from", "DARTSNetwork", "SearchNetwork",
           "count_params"]
