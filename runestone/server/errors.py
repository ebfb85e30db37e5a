"""Every failure the HTTP front answers with, in HTTP terms: a status, a type, a code.

:class:`ApiError` is what the routes raise and render. The status follows what
OpenAI itself would answer, and a 5xx means only that no upstream could answer:

====================================  ======  ================================
what happened                         status  code
====================================  ======  ================================
malformed JSON, a bad field           400     ``invalid_json`` / ``invalid_value``
                                              / ``missing_required_parameter``
the prompt does not fit, a refusal    400     ``context_length_exceeded`` /
                                              ``content_policy_violation``
the upstream refused the request      400     ``upstream_bad_request``
no model can do what is asked         400     ``model_not_supported``
missing or wrong key                  401     ``missing_api_key`` / ``invalid_api_key``
unknown model                         404     ``model_not_found``
unknown route / method                404/405 ``unknown_route`` / ``method_not_allowed``
body over the limit                   413     ``request_too_large``
a key's rpm or stream limit           429     ``rate_limit_exceeded`` /
                                              ``concurrency_limit_exceeded``
the pool is full                      429     ``server_overloaded``
every upstream rate limited           429     ``upstream_rate_limited`` (its Retry-After)
every upstream failed                 502     ``upstream_error`` (names the last error)
no upstream is healthy / stopping     503     ``no_healthy_upstream`` / ``shutting_down``
                                              (Anthropic: ``overloaded_error``)
every upstream timed out              504     ``upstream_timeout``
a bug of ours (a provider's code       500     ``internal_error``
included: never an upstream error)
====================================  ======  ================================

Routing's and the runtime's errors are told apart by their reason
(:class:`~runestone.exceptions.NoCandidatesReason`,
:class:`~runestone.exceptions.SupervisionReason`), never by their message, whether
raised or arriving in-band as a :class:`~runestone.messages.StreamError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from runestone.exceptions import (
    ActorUnavailableError,
    ErrorClass,
    ErrorKind,
    EscalationError,
    NoCandidatesError,
    NoCandidatesReason,
    OverloadedError,
    ProviderError,
    RequestValidationError,
    RunestoneError,
    SupervisionError,
    SupervisionReason,
)
from runestone.messages import StreamError

__all__ = [
    "ANTHROPIC_TYPES",
    "ApiError",
    "from_exception",
    "from_stream_error",
    "model_not_found",
    "shutting_down",
    "validation_error",
]

_REASONS: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}

ANTHROPIC_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
}
"""Anthropic's error ``type`` for a status (``api_error`` for every 5xx)."""


class ApiError(Exception):
    """An error answer: ``status``, a message naming the problem, OpenAI's ``type``,
    ``code`` and ``param``, and a ``Retry-After`` in seconds when waiting helps."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        anthropic_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = error_type or _REASONS.get(status, "server_error")
        self.anthropic_type = anthropic_type or ANTHROPIC_TYPES.get(status, "api_error")
        """The error's ``type`` in Anthropic's dialect (by its status unless said)."""
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r}, code={self.code!r})"

    def headers(self) -> dict[str, str]:
        """``Retry-After`` (whole seconds, rounded up) when the error carries one."""
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}

    def openai_body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        """``{"type": "error", "error": {"type", "message"}}``."""
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}


def validation_error(
    exc: RequestValidationError, body: Mapping[str, Any] | None = None
) -> ApiError:
    """A 400 naming the bad field; ``missing_required_parameter`` when ``body`` lacks it."""
    field = exc.field
    missing = body is not None and bool(field) and field.isidentifier() and field not in body
    code = "missing_required_parameter" if missing else "invalid_value"
    return ApiError(400, str(exc), code=code, param=field or None)


def model_not_found(model: str) -> ApiError:
    """404 ``model_not_found``, OpenAI's wording."""
    return ApiError(
        404,
        f"The model {model!r} does not exist: it is neither a configured model nor an alias "
        "(GET /v1/models lists them)",
        code="model_not_found",
        param="model",
    )


def from_exception(exc: BaseException, *, model: str = "") -> ApiError:
    """The answer for an exception raised while admitting or running a request."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestValidationError):
        return validation_error(exc)
    if isinstance(exc, OverloadedError):
        return ApiError(429, str(exc), code="server_overloaded", retry_after=1)
    if isinstance(exc, NoCandidatesError):
        return _no_candidates(exc.reason, str(exc), model, exc.field)
    if isinstance(exc, ProviderError):
        if exc.error_class is ErrorClass.INTERNAL:
            return _internal(exc.message, exc.provider, exc.model)
        return _provider_failure(
            exc.error_class, exc.message, exc.provider, exc.model, exc.retry_after
        )
    if isinstance(exc, EscalationError):
        # Down for good: the process is about to exit and be restarted by its manager.
        return ApiError(503, str(exc), code="system_down", retry_after=5)
    if isinstance(exc, SupervisionError) and exc.reason is SupervisionReason.SHUTTING_DOWN:
        return shutting_down()
    if isinstance(exc, ActorUnavailableError):
        # A part of the gateway is restarting: honest, temporary, and worth a retry.
        return ApiError(
            503,
            f"the gateway is briefly unavailable ({exc}); retry shortly",
            code="temporarily_unavailable",
            retry_after=1,
        )
    return ApiError(
        500,
        f"the gateway failed internally ({type(exc).__name__}); the request was not answered",
        code="internal_error",
    )


def from_stream_error(event: StreamError, *, model: str = "") -> ApiError:
    """The answer for a request whose terminal event is ``event``, by its class, kind
    and reason (never its message)."""
    kind, reason = event.kind, event.reason
    if event.error_class is ErrorClass.INTERNAL:
        return _internal(event.message, event.provider, event.model)
    if isinstance(reason, NoCandidatesReason):
        return _no_candidates(reason, event.message, model, event.field)
    if reason is SupervisionReason.SHUTTING_DOWN:
        return shutting_down()
    if kind is ErrorKind.OVERLOADED_ERROR:
        return ApiError(429, event.message, code="server_overloaded", retry_after=1)
    if kind is ErrorKind.REQUEST_VALIDATION_ERROR:
        return ApiError(400, event.message, code="invalid_value")
    known = ProviderError if kind is None else kind.error_type
    if issubclass(known, NoCandidatesError):
        # Routing's error without its reason (an older producer): what its class implies.
        return _no_candidates(known(event.message).reason, event.message, model)
    if issubclass(known, ProviderError):
        if event.content_delivered:
            where = "/".join(part for part in (event.provider, event.model) if part)
            return ApiError(
                502,
                f"the answer broke off after part of it was sent ({where or 'upstream'}, "
                f"{event.error_class.value}): {event.message}",
                code="upstream_error",
                error_type="server_error",
            )
        return _provider_failure(
            event.error_class, event.message, event.provider, event.model, event.retry_after
        )
    if known in (EscalationError, ActorUnavailableError):
        return from_exception(known(event.message))
    if known is not RunestoneError:
        # A crash of ours (a stream task that could not be restarted …): say so honestly.
        return ApiError(
            500,
            f"the gateway failed internally ({kind}): {event.message}",
            code="internal_error",
        )
    return ApiError(500, f"the gateway failed internally: {event.message}", code="internal_error")


def _internal(message: str, provider: str, model: str) -> ApiError:
    where = "/".join(part for part in (provider, model) if part)
    return ApiError(
        500,
        f"the gateway failed internally{f' ({where})' if where else ''}: {message}; "
        "this is a bug of the gateway, not a failure of the provider",
        code="internal_error",
    )


def shutting_down(
    message: str = "the server is shutting down", *, retry_after: float | None = 1
) -> ApiError:
    """503 ``shutting_down``: the server is stopping; retry against the next instance.
    Anthropic's dialect calls a server that cannot take the request now
    ``overloaded_error``."""
    return ApiError(
        503,
        message,
        code="shutting_down",
        anthropic_type="overloaded_error",
        retry_after=retry_after,
    )


def _no_candidates(
    reason: NoCandidatesReason, message: str, model: str, field: str = ""
) -> ApiError:
    if reason is NoCandidatesReason.UNKNOWN_MODEL:
        return model_not_found(model)
    if reason in (NoCandidatesReason.ALL_HELD_BACK, NoCandidatesReason.NOT_READY):
        return ApiError(
            503,
            f"no upstream is healthy enough to take the request: {message}",
            code="no_healthy_upstream",
            retry_after=1,
        )
    return ApiError(
        400,
        f"no configured model can serve this request: {message}",
        code="model_not_supported",
        # The field no candidate can carry, when that is why; else the model's choice.
        param=field or "model",
    )


_TIMEOUTS: Final = frozenset(
    {
        ErrorClass.CONNECT_TIMEOUT,
        ErrorClass.HEADERS_TIMEOUT,
        ErrorClass.FIRST_TOKEN_TIMEOUT,
        ErrorClass.IDLE_TIMEOUT,
        ErrorClass.TOTAL_TIMEOUT,
    }
)


def _provider_failure(
    error_class: ErrorClass,
    message: str,
    provider: str,
    model: str,
    retry_after: float | None,
) -> ApiError:
    where = "/".join(part for part in (provider, model) if part) or "the upstream"
    if error_class is ErrorClass.CONTEXT_LENGTH:
        return ApiError(
            400,
            f"the prompt does not fit the model ({where}): {message}",
            code="context_length_exceeded",
            param="messages",
        )
    if error_class is ErrorClass.CONTENT_POLICY:
        return ApiError(
            400, f"{where} refused the content: {message}", code="content_policy_violation"
        )
    if error_class is ErrorClass.BAD_REQUEST:
        return ApiError(400, f"{where} refused the request: {message}", code="upstream_bad_request")
    last = f"every candidate upstream failed; the last error ({where}, {error_class.value}): "
    if error_class is ErrorClass.RATE_LIMITED:
        return ApiError(
            429,
            last + message,
            code="upstream_rate_limited",
            retry_after=retry_after if retry_after is not None else 1,
        )
    if error_class in _TIMEOUTS:
        return ApiError(504, last + message, code="upstream_timeout", error_type="server_error")
    return ApiError(
        502,
        last + message,
        code="upstream_error",
        error_type="server_error",
        retry_after=retry_after,
    )
