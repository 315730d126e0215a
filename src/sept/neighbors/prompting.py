"""Prompts that ask a language model for neighbour phrases, and parsers for its answers.

Chat models (the ``llm`` source) get a system + user message and answer with a JSON object
``{"phrases": [...]}``; base models (the ``hf`` source) get a few-shot completion prompt and continue
a ``;``-separated list. Parsers are lenient about the wrapping (code fences, chatter around the
JSON, bullets) and leave the phrase rules to :mod:`sept.neighbors.validate`.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sept.neighbors.validate import readable

SYSTEM_PROMPT = (
    "You write short, concrete descriptions of sounds for training audio-language models. "
    "Answer with a JSON object only, no commentary."
)

USER_TEMPLATE = (
    'Sound class: "{name}"{task_clause}.\n'
    "Write {n} distinct short phrases (at most 8 words each) that describe the same sound as "
    '"{name}": synonyms, fine-grained acoustic variants of it, everyday phrasings a person might use, '
    "and how the sound is produced.\n"
    'Rules: never use the class name "{name}" itself{others_clause}; no numbering, no explanations, '
    "no quotes inside phrases.\n"
    '{exclude_clause}Answer as a JSON object: {{"phrases": ["...", "..."]}}'
)

COMPLETION_TEMPLATE = (
    "Short phrases that describe the same sound as an audio label, separated by semicolons.\n"
    "Label: church bells\n"
    "Phrases: bell tower chiming; ringing bells; a carillon playing; bells tolling; cathedral bells\n"
    "Label: rain\n"
    "Phrases: raindrops on a roof; a heavy downpour; light drizzle; rain pattering on a window\n"
    "Label: {name}\n"
    "Phrases:"
)

#: task descriptions of the benchmark datasets, used as context in prompts (``--dataset NAME``)
DATASET_TASKS = {
    "Beijing-Opera": "Beijing opera percussion instrument recognition",
    "CREMA-D": "emotion recognition from acted speech",
    "ESC50": "environmental sound classification",
    "ESC50-Actions": "classification of human action sounds",
    "GT-Music-Genre": "music genre classification",
    "NS-Instruments": "musical instrument family classification of single notes",
    "RAVDESS": "emotion recognition from acted speech",
    "SESA": "surveillance sound classification",
    "TUT2017": "acoustic scene classification",
    "UrbanSound8K": "urban sound classification",
    "VocalSound": "classification of non-speech human vocal sounds",
    "us8k-mini": "urban sound classification",
    "fsdd": "recognition of spoken digits",
}

_PHRASE_KEYS = ("phrases", "neighbors", "neighbours", "items", "answers", "descriptions", "results")


@dataclass(frozen=True)
class Request:
    """One ask for phrases: the class, the dataset's other classes, how many, which try this is.

    ``exclude`` holds phrases already accepted, so a follow-up asks for new ones.
    """

    classname: str
    other_classnames: tuple[str, ...] = ()
    n: int = 10
    attempt: int = 1
    exclude: tuple[str, ...] = ()
    task: str | None = None

    @property
    def name(self) -> str:
        return readable(self.classname)


@dataclass
class ParsedAnswer:
    """Phrases found in a model's answer (unvalidated) and what the parser noticed."""

    phrases: list[Any] = field(default_factory=list)
    note: str = ""


class AnswerParseError(ValueError):
    """The answer holds no list of phrases (not JSON, wrong shape, empty)."""


def chat_messages(req: Request) -> list[dict[str, str]]:
    """System + user messages asking for ``req.n`` phrases as JSON."""
    others = [readable(c) for c in req.other_classnames if c != req.classname]
    others_clause = f" or these other classes' names: {', '.join(others)}" if others else ""
    exclude_clause = ""
    if req.exclude:
        exclude_clause = (
            f"Already collected (do not repeat): {'; '.join(req.exclude)}.\n"
            f"Give {req.n} new phrases (request {req.attempt}).\n"
        )
    elif req.attempt > 1:
        exclude_clause = f"Your previous answer could not be used (request {req.attempt}).\n"
    user = USER_TEMPLATE.format(
        name=req.name,
        task_clause=f" (task: {req.task})" if req.task else "",
        n=req.n,
        others_clause=others_clause,
        exclude_clause=exclude_clause,
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def completion_prompt(req: Request) -> str:
    """Few-shot completion prompt for a base (non-chat) model."""
    return COMPLETION_TEMPLATE.format(name=req.name)


def _strip_fences(text: str) -> str:
    fenced = re.search(r"```(?:json|JSON)?\s*(.*?)```", text, re.DOTALL)
    return fenced.group(1) if fenced else text


def _json_candidates(text: str) -> list[Any]:
    """Every JSON object or array that decodes from some ``{`` or ``[`` in ``text``, whole text first."""
    found: list[Any] = []
    with contextlib.suppress(json.JSONDecodeError, ValueError):
        found.append(json.loads(text))
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, ValueError):
            continue
        found.append(obj)
    return found


def _phrases_of(obj: Any, classname: str) -> list[Any] | None:
    if isinstance(obj, list):
        items = [_item_text(x) for x in obj]
        return items if any(isinstance(x, str) for x in items) else None
    if isinstance(obj, dict):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for key in (*_PHRASE_KEYS, classname.lower(), readable(classname)):
            if isinstance(lowered.get(key), list):
                return _phrases_of(lowered[key], classname)
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) == 1:
            return _phrases_of(lists[0], classname)
        nested = [v for v in obj.values() if isinstance(v, dict)]
        if len(nested) == 1:
            return _phrases_of(nested[0], classname)
    return None


def _item_text(item: Any) -> Any:
    if isinstance(item, dict):
        for key in ("phrase", "text", "description", "name"):
            if isinstance(item.get(key), str):
                return item[key]
    return item


def parse_json_answer(text: str | None, classname: str) -> ParsedAnswer:
    """Phrases from a chat answer: a JSON object/array, possibly fenced or wrapped in chatter.

    Raises :class:`AnswerParseError` when no list of strings can be found.
    """
    if not text or not text.strip():
        raise AnswerParseError("empty answer")
    body = _strip_fences(text)
    try:
        candidates = _json_candidates(body)
        found = [(obj, _phrases_of(obj, classname)) for obj in candidates]
    except RecursionError:
        raise AnswerParseError("answer is JSON nested too deeply") from None
    for _obj, phrases in found:
        if phrases:
            note = "" if body.strip().startswith(("{", "[")) else "JSON found inside surrounding text"
            return ParsedAnswer(phrases, note)
    if candidates:
        raise AnswerParseError("JSON answer holds no list of phrases")
    raise AnswerParseError(f"answer is not JSON: {text.strip()[:60]!r}")


def parse_list_completion(text: str) -> list[str]:
    """Phrases from a completion that continues ``Phrases: a; b; c``: up to the next label line."""
    text = text.replace("\r", "")
    first = re.split(r"\n\s*\n|\n\s*(?:Label|Phrases|Sound)\s*:", text, maxsplit=1)[0]
    parts = [p for p in re.split(r"[;\n]", first) if p.strip()]
    if len(parts) == 1 and "," in parts[0]:
        parts = parts[0].split(",")
    return [p.strip() for p in parts if p.strip()]


def describe_chat_prompt() -> str:
    """The chat prompt template as stored in provenance (placeholders in braces)."""
    return f"[system] {SYSTEM_PROMPT}\n[user] {USER_TEMPLATE}"
