"""What each failure becomes in HTTP terms: a status only OpenAI would use, a 5xx only
when every upstream failed (or for a bug of ours, said as such)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.exceptions import (
    ErrorClass,
    ErrorReason,
    NoCandidatesError,
    NoCandidatesReason,
    OverloadedError,
    RateLimitedError,
    RequestValidationError,
    RunestoneError,
    SupervisionError,
    SupervisionReason,
)
from runestone.messages import StreamError
from runestone.server.errors import ApiError, from_exception, from_stream_error, validation_error


def failure(error_class: ErrorClass, kind: str = "", **extra: object) -> StreamError:
    return StreamError(
        error_class,
        "upstream said no",
        provider="p",
        model="m",
        kind=kind,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("error_class", "kind", "status", "code"),
    [
        (ErrorClass.RATE_LIMITED, "RateLimitedError", 429, "upstream_rate_limited"),
        (ErrorClass.SERVER_ERROR, "UpstreamServerError", 502, "upstream_error"),
        (ErrorClass.CONNECTION_ERROR, "UpstreamConnectionError", 502, "upstream_error"),
        (ErrorClass.STREAM_CUT, "StreamCutError", 502, "upstream_error"),
        (ErrorClass.MALFORMED, "MalformedResponseError", 502, "upstream_error"),
        (ErrorClass.AUTHENTICATION, "AuthenticationError", 502, "upstream_error"),
        (ErrorClass.CONNECT_TIMEOUT, "UpstreamTimeoutError", 504, "upstream_timeout"),
        (ErrorClass.FIRST_TOKEN_TIMEOUT, "UpstreamTimeoutError", 504, "upstream_timeout"),
        (ErrorClass.IDLE_TIMEOUT, "UpstreamTimeoutError", 504, "upstream_timeout"),
        (ErrorClass.TOTAL_TIMEOUT, "UpstreamTimeoutError", 504, "upstream_timeout"),
        (ErrorClass.CONTEXT_LENGTH, "ContextLengthExceededError", 400, "context_length_exceeded"),
        (ErrorClass.CONTENT_POLICY, "ContentPolicyError", 400, "content_policy_violation"),
        (ErrorClass.BAD_REQUEST, "BadRequestError", 400, "upstream_bad_request"),
    ],
)
def test_each_upstream_failure_class_has_its_status(
    error_class: ErrorClass, kind: str, status: int, code: str
) -> None:
    error = from_stream_error(failure(error_class, kind))
    assert (error.status, error.code) == (status, code)
    assert "p/m" in error.message
    assert "upstream said no" in error.message


def test_an_upstream_retry_after_passes_through_rounded_up() -> None:
    error = from_stream_error(failure(ErrorClass.RATE_LIMITED, "RateLimitedError", retry_after=2.2))
    assert error.headers() == {"retry-after": "3"}


def test_a_failure_after_content_says_the_answer_broke_off() -> None:
    error = from_stream_error(
        failure(ErrorClass.STREAM_CUT, "StreamCutError", content_delivered=True)
    )
    assert error.status == 502
    assert "broke off" in error.message


@pytest.mark.parametrize(
    ("message", "reason", "status", "code"),
    [
        ("unknown model or alias 'x'", NoCandidatesReason.UNKNOWN_MODEL, 404, "model_not_found"),
        (
            "nothing can serve 'x': p/m: circuit open for another 3s",
            NoCandidatesReason.ALL_HELD_BACK,
            503,
            "no_healthy_upstream",
        ),
        (
            "nothing can serve 'x': p/m: lacks vision",
            NoCandidatesReason.NO_CAPABLE_CANDIDATE,
            400,
            "model_not_supported",
        ),
    ],
)
def test_no_candidates_is_a_404_a_503_or_a_400_by_why(
    message: str, reason: NoCandidatesReason, status: int, code: str
) -> None:
    event = StreamError(ErrorClass.BAD_REQUEST, message, kind="NoCandidatesError", reason=reason)
    error = from_stream_error(event, model="x")
    assert (error.status, error.code) == (status, code)
    assert from_exception(NoCandidatesError(message, reason=reason), model="x").status == status


# Each reason's answer in both dialects: (status, OpenAI type, code, Anthropic type).
REASON_ANSWERS: dict[ErrorReason, tuple[int, str, str, str]] = {
    NoCandidatesReason.UNKNOWN_MODEL: (
        404,
        "invalid_request_error",
        "model_not_found",
        "not_found_error",
    ),
    NoCandidatesReason.NO_CAPABLE_CANDIDATE: (
        400,
        "invalid_request_error",
        "model_not_supported",
        "invalid_request_error",
    ),
    NoCandidatesReason.CONTEXT_TOO_LONG: (
        400,
        "invalid_request_error",
        "model_not_supported",
        "invalid_request_error",
    ),
    NoCandidatesReason.ALL_HELD_BACK: (503, "server_error", "no_healthy_upstream", "api_error"),
    NoCandidatesReason.NOT_READY: (503, "server_error", "no_healthy_upstream", "api_error"),
    SupervisionReason.SHUTTING_DOWN: (503, "server_error", "shutting_down", "overloaded_error"),
}


def test_every_reason_has_its_answer() -> None:
    assert set(REASON_ANSWERS) == {*NoCandidatesReason, *SupervisionReason}


def _raised(reason: ErrorReason, message: str) -> RunestoneError:
    if isinstance(reason, NoCandidatesReason):
        return NoCandidatesError(message, reason=reason)
    return SupervisionError(message, reason=reason)


def _in_band(reason: ErrorReason, message: str) -> StreamError:
    kind = "NoCandidatesError" if isinstance(reason, NoCandidatesReason) else "SupervisionError"
    return StreamError(ErrorClass.SERVER_ERROR, message, kind=kind, reason=reason)


def _answers(error: ApiError) -> tuple[int, str, str, str]:
    openai = error.openai_body()["error"]
    anthropic = error.anthropic_body()
    assert anthropic["type"] == "error"
    return (error.status, openai["type"], openai["code"], anthropic["error"]["type"])


@pytest.mark.parametrize("reason", list(REASON_ANSWERS), ids=str)
def test_each_reason_maps_to_its_status_and_error_type_in_both_dialects_however_it_arrives(
    reason: ErrorReason,
) -> None:
    raised = from_exception(_raised(reason, "why"), model="x")
    in_band = from_stream_error(_in_band(reason, "why"), model="x")
    assert _answers(raised) == REASON_ANSWERS[reason]
    assert _answers(in_band) == REASON_ANSWERS[reason]


@settings(max_examples=60, deadline=None)
@given(reason=st.sampled_from(list(REASON_ANSWERS)), message=st.text(max_size=80))
def test_the_answer_depends_on_the_reason_never_on_the_message_text(
    reason: ErrorReason, message: str
) -> None:
    for error in (
        from_exception(_raised(reason, message), model="x"),
        from_stream_error(_in_band(reason, message), model="x"),
    ):
        assert _answers(error) == REASON_ANSWERS[reason]


def test_a_stream_stopped_at_shutdown_is_a_503_not_an_internal_error() -> None:
    event = StreamError(
        ErrorClass.SERVER_ERROR,
        "the request was stopped before it finished (shutdown)",
        content_delivered=True,
        kind="SupervisionError",
        reason=SupervisionReason.SHUTTING_DOWN,
    )
    error = from_stream_error(event)
    assert (error.status, error.code, error.retry_after) == (503, "shutting_down", 1)
    assert error.anthropic_body()["error"]["type"] == "overloaded_error"


def test_a_supervision_error_without_a_reason_stays_an_honest_500() -> None:
    event = StreamError(ErrorClass.SERVER_ERROR, "the system is stopping", kind="SupervisionError")
    assert (from_stream_error(event).status, from_stream_error(event).code) == (
        500,
        "internal_error",
    )
    assert from_exception(SupervisionError("the system is stopped")).status == 500


def test_the_pool_being_full_is_a_429_with_retry_after() -> None:
    for error in (
        from_exception(OverloadedError("overloaded")),
        from_stream_error(StreamError(ErrorClass.SERVER_ERROR, "full", kind="OverloadedError")),
    ):
        assert error.status == 429
        assert error.code == "server_overloaded"
        assert error.headers() == {"retry-after": "1"}


def test_a_crash_of_ours_is_an_honest_500() -> None:
    event = StreamError(ErrorClass.SERVER_ERROR, "task crashed", kind="ActorCrashedError")
    error = from_stream_error(event)
    assert (error.status, error.code) == (500, "internal_error")
    assert "ActorCrashedError" in error.message
    assert from_exception(KeyError("x")).status == 500


@pytest.mark.parametrize("delivered", [False, True], ids=["before content", "after content"])
def test_a_bug_inside_a_provider_is_a_500_internal_error_never_an_upstream_error(
    delivered: bool,
) -> None:
    event = StreamError(
        ErrorClass.INTERNAL,
        "internal error in provider 'main': TypeError",
        "main",
        "healthy",
        content_delivered=delivered,
        kind="InternalProviderError",
    )
    error = from_stream_error(event)
    assert (error.status, error.type, error.code) == (500, "server_error", "internal_error")
    assert "upstream" not in error.message
    assert "TypeError" in error.message
    assert error.anthropic_body()["error"]["type"] == "api_error"
    raised = from_exception(event.to_exception())
    assert (raised.status, raised.code) == (500, "internal_error")


def test_a_stopped_system_is_a_503() -> None:
    stopped = SupervisionError("the system is stopped", reason=SupervisionReason.SHUTTING_DOWN)
    error = from_exception(stopped)
    assert (error.status, error.code) == (503, "shutting_down")


def test_a_part_of_the_gateway_restarting_is_a_503_worth_a_retry_not_a_shutdown() -> None:
    from runestone.exceptions import ActorUnavailableError

    error = from_exception(ActorUnavailableError("'admission' is stopped; message not sent"))
    assert (error.status, error.code, error.retry_after) == (503, "temporarily_unavailable", 1)


def test_a_system_down_for_good_is_a_503_naming_why() -> None:
    from runestone.exceptions import EscalationError

    error = from_exception(EscalationError("the system is down: its root supervisor gave up"))
    assert (error.status, error.code) == (503, "system_down")
    assert "root supervisor gave up" in error.message
    event = StreamError(ErrorClass.SERVER_ERROR, "its supervisors gave up", kind="EscalationError")
    assert (from_stream_error(event).status, from_stream_error(event).code) == (503, "system_down")


def test_a_provider_error_raised_is_mapped_like_its_event() -> None:
    error = from_exception(RateLimitedError("slow down", provider="p", model="m", retry_after=7))
    assert (error.status, error.headers()) == (429, {"retry-after": "7"})


def test_validation_errors_say_missing_only_when_the_field_is_absent() -> None:
    missing = validation_error(RequestValidationError("required", field="messages"), {})
    assert (missing.code, missing.param) == ("missing_required_parameter", "messages")
    wrong = validation_error(
        RequestValidationError("required: a list", field="messages"), {"messages": "x"}
    )
    assert wrong.code == "invalid_value"


def test_both_error_shapes() -> None:
    error = ApiError(404, "no such model", code="model_not_found", param="model")
    assert error.openai_body() == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert error.anthropic_body() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "no such model"},
    }
    assert ApiError(502, "x").anthropic_body()["error"]["type"] == "api_error"
    assert ApiError(429, "x").anthropic_body()["error"]["type"] == "rate_limit_error"


def test_every_candidate_held_back_is_a_503_however_it_arrives() -> None:
    from runestone.actors.stream_task import _error_class_of
    from runestone.exceptions import ErrorClass, NoHealthyUpstreamError

    error = NoHealthyUpstreamError("no candidate could take the request: every circuit is open")
    assert _error_class_of(error) is ErrorClass.SERVER_ERROR, "never the request's fault"
    event = StreamError(ErrorClass.SERVER_ERROR, str(error), kind="NoHealthyUpstreamError")
    for api_error in (from_exception(error), from_stream_error(event)):
        assert api_error.status == 503
        assert api_error.code == "no_healthy_upstream"
