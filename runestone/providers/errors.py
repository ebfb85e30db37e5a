"""Upstream failures translated into Runestone's error tree (ARCHITECTURE §4).

Two boundaries meet here:

- :func:`classify_response` reads an error *answer* — status, body, headers —
  in either OpenAI's (``{"error": {"type", "code", "message"}}``) or Anthropic's
  (``{"type": "error", "error": {"type", "message"}}``) shape, and returns the
  matching :class:`ProviderError` with ``Retry-After`` honoured.
- :func:`translate_exception` maps an aiohttp/asyncio exception raised while
  connecting or reading to the same tree; :func:`upstream_errors` is the
  context manager that applies it with ``raise ... from exc``.

Every message passes through :func:`redact` first: API keys never reach an
error message, a log line or a ``StreamError`` event.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from runestone import jsonio
from runestone.exceptions import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ContextLengthExceededError,
    ErrorClass,
    MalformedResponseError,
    ProviderError,
    RateLimitedError,
    StreamCutError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from runestone.resilience.failure_policy import FailoverScope, failure_policy

_loads = jsonio.loads

__all__ = [
    "MAX_MESSAGE_CHARS",
    "AttemptState",
    "Phase",
    "after_content",
    "classify_error_body",
    "classify_response",
    "parse_retry_after",
    "redact",
    "translate_exception",
    "upstream_errors",
]

MAX_MESSAGE_CHARS: Final = 500
"""Upstream reasons are cut to this length: enough to act on, never a whole HTML page."""

_CONTEXT_CODES: Final = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTEXT_PHRASES: Final = (
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "input is too long",
)
_POLICY_CODES: Final = frozenset(
    {"content_policy_violation", "content_filter", "content_policy", "moderation_blocked"}
)
_POLICY_PHRASES: Final = (
    "content policy",
    "content filtering",
    "content management policy",
    "usage policies",
    "safety system",
    "flagged",
)
_SERVER_TYPES: Final = frozenset({"overloaded_error", "api_error", "server_error"})
_RATE_TYPES: Final = frozenset({"rate_limit_error", "rate_limit_exceeded"})
_AUTH_TYPES: Final = frozenset({"authentication_error", "permission_error", "invalid_api_key"})
_KEY_PATTERNS: Final = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}|\b(sk|pk|rk)-[A-Za-z0-9_*-]{8,}"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and anything shaped like an API key replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_PATTERNS.sub(lambda m: (m.group(1) or "") + "***", text)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date.

    ``now`` is the wall clock (``Clock.time()``) used for a date; ``None`` reads
    the system clock. Past dates give 0; garbage gives ``None``.
    """
    value = _header(headers, "retry-after-ms")
    if value is not None:
        try:
            millis = float(value)
        except ValueError:
            millis = -1.0
        if millis >= 0 and millis == millis:  # not NaN
            return millis / 1000.0
    value = _header(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        # Plain dicts are case-sensitive; CIMultiDict (aiohttp) is not.
        for key, item in headers.items():
            if key.lower() == name:
                return item
    return value


def _error_fields(body: object) -> tuple[str, str, str]:
    """(type, code, message) from an OpenAI- or Anthropic-shaped error body."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            kind = error.get("type")
            code = error.get("code")
            message = error.get("message") or error.get("detail") or ""
            return (
                str(kind) if kind is not None else "",
                str(code) if code is not None else "",
                message if isinstance(message, str) else str(message),
            )
        if isinstance(error, str):
            return "", "", error
        detail = body.get("detail") or body.get("message")
        if detail is not None:
            return "", "", detail if isinstance(detail, str) else str(detail)
    return "", "", ""


def _decode_body(body: bytes | str | Mapping[str, Any] | None) -> tuple[object, str]:
    """The parsed body (or None) and its text, for classification and messages."""
    if body is None:
        return None, ""
    if isinstance(body, Mapping):
        return body, ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return _loads(text), text
    except ValueError:
        return None, text


def after_content(error: ProviderError) -> ProviderError:
    """The error an upstream error *event* that came after content stands for.

    A retryable or server-class event in the middle of an answer (``overloaded_error``,
    ``server_error``, ``rate_limit_error``) cuts the stream as surely as a dropped
    connection, and is continued like one (ARCHITECTURE §3): a :class:`StreamCutError`
    that keeps the provider's reason. One that is the request's fault (an
    ``invalid_request_error``) still ends the request with that reason.
    """
    if not error.content_delivered or error.error_class is ErrorClass.STREAM_CUT:
        return error
    handling = failure_policy(error.error_class)
    if not (handling.retry_same and handling.failover is FailoverScope.NEXT):
        return error
    cut = StreamCutError(
        f"the stream was cut by an upstream error event: {error.message}",
        provider=error.provider,
        model=error.model,
        status=error.status,
        retry_after=error.retry_after,
        content_delivered=True,
    )
    cut.__cause__ = error
    return cut


def classify_error_body(
    body: bytes | str | Mapping[str, Any] | None,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    provider: str = "",
    model: str = "",
    content_delivered: bool = False,
    secrets: Iterable[str] = (),
    now: float | None = None,
) -> ProviderError:
    """The error for an upstream failure answer (an HTTP error or an in-stream error event)."""
    parsed, text = _decode_body(body)
    kind, code, message = _error_fields(parsed)
    kind_l, code_l, message_l = kind.lower(), code.lower(), message.lower()
    if not message:
        message = " ".join(text.split())[:MAX_MESSAGE_CHARS] if text else ""
    retry_after = parse_retry_after(headers, now=now) if headers is not None else None
    summary = _summary(status, kind or code, message)
    summary = redact(summary, secrets)
    common: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status": status,
        "retry_after": retry_after,
        "content_delivered": content_delivered,
    }
    error_type: type[ProviderError]
    if status == 429 or kind_l in _RATE_TYPES or code_l in _RATE_TYPES:
        error_type = RateLimitedError
    elif status in (401, 403) or kind_l in _AUTH_TYPES or code_l in _AUTH_TYPES:
        error_type = AuthenticationError
    elif (status is not None and status >= 500) or kind_l in _SERVER_TYPES:
        error_type = UpstreamServerError
    elif code_l in _CONTEXT_CODES or any(p in message_l for p in _CONTEXT_PHRASES):
        error_type = ContextLengthExceededError
    elif (
        code_l in _POLICY_CODES
        or kind_l in _POLICY_CODES
        or any(p in message_l for p in _POLICY_PHRASES)
    ):
        error_type = ContentPolicyError
    elif status == 408:
        error_type = UpstreamServerError
    elif status is None or 400 <= status < 500:
        error_type = BadRequestError
    else:
        error_type = MalformedResponseError
        summary = redact(f"unexpected HTTP status {status}: {message}"[:MAX_MESSAGE_CHARS], secrets)
    return error_type(summary, **common)


def classify_response(
    status: int,
    body: bytes | str | None,
    headers: Mapping[str, str],
    *,
    provider: str = "",
    model: str = "",
    secrets: Iterable[str] = (),
    now: float | None = None,
) -> ProviderError:
    """The error for a non-2xx HTTP answer: status, body and headers per ARCHITECTURE §4."""
    return classify_error_body(
        body,
        status=status,
        headers=headers,
        provider=provider,
        model=model,
        secrets=secrets,
        now=now,
    )


def _summary(status: int | None, kind: str, message: str) -> str:
    head = f"HTTP {status}" if status is not None else "error event"
    if kind:
        head += f" {kind}"
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return f"{head}: {message}" if message else head


# --------------------------------------------------------------------------- exceptions


class Phase:
    """Where an attempt is: decides what a dropped connection means."""

    CONNECTING: Final = 0  # no response bytes yet
    BODY: Final = 1  # headers received, reading the body


class AttemptState:
    """Mutable facts about one attempt that error translation needs."""

    __slots__ = ("content_delivered", "model", "phase", "provider", "secrets")

    def __init__(self, provider: str, model: str, secrets: tuple[str, ...] = ()) -> None:
        self.provider = provider
        self.model = model
        self.secrets = secrets
        self.phase = Phase.CONNECTING
        self.content_delivered = False

    def error(self, error_type: type[ProviderError], message: str, **kwargs: Any) -> ProviderError:
        """An error of ``error_type`` stamped with this attempt's provider, model and delivery."""
        return error_type(
            redact(message, self.secrets),
            provider=self.provider,
            model=self.model,
            content_delivered=self.content_delivered,
            **kwargs,
        )


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a transport failure may raise: aiohttp's errors, OS errors and timeouts.

    aiohttp is imported here, on first need, not when this module is: its import loads
    the CA bundle (about 0.1 s of a 1 s start-up), and a gateway serving only local
    providers never makes an HTTP call upstream.
    """
    import aiohttp  # deferred, see above

    return (aiohttp.ClientError, OSError, asyncio.TimeoutError)


def translate_exception(exc: BaseException, state: AttemptState) -> ProviderError:
    """Our error for an aiohttp/asyncio/OS exception raised during ``state``'s attempt."""
    import aiohttp  # deferred (see transport_errors); loaded by now

    if isinstance(exc, ProviderError):
        return exc
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    in_body = state.phase == Phase.BODY
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return state.error(
            UpstreamTimeoutError,
            f"no connection within the connect timeout ({detail})",
            error_class=ErrorClass.CONNECT_TIMEOUT,
        )
    if isinstance(exc, aiohttp.SocketTimeoutError):
        error_class = ErrorClass.IDLE_TIMEOUT if in_body else ErrorClass.HEADERS_TIMEOUT
        return state.error(UpstreamTimeoutError, detail, error_class=error_class)
    if isinstance(exc, asyncio.TimeoutError):
        return state.error(UpstreamTimeoutError, detail, error_class=ErrorClass.TOTAL_TIMEOUT)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return state.error(StreamCutError, f"the response body was cut short ({detail})")
    if isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp raises this for answers it cannot parse as HTTP.
        return state.error(MalformedResponseError, f"unreadable HTTP response ({detail})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return state.error(UpstreamConnectionError, f"cannot connect ({detail})")
    if isinstance(exc, aiohttp.ClientError | OSError):
        if in_body:
            return state.error(StreamCutError, f"the connection dropped mid-response ({detail})")
        return state.error(UpstreamConnectionError, f"the connection failed ({detail})")
    if isinstance(exc, ValueError | UnicodeError):
        return state.error(MalformedResponseError, f"unreadable response ({detail})")
    return state.error(UpstreamConnectionError, f"unexpected upstream failure ({detail})")


@contextmanager
def upstream_errors(state: AttemptState) -> Iterator[None]:
    """Translate aiohttp/asyncio/OS errors raised inside into our tree, ``from`` the cause.

    Cancellation and our own ``ProviderError`` pass through untouched.
    """
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        if not isinstance(exc, (*transport_errors(), ValueError)):
            raise
        raise translate_exception(exc, state) from exc
