"""The ``llm`` source: any OpenAI-compatible chat-completions endpoint, through the ``openai`` client.

Works with OpenAI, vLLM, Ollama, llama.cpp's server and others: set ``base_url`` and ``model``.
The API key is read only from the environment variable named by ``api_key_env`` (default
``OPENAI_API_KEY``); a local server (any base URL other than OpenAI's) gets a placeholder key when
that variable is unset. The key never appears in cache files, provenance, logs or error messages.

Requests ask for JSON (``response_format={"type": "json_object"}``, dropped for the rest of the
run if the server rejects it) and answers are parsed leniently. Timeouts, connection errors, 429 and
5xx are retried by ``tenacity`` with exponential backoff and jitter (a ``Retry-After`` header is
honoured up to ``max_backoff``); the ``openai`` client's own retries are switched off so that the
policy is in one place. Answers that parse are cached on disk keyed by (base URL, model, messages,
temperature, max_tokens), so a rerun sends no request.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sept.neighbors.cache import AnswerCache, default_cache_dir
from sept.neighbors.errors import NeighborGenerationError
from sept.neighbors.prompting import (
    AnswerParseError,
    Request,
    chat_messages,
    describe_chat_prompt,
    parse_json_answer,
)
from sept.neighbors.schema import Provenance, today
from sept.utils.redact import Redactor, redact_logs, url_secrets

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
#: key sent to servers that need none (llama.cpp, Ollama, vLLM without --api-key)
PLACEHOLDER_KEY = "sk-no-key-required"


@dataclass
class LLMConfig:
    """Settings of the ``llm`` source (defaults in brackets in ``sept neighbors generate --help``)."""

    model: str = "gpt-4o"
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else OpenAI's
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int | None = None
    timeout: float = 60.0  # seconds per request
    max_retries: int = 5  # retries after the first try, on timeouts / connection errors / 429 / 5xx
    backoff: float = 1.0  # first wait in seconds; doubles each retry, plus up to `backoff` of jitter
    max_backoff: float = 30.0
    json_mode: bool = True
    cache_dir: Path | None = field(default_factory=default_cache_dir)  # None: no cache


def sanitize_url(url: str) -> str:
    """``url`` without user info, query or fragment (nothing secret goes into files or logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def resolve_base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")


def resolve_api_key(api_key_env: str, base_url: str) -> str:
    """The key from ``$api_key_env``; a placeholder for non-OpenAI servers; else a clear error."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        # never echo the value: it may be a key pasted where the variable's name belongs
        raise NeighborGenerationError(
            "--api-key-env must be the NAME of an environment variable (letters, digits, _), "
            "not the key itself; export the key in that variable"
        )
    key = os.environ.get(api_key_env, "").strip()
    if key:
        return key
    if urlsplit(base_url).hostname != urlsplit(OPENAI_BASE_URL).hostname:
        log.info("%s is not set; sending a placeholder key to %s", api_key_env, sanitize_url(base_url))
        return PLACEHOLDER_KEY
    raise NeighborGenerationError(
        f"the environment variable {api_key_env} is not set: put your API key there (sept reads keys only "
        "from the environment), name another variable with --api-key-env, or point --base-url at a local "
        "server (vLLM, Ollama, llama.cpp) that needs no key"
    )


class LLMSource:
    """Asks a chat model for phrases; see the module docstring for retries, caching and keys."""

    deterministic = False

    def __init__(self, config: LLMConfig) -> None:
        try:
            import openai
            import tenacity  # noqa: F401 - needed by ask(); fail early with the install hint
        except ImportError as exc:
            raise NeighborGenerationError(
                f"the llm source needs the `{exc.name}` package: pip install 'sept[neighbors]' "
                "(or pip install openai tenacity)"
            ) from None
        self.config = config
        self.base_url = resolve_base_url(config.base_url)
        self.public_url = sanitize_url(self.base_url)
        key = resolve_api_key(config.api_key_env, self.base_url)
        secrets = [key, *url_secrets(self.base_url)] if key != PLACEHOLDER_KEY else url_secrets(self.base_url)
        self._redact = Redactor(secrets)
        redact_logs(secrets)  # the HTTP client's request lines print the full URL
        self._client = openai.OpenAI(
            api_key=key, base_url=self.base_url, timeout=config.timeout, max_retries=0
        )
        self._json_mode = config.json_mode
        self.cache = AnswerCache(config.cache_dir)
        self.requests = 0  # HTTP requests sent (retries included)

    def __repr__(self) -> str:
        return f"LLMSource(model={self.config.model!r}, base_url={self.public_url!r})"

    def provenance(self) -> Provenance:
        c = self.config
        return Provenance(
            source="llm",
            model=c.model,
            prompt=describe_chat_prompt(),
            date=today(),
            notes=f"endpoint {self.public_url}; temperature {c.temperature}; validated and deduplicated by sept",
        )

    def cache_key(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        c = self.config
        return {
            "base_url": self.public_url,
            "model": c.model,
            "messages": messages,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
        }

    def propose(self, req: Request) -> list[Any]:
        """Raw phrases for ``req``: from the cache, else from the endpoint (cached once they parse)."""
        messages = chat_messages(req)
        key = self.cache_key(messages)
        answer = self.cache.get(key)
        if answer is not None:
            return parse_json_answer(answer, req.classname).phrases
        answer = self._redact(self.ask(messages))  # a server echoing the key must not put it in a file
        parsed = parse_json_answer(answer, req.classname)  # AnswerParseError: not cached, asked again
        self.cache.put(key, answer)
        return parsed.phrases

    # ---- transport --------------------------------------------------------------------------
    def ask(self, messages: list[dict[str, str]]) -> str:
        """The answer text, retrying transient failures; other failures raise NeighborGenerationError."""
        import openai
        import tenacity

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.config.max_retries + 1),
            wait=self._wait,
            retry=tenacity.retry_if_exception(_is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._create(messages)
        except openai.OpenAIError as exc:
            raise NeighborGenerationError(self._describe(exc)) from None
        except ValueError as exc:  # a 200 whose body is not JSON (an HTML page from a proxy ...)
            raise AnswerParseError(
                f"the response is not a chat completion: {self._redact(str(exc))[:80]}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _create(self, messages: list[dict[str, str]]) -> str:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
        }
        if self.config.max_tokens is not None:
            kwargs["max_tokens"] = self.config.max_tokens
        if self._json_mode:
            try:
                self.requests += 1
                return _content(
                    self._client.chat.completions.create(**kwargs, response_format={"type": "json_object"})
                )
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                log.info("%s rejected JSON mode (%s); asking without it", self.public_url, exc.status_code)
                self._json_mode = False
        self.requests += 1
        return _content(self._client.chat.completions.create(**kwargs))

    def _wait(self, state: Any) -> float:
        import tenacity

        c = self.config
        backoff = tenacity.wait_exponential(multiplier=c.backoff, max=c.max_backoff) + tenacity.wait_random(
            0, c.backoff
        )
        base = backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = _retry_after(exc)
        return min(max(base, retry_after or 0.0), c.max_backoff)

    def _log_retry(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: %s; retry %d/%d in %.1f s",
            self.public_url,
            self._redact(_short(exc)),
            state.attempt_number,
            self.config.max_retries,
            wait,
        )

    def _describe(self, exc: BaseException) -> str:
        import openai

        what = _short(exc)
        hint = ""
        if isinstance(exc, openai.AuthenticationError):
            hint = f" (check the key in ${self.config.api_key_env})"
        elif isinstance(exc, openai.NotFoundError):
            hint = f" (is model {self.config.model!r} served at this base URL?)"
        elif _is_transient(exc):
            hint = f" (gave up after {self.config.max_retries + 1} tries)"
        return self._redact(f"chat endpoint {self.public_url}, model {self.config.model!r}: {what}{hint}")


def _content(response: Any) -> str:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return ""
    message = getattr(choices[0], "message", None)
    return (getattr(message, "content", None) or "") if message is not None else ""


def _is_transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)):
        return True
    return isinstance(exc, openai.APIStatusError) and (
        exc.status_code >= 500 or exc.status_code in (408, 409)
    )


def _retry_after(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    text = f"HTTP {status}: {message}" if status else f"{type(exc).__name__}: {message}"
    return text[:300]
