"""Runestone's one error tree.

Every error Runestone raises is a :class:`RunestoneError`; foreign errors
(aiohttp, pykka, YAML, JSON) are translated at the boundary with
``raise ... from exc`` so the cause stays attached::

    RunestoneError
    ├── ConfigError                  a bad config file: names the key path
    ├── RequestValidationError       a bad request: names the field
    ├── OverloadedError              admission refused: the pool is full
    ├── NoCandidatesError            routing found nothing able to serve the request
    │   └── NoHealthyUpstreamError   …for now: every candidate is held back (retry shortly)
    ├── SupervisionError
    │   ├── ChildStartError          a child failed to start: names the child and the cause
    │   ├── ActorCrashedError        a handler raised a BaseException; carried as an Exception
    │   ├── ActorUnavailableError    a handle could not reach a live incarnation in time
    │   └── EscalationError          a supervisor gave up: restart intensity reached
    └── ProviderError                one failed upstream attempt: carries its ErrorClass
        ├── RateLimitedError             429
        ├── UpstreamServerError          500/502/503/504
        ├── UpstreamConnectionError      connection reset or refused
        ├── UpstreamTimeoutError         connect, headers, first token, idle, total
        ├── StreamCutError               the stream ended before its terminal event
        ├── MalformedResponseError       a chunk or body that cannot be parsed
        ├── ContextLengthExceededError   400: the prompt does not fit
        ├── ContentPolicyError           400: the provider refused the content
        ├── BadRequestError              other 400/404/422
        ├── AuthenticationError          401/403
        └── InternalProviderError        not the upstream's doing: our own code failed
                                         during the attempt (a bug); never retried,
                                         failed over or counted against the circuit

How each :class:`ErrorClass` is handled (retry, failover, circuit) is the table
in ARCHITECTURE §4; :mod:`runestone.resilience` reads it from here.
"""

from __future__ import annotations

import enum

__all__ = [
    "ActorCrashedError",
    "ActorUnavailableError",
    "AuthenticationError",
    "BadRequestError",
    "ChildStartError",
    "ConfigError",
    "ContentPolicyError",
    "ContextLengthExceededError",
    "ErrorClass",
    "EscalationError",
    "InternalProviderError",
    "MalformedResponseError",
    "NoCandidatesError",
    "NoHealthyUpstreamError",
    "OverloadedError",
    "ProviderError",
    "RateLimitedError",
    "RequestValidationError",
    "RunestoneError",
    "StreamCutError",
    "SupervisionError",
    "UpstreamConnectionError",
    "UpstreamServerError",
    "UpstreamTimeoutError",
]


class ErrorClass(enum.StrEnum):
    """What kind of failure one upstream attempt ended in (ARCHITECTURE §4)."""

    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CONNECTION_ERROR = "connection_error"
    CONNECT_TIMEOUT = "connect_timeout"
    HEADERS_TIMEOUT = "headers_timeout"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    TOTAL_TIMEOUT = "total_timeout"
    STREAM_CUT = "stream_cut"
    MALFORMED = "malformed"
    CONTEXT_LENGTH = "context_length_exceeded"
    CONTENT_POLICY = "content_policy"
    BAD_REQUEST = "bad_request"
    AUTHENTICATION = "authentication"
    INTERNAL = "internal"
    """Not an upstream outcome: our own code failed during the attempt."""


class RunestoneError(Exception):
    """The root of every error Runestone raises."""


class ConfigError(RunestoneError):
    """A configuration that cannot be used; ``path`` is the offending key path."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class RequestValidationError(RunestoneError):
    """A request that cannot be served as written; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class OverloadedError(RunestoneError):
    """Admission refused: the pool already holds its bound of in-flight requests."""


class NoCandidatesError(RunestoneError):
    """No configured provider/model can serve this request."""


class NoHealthyUpstreamError(NoCandidatesError):
    """Candidates exist, but every one is held back now (open circuit, restarting actor):
    a temporary condition of the gateway, never the request's fault."""


class SupervisionError(RunestoneError):
    """Errors of the supervision runtime."""


class ChildStartError(SupervisionError):
    """A supervised child failed to start; names the child and carries the cause."""

    def __init__(self, child_id: str, cause: BaseException | str) -> None:
        self.child_id = child_id
        self.cause = cause
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"child {child_id!r} failed to start: {reason}")


class ActorCrashedError(SupervisionError):
    """An actor handler raised a ``BaseException``; it is carried as an ``Exception``.

    pykka would stop every actor in the process on a ``BaseException``; the
    supervision layer converts it so only the actor that raised it dies.
    """


class ActorUnavailableError(SupervisionError):
    """A handle found no live incarnation of its actor within the timeout."""


class EscalationError(SupervisionError):
    """A supervisor reached its restart intensity and stopped itself."""


class ProviderError(RunestoneError):
    """One upstream attempt failed.

    Carries the failure class, where it happened and whether content had already
    reached the caller (which decides between retry and an in-band error).
    Messages never contain API keys.
    """

    error_class: ErrorClass = ErrorClass.SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        content_delivered: bool = False,
        error_class: ErrorClass | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after
        self.content_delivered = content_delivered
        if error_class is not None:
            self.error_class = error_class

    def __str__(self) -> str:
        where = "/".join(part for part in (self.provider, self.model) if part)
        prefix = f"[{self.error_class.value}{' ' + where if where else ''}] "
        return prefix + self.message


class RateLimitedError(ProviderError):
    """429: the provider asks us to slow down (``retry_after`` when it said how long)."""

    error_class = ErrorClass.RATE_LIMITED


class UpstreamServerError(ProviderError):
    """500/502/503/504 from the provider."""

    error_class = ErrorClass.SERVER_ERROR


class UpstreamConnectionError(ProviderError):
    """The connection was reset or refused."""

    error_class = ErrorClass.CONNECTION_ERROR


class UpstreamTimeoutError(ProviderError):
    """A connect, headers, first-token, idle or total timeout; ``error_class`` says which."""

    error_class = ErrorClass.TOTAL_TIMEOUT


class StreamCutError(ProviderError):
    """The stream ended before its terminal event."""

    error_class = ErrorClass.STREAM_CUT


class MalformedResponseError(ProviderError):
    """A chunk or body that cannot be parsed and cannot be skipped."""

    error_class = ErrorClass.MALFORMED


class ContextLengthExceededError(ProviderError):
    """400: the prompt plus the requested completion does not fit the model."""

    error_class = ErrorClass.CONTEXT_LENGTH


class ContentPolicyError(ProviderError):
    """400: the provider refused the content; its reason is the message."""

    error_class = ErrorClass.CONTENT_POLICY


class BadRequestError(ProviderError):
    """Another 400/404/422: the provider's reason is the message."""

    error_class = ErrorClass.BAD_REQUEST


class AuthenticationError(ProviderError):
    """401/403: the key is missing, wrong or not allowed."""

    error_class = ErrorClass.AUTHENTICATION


class InternalProviderError(ProviderError):
    """Our own code (a provider's encoder, a decoder …) raised during an attempt.

    A bug of ours, not an upstream failure: it is a 500 with our error shape, and it
    is neither retried, nor failed over, nor counted against the provider's circuit
    (the upstream did nothing wrong). The message names the exception's type only;
    the traceback goes to the log.
    """

    error_class = ErrorClass.INTERNAL
