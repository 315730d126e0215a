"""Neighbour sources: ``llm`` (OpenAI-compatible chat endpoint), ``hf`` (local causal LM), ``wordnet``.

Each source turns a :class:`~sept.neighbors.prompting.Request` into raw candidate phrases; the
generator (:mod:`sept.neighbors.generate`) validates, deduplicates and asks again when too few
survive. Sources import their heavy dependencies (openai, transformers, nltk) only when created.
"""

from __future__ import annotations

from typing import Any, Protocol

from sept.neighbors.prompting import Request
from sept.neighbors.schema import Provenance

SOURCE_NAMES = ("llm", "hf", "wordnet")


class NeighborSource(Protocol):
    """What the generator needs from a source."""

    #: True when asking again returns the same candidates (no point in a second attempt)
    deterministic: bool

    def propose(self, req: Request) -> list[Any]:
        """Raw candidate phrases for ``req`` (unvalidated). May raise ``AnswerParseError``."""
        ...

    def provenance(self) -> Provenance:
        """Provenance to store with the phrases this source produced."""
        ...
