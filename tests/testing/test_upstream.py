"""The fake upstream, driven by a raw aiohttp client and plain sockets, on the real wire."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

import runestone.testing
from runestone.testing import FakeClock
from runestone.testing._upstream_behaviour import Behaviour, BehaviourError, parse_model
from runestone.testing.upstream import (
    KNOWN_TEXT,
    KNOWN_TOKENS,
    KNOWN_TOOL_ARGUMENTS,
    Attempt,
    FakeUpstream,
    Outcome,
    main,
)

T = TypeVar("T")
APIS = ("openai", "anthropic")
PROMPT = "Please say the known text"  # five words: five prompt tokens
USER = [{"role": "user", "content": PROMPT}]
WEATHER_TOOL_OPENAI = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
]
WEATHER_TOOL_ANTHROPIC = [{"name": "get_weather", "input_schema": {"type": "object"}}]


# -- a tiny client ---------------------------------------------------------------------


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def main_() -> T:
        return await factory()

    return asyncio.run(main_())


def request_for(
    api: str,
    model: str,
    *,
    stream: bool,
    messages: list[dict[str, Any]] | None = None,
    tools: bool = False,
    key: str = "sk-test-key-123456",
    include_usage: bool = True,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    body: dict[str, Any] = {"model": model, "messages": messages or USER, "stream": stream}
    if api == "openai":
        if stream and include_usage:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = WEATHER_TOOL_OPENAI
        return "/v1/chat/completions", {"Authorization": f"Bearer {key}"}, body
    body["max_tokens"] = 256
    if tools:
        body["tools"] = WEATHER_TOOL_ANTHROPIC
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return "/v1/messages", headers, body


@dataclass
class Result:
    status: int
    headers: CIMultiDictProxy[str]
    raw: bytes
    error: Exception | None = None

    def json(self) -> Any:
        return json.loads(self.raw)


async def fetch(up: FakeUpstream, api: str, model: str, **kwargs: Any) -> Result:
    path, headers, body = request_for(api, model, **kwargs)
    async with (
        aiohttp.ClientSession() as session,
        session.post(up.base_url + path, json=body, headers=headers) as response,
    ):
        raw = bytearray()
        error: Exception | None = None
        try:
            async for data in response.content.iter_any():
                raw += data
        except aiohttp.ClientPayloadError as exc:
            error = exc
        return Result(response.status, response.headers, bytes(raw), error)


def call(up: FakeUpstream, api: str, model: str, **kwargs: Any) -> Result:
    return run(lambda: fetch(up, api, model, **kwargs))


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """Split an SSE body into (event name, data) pairs, refusing any other line."""
    events: list[tuple[str | None, str]] = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
            else:
                raise AssertionError(f"not an SSE line: {line!r}")
        events.append((name, "\n".join(data)))
    return events


def payloads(raw: bytes) -> list[Any]:
    """The JSON payloads of an SSE body (``[DONE]`` left out)."""
    return [json.loads(data) for _, data in sse_events(raw) if data != "[DONE]"]


def deltas(api: str, raw: bytes) -> list[str]:
    """The text deltas of a stream, in order."""
    texts: list[str] = []
    for payload in payloads(raw):
        if api == "openai":
            for choice in payload.get("choices", []):
                content = choice["delta"].get("content")
                if content:
                    texts.append(content)
        elif payload["type"] == "content_block_delta" and payload["delta"]["type"] == "text_delta":
            texts.append(payload["delta"]["text"])
    return texts


def whole_text(api: str, body: dict[str, Any]) -> str:
    if api == "openai":
        content: str = body["choices"][0]["message"]["content"]
        return content
    text: str = body["content"][0]["text"]
    return text


def error_of(api: str, result: Result) -> dict[str, Any]:
    body = result.json()
    if api == "anthropic":
        assert body["type"] == "error"
    error: dict[str, Any] = body["error"]
    return error


def raw_http(up: FakeUpstream, model: str, api: str = "openai") -> socket.socket:
    """Send one request over a plain socket and return the socket, unread."""
    path, headers, body = request_for(api, model, stream=True)
    data = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{up.port}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(data)}")
    sock = socket.create_connection(("127.0.0.1", up.port), timeout=5)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    return sock


def read_until(sock: socket.socket, marker: bytes, count: int = 1) -> bytes:
    received = b""
    while received.count(marker) < count:
        data = sock.recv(65536)
        assert data, f"connection closed after {received!r}"
        received += data
    return received


# -- the known text ----------------------------------------------------------------------


def test_the_known_tokens_are_the_known_text_word_by_word() -> None:
    assert "".join(KNOWN_TOKENS) == KNOWN_TEXT
    assert 35 <= len(KNOWN_TOKENS) <= 45
    assert [token.strip() for token in KNOWN_TOKENS] == KNOWN_TEXT.split()
    assert all(token.endswith(" ") for token in KNOWN_TOKENS[:-1])


def test_the_package_exports_the_upstream_names() -> None:
    for name in runestone.testing.__all__:
        assert getattr(runestone.testing, name) is not None
    assert runestone.testing.FakeUpstream is FakeUpstream
    assert runestone.testing.KNOWN_TEXT == KNOWN_TEXT
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = runestone.testing.Nope


# -- healthy -----------------------------------------------------------------------------


def test_a_healthy_openai_stream_is_exact_chat_completion_chunks(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "openai", "gpt-4o-mini", stream=True)

    assert result.status == 200
    assert result.error is None
    assert result.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert result.headers["x-request-id"].startswith("req_")
    events = sse_events(result.raw)
    assert all(name is None for name, _ in events)
    assert events[-1] == (None, "[DONE]")
    chunks = payloads(result.raw)
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert {chunk["model"] for chunk in chunks} == {"gpt-4o-mini"}
    first, *content, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"] for c in content] == [{"content": t} for t in KNOWN_TOKENS]
    assert all(c["choices"][0]["finish_reason"] is None for c in [first, *content])
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert all(c["usage"] is None for c in [first, *content, finish])
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": len(KNOWN_TOKENS),
        "total_tokens": 5 + len(KNOWN_TOKENS),
    }
    assert "".join(deltas("openai", result.raw)) == KNOWN_TEXT


def test_an_openai_stream_without_include_usage_has_no_usage_at_all(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "openai", "healthy", stream=True, include_usage=False)

    chunks = payloads(result.raw)
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert sse_events(result.raw)[-1] == (None, "[DONE]")


def test_a_healthy_anthropic_stream_is_the_exact_event_sequence(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "anthropic", "claude-3-5-haiku", stream=True)

    assert result.status == 200
    assert result.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert result.headers["request-id"].startswith("req_")
    events = sse_events(result.raw)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * len(KNOWN_TOKENS),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(d) for _, d in events]
    assert [d["type"] for d in data] == names
    message = data[0]["message"]
    assert message["id"].startswith("msg_")
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["model"] == "claude-3-5-haiku"
    assert message["content"] == []
    assert message["stop_reason"] is None
    assert message["usage"]["input_tokens"] == 5
    assert data[1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert data[3] == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": KNOWN_TOKENS[0]},
    }
    assert data[-3] == {"type": "content_block_stop", "index": 0}
    assert data[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": len(KNOWN_TOKENS)},
    }
    assert "".join(deltas("anthropic", result.raw)) == KNOWN_TEXT


def test_a_healthy_whole_openai_answer_is_a_chat_completion(fake_upstream: FakeUpstream) -> None:
    result = call(fake_upstream, "openai", "healthy", stream=False)

    assert result.status == 200
    assert result.headers["Content-Type"] == "application/json"
    body = result.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "healthy"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": KNOWN_TEXT, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": len(KNOWN_TOKENS),
        "total_tokens": 5 + len(KNOWN_TOKENS),
    }


def test_a_healthy_whole_anthropic_answer_is_a_message(fake_upstream: FakeUpstream) -> None:
    result = call(fake_upstream, "anthropic", "healthy", stream=False)

    assert result.status == 200
    body = result.json()
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["content"] == [{"type": "text", "text": KNOWN_TEXT}]
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert body["usage"] == {"input_tokens": 5, "output_tokens": len(KNOWN_TOKENS)}


@pytest.mark.parametrize("api", APIS)
def test_prompt_tokens_count_the_words_of_every_message_and_the_system_prompt(api: str) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": [{"type": "text", "text": "four five"}]},
        {"role": "user", "content": "six"},
    ]
    if api == "openai":
        messages.insert(0, {"role": "system", "content": "seven eight"})
    with FakeUpstream() as up:
        path, headers, body = request_for(api, "healthy", stream=False, messages=messages)
        if api == "anthropic":
            body["system"] = [{"type": "text", "text": "seven eight"}]

        async def post() -> dict[str, Any]:
            async with (
                aiohttp.ClientSession() as session,
                session.post(up.base_url + path, json=body, headers=headers) as response,
            ):
                result: dict[str, Any] = await response.json()
                return result

        usage = run(post)["usage"]
    assert usage.get("prompt_tokens", usage.get("input_tokens")) == 8


@pytest.mark.parametrize("model", ["gpt-4o-mini", "llama3:8b", "claude-3-5-sonnet-latest"])
def test_a_model_that_is_no_behaviour_is_answered_healthily(
    fake_upstream: FakeUpstream, model: str
) -> None:
    result = call(fake_upstream, "openai", model, stream=True)

    assert "".join(deltas("openai", result.raw)) == KNOWN_TEXT
    [attempt] = fake_upstream.attempts
    assert attempt.behaviour is Behaviour.HEALTHY
    assert attempt.model == model
    assert attempt.outcome == "ok"


def test_tokens_are_paced_by_the_token_interval() -> None:
    with FakeUpstream(token_interval=0.005) as up:
        started = time.monotonic()
        result = call(up, "openai", "healthy", stream=True)
        elapsed = time.monotonic() - started
    assert "".join(deltas("openai", result.raw)) == KNOWN_TEXT
    assert elapsed >= 0.005 * (len(KNOWN_TOKENS) - 1)


# -- rate limits and server errors -------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_rate_limit_once_answers_429_with_retry_after_then_healthy_until_reset(
    fake_upstream: FakeUpstream, api: str
) -> None:
    first = call(fake_upstream, api, "rate-limit-once:2", stream=True)
    second = call(fake_upstream, api, "rate-limit-once:2", stream=True)

    assert first.status == 429
    assert first.headers["Retry-After"] == "2"
    assert first.headers["retry-after-ms"] == "2000"
    error = error_of(api, first)
    if api == "openai":
        assert error["code"] == "rate_limit_exceeded"
    else:
        assert error["type"] == "rate_limit_error"
    assert second.status == 200
    assert "".join(deltas(api, second.raw)) == KNOWN_TEXT
    assert [a.outcome for a in fake_upstream.attempts] == ["rate_limited", "ok"]
    assert fake_upstream.attempts[0].arg == 2.0

    fake_upstream.reset()
    assert fake_upstream.attempts == []
    assert call(fake_upstream, api, "rate-limit-once:2", stream=False).status == 429


def test_rate_limit_once_defaults_to_one_second_and_keeps_fractions(
    fake_upstream: FakeUpstream,
) -> None:
    default = call(fake_upstream, "openai", "rate-limit-once", stream=False)
    fraction = call(fake_upstream, "anthropic", "rate-limit-once:0.05", stream=False)

    assert (default.headers["Retry-After"], default.headers["retry-after-ms"]) == ("1", "1000")
    assert (fraction.headers["Retry-After"], fraction.headers["retry-after-ms"]) == ("0.05", "50")


def test_once_is_counted_per_model_name(fake_upstream: FakeUpstream) -> None:
    statuses = [
        call(fake_upstream, "openai", model, stream=False).status
        for model in ["error-once", "rate-limit-once:1", "error-once", "rate-limit-once:2"]
    ]

    assert statuses == [500, 429, 200, 429]


@pytest.mark.parametrize("api", APIS)
def test_rate_limit_is_429_every_time_without_retry_after(
    fake_upstream: FakeUpstream, api: str
) -> None:
    results = [call(fake_upstream, api, "rate-limit", stream=s) for s in (True, False, True)]

    assert [r.status for r in results] == [429, 429, 429]
    assert all("Retry-After" not in r.headers for r in results)
    assert all("retry-after-ms" not in r.headers for r in results)


@pytest.mark.parametrize(
    ("api", "error_type"), [("openai", "server_error"), ("anthropic", "api_error")]
)
def test_error_once_answers_500_then_healthy(
    fake_upstream: FakeUpstream, api: str, error_type: str
) -> None:
    first = call(fake_upstream, api, "error-once", stream=True)
    second = call(fake_upstream, api, "error-once", stream=True)

    assert first.status == 500
    assert error_of(api, first)["type"] == error_type
    assert "".join(deltas(api, second.raw)) == KNOWN_TEXT
    assert [a.outcome for a in fake_upstream.attempts] == ["server_error", "ok"]


@pytest.mark.parametrize("api", APIS)
def test_unavailable_is_503_every_time(fake_upstream: FakeUpstream, api: str) -> None:
    results = [call(fake_upstream, api, "unavailable", stream=s) for s in (True, False)]

    assert [r.status for r in results] == [503, 503]
    assert {a.outcome for a in fake_upstream.attempts} == {"unavailable"}


def test_overloaded_is_anthropics_529_and_openais_503(fake_upstream: FakeUpstream) -> None:
    anthropic = call(fake_upstream, "anthropic", "overloaded", stream=True)
    openai = call(fake_upstream, "openai", "overloaded", stream=True)

    assert anthropic.status == 529
    assert anthropic.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert openai.status == 503
    assert error_of("openai", openai)["type"] == "server_error"


@pytest.mark.parametrize("api", APIS)
def test_down_for_is_503_until_the_clock_passes_the_window_and_again_after_reset(
    api: str,
) -> None:
    clock = FakeClock()
    with FakeUpstream(clock=clock) as up:
        assert call(up, api, "down-for:30", stream=False).status == 503
        clock.advance(29.9)
        assert call(up, api, "down-for:30", stream=True).status == 503
        clock.advance(0.2)
        healthy = call(up, api, "down-for:30", stream=True)
        assert "".join(deltas(api, healthy.raw)) == KNOWN_TEXT
        assert [a.outcome for a in up.attempts] == ["down", "down", "ok"]
        assert [a.time for a in up.attempts] == [1000.0, 1029.9, pytest.approx(1030.1)]

        up.reset()
        assert call(up, api, "down-for:30", stream=True).status == 503


# -- connection faults -------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_reset_sends_a_tcp_reset_before_any_response_byte(
    fake_upstream: FakeUpstream, api: str
) -> None:
    with raw_http(fake_upstream, "reset", api) as sock, pytest.raises(ConnectionResetError):
        sock.recv(65536)

    [attempt] = fake_upstream.attempts
    assert (attempt.api, attempt.outcome, attempt.behaviour) == (api, "reset", Behaviour.RESET)


def test_reset_reaches_an_aiohttp_client_as_a_connection_error(
    fake_upstream: FakeUpstream,
) -> None:
    with pytest.raises(aiohttp.ClientConnectionError):
        call(fake_upstream, "anthropic", "reset", stream=False)


@pytest.mark.parametrize("api", APIS)
def test_blackhole_reads_the_request_and_never_answers_until_stopped(api: str) -> None:
    up = FakeUpstream()
    up.start()
    try:
        with raw_http(up, "blackhole", api) as sock:
            [attempt] = up.wait_for_attempts(1)
            assert attempt.outcome == "blackhole"
            assert attempt.body["model"] == "blackhole"
            readable, _, _ = select.select([sock], [], [], 0.05)
            assert readable == []

            started = time.monotonic()
            up.stop()
            assert time.monotonic() - started < 1.0
            assert_closed(sock)
    finally:
        up.stop()


def assert_closed(sock: socket.socket) -> None:
    """Read past any bytes already sent until the peer closes (EOF or reset); 2 s at most."""
    sock.settimeout(2.0)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass


def test_an_aiohttp_client_waiting_on_a_blackhole_times_out_reading(
    fake_upstream: FakeUpstream,
) -> None:
    async def give_up() -> None:
        timeout = aiohttp.ClientTimeout(sock_read=0.05)
        path, headers, body = request_for("openai", "blackhole", stream=True)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(asyncio.TimeoutError):
                await session.post(fake_upstream.base_url + path, json=body, headers=headers)

    run(give_up)

    assert fake_upstream.wait_for_attempts(1)[0].outcome == "blackhole"


@pytest.mark.parametrize("api", APIS)
def test_slow_first_token_sends_headers_at_once_and_the_first_token_after_the_delay(
    fake_upstream: FakeUpstream, api: str
) -> None:
    async def timed() -> tuple[float, float, list[str]]:
        path, headers, body = request_for(api, "slow-first-token:0.15", stream=True)
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.post(
                fake_upstream.base_url + path, json=body, headers=headers
            ) as response:
                headers_at = time.monotonic() - started
                raw = b""
                while not deltas(api, raw):
                    raw += await response.content.readany()
                first_token_at = time.monotonic() - started
                raw += await response.read()
        return headers_at, first_token_at, deltas(api, raw)

    headers_at, first_token_at, texts = run(timed)

    assert headers_at < 0.15
    assert first_token_at >= 0.15
    assert "".join(texts) == KNOWN_TEXT


@pytest.mark.parametrize("api", APIS)
def test_slow_first_token_delays_a_whole_answer(fake_upstream: FakeUpstream, api: str) -> None:
    started = time.monotonic()
    result = call(fake_upstream, api, "slow-first-token:0.05", stream=False)

    assert time.monotonic() - started >= 0.05
    assert whole_text(api, result.json()) == KNOWN_TEXT
    assert fake_upstream.attempts[0].arg == 0.05


@pytest.mark.parametrize("api", APIS)
def test_cut_after_n_streams_n_tokens_then_closes_mid_body(
    fake_upstream: FakeUpstream, api: str
) -> None:
    result = call(fake_upstream, api, "cut-after:3", stream=True)

    assert result.status == 200
    assert isinstance(result.error, aiohttp.ClientPayloadError)
    assert deltas(api, result.raw) == list(KNOWN_TOKENS[:3])
    text = result.raw.decode()
    assert "[DONE]" not in text
    assert 'finish_reason":"stop' not in text
    assert "message_delta" not in text
    assert "message_stop" not in text
    assert fake_upstream.attempts[0].outcome == "cut"


def test_cut_after_more_tokens_than_the_answer_still_ends_without_a_finish(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "openai", "cut-after:1000", stream=True)

    assert isinstance(result.error, aiohttp.ClientPayloadError)
    assert "".join(deltas("openai", result.raw)) == KNOWN_TEXT
    assert all(c["choices"][0]["finish_reason"] is None for c in payloads(result.raw))


def test_cut_after_zero_sends_the_opening_and_no_token(fake_upstream: FakeUpstream) -> None:
    result = call(fake_upstream, "anthropic", "cut-after:0", stream=True)

    assert isinstance(result.error, aiohttp.ClientPayloadError)
    assert [name for name, _ in sse_events(result.raw)] == [
        "message_start",
        "content_block_start",
        "ping",
    ]


@pytest.mark.parametrize("api", APIS)
def test_cut_after_truncates_a_whole_answer(fake_upstream: FakeUpstream, api: str) -> None:
    result = call(fake_upstream, api, "cut-after:3", stream=False)

    assert result.status == 200
    assert isinstance(result.error, aiohttp.ClientPayloadError)
    assert int(result.headers["Content-Length"]) > len(result.raw) > 0
    with pytest.raises(json.JSONDecodeError):
        result.json()


@pytest.mark.parametrize("api", APIS)
def test_stall_after_n_streams_n_tokens_then_holds_the_connection(
    fake_upstream: FakeUpstream, api: str
) -> None:
    async def stalled() -> tuple[list[str], bool]:
        path, headers, body = request_for(api, "stall-after:2", stream=True)
        raw = b""
        async with (
            aiohttp.ClientSession() as session,
            session.post(fake_upstream.base_url + path, json=body, headers=headers) as response,
        ):
            while len(deltas(api, raw)) < 2:
                raw += await response.content.readany()
            try:
                await asyncio.wait_for(response.content.readany(), 0.05)
            except TimeoutError:
                return deltas(api, raw), True
            return deltas(api, raw), False

    texts, timed_out = run(stalled)

    assert texts == list(KNOWN_TOKENS[:2])
    assert timed_out
    assert fake_upstream.attempts[0].outcome == "stalled"


@pytest.mark.parametrize("api", APIS)
def test_stall_after_sends_a_whole_answers_headers_and_no_body(
    fake_upstream: FakeUpstream, api: str
) -> None:
    async def stalled() -> tuple[int, int, bool]:
        path, headers, body = request_for(api, "stall-after:2", stream=False)
        async with (
            aiohttp.ClientSession() as session,
            session.post(fake_upstream.base_url + path, json=body, headers=headers) as response,
        ):
            try:
                await asyncio.wait_for(response.content.readany(), 0.05)
            except TimeoutError:
                return response.status, int(response.headers["Content-Length"]), True
            return response.status, 0, False

    status, length, timed_out = run(stalled)

    assert (status, timed_out) == (200, True)
    assert length > 0


def test_stop_closes_stalled_blackholed_and_slow_streams_at_once() -> None:
    up = FakeUpstream(token_interval=10.0)
    up.start()
    with contextlib.ExitStack() as sockets:
        try:
            stalled = sockets.enter_context(raw_http(up, "stall-after:1"))
            blackholed = sockets.enter_context(raw_http(up, "blackhole", "anthropic"))
            slow = sockets.enter_context(raw_http(up, "healthy"))
            read_until(stalled, b"data: ", 2)  # the opening chunk and one token
            read_until(slow, b"data: ", 2)  # the opening chunk and one token of many
            up.wait_for_attempts(3)

            started = time.monotonic()
            up.stop()
            took = time.monotonic() - started

            assert took < 1.0
            for sock in (stalled, blackholed, slow):
                assert_closed(sock)
            assert THREAD_NAMES() == []
        finally:
            up.stop()


def test_stop_while_clients_are_connecting_leaks_no_socket() -> None:
    # On Python 3.11 an accept that completes after its server closed leaks the
    # accepted socket; the ResourceWarning it raises at collection fails the test.
    body = json.dumps({"model": "blackhole", "messages": USER}).encode()
    data = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    for _ in range(10):
        with FakeUpstream() as up, contextlib.ExitStack() as sockets:
            first = sockets.enter_context(socket.create_connection(("127.0.0.1", up.port)))
            first.sendall(data.encode() + body)
            up.wait_for_attempts(1)
            for _ in range(20):
                sock = sockets.enter_context(socket.create_connection(("127.0.0.1", up.port)))
                sock.sendall(data.encode() + body)
            up.stop()
        gc.collect()


def THREAD_NAMES() -> list[str]:  # noqa: N802 - reads as the constant it checks
    return [t.name for t in threading.enumerate() if t.name == "runestone-fake-upstream"]


# -- stream endings ----------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_malformed_chunk_is_one_unparseable_frame_in_an_otherwise_complete_stream(
    fake_upstream: FakeUpstream, api: str
) -> None:
    result = call(fake_upstream, api, "malformed-chunk", stream=True)

    assert result.error is None
    events = sse_events(result.raw)
    broken = []
    texts = []
    for index, (_, data) in enumerate(events):
        try:
            payload = json.loads(data) if data != "[DONE]" else None
        except json.JSONDecodeError:
            broken.append(index)
            continue
        if payload is not None:
            texts.extend(deltas(api, f"data: {data}\n\n".encode()))
    assert len(broken) == 1
    assert 3 < broken[0] < len(events) - 3
    assert "".join(texts) == KNOWN_TEXT
    assert events[-1] == ((None, "[DONE]") if api == "openai" else ("message_stop", events[-1][1]))
    assert fake_upstream.attempts[0].outcome == "malformed"


@pytest.mark.parametrize("api", APIS)
def test_malformed_chunk_makes_a_whole_answer_unparseable(
    fake_upstream: FakeUpstream, api: str
) -> None:
    result = call(fake_upstream, api, "malformed-chunk", stream=False)

    assert result.status == 200
    assert result.error is None
    with pytest.raises(json.JSONDecodeError):
        result.json()


def test_no_done_ends_an_openai_stream_after_finish_and_usage_without_done(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "openai", "no-done", stream=True)

    assert result.error is None
    chunks = payloads(result.raw)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == len(KNOWN_TOKENS)
    assert "[DONE]" not in result.raw.decode()
    assert "".join(deltas("openai", result.raw)) == KNOWN_TEXT
    assert fake_upstream.attempts[0].outcome == "no_done"


def test_no_done_ends_an_anthropic_stream_after_message_delta_without_message_stop(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "anthropic", "no-done", stream=True)

    assert result.error is None
    names = [name for name, _ in sse_events(result.raw)]
    assert names[-2:] == ["content_block_stop", "message_delta"]
    assert "message_stop" not in names
    assert payloads(result.raw)[-1]["delta"]["stop_reason"] == "end_turn"


def test_no_done_answers_a_whole_request_normally(fake_upstream: FakeUpstream) -> None:
    result = call(fake_upstream, "openai", "no-done", stream=False)

    assert whole_text("openai", result.json()) == KNOWN_TEXT
    assert fake_upstream.attempts[0].outcome == "ok"


def test_error_event_after_n_puts_an_openai_error_chunk_in_the_stream(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "openai", "error-event-after:2", stream=True)

    assert result.status == 200
    assert result.error is None
    chunks = payloads(result.raw)
    assert deltas("openai", result.raw) == list(KNOWN_TOKENS[:2])
    assert chunks[-1] == {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert "[DONE]" not in result.raw.decode()
    assert fake_upstream.attempts[0].outcome == "error_event"


def test_error_event_after_n_puts_an_anthropic_error_event_in_the_stream(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "anthropic", "error-event-after:2", stream=True)

    events = sse_events(result.raw)
    assert deltas("anthropic", result.raw) == list(KNOWN_TOKENS[:2])
    assert events[-1][0] == "error"
    assert json.loads(events[-1][1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert "message_stop" not in [name for name, _ in events]


def test_error_event_after_n_is_an_error_status_for_a_whole_answer(
    fake_upstream: FakeUpstream,
) -> None:
    openai = call(fake_upstream, "openai", "error-event-after:2", stream=False)
    anthropic = call(fake_upstream, "anthropic", "error-event-after:2", stream=False)

    assert (openai.status, anthropic.status) == (500, 529)
    assert [a.outcome for a in fake_upstream.attempts] == ["server_error", "overloaded"]


# -- 4xx ---------------------------------------------------------------------------------


def test_context_length_is_openais_400_context_length_exceeded(
    fake_upstream: FakeUpstream,
) -> None:
    result = call(fake_upstream, "openai", "context-length", stream=True)

    assert result.status == 400
    error = error_of("openai", result)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    assert error["code"] == "context_length_exceeded"
    assert "maximum context length" in error["message"]


def test_context_length_is_anthropics_prompt_is_too_long(fake_upstream: FakeUpstream) -> None:
    result = call(fake_upstream, "anthropic", "context-length", stream=False)

    assert result.status == 400
    error = error_of("anthropic", result)
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("prompt is too long: ")
    assert fake_upstream.attempts[0].outcome == "context_length"


@pytest.mark.parametrize("api", APIS)
def test_content_policy_is_a_400_naming_the_content_policy(
    fake_upstream: FakeUpstream, api: str
) -> None:
    result = call(fake_upstream, api, "content-policy", stream=True)

    assert result.status == 400
    error = error_of(api, result)
    assert "content" in error["message"]
    assert "policy" in error["message"]
    if api == "openai":
        assert error["code"] == "content_policy_violation"
    else:
        assert error["type"] == "invalid_request_error"
    assert fake_upstream.attempts[0].outcome == "content_policy"


@pytest.mark.parametrize(
    ("api", "error_type", "code"),
    [
        ("openai", "invalid_request_error", "invalid_api_key"),
        ("anthropic", "authentication_error", None),
    ],
)
def test_unauthorized_is_a_401(
    fake_upstream: FakeUpstream, api: str, error_type: str, code: str | None
) -> None:
    result = call(fake_upstream, api, "unauthorized", stream=True)

    assert result.status == 401
    error = error_of(api, result)
    assert error["type"] == error_type
    assert error.get("code") == code
    assert fake_upstream.attempts[0].outcome == "unauthorized"


# -- prefill -----------------------------------------------------------------------------


def _with_prefill(prefix: str) -> list[dict[str, Any]]:
    return [*USER, {"role": "assistant", "content": prefix}]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [True, False])
def test_prefill_answers_only_the_rest_of_the_known_text(
    fake_upstream: FakeUpstream, api: str, stream: bool
) -> None:
    delivered = "".join(KNOWN_TOKENS[:5])
    result = call(fake_upstream, api, "prefill", stream=stream, messages=_with_prefill(delivered))

    rest = "".join(deltas(api, result.raw)) if stream else whole_text(api, result.json())
    assert rest == KNOWN_TEXT[len(delivered) :]
    assert delivered + rest == KNOWN_TEXT
    assert fake_upstream.attempts[0].outcome == "prefill"


def test_prefill_continues_a_prefix_stripped_of_its_trailing_space(
    fake_upstream: FakeUpstream,
) -> None:
    delivered = "".join(KNOWN_TOKENS[:5]).rstrip()
    result = call(
        fake_upstream, "anthropic", "prefill", stream=True, messages=_with_prefill(delivered)
    )

    texts = deltas("anthropic", result.raw)
    assert delivered + "".join(texts) == KNOWN_TEXT
    assert texts[0] == " "
    usage = payloads(result.raw)[-2]["usage"]
    assert usage["output_tokens"] == len(texts)


def test_prefill_splits_a_token_where_the_prefix_ends(fake_upstream: FakeUpstream) -> None:
    delivered = KNOWN_TEXT[:12]
    result = call(
        fake_upstream, "openai", "prefill", stream=True, messages=_with_prefill(delivered)
    )

    texts = deltas("openai", result.raw)
    assert delivered + "".join(texts) == KNOWN_TEXT
    assert texts[1:] == list(KNOWN_TOKENS[2:])


def test_prefill_of_something_else_gets_the_whole_known_text(fake_upstream: FakeUpstream) -> None:
    result = call(
        fake_upstream, "openai", "prefill", stream=True, messages=_with_prefill("Something else ")
    )

    assert "".join(deltas("openai", result.raw)) == KNOWN_TEXT
    assert fake_upstream.attempts[0].outcome == "ok"


def test_prefill_without_an_assistant_message_is_healthy(fake_upstream: FakeUpstream) -> None:
    result = call(fake_upstream, "anthropic", "prefill", stream=False)

    assert whole_text("anthropic", result.json()) == KNOWN_TEXT


@pytest.mark.parametrize("api", APIS)
def test_reject_prefill_refuses_a_final_assistant_message_and_answers_otherwise(
    fake_upstream: FakeUpstream, api: str
) -> None:
    refused = call(
        fake_upstream, api, "reject-prefill", stream=True, messages=_with_prefill("Runestone ")
    )
    answered = call(fake_upstream, api, "reject-prefill", stream=True)

    assert refused.status == 400
    error = error_of(api, refused)
    assert error["type"] == "invalid_request_error"
    assert "prefill" in error["message"]
    assert "".join(deltas(api, answered.raw)) == KNOWN_TEXT
    assert [a.outcome for a in fake_upstream.attempts] == ["prefill_rejected", "ok"]


# -- tool calls --------------------------------------------------------------------------


def test_tool_call_streams_an_openai_tool_call_in_pieces(fake_upstream: FakeUpstream) -> None:
    result = call(fake_upstream, "openai", "tool-call", stream=True, tools=True)

    chunks = payloads(result.raw)
    opening = chunks[0]["choices"][0]["delta"]
    assert opening["role"] == "assistant"
    assert opening["content"] is None
    [call_] = opening["tool_calls"]
    assert call_["index"] == 0
    assert call_["id"].startswith("call_")
    assert call_["type"] == "function"
    assert call_["function"] == {"name": "get_weather", "arguments": ""}
    pieces = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-2]
    ]
    assert len(pieces) > 1
    assert "".join(pieces) == KNOWN_TOOL_ARGUMENTS
    assert json.loads(KNOWN_TOOL_ARGUMENTS) == {"location": "Paris"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == len(pieces)
    assert sse_events(result.raw)[-1] == (None, "[DONE]")
    assert fake_upstream.attempts[0].outcome == "tool_call"


def test_tool_call_streams_an_anthropic_tool_use_block(fake_upstream: FakeUpstream) -> None:
    result = call(fake_upstream, "anthropic", "tool-call", stream=True, tools=True)

    data = payloads(result.raw)
    block = data[1]["content_block"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert block["name"] == "get_weather"
    assert block["input"] == {}
    partials = [
        d["delta"]["partial_json"]
        for d in data
        if d["type"] == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert len(partials) > 1
    assert "".join(partials) == KNOWN_TOOL_ARGUMENTS
    assert data[-2]["delta"]["stop_reason"] == "tool_use"
    assert data[-1] == {"type": "message_stop"}


def test_tool_call_answers_whole_in_both_formats(fake_upstream: FakeUpstream) -> None:
    openai = call(fake_upstream, "openai", "tool-call", stream=False, tools=True).json()
    anthropic = call(fake_upstream, "anthropic", "tool-call", stream=False, tools=True).json()

    choice = openai["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [tool_call] = choice["message"]["tool_calls"]
    assert tool_call["function"] == {"name": "get_weather", "arguments": KNOWN_TOOL_ARGUMENTS}
    assert anthropic["stop_reason"] == "tool_use"
    [block] = anthropic["content"]
    assert (block["type"], block["name"], block["input"]) == (
        "tool_use",
        "get_weather",
        {"location": "Paris"},
    )


@pytest.mark.parametrize("api", APIS)
def test_tool_call_without_tools_is_healthy(fake_upstream: FakeUpstream, api: str) -> None:
    result = call(fake_upstream, api, "tool-call", stream=True)

    assert "".join(deltas(api, result.raw)) == KNOWN_TEXT
    assert fake_upstream.attempts[0].outcome == "ok"


# -- api key, bad requests, routes -------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_with_an_api_key_only_that_key_is_let_in(api: str) -> None:
    with FakeUpstream(api_key="sk-right-key-123456") as up:
        right = call(up, api, "healthy", stream=False, key="sk-right-key-123456")
        wrong = call(up, api, "healthy", stream=False, key="sk-wrong-key-123456")

        assert right.status == 200
        assert wrong.status == 401
        assert [a.outcome for a in up.attempts] == ["ok", "unauthorized"]
        secret_header = "authorization" if api == "openai" else "x-api-key"
        assert {a.headers[secret_header] for a in up.attempts} == {"[redacted]"}
        assert "key" not in repr(up)


def test_a_missing_or_non_bearer_openai_key_is_refused() -> None:
    with FakeUpstream(api_key="sk-right-key-123456") as up:

        async def post(headers: dict[str, str]) -> int:
            body = {"model": "healthy", "messages": USER}
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    up.openai_base_url + "/chat/completions", json=body, headers=headers
                ) as r,
            ):
                return r.status

        assert run(lambda: post({})) == 401
        assert run(lambda: post({"Authorization": "Basic sk-right-key-123456"})) == 401


@pytest.mark.parametrize(
    ("api", "change", "problem"),
    [
        ("openai", {"model": ""}, "'model' must be a non-empty string"),
        ("openai", {"model": None}, "'model' must be a non-empty string"),
        ("openai", {"messages": []}, "'messages' must be a non-empty list"),
        ("openai", {"messages": ["hi"]}, "'messages[0]' must be an object with a string 'role'"),
        ("openai", {"stream": "yes"}, "'stream' must be true or false"),
        ("openai", {"tools": "get_weather"}, "'tools' must be a list"),
        ("openai", {"tools": [{"type": "function"}]}, "'tools[0]' has no name"),
        ("anthropic", {"max_tokens": None}, "'max_tokens' is required"),
        ("anthropic", {"max_tokens": 0}, "'max_tokens' is required"),
        (
            "anthropic",
            {"messages": [{"role": "system", "content": "be brief"}, *USER]},
            "'messages[0].role' must be 'user' or 'assistant'",
        ),
        ("openai", {"model": "cut-after"}, "behaviour 'cut-after' needs a whole number of tokens"),
        (
            "openai",
            {"model": "cut-after:x"},
            "behaviour 'cut-after' takes a whole number of tokens",
        ),
        ("anthropic", {"model": "stall-after:-1"}, "takes a whole number of tokens after ':'"),
        ("openai", {"model": "down-for"}, "behaviour 'down-for' needs a number of seconds"),
        ("openai", {"model": "down-for:-1"}, "must be finite and not negative"),
        ("openai", {"model": "slow-first-token:soon"}, "takes a number of seconds after ':'"),
        ("anthropic", {"model": "rate-limit-once:inf"}, "must be finite and not negative"),
        ("openai", {"model": "error-once:3"}, "behaviour 'error-once' takes no argument"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_problem(
    fake_upstream: FakeUpstream, api: str, change: dict[str, Any], problem: str
) -> None:
    path, headers, body = request_for(api, "healthy", stream=True)
    body.update(change)

    async def post() -> Result:
        async with (
            aiohttp.ClientSession() as session,
            session.post(fake_upstream.base_url + path, json=body, headers=headers) as r,
        ):
            return Result(r.status, r.headers, await r.read())

    result = run(post)

    assert result.status == 400
    error = error_of(api, result)
    assert error["type"] == "invalid_request_error"
    assert problem in error["message"]
    [attempt] = fake_upstream.attempts
    assert attempt.outcome == "bad_request"
    assert attempt.behaviour is None


@pytest.mark.parametrize(
    ("api", "data", "headers", "problem"),
    [
        ("openai", b"{not json", {}, "request body is not JSON"),
        ("openai", b"[1, 2]", {}, "request body must be a JSON object, got list"),
        (
            "anthropic",
            json.dumps({"model": "healthy", "max_tokens": 9, "messages": USER}).encode(),
            {},
            "the 'anthropic-version' header is required",
        ),
    ],
)
def test_a_body_that_is_not_a_request_is_a_400_naming_the_problem(
    fake_upstream: FakeUpstream, api: str, data: bytes, headers: dict[str, str], problem: str
) -> None:
    path = "/v1/chat/completions" if api == "openai" else "/v1/messages"

    async def post() -> Result:
        async with (
            aiohttp.ClientSession() as session,
            session.post(fake_upstream.base_url + path, data=data, headers=headers) as r,
        ):
            return Result(r.status, r.headers, await r.read())

    result = run(post)

    assert result.status == 400
    assert problem in error_of(api, result)["message"]
    assert fake_upstream.attempts[0].body == (json.loads(data) if api == "anthropic" else {})


def test_an_unknown_route_is_a_404_naming_the_routes(fake_upstream: FakeUpstream) -> None:
    async def post() -> Result:
        async with (
            aiohttp.ClientSession() as session,
            session.post(fake_upstream.base_url + "/chat/completions", json={}) as r,
        ):
            return Result(r.status, r.headers, await r.read())

    result = run(post)

    assert result.status == 404
    message = error_of("openai", result)["message"]
    assert "POST /chat/completions" in message
    assert "/v1/chat/completions" in message
    assert "/v1/messages" in message
    assert fake_upstream.attempts == []


@pytest.mark.parametrize("api", APIS)
def test_models_lists_every_behaviour_in_the_apis_shape(
    fake_upstream: FakeUpstream, api: str
) -> None:
    _, headers, _ = request_for(api, "healthy", stream=False)

    async def get() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(fake_upstream.base_url + "/v1/models", headers=headers) as r,
        ):
            assert r.status == 200
            body: dict[str, Any] = await r.json()
            return body

    body = run(get)

    assert [m["id"] for m in body["data"]] == [b.value for b in Behaviour]
    if api == "openai":
        assert body["object"] == "list"
        assert {m["object"] for m in body["data"]} == {"model"}
    else:
        assert body["has_more"] is False
        assert {m["type"] for m in body["data"]} == {"model"}


def test_models_needs_the_key_when_one_is_set() -> None:
    with FakeUpstream(api_key="sk-right-key-123456") as up:

        async def get() -> int:
            async with (
                aiohttp.ClientSession() as session,
                session.get(up.openai_base_url + "/models") as r,
            ):
                return r.status

        assert run(get) == 401


# -- attempts ----------------------------------------------------------------------------


def test_an_attempt_records_what_the_server_saw() -> None:
    clock = FakeClock(start=50.0)
    with FakeUpstream(clock=clock) as up:
        call(up, "anthropic", "cut-after:4", stream=True, tools=True)
        [attempt] = up.attempts

    assert isinstance(attempt, Attempt)
    assert attempt.time == 50.0
    assert attempt.api == "anthropic"
    assert attempt.model == "cut-after:4"
    assert attempt.behaviour is Behaviour.CUT_AFTER
    assert attempt.arg == 4
    assert attempt.stream is True
    assert attempt.outcome is Outcome.CUT
    assert attempt.body["tools"] == WEATHER_TOOL_ANTHROPIC
    assert attempt.headers["anthropic-version"] == "2023-06-01"
    assert attempt.headers["x-api-key"] == "[redacted]"


def test_attempts_is_a_copy(fake_upstream: FakeUpstream) -> None:
    call(fake_upstream, "openai", "healthy", stream=False)
    fake_upstream.attempts.clear()

    assert len(fake_upstream.attempts) == 1


def test_wait_for_attempts_times_out_naming_what_it_saw(fake_upstream: FakeUpstream) -> None:
    call(fake_upstream, "openai", "rate-limit", stream=False)

    with pytest.raises(
        TimeoutError, match=r"for 2 attempt\(s\), saw 1: .*'rate-limit' -> rate_limited"
    ):
        fake_upstream.wait_for_attempts(2, timeout=0.01)


def test_wait_for_attempts_async_wakes_when_the_attempt_lands(
    fake_upstream: FakeUpstream,
) -> None:
    async def both() -> list[Attempt]:
        waiting = asyncio.ensure_future(fake_upstream.wait_for_attempts_async(1))
        await asyncio.sleep(0)
        assert not waiting.done()
        await fetch(fake_upstream, "openai", "healthy", stream=False)
        return await waiting

    assert [a.model for a in run(both)] == ["healthy"]

    async def too_many() -> None:
        await fake_upstream.wait_for_attempts_async(2, timeout=0.01)

    with pytest.raises(TimeoutError, match="saw 1"):
        run(too_many)


# -- lifecycle ---------------------------------------------------------------------------


def test_it_runs_in_a_thread_of_its_own_and_stop_joins_it() -> None:
    up = FakeUpstream()
    up.start()
    try:
        assert THREAD_NAMES() == ["runestone-fake-upstream"]
        assert up.base_url == f"http://127.0.0.1:{up.port}"
        assert up.openai_base_url == up.base_url + "/v1"
        assert up.anthropic_base_url == up.base_url
        with pytest.raises(RuntimeError, match="already running"):
            up.start()
    finally:
        up.stop()
    assert THREAD_NAMES() == []
    up.stop()  # a second stop does nothing


def test_addresses_before_start_are_an_error() -> None:
    with pytest.raises(RuntimeError, match="not running: call start"):
        _ = FakeUpstream().base_url


def test_it_listens_on_the_port_it_is_given_and_says_when_it_cannot() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FakeUpstream(port=port) as up:
        assert up.port == port
        with pytest.raises(RuntimeError, match=f"could not listen on 127.0.0.1:{port}"):
            FakeUpstream(port=port).start()
    assert THREAD_NAMES() == []


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"token_interval": -0.1}, "token_interval must be a finite number of seconds >= 0"),
        ({"first_token_delay": float("nan")}, "first_token_delay must be a finite number"),
        ({"port": 70000}, "port must be 0 .any free port. or 1-65535"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        FakeUpstream(**kwargs)


def test_it_can_run_on_the_callers_loop() -> None:
    async def serve() -> tuple[str, list[str]]:
        async with FakeUpstream() as up:
            result = await fetch(up, "anthropic", "healthy", stream=True)
            assert len(await up.wait_for_attempts_async(1)) == 1
            with pytest.raises(RuntimeError, match="would block"):
                up.wait_for_attempts(1)
            with pytest.raises(RuntimeError, match="stop it with await stop_async"):
                up.stop()
            return "".join(deltas("anthropic", result.raw)), THREAD_NAMES()

    text, threads = run(serve)

    assert text == KNOWN_TEXT
    assert threads == []


def test_stop_async_refuses_a_threaded_server() -> None:
    with FakeUpstream() as up, pytest.raises(RuntimeError, match="stop it with stop"):
        run(up.stop_async)


def test_the_fixture_yields_a_running_upstream(fake_upstream: FakeUpstream) -> None:
    assert THREAD_NAMES() == ["runestone-fake-upstream"]
    assert call(fake_upstream, "openai", "healthy", stream=False).status == 200


# -- behaviour names ---------------------------------------------------------------------

_behaviour_names = {b.value for b in Behaviour}


@given(st.text(min_size=1).filter(lambda m: m.partition(":")[0] not in _behaviour_names))
def test_any_model_that_names_no_behaviour_is_healthy(model: str) -> None:
    selection = parse_model(model)

    assert (selection.behaviour, selection.arg, selection.model) == (Behaviour.HEALTHY, None, model)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["cut-after", "stall-after"]))
def test_a_token_count_is_read_exactly(count: int, name: str) -> None:
    assert parse_model(f"{name}:{count}").arg == count


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_seconds_are_read_exactly(seconds: float) -> None:
    assert parse_model(f"down-for:{seconds!r}").arg == seconds


def test_a_behaviour_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="needs a number of seconds"):
        parse_model("slow-first-token")
    assert issubclass(BehaviourError, ValueError)


# -- command line ------------------------------------------------------------------------


def test_the_command_line_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runestone.testing.upstream",
            "--port",
            "0",
            "--token-interval",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.startswith("fake upstream listening on http://127.0.0.1:"), first_line
        base_url = first_line.split(" on ", 1)[1].strip()
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[0].strip() == f"OpenAI base URL:    {base_url}/v1"
        assert lines[1].strip() == f"Anthropic base URL: {base_url}"
        assert "cut-after" in lines[2]

        async def ask() -> str:
            body = {"model": "healthy", "messages": USER}
            async with (
                aiohttp.ClientSession() as session,
                session.post(base_url + "/v1/chat/completions", json=body) as r,
            ):
                return whole_text("openai", await r.json())

        assert run(ask) == KNOWN_TEXT

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "fake upstream stopped" in out
    assert err == ""


def test_the_command_line_refuses_a_negative_interval(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--token-interval", "-1"])

    assert exit_.value.code == 2
    assert "--token-interval: must be a finite number of seconds >= 0, got '-1'" in (
        capsys.readouterr().err
    )


def test_the_command_line_says_when_the_port_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeUpstream() as up:
        port = up.port
        assert main(["--port", str(port)]) == 1
    assert f"fake upstream: could not listen on 127.0.0.1:{port}: " in capsys.readouterr().err
