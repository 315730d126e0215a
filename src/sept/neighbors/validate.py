"""Rules every neighbour phrase obeys, and the cleaning applied to raw answers.

A phrase is kept when, after cleaning (bullets, numbering, quotes and trailing punctuation removed,
spaces collapsed), it is non-empty, at most ``max_words`` words and ``max_chars`` characters, made of
plain text (letters, digits, spaces and ``' - , . / & ( )``), free of URLs, markup and
instruction-like text ("ignore previous instructions", "as an AI" ...), not one of the class's own
names, does not name another class of the dataset ("a siren wailing" under ``dog_bark`` when
``siren`` is a class; a plural or ``-ing``/``-ed`` form of the name's last word counts too, unless
that name is part of the class's own name), and is not a near-duplicate of an earlier phrase of
the class. Across a set, one phrase (or near-duplicate) under two classes is refused as well.

Comparisons use :func:`normalize`: case, ``_ - /``, punctuation, repeated spaces and a leading
article do not count. Two phrases are near-duplicates when :func:`near_key` gives the same key:
the same content words up to order, articles, prepositions and simple endings ("dogs barking
loudly" ~ "a dog barks loudly").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sept.data.names import readable_name

_BULLET = re.compile(r"^\s*(?:[-*\u2022\u00b7>]+|\(?\d{1,3}[.):]|[a-zA-Z][.)](?=\s))\s*")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"
_ALLOWED_PUNCT = set("'\u2019-,./&()")
_URL = re.compile(r"https?://|www\.|\b[\w-]+\.(?:com|org|net|io|ai|ly|gov|edu)\b", re.IGNORECASE)
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:previous|prior|above|earlier|all|instructions?|rules?)\b"
    r"|\b(?:system|developer)\s+(?:prompt|message|instructions?)\b"
    r"|\binstructions?\b|\bprompt\b|\bas an ai\b|\blanguage model\b|\bassistant\b|\bchatgpt\b|\bopenai\b"
    r"|\byou (?:are|must|should|will|can)\b|\bjson\b|\bapi[ _-]?key\b|\bpassword\b"
    r"|^(?:sure|certainly|okay|ok|here (?:are|is)|note|answer|output|response)\b",
    re.IGNORECASE,
)
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
#: words that do not make two phrases different (articles, prepositions, conjunctions)
_FILLER = frozenset(
    {"a", "an", "the", "of", "in", "on", "at", "by", "to", "from", "with", "into", "onto", "over"}
    | {"under", "and", "or", "for", "its", "his", "her", "their", "some"}
)
_ENDINGS = ("ing", "es", "ed", "s")


def readable(classname: str) -> str:
    """The lower-cased readable form of a raw class label (see :func:`sept.data.names.readable_name`):
    ``"dog_bark"`` -> ``"dog bark"``, ``"cafe/restaurant"`` -> ``"cafe or restaurant"``."""
    return readable_name(classname).lower()


def normalize(text: str) -> str:
    """Comparison key: lower case, ``_ - /`` as spaces, punctuation dropped, no leading article."""
    text = text.lower().replace("_", " ").replace("-", " ").replace("/", " ")
    text = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text)
    text = " ".join(text.split())
    return _ARTICLE.sub("", text)


def _stem(word: str) -> str:
    """A light English stem: ``barking``/``barks``/``barked`` -> ``bark``, ``humming`` -> ``hum``."""
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3 and not word.endswith("ss"):
            stem = word[: -len(ending)]
            if ending == "ing" and len(stem) > 3 and stem[-1] == stem[-2]:
                stem = stem[:-1]  # humming -> hum
            return stem
    return word


def near_key(phrase: str) -> tuple[str, ...]:
    """Near-duplicate key: the sorted set of stemmed words, articles and prepositions left out."""
    words = [w for w in normalize(phrase).split() if w not in _FILLER]
    return tuple(sorted({_stem(w) for w in words}))


def _name_pattern(name: str) -> re.Pattern[str]:
    """Matches normalised text that contains ``name`` (normalised) as whole words, the last word
    also in a plural, ``-ing`` or ``-ed`` form."""
    words = name.split()
    last = re.escape(words[-1]) + r"(?:s|es|ing|ed|\w?ing)?"
    return re.compile(r"\b" + r"\s+".join([*map(re.escape, words[:-1]), last]) + r"\b")


def named_classes(phrase: str, classname: str, other_classnames: Sequence[str]) -> list[str]:
    """The other classes whose name ``phrase`` contains (see the module docstring).

    A name that is part of the class's own name is allowed ("horn" under "car horn").
    """
    key = normalize(phrase)
    own = " ".join(sorted(class_names(classname)))
    named = []
    for other in other_classnames:
        if other == classname:
            continue
        for name in class_names(other):
            pattern = _name_pattern(name)
            if pattern.search(key) and not pattern.search(own):
                named.append(other)
                break
    return named


def class_names(classname: str) -> set[str]:
    """Every normalised name of a class: the whole label and each ``/`` alternative of it."""
    names = {normalize(classname), normalize(readable(classname))}
    names.update(normalize(part) for part in classname.split("/") if part.strip())
    return {n for n in names if n}


@dataclass(frozen=True)
class Rules:
    """Limits on one phrase (defaults: the shipped sets' rules)."""

    max_words: int = 8
    max_chars: int = 64
    min_chars: int = 2


DEFAULT_RULES = Rules()


@dataclass
class Validated:
    """Outcome of :func:`validate_phrases`: the phrases kept, in order, and ``(phrase, reason)`` dropped."""

    kept: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)


def clean_phrase(raw: str) -> str:
    """Strip bullets, numbering, surrounding quotes, trailing punctuation and extra spaces."""
    text = raw.strip()
    for _ in range(3):  # nested decorations such as '1. "barking"'
        before = text
        text = _BULLET.sub("", text).strip().strip(_QUOTES).strip()
        text = text.rstrip(".,;:!").strip()
        if text == before:
            break
    if "\n" in text or "\r" in text:
        return text  # rejected by check_phrase with its own reason
    return " ".join(text.split())


def check_phrase(phrase: str, rules: Rules = DEFAULT_RULES) -> str | None:
    """The reason ``phrase`` (already cleaned) breaks a rule, or None when it is fine."""
    if not phrase:
        return "empty"
    if "\n" in phrase or "\r" in phrase:
        return "spans several lines"
    if len(phrase) < rules.min_chars:
        return f"shorter than {rules.min_chars} characters"
    if len(phrase) > rules.max_chars:
        return f"longer than {rules.max_chars} characters"
    if len(phrase.split()) > rules.max_words:
        return f"more than {rules.max_words} words"
    if _URL.search(phrase):
        return "contains a URL"
    if _INSTRUCTION.search(phrase):
        return "looks like an instruction or chatter, not a sound description"
    bad = sorted({ch for ch in phrase if not (ch.isalnum() or ch.isspace() or ch in _ALLOWED_PUNCT)})
    if bad:
        return f"contains markup or unusual characters {''.join(bad)!r}"
    if not any(ch.isalpha() for ch in phrase) and not phrase.strip().isdigit():
        return "has no letters"
    return None


def validate_phrases(
    raw: Iterable[object],
    classname: str,
    other_classnames: Sequence[str] = (),
    rules: Rules = DEFAULT_RULES,
    already: Iterable[str] = (),
    claimed: Mapping[str, str] | None = None,
) -> Validated:
    """Clean and filter candidate phrases for ``classname``.

    ``other_classnames`` are the dataset's other classes (a phrase naming one is refused);
    ``already`` holds phrases accepted earlier, so that new ones (nearly) duplicating them are
    dropped too; ``claimed`` maps phrases kept for other classes to their class (a phrase that
    nearly repeats one of them is dropped: one phrase never serves two classes).
    """
    own = class_names(classname)
    others = [c for c in other_classnames if c != classname]
    seen = {near_key(p): p for p in already}
    taken = {near_key(p): c for p, c in (claimed or {}).items() if c != classname}
    out = Validated()
    for item in raw:
        if not isinstance(item, str):
            out.dropped.append((repr(item)[:80], f"not a string ({type(item).__name__})"))
            continue
        phrase = clean_phrase(item)
        key = normalize(phrase)
        near = near_key(phrase)
        reason = check_phrase(phrase, rules)
        if key and key in own:
            reason = f"is the class name {classname!r}"
        elif reason is None and (named := named_classes(phrase, classname, others)):
            reason = f"names another class {named[0]!r}"
        elif reason is None and near in seen:
            same = seen[near]
            reason = "duplicate" if normalize(same) == key else f"near-duplicate of {same!r}"
        elif reason is None and near in taken:
            reason = f"already a phrase of class {taken[near]!r}"
        if reason is not None:
            out.dropped.append((item[:80], reason))
            continue
        seen[near] = phrase
        out.kept.append(phrase)
    return out


def shared_phrases(classes: dict[str, list[str]]) -> list[str]:
    """Messages for each phrase (or near-duplicate) that appears under more than one class."""
    owners: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for classname, phrases in classes.items():
        for phrase in phrases:
            if isinstance(phrase, str) and (key := near_key(phrase)):
                owners.setdefault(key, []).append((classname, phrase))
    problems = []
    for found in owners.values():
        classnames = list(dict.fromkeys(c for c, _ in found))
        if len(classnames) > 1:
            listed = ", ".join(f"{c!r} ({p!r})" for c, p in found)
            problems.append(f"phrase under more than one class: {listed}")
    return problems


def check_classes(
    classes: dict[str, list[str]], rules: Rules = DEFAULT_RULES, min_per_class: int = 1
) -> list[str]:
    """Every rule broken by a ``{classname: [phrase, ...]}`` table, as messages naming class and phrase."""
    problems: list[str] = []
    by_name: dict[str, str] = {}
    for classname in classes:
        if not classname.strip():
            problems.append("a class has an empty name")
            continue
        key = normalize(readable(classname))
        if key in by_name:
            problems.append(f"classes {by_name[key]!r} and {classname!r} have the same readable name")
        by_name.setdefault(key, classname)
    names = list(classes)
    for classname, phrases in classes.items():
        if len(phrases) < min_per_class:
            problems.append(f"class {classname!r}: {len(phrases)} phrase(s), fewer than {min_per_class}")
        result = validate_phrases(phrases, classname, names, rules)
        for phrase, reason in result.dropped:
            problems.append(f"class {classname!r}: phrase {phrase!r}: {reason}")
        for phrase in phrases:
            if (
                isinstance(phrase, str)
                and phrase != clean_phrase(phrase)
                and clean_phrase(phrase) in result.kept
            ):
                problems.append(
                    f"class {classname!r}: phrase {phrase!r} is not clean (extra spaces or decoration)"
                )
    problems += shared_phrases(classes)
    return problems
