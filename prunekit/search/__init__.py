"""Architecture search (second method family beside pruning)."""
from __future__ import annotations

from prunekit.search.genotype import GENOTYPES, PRIMITIVES, Genotype, GenotypeError, genotype_from
from prunekit.search.network import DARTSNetwork, count_params
