"""Every fake-upstream behaviour through both the OpenAI and the Anthropic provider.

The shared HTTP machinery (session, read loop, watchdog, stream endings, error
translation) lives in ``runestone/providers/http.py``; these tests drive it over
real loopback sockets, once per wire format.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket

import pytest
from structlog.testing import capture_logs

from runestone.exceptions import ErrorClass, ProviderError
from runestone.io import DataPlane
from runestone.messages import ChatRequest, FinishReason, TextDelta
from runestone.providers import HttpProvider
from runestone.testing.clock import FakeClock
from runestone.testing.upstream import KNOWN_TEXT, KNOWN_TOKENS, KNOWN_TOOL_ARGUMENTS, FakeUpstream
from tests.providers.helpers import (
    API_KEY,
    WIRES,
    Outcome,
    collect,
    collect_async,
    make_provider,
    request,
)

pytestmark = pytest.mark.parametrize("wire", WIRES)

PROMPT = "Say the known text please"


def cancel_all(plane: DataPlane, futures: list[concurrent.futures.Future[Outcome]]) -> None:
    """Cancel attempts running on the data plane and wait until they have cleaned up."""
    for future in futures:
        future.cancel()  # schedules the task's cancellation on the loop, before settle() runs

    async def settle() -> None:
        me = asyncio.current_task()
        await asyncio.gather(
            *(t for t in asyncio.all_tasks() if t is not me), return_exceptions=True
        )

    plane.run(settle(), timeout=10)


def _error(outcome_error: ProviderError | None) -> ProviderError:
    assert outcome_error is not None, "the stream succeeded where it should have failed"
    return outcome_error


# --------------------------------------------------------------------------- healthy answers


def test_a_healthy_stream_is_the_known_text_then_usage_then_one_done(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request("healthy"))
    assert outcome.error is None
    assert outcome.texts == list(KNOWN_TOKENS)
    done = outcome.done
    assert done is not None
    assert done.finish_reason == FinishReason.STOP
    assert (done.provider, done.model) == (wire, "healthy")
    assert done.usage == outcome.usage
    assert outcome.usage is not None
    assert outcome.usage.prompt_tokens == len(PROMPT.split())
    assert outcome.usage.completion_tokens == len(KNOWN_TOKENS)
    [attempt] = fake_upstream.attempts
    assert attempt.stream is True
    assert attempt.outcome == "ok"


def test_a_whole_answer_is_the_known_text_with_usage(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    completion = plane.run(provider.complete(request("healthy")))
    assert completion.text == KNOWN_TEXT
    assert completion.finish_reason == FinishReason.STOP
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(KNOWN_TOKENS)
    assert (completion.provider, completion.model) == (wire, "healthy")
    assert fake_upstream.attempts[0].stream is False


def test_the_upstream_sees_the_api_key_in_its_own_header(wire: str, plane: DataPlane) -> None:
    with FakeUpstream(api_key=API_KEY) as upstream:
        provider = make_provider(plane, upstream, wire)
        assert collect(plane, provider, request("healthy")).error is None
        wrong = make_provider(plane, upstream, wire, api_key="sk-wrong-key-000000000000")
        error = _error(collect(plane, wrong, request("healthy")).error)
    assert error.error_class is ErrorClass.AUTHENTICATION
    assert "sk-wrong-key" not in str(error)


def test_a_slow_first_token_within_the_limit_is_fine(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire, timeouts={"first_token": 2.0, "idle": 0.3})
    outcome = collect(plane, provider, request("slow-first-token:0.4"))
    assert outcome.error is None
    assert outcome.text == KNOWN_TEXT


def test_a_paced_stream_longer_than_the_idle_limit_is_not_idle(wire: str, plane: DataPlane) -> None:
    # 41 tokens 10 ms apart: 0.4 s in all, twice the idle limit, but never 10 ms of silence.
    with FakeUpstream(token_interval=0.01) as upstream:
        provider = make_provider(plane, upstream, wire, timeouts={"first_token": 1, "idle": 0.2})
        outcome = collect(plane, provider, request("healthy"))
    assert outcome.error is None
    assert outcome.text == KNOWN_TEXT


def test_a_tool_call_streams_in_pieces_and_finishes_with_tool_calls(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    outcome = collect(plane, provider, request("tool-call", tools=tools))
    assert outcome.error is None
    deltas = outcome.tool_deltas
    assert len(deltas) > 2, "the arguments should arrive in several pieces"
    assert {d.index for d in deltas} == {0}
    assert deltas[0].id
    assert deltas[0].name == "get_weather"
    assert "".join(d.arguments for d in deltas) == KNOWN_TOOL_ARGUMENTS
    assert outcome.text == ""
    done = outcome.done
    assert done is not None
    assert done.finish_reason == FinishReason.TOOL_CALLS
    completion = plane.run(provider.complete(request("tool-call", tools=tools)))
    [call] = completion.tool_calls
    assert call.name == "get_weather"
    assert completion.finish_reason == FinishReason.TOOL_CALLS
    assert json.loads(call.arguments) == {"location": "Paris"}


def test_a_prefill_gets_only_the_rest_of_the_text(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    delivered = "".join(KNOWN_TOKENS[:5])  # ends with a space, as delivered text does
    chat = ChatRequest.from_dict(
        {
            "model": "prefill",
            "messages": [
                {"role": "user", "content": PROMPT},
                {"role": "assistant", "content": delivered},
            ],
        }
    )
    outcome = collect(plane, provider, chat)
    assert outcome.error is None
    assert delivered + outcome.text == KNOWN_TEXT
    assert fake_upstream.attempts[0].outcome == "prefill"
    completion = plane.run(provider.complete(chat))
    assert delivered + completion.text == KNOWN_TEXT


def test_a_provider_that_rejects_prefill_says_bad_request(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    chat = ChatRequest.from_dict(
        {
            "model": "reject-prefill",
            "messages": [
                {"role": "user", "content": PROMPT},
                {"role": "assistant", "content": "Runestone keeps"},
            ],
        }
    )
    error = _error(collect(plane, provider, chat).error)
    assert error.error_class is ErrorClass.BAD_REQUEST
    assert error.status == 400
    assert collect(plane, provider, request("reject-prefill")).text == KNOWN_TEXT


# --------------------------------------------------------------------------- error answers


@pytest.mark.parametrize(
    ("model", "error_class", "statuses"),
    [
        ("rate-limit", ErrorClass.RATE_LIMITED, {429}),
        ("unavailable", ErrorClass.SERVER_ERROR, {503}),
        ("overloaded", ErrorClass.SERVER_ERROR, {503, 529}),
        ("context-length", ErrorClass.CONTEXT_LENGTH, {400}),
        ("content-policy", ErrorClass.CONTENT_POLICY, {400}),
        ("unauthorized", ErrorClass.AUTHENTICATION, {401}),
    ],
)
def test_an_error_answer_has_its_class_streaming_and_whole(
    wire: str,
    plane: DataPlane,
    fake_upstream: FakeUpstream,
    model: str,
    error_class: ErrorClass,
    statuses: set[int],
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request(model))
    error = _error(outcome.error)
    assert outcome.events == ()
    assert error.error_class is error_class
    assert error.status in statuses
    assert error.content_delivered is False
    assert (error.provider, error.model) == (wire, model)
    assert error.retry_after is None
    with pytest.raises(ProviderError) as whole:
        plane.run(provider.complete(request(model)))
    assert whole.value.error_class is error_class


def test_a_429_once_carries_retry_after_and_then_answers(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    error = _error(collect(plane, provider, request("rate-limit-once:2.5")).error)
    assert error.error_class is ErrorClass.RATE_LIMITED
    assert error.retry_after == pytest.approx(2.5)
    assert collect(plane, provider, request("rate-limit-once:2.5")).text == KNOWN_TEXT


def test_a_500_once_is_a_server_error_and_then_it_answers(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    error = _error(collect(plane, provider, request("error-once")).error)
    assert (error.error_class, error.status) == (ErrorClass.SERVER_ERROR, 500)
    assert collect(plane, provider, request("error-once")).text == KNOWN_TEXT


def test_a_provider_down_for_a_while_fails_until_it_is_back(wire: str, plane: DataPlane) -> None:
    clock = FakeClock()
    with FakeUpstream(clock=clock) as upstream:
        provider = make_provider(plane, upstream, wire)
        error = _error(collect(plane, provider, request("down-for:30")).error)
        assert error.error_class is ErrorClass.SERVER_ERROR
        clock.advance(31)
        assert collect(plane, provider, request("down-for:30")).text == KNOWN_TEXT


# --------------------------------------------------------------------------- broken connections


def test_a_reset_before_any_byte_is_a_connection_error(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    error = _error(collect(plane, provider, request("reset")).error)
    assert error.error_class is ErrorClass.CONNECTION_ERROR
    assert error.content_delivered is False
    assert isinstance(error.__cause__, OSError)
    with pytest.raises(ProviderError) as whole:
        plane.run(provider.complete(request("reset")))
    assert whole.value.error_class is ErrorClass.CONNECTION_ERROR


def test_a_refused_connection_is_a_connection_error(wire: str, plane: DataPlane) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    provider = make_provider(
        plane,
        None,
        wire,
        base_url=f"http://127.0.0.1:{port}" + ("/v1" if wire == "openai" else ""),
    )
    error = _error(collect(plane, provider, request("healthy")).error)
    assert error.error_class is ErrorClass.CONNECTION_ERROR


def test_a_server_that_never_answers_is_a_headers_timeout(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    error = _error(collect(plane, provider, request("blackhole")).error)
    assert error.error_class is ErrorClass.HEADERS_TIMEOUT
    assert error.content_delivered is False
    assert isinstance(error.__cause__, asyncio.CancelledError)


def test_a_whole_answer_that_never_comes_is_a_total_timeout(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire, timeouts={"total": 0.3})
    with pytest.raises(ProviderError) as whole:
        plane.run(provider.complete(request("blackhole")))
    assert whole.value.error_class is ErrorClass.TOTAL_TIMEOUT


def test_a_whole_answer_whose_body_stalls_after_its_headers_is_an_idle_timeout(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    # Only the total limit bounds the wait for a whole answer's headers (the upstream writes
    # the answer first); once they are in, a body that stops coming is a stall.
    provider = make_provider(plane, fake_upstream, wire, timeouts={"idle": 0.3, "total": 5})
    with pytest.raises(ProviderError) as whole:
        plane.run(provider.complete(request("stall-after:2")))
    assert whole.value.error_class is ErrorClass.IDLE_TIMEOUT
    assert whole.value.content_delivered is False


def test_headers_without_a_first_token_in_time_is_a_first_token_timeout(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request("slow-first-token:5"))
    error = _error(outcome.error)
    assert error.error_class is ErrorClass.FIRST_TOKEN_TIMEOUT
    assert error.content_delivered is False
    assert outcome.events == ()


def test_a_connect_that_hangs_is_a_connect_timeout(wire: str, plane: DataPlane) -> None:
    # A listening socket whose accept backlog is full: the kernel drops further SYNs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                filler.connect_ex(("127.0.0.1", port))
            provider = make_provider(
                plane,
                None,
                wire,
                base_url=f"http://127.0.0.1:{port}",
                timeouts={"connect": 0.3, "first_token": 5, "total": 10},
            )
            error = _error(collect(plane, provider, request("healthy")).error)
        finally:
            for filler in fillers:
                filler.close()
    assert error.error_class is ErrorClass.CONNECT_TIMEOUT


# --------------------------------------------------------------------------- stream endings


def test_a_stream_cut_after_content_is_an_error_never_a_success(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request("cut-after:3"))
    error = _error(outcome.error)
    assert error.error_class is ErrorClass.STREAM_CUT
    assert error.content_delivered is True
    assert outcome.texts == list(KNOWN_TOKENS[:3])
    assert outcome.done is None
    with pytest.raises(ProviderError) as whole:
        plane.run(provider.complete(request("cut-after:3")))
    assert whole.value.error_class is ErrorClass.STREAM_CUT


def test_a_stream_cut_before_content_has_delivered_nothing(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request("cut-after:0"))
    error = _error(outcome.error)
    assert error.error_class is ErrorClass.STREAM_CUT
    assert error.content_delivered is False
    assert outcome.events == ()


def test_a_stream_that_stalls_after_content_is_an_idle_timeout(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request("stall-after:4"))
    error = _error(outcome.error)
    assert error.error_class is ErrorClass.IDLE_TIMEOUT
    assert error.content_delivered is True
    assert outcome.texts == list(KNOWN_TOKENS[:4])


def test_a_stream_that_stalls_before_content_is_a_first_token_timeout(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    error = _error(collect(plane, provider, request("stall-after:0")).error)
    assert error.error_class is ErrorClass.FIRST_TOKEN_TIMEOUT
    assert error.content_delivered is False


def test_a_stalled_stream_past_the_total_limit_is_a_total_timeout(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(
        plane, fake_upstream, wire, timeouts={"first_token": 5, "idle": 5, "total": 0.4}
    )
    error = _error(collect(plane, provider, request("stall-after:2")).error)
    assert error.error_class is ErrorClass.TOTAL_TIMEOUT
    assert error.content_delivered is True


def test_an_overload_error_event_mid_stream_is_a_cut_stream_that_keeps_its_reason(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request("error-event-after:3"))
    error = _error(outcome.error)
    # Continued on the next candidate like a dropped connection (ARCHITECTURE §3).
    assert error.error_class is ErrorClass.STREAM_CUT
    assert error.content_delivered is True
    assert "error event" in error.message
    assert ("overloaded" if wire == "anthropic" else "server_error") in error.message
    assert outcome.texts == list(KNOWN_TOKENS[:3])
    before = _error(collect(plane, provider, request("error-event-after:0")).error)
    assert before.error_class is ErrorClass.SERVER_ERROR  # nothing to continue: a failure
    assert before.content_delivered is False


def test_an_invalid_request_error_event_mid_stream_still_ends_with_the_providers_reason(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request("invalid-event-after:2"))
    error = _error(outcome.error)
    assert error.error_class is ErrorClass.BAD_REQUEST
    assert error.content_delivered is True
    assert "refused mid-answer" in error.message


def test_a_malformed_chunk_is_skipped_with_a_log_line_when_the_rest_completes(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    with capture_logs() as logs:
        outcome = collect(plane, provider, request("malformed-chunk"))
    assert outcome.error is None
    assert outcome.text == KNOWN_TEXT
    skipped = [entry for entry in logs if entry["event"] == "malformed_chunk_skipped"]
    assert len(skipped) == 1
    assert skipped[0]["log_level"] == "warning"
    assert API_KEY not in repr(logs)


def test_a_whole_answer_with_a_malformed_body_is_a_malformed_error(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    with pytest.raises(ProviderError) as whole:
        plane.run(provider.complete(request("malformed-chunk")))
    assert whole.value.error_class is ErrorClass.MALFORMED


def test_a_stream_without_its_sentinel_after_the_finish_reason_is_done_with_usage(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    outcome = collect(plane, provider, request("no-done"))
    assert outcome.error is None
    assert outcome.text == KNOWN_TEXT
    done = outcome.done
    assert done is not None
    assert done.finish_reason == FinishReason.STOP
    assert done.usage is not None
    assert done.usage.completion_tokens == len(KNOWN_TOKENS)


# --------------------------------------------------------------------------- lifecycle


def test_closing_a_stream_early_releases_the_upstream_and_the_next_one_works(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)

    async def first_event_then_close() -> object:
        stream = provider.stream(request("stall-after:2"))
        first = await anext(stream)
        await stream.aclose()
        return first

    assert plane.run(first_event_then_close(), timeout=5) == TextDelta(KNOWN_TOKENS[0])
    assert collect(plane, provider, request("healthy")).text == KNOWN_TEXT


def test_the_connection_pool_is_sized_from_config_not_capped_at_aiohttps_default(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    streams = 150  # aiohttp's default pool would hold the last 50 back
    provider = make_provider(
        plane,
        fake_upstream,
        wire,
        max_connections=streams,
        timeouts={"first_token": 30, "total": 30},
    )
    futures = [plane.submit(collect_async(provider, request("blackhole"))) for _ in range(streams)]
    try:
        assert len(fake_upstream.wait_for_attempts(streams, timeout=10)) == streams
    finally:
        cancel_all(plane, futures)
    assert isinstance(provider, HttpProvider)
    session = provider.session
    assert session is not None
    assert session.connector is not None
    assert session.connector.limit == streams


def test_a_smaller_pool_holds_requests_back(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(
        plane, fake_upstream, wire, max_connections=2, timeouts={"first_token": 30, "total": 30}
    )
    futures = [plane.submit(collect_async(provider, request("blackhole"))) for _ in range(3)]
    try:
        fake_upstream.wait_for_attempts(2, timeout=5)
        with pytest.raises(TimeoutError):
            fake_upstream.wait_for_attempts(3, timeout=0.3)
    finally:
        cancel_all(plane, futures)


def test_a_provider_used_outside_its_loop_says_so(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire)
    assert collect(plane, provider, request("healthy")).error is None

    async def elsewhere() -> None:
        async for _ in provider.stream(request("healthy")):
            pass

    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(elsewhere())


def test_a_slow_consumer_is_not_an_idle_upstream(
    wire: str, plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, wire, timeouts={"first_token": 1, "idle": 0.2})

    async def dawdle() -> str:
        text = []
        async for event in provider.stream(request("healthy")):
            if isinstance(event, TextDelta):
                text.append(event.text)
                if len(text) == 1:
                    await asyncio.sleep(0.4)  # twice the idle limit, spent by the consumer
        return "".join(text)

    assert plane.run(dawdle(), timeout=10) == KNOWN_TEXT


def test_the_total_limit_holds_even_while_the_consumer_dawdles(wire: str, plane: DataPlane) -> None:
    with FakeUpstream(token_interval=0.01) as upstream:
        # The first token must arrive well inside the limit even on a loaded machine;
        # the dawdling (0.1 s a token, 41 tokens) then takes the stream far past it.
        provider = make_provider(plane, upstream, wire, timeouts={"first_token": 1, "total": 0.5})

        async def dawdle() -> ProviderError:
            try:
                async for event in provider.stream(request("healthy")):
                    if isinstance(event, TextDelta):
                        await asyncio.sleep(0.1)
            except ProviderError as exc:
                return exc
            raise AssertionError("the stream outlived its total limit")

        error = plane.run(dawdle(), timeout=10)
    assert error.error_class is ErrorClass.TOTAL_TIMEOUT
    assert error.content_delivered is True
