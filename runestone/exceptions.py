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

What a caller (and the HTTP front) decides by is machine-readable, never the
message text: an error's class name is an :class:`ErrorKind`, and a
:class:`NoCandidatesError` carries a :class:`NoCandidatesReason`, a
:class:`SupervisionError` a :class:`SupervisionReason` when it has one.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

__all__ = [
    "ActorCrashedError",
    "ActorUnavailableError",
    "AuthenticationError",
    "BadRequestError",
    "ChildStartError",
    "ClusterUnavailableError",
    "ConfigError",
    "ContentPolicyError",
    "ContextLengthExceededError",
    "ErrorClass",
    "ErrorKind",
    "ErrorReason",
    "EscalationError",
    "InternalProviderError",
    "MalformedResponseError",
    "NoCandidatesError",
    "NoCandidatesReason",
    "NoHealthyUpstreamError",
    "OverloadedError",
    "ProviderError",
    "RateLimitedError",
    "RequestValidationError",
    "RunestoneError",
    "StreamCutError",
    "SupervisionError",
    "SupervisionReason",
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


class NoCandidatesReason(enum.StrEnum):
    """Why routing found nothing able to serve a request."""

    UNKNOWN_MODEL = "unknown_model"
    """The name is neither a configured model, a ``provider/model`` key nor an alias."""
    NO_CAPABLE_CANDIDATE = "no_capable_candidate"
    """No candidate has what the request needs (tools, vision …) or is configured at all."""
    CONTEXT_TOO_LONG = "context_too_long"
    """Candidates have what it needs but not the room: context window or output limit."""
    ALL_HELD_BACK = "all_held_back"
    """Every capable candidate is held back now (circuit open or forced open, restarting)."""
    NOT_READY = "not_ready"
    """Routing has not been published yet: the Router has not started."""


class SupervisionReason(enum.StrEnum):
    """Why the supervision runtime refused or ended a request, where a caller may act on it."""

    SHUTTING_DOWN = "shutting_down"
    """The system is stopping (or stopped): retry against the next instance."""


ErrorReason: TypeAlias = NoCandidatesReason | SupervisionReason
"""A machine-readable reason an error (and its in-band :class:`~runestone.messages.StreamError`)
carries."""


class RunestoneError(Exception):
    """The root of every error Runestone raises."""

    reason: ErrorReason | None = None
    """Why, machine-readably, where the class alone does not say (None: it does)."""


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
    """No configured provider/model can serve this request; ``reason`` says why, ``field``
    the request field no candidate could carry, when that is why (``previous_response_id``
    with no upstream speaking the Responses API …)."""

    reason: NoCandidatesReason

    def __init__(
        self,
        message: str,
        *,
        reason: NoCandidatesReason = NoCandidatesReason.NO_CAPABLE_CANDIDATE,
        field: str = "",
    ) -> None:
        self.reason = reason
        self.field = field
        super().__init__(message)


class NoHealthyUpstreamError(NoCandidatesError):
    """Candidates exist, but every one is held back now (open circuit, restarting actor):
    a temporary condition of the gateway, never the request's fault."""

    def __init__(
        self, message: str, *, reason: NoCandidatesReason = NoCandidatesReason.ALL_HELD_BACK
    ) -> None:
        super().__init__(message, reason=reason)


class ClusterUnavailableError(RunestoneError):
    """Redis could not be used within its deadline (or is known to be down).

    Never reaches a caller: the cluster falls back to the replica's local state.
    """


class SupervisionError(RunestoneError):
    """Errors of the supervision runtime; ``reason`` when a caller may act on why."""

    def __init__(self, message: str = "", *, reason: SupervisionReason | None = None) -> None:
        self.reason = reason
        super().__init__(message)


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


class ErrorKind(enum.StrEnum):
    """The name of a Runestone error class, as an in-band error event names what is behind it."""

    RUNESTONE_ERROR = "RunestoneError"
    CONFIG_ERROR = "ConfigError"
    REQUEST_VALIDATION_ERROR = "RequestValidationError"
    OVERLOADED_ERROR = "OverloadedError"
    CLUSTER_UNAVAILABLE_ERROR = "ClusterUnavailableError"
    NO_CANDIDATES_ERROR = "NoCandidatesError"
    NO_HEALTHY_UPSTREAM_ERROR = "NoHealthyUpstreamError"
    SUPERVISION_ERROR = "SupervisionError"
    CHILD_START_ERROR = "ChildStartError"
    ACTOR_CRASHED_ERROR = "ActorCrashedError"
    ACTOR_UNAVAILABLE_ERROR = "ActorUnavailableError"
    ESCALATION_ERROR = "EscalationError"
    PROVIDER_ERROR = "ProviderError"
    RATE_LIMITED_ERROR = "RateLimitedError"
    UPSTREAM_SERVER_ERROR = "UpstreamServerError"
    UPSTREAM_CONNECTION_ERROR = "UpstreamConnectionError"
    UPSTREAM_TIMEOUT_ERROR = "UpstreamTimeoutError"
    STREAM_CUT_ERROR = "StreamCutError"
    MALFORMED_RESPONSE_ERROR = "MalformedResponseError"
    CONTEXT_LENGTH_EXCEEDED_ERROR = "ContextLengthExceededError"
    CONTENT_POLICY_ERROR = "ContentPolicyError"
    BAD_REQUEST_ERROR = "BadRequestError"
    AUTHENTICATION_ERROR = "AuthenticationError"
    INTERNAL_PROVIDER_ERROR = "InternalProviderError"

    @classmethod
    def of(cls, error: BaseException) -> ErrorKind:
        """The kind of ``error``: its own class, or the nearest one of the tree above it
        (a plugin's subclass; ``RunestoneError`` for what is not ours at all)."""
        for klass in type(error).__mro__:
            kind = _KIND_BY_NAME.get(klass.__name__)
            if kind is not None and globals().get(klass.__name__) is klass:
                return kind
        return cls.RUNESTONE_ERROR

    @property
    def error_type(self) -> type[RunestoneError]:
        """The exception class this kind names."""
        return _TYPE_BY_KIND[self]


_KIND_BY_NAME: dict[str, ErrorKind] = {kind.value: kind for kind in ErrorKind}
# Every kind names a class of this module (tests/test_exceptions.py checks the two agree).
_TYPE_BY_KIND: dict[ErrorKind, type[RunestoneError]] = {
    kind: globals()[kind.value] for kind in ErrorKind
}
