"""Keep secrets out of text and out of every log record, sept's and third-party libraries'.

:class:`Redactor` replaces known secrets with ``***``. :func:`redact_logs` registers secrets with
one process-wide :class:`logging.Filter` that rewrites every record of the HTTP client libraries
(``httpx``, ``httpcore``, ``openai``: their INFO request lines print the full URL, user info and
query string included) and of sept itself, and of whatever reaches the root logger's handlers.
:func:`url_secrets` lists what a URL carries that must not be shown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

#: logger namespaces whose records are redacted (and the loggers below them)
REDACTED_LOGGERS = ("httpx", "httpcore", "openai", "urllib3", "requests", "sept")
#: secrets shorter than this are not replaced (they would mangle ordinary words)
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces each of ``secrets`` (and its percent-encoded form) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            for form in (secret, quote(secret, safe=""), unquote(secret)):
                if form and len(form) >= MIN_SECRET_LENGTH and form not in self._secrets:
                    self._secrets.append(form)
        self._secrets.sort(key=len, reverse=True)  # a secret containing another goes first

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


def url_secrets(url: str) -> list[str]:
    """What ``url`` carries that must not be shown: user name, password, query string and its values."""
    parts = urlsplit(url)
    out = [parts.username or "", parts.password or "", parts.query]
    out += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    return [s for s in out if s]


class _RedactingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.redactor = Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = self.redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info, record.exc_text = None, text
        return True


_FILTER = _RedactingFilter()
_LOCK = threading.Lock()


def redact_logs(secrets: Iterable[str]) -> None:
    """Remove ``secrets`` from every later log record of :data:`REDACTED_LOGGERS` and of the root
    logger's handlers (for the rest of the process)."""
    with _LOCK:
        _FILTER.redactor.add(secrets)
        names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in REDACTED_LOGGERS]
        for logger in [*(logging.getLogger(n) for n in {*names, *REDACTED_LOGGERS}), logging.root]:
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        for handler in logging.root.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
