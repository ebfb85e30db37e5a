"""Error classification from status, body and headers; Retry-After; redaction; translation."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

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
from runestone.providers.errors import (
    AttemptState,
    Phase,
    classify_error_body,
    classify_response,
    parse_retry_after,
    redact,
    translate_exception,
    upstream_errors,
)

_REQUEST_INFO = aiohttp.RequestInfo(
    URL("http://127.0.0.1/v1"), "POST", CIMultiDictProxy(CIMultiDict()), URL("http://127.0.0.1/v1")
)
NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def openai_error(message: str, kind: str, code: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()


def anthropic_error(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            429,
            openai_error("Rate limit reached", "requests", "rate_limit_exceeded"),
            RateLimitedError,
        ),
        (429, anthropic_error("rate_limit_error", "Number of requests exceeded"), RateLimitedError),
        (500, openai_error("oops", "server_error"), UpstreamServerError),
        (502, b"<html>Bad Gateway</html>", UpstreamServerError),
        (503, b"", UpstreamServerError),
        (504, b"upstream timed out", UpstreamServerError),
        (529, anthropic_error("overloaded_error", "Overloaded"), UpstreamServerError),
        (
            400,
            openai_error(
                "This model's maximum context length is 8192 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
            ),
            ContextLengthExceededError,
        ),
        (
            400,
            anthropic_error("invalid_request_error", "prompt is too long: 200002 tokens > 200000"),
            ContextLengthExceededError,
        ),
        (
            400,
            openai_error("rejected", "invalid_request_error", "content_policy_violation"),
            ContentPolicyError,
        ),
        (
            400,
            openai_error("filtered", "invalid_request_error", "content_filter"),
            ContentPolicyError,
        ),
        (
            400,
            anthropic_error("invalid_request_error", "Output blocked by content filtering policy"),
            ContentPolicyError,
        ),
        (400, anthropic_error("invalid_request_error", "max_tokens: required"), BadRequestError),
        (
            404,
            openai_error("The model `x` does not exist", "invalid_request_error"),
            BadRequestError,
        ),
        (422, b'{"detail": "unprocessable"}', BadRequestError),
        (
            401,
            openai_error("Incorrect API key", "invalid_request_error", "invalid_api_key"),
            AuthenticationError,
        ),
        (401, anthropic_error("authentication_error", "invalid x-api-key"), AuthenticationError),
        (403, anthropic_error("permission_error", "not allowed"), AuthenticationError),
        (302, b"moved", MalformedResponseError),
    ],
)
def test_an_error_answer_is_classified_per_the_failure_table(
    status: int, body: bytes, expected: type[ProviderError]
) -> None:
    error = classify_response(status, body, {}, provider="p", model="m")
    assert type(error) is expected
    assert error.status == status
    assert (error.provider, error.model) == ("p", "m")
    assert error.content_delivered is False


def test_the_providers_reason_is_the_message() -> None:
    error = classify_response(400, openai_error("bad 'temperature'", "invalid_request_error"), {})
    assert "bad 'temperature'" in str(error)
    assert "HTTP 400" in str(error)


def test_a_huge_html_error_page_is_cut_short() -> None:
    error = classify_response(502, b"<html>" + b"x" * 100_000 + b"</html>", {})
    assert len(error.message) < 700


def test_an_in_stream_error_event_is_classified_by_its_type() -> None:
    overloaded = classify_error_body(
        anthropic_error("overloaded_error", "Overloaded"), content_delivered=True
    )
    assert isinstance(overloaded, UpstreamServerError)
    assert overloaded.content_delivered is True
    assert overloaded.status is None
    server = classify_error_body({"error": {"message": "boom", "type": "server_error"}})
    assert isinstance(server, UpstreamServerError)
    rate = classify_error_body(anthropic_error("rate_limit_error", "slow down"))
    assert isinstance(rate, RateLimitedError)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"}, 30.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:00:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-3"}, None),
        ({"retry-after-ms": "nan", "Retry-After": "2"}, 2.0),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds_as_a_date_or_in_milliseconds(
    headers: dict[str, str], expected: float | None
) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_a_429_carries_its_retry_after() -> None:
    error = classify_response(429, b"", {"Retry-After": "12"}, now=NOW)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 12.0


def test_a_503_carries_its_retry_after_too() -> None:
    error = classify_response(503, b"", {"retry-after-ms": "1500"})
    assert error.retry_after == 1.5


def test_redact_removes_the_given_secrets_and_anything_shaped_like_a_key() -> None:
    text = "key my-own-secret-value, Bearer abcdefghijklmnop, sk-proj-ABCDEFGH12345678 end"
    cleaned = redact(text, ["my-own-secret-value"])
    assert "my-own-secret-value" not in cleaned
    assert "abcdefghijklmnop" not in cleaned
    assert "ABCDEFGH12345678" not in cleaned
    assert cleaned.endswith("end")


def test_an_upstream_that_echoes_the_key_never_gets_it_into_the_error() -> None:
    key = "sk-live-0123456789abcdef"
    body = openai_error(f"Incorrect API key provided: {key}.", "invalid_request_error")
    error = classify_response(401, body, {}, secrets=[key])
    assert key not in str(error)
    assert key not in repr(error.args)


@pytest.mark.parametrize(
    ("exc", "phase", "expected", "error_class"),
    [
        (
            aiohttp.ConnectionTimeoutError("connect"),
            Phase.CONNECTING,
            UpstreamTimeoutError,
            ErrorClass.CONNECT_TIMEOUT,
        ),
        (
            aiohttp.SocketTimeoutError("read"),
            Phase.BODY,
            UpstreamTimeoutError,
            ErrorClass.IDLE_TIMEOUT,
        ),
        (
            aiohttp.SocketTimeoutError("read"),
            Phase.CONNECTING,
            UpstreamTimeoutError,
            ErrorClass.HEADERS_TIMEOUT,
        ),
        (TimeoutError(), Phase.BODY, UpstreamTimeoutError, ErrorClass.TOTAL_TIMEOUT),
        (
            aiohttp.ClientPayloadError("incomplete"),
            Phase.BODY,
            StreamCutError,
            ErrorClass.STREAM_CUT,
        ),
        (
            aiohttp.ServerDisconnectedError(),
            Phase.CONNECTING,
            UpstreamConnectionError,
            ErrorClass.CONNECTION_ERROR,
        ),
        (aiohttp.ServerDisconnectedError(), Phase.BODY, StreamCutError, ErrorClass.STREAM_CUT),
        (
            ConnectionResetError(104, "reset"),
            Phase.CONNECTING,
            UpstreamConnectionError,
            ErrorClass.CONNECTION_ERROR,
        ),
        (ConnectionResetError(104, "reset"), Phase.BODY, StreamCutError, ErrorClass.STREAM_CUT),
        (
            aiohttp.ClientResponseError(_REQUEST_INFO, (), status=400, message="bad HTTP"),
            Phase.CONNECTING,
            MalformedResponseError,
            ErrorClass.MALFORMED,
        ),
    ],
)
def test_foreign_exceptions_map_onto_our_tree_by_phase(
    exc: BaseException, phase: int, expected: type[ProviderError], error_class: ErrorClass
) -> None:
    state = AttemptState("p", "m")
    state.phase = phase
    state.content_delivered = phase == Phase.BODY
    error = translate_exception(exc, state)
    assert type(error) is expected
    assert error.error_class is error_class
    assert error.content_delivered is (phase == Phase.BODY)
    assert (error.provider, error.model) == ("p", "m")


def test_the_context_manager_raises_ours_from_the_cause() -> None:
    state = AttemptState("p", "m")
    cause = ConnectionRefusedError(111, "refused")
    with pytest.raises(UpstreamConnectionError) as caught, upstream_errors(state):
        raise cause
    assert caught.value.__cause__ is cause


def test_the_context_manager_lets_our_errors_and_cancellation_through() -> None:
    state = AttemptState("p", "m")
    ours = StreamCutError("cut")
    with pytest.raises(StreamCutError) as caught, upstream_errors(state):
        raise ours
    assert caught.value is ours
    with pytest.raises(asyncio.CancelledError), upstream_errors(state):
        raise asyncio.CancelledError


def test_translated_messages_are_redacted() -> None:
    state = AttemptState("p", "m", secrets=("hunter2-hunter2",))
    error = translate_exception(OSError("failed for key hunter2-hunter2"), state)
    assert "hunter2" not in str(error)


def test_a_gateway_of_local_providers_never_imports_aiohttp() -> None:
    # Its import loads the CA bundle: a tenth of `runestone serve`'s start-up.
    script = (
        "import sys, runestone, runestone.cli, runestone.server\n"
        "system = runestone.start({'providers': {'s': {'type': 'simulated', "
        "'token_rate': 0, 'first_token_delay': 0, 'models': {'m': {}}}}})\n"
        "try:\n"
        "    hi = [{'role': 'user', 'content': 'hi'}]\n"
        "    answer = system.complete({'model': 's/m', 'messages': hi})\n"
        "    assert answer.text\n"
        "finally:\n"
        "    system.stop()\n"
        "print('aiohttp' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "False"
