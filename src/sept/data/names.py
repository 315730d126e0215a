"""Readable class names for prompts: "city_center" -> "city center", "cafe/restaurant" -> "cafe or restaurant"."""

from __future__ import annotations

import re
from collections.abc import Mapping

_SEPARATORS = re.compile(r"[_\s]+")


def _lower_word(word: str) -> str:
    """Lower-case a capitalised word ("Throat" -> "throat"); keep acronyms and mixed case ("TV", "iPhone")."""
    if len(word) > 1 and word[0].isupper() and (word[1:].islower() or not any(c.isalpha() for c in word[1:])):
        return word.lower()
    return word


def readable_name(raw: str, overrides: Mapping[str, str] | None = None) -> str:
    """The form of a raw class label used in prompts.

    ``overrides`` (raw -> readable) wins when it names ``raw``. Otherwise underscores and runs
    of spaces become one space, "/" becomes " or ", "&" becomes " and ", and capitalised words
    are lower-cased ("Throat clearing" -> "throat clearing") while acronyms stay ("TV").
    """
    if overrides and raw in overrides:
        return overrides[raw]
    text = raw.strip().replace("/", " or ").replace("&", " and ")
    words = [w for w in _SEPARATORS.split(text) if w]
    if not words:
        raise ValueError(f"class name {raw!r} is empty")
    return " ".join(_lower_word(w) for w in words)
