"""Build a validated neighbour set from a source: ask, validate, deduplicate, ask again if short.

For each class the source is asked for a few more than ``n`` phrases; the answer is cleaned and
filtered by :func:`~sept.neighbors.validate.validate_phrases` (own and other class names,
near-duplicates, phrases already kept for another class, length, instruction-like text ...). While fewer than ``n`` survive, the source is asked again (up to
``max_attempts`` times) with the phrases already kept listed as exclusions. A class ending with
fewer than ``min_count`` phrases fails the whole run with a report per class, and nothing is
written: an invalid neighbour file is never produced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sept.neighbors.errors import NeighborGenerationError
from sept.neighbors.prompting import AnswerParseError, Request
from sept.neighbors.schema import NeighborSet
from sept.neighbors.sources import NeighborSource
from sept.neighbors.validate import DEFAULT_RULES, Rules, validate_phrases

log = logging.getLogger(__name__)


@dataclass
class ClassReport:
    """What happened for one class: phrases kept, ``(phrase, reason)`` dropped, attempts made."""

    classname: str
    kept: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    attempts: int = 0

    def summary(self, limit: int = 4) -> str:
        reasons = "; ".join(f"{p!r}: {r}" for p, r in self.dropped[:limit])
        more = f" (+{len(self.dropped) - limit} more)" if len(self.dropped) > limit else ""
        return f"{self.classname!r}: {len(self.kept)} kept after {self.attempts} attempt(s)" + (
            f"; dropped {reasons}{more}" if self.dropped else ""
        )


def _dedupe_classes(classnames: Sequence[str]) -> list[str]:
    names = [c.strip() for c in classnames if c and c.strip()]
    if not names:
        raise NeighborGenerationError("no class names given")
    return list(dict.fromkeys(names))


def generate_neighbors(
    classnames: Sequence[str],
    source: NeighborSource,
    n: int = 10,
    min_count: int | None = None,
    dataset: str | None = None,
    task: str | None = None,
    max_attempts: int = 3,
    rules: Rules = DEFAULT_RULES,
) -> tuple[NeighborSet, list[ClassReport]]:
    """Ask ``source`` for ``n`` phrases per class; return the validated set and per-class reports.

    ``min_count`` (default ``n``) is the fewest phrases a class may end with; below it the run
    raises :class:`NeighborGenerationError` naming each short class and why phrases were dropped.
    """
    if n < 1:
        raise NeighborGenerationError(f"n must be at least 1, not {n}")
    min_count = n if min_count is None else min_count
    if not 1 <= min_count <= n:
        raise NeighborGenerationError(f"min_count must be between 1 and n={n}, not {min_count}")
    names = _dedupe_classes(classnames)
    reports: list[ClassReport] = []
    claimed: dict[str, str] = {}  # phrase -> class: a phrase serves one class only
    for c in names:
        reports.append(_one_class(c, names, source, n, task, max_attempts, rules, claimed))
        claimed.update(dict.fromkeys(reports[-1].kept, c))
    short = [r for r in reports if len(r.kept) < min_count]
    if short:
        raise NeighborGenerationError(
            f"{len(short)} class(es) got fewer than {min_count} valid phrase(s); nothing was written:\n  - "
            + "\n  - ".join(r.summary() for r in short)
            + "\nLower --min, raise --attempts, or use another source or model."
        )
    ns = NeighborSet(
        classes={r.classname: r.kept for r in reports}, provenance=source.provenance(), dataset=dataset
    )
    return ns.check(rules), reports


def _one_class(
    classname: str,
    names: list[str],
    source: NeighborSource,
    n: int,
    task: str | None,
    max_attempts: int,
    rules: Rules,
    claimed: dict[str, str],
) -> ClassReport:
    report = ClassReport(classname)
    others = tuple(c for c in names if c != classname)
    for attempt in range(1, max_attempts + 1):
        missing = n - len(report.kept)
        req = Request(
            classname,
            others,
            n=missing + max(2, missing // 5),
            attempt=attempt,
            exclude=tuple(report.kept),
            task=task,
        )
        report.attempts = attempt
        try:
            raw = source.propose(req)
        except AnswerParseError as exc:
            report.dropped.append(("<answer>", str(exc)))
            log.info("class %r attempt %d: unusable answer (%s)", classname, attempt, exc)
            continue
        result = validate_phrases(raw, classname, names, rules, already=report.kept, claimed=claimed)
        report.kept += result.kept[: n - len(report.kept)]
        report.dropped += result.dropped
        log.debug(
            "class %r attempt %d: kept %d, dropped %d",
            classname,
            attempt,
            len(result.kept),
            len(result.dropped),
        )
        if len(report.kept) >= n or source.deterministic:
            break
    return report
