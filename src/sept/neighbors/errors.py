"""Errors of the neighbour package; each names the file, class or setting at fault."""

from __future__ import annotations

from sept.errors import SeptError


class NeighborFileError(SeptError):
    """A neighbour file is missing, unreadable or breaks the schema or the phrase rules."""


class MissingNeighborsError(SeptError):
    """Some classes have no neighbour phrases in the set given; the message names them."""


class NeighborGenerationError(SeptError):
    """A generator could not produce a valid set (unreachable endpoint, too few valid phrases ...)."""


class WordNetMissingError(SeptError):
    """NLTK or its WordNet data is not installed; the message says how to install it."""
