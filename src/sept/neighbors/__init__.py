"""Semantic neighbours for SEPT: phrases that name each class's sound in other words.

Shipped sets cover the 11 benchmark datasets plus ``us8k-mini`` and ``fsdd``
(``sept/resources/neighbors/<dataset>.json``; file schema in ``README.md`` beside this module).
Generators (``sept neighbors generate``) write new sets from an LLM endpoint, a local causal LM or
WordNet; every set is validated before it is written or used.

>>> from sept.neighbors import load_neighbors, neighbors_for
>>> ns = load_neighbors("ESC50")                      # or a path to a JSON file
>>> table = neighbors_for(["dog", "rain"], ns)        # {"dog": [...], "rain": [...]}
"""

from sept.neighbors.errors import (
    MissingNeighborsError,
    NeighborFileError,
    NeighborGenerationError,
    WordNetMissingError,
)
from sept.neighbors.schema import (
    SCHEMA_VERSION,
    NeighborSet,
    Provenance,
    read_neighbor_file,
    write_neighbor_file,
)
from sept.neighbors.store import list_shipped, load_neighbors, load_shipped, neighbors_for
from sept.neighbors.validate import Rules, normalize, readable, validate_phrases

__all__ = [
    "SCHEMA_VERSION",
    "MissingNeighborsError",
    "NeighborFileError",
    "NeighborGenerationError",
    "NeighborSet",
    "Provenance",
    "Rules",
    "WordNetMissingError",
    "list_shipped",
    "load_neighbors",
    "load_shipped",
    "neighbors_for",
    "normalize",
    "read_neighbor_file",
    "readable",
    "validate_phrases",
    "write_neighbor_file",
]
