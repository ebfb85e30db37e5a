"""The OpenAI wire format: what goes out, and chunks decoded into events."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
from aiohttp import web

from runestone.exceptions import ConfigError, ErrorClass
from runestone.io import DataPlane
from runestone.messages import (
    ChatRequest,
    FinishReason,
    NativeBody,
    Passthrough,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    WireFormat,
)
from runestone.providers import OpenAIProvider, ProviderSettings
from runestone.providers.errors import AttemptState
from runestone.providers.openai import OpenAIStreamDecoder, map_openai_finish_reason
from runestone.providers.sse import SSEEvent, SSEParser
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.providers.helpers import (
    API_KEY,
    MiniServer,
    collect,
    collect_async,
    make_provider,
    request,
)

FULL_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "cloudy"},
    ],
    "tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ],
    "tool_choice": "auto",
    "temperature": 0.2,
    "top_p": 0.9,
    "max_tokens": 77,
    "stop": ["\n\n"],
    "response_format": {"type": "json_object"},
    "user": "user-42",
    "metadata": {"team": "a"},
    "seed": 7,
    "presence_penalty": 0.5,
}


def test_a_stream_request_goes_out_in_openais_shape(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    chat = ChatRequest.from_dict(FULL_REQUEST)
    collect(plane, provider, chat)
    [attempt] = fake_upstream.attempts
    body = attempt.body
    assert attempt.api == "openai"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == FULL_REQUEST["messages"]
    assert body["tools"] == FULL_REQUEST["tools"]
    assert body["max_completion_tokens"] == 77
    assert "max_tokens" not in body
    for key in ("tool_choice", "temperature", "top_p", "stop", "response_format", "user"):
        assert body[key] == FULL_REQUEST[key], key
    assert (body["seed"], body["presence_penalty"]) == (7, 0.5)
    assert "metadata" not in body  # OpenAI takes metadata only with store: true
    assert attempt.headers["authorization"] != f"Bearer {API_KEY}"  # the fake redacts it
    assert "authorization" in attempt.headers
    assert attempt.headers["content-type"] == "application/json"


def test_metadata_goes_out_when_the_completion_is_stored(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    collect(plane, provider, request("healthy", metadata={"team": "a"}, store=True))
    assert fake_upstream.attempts[0].body["metadata"] == {"team": "a"}


def test_a_whole_request_has_no_stream_options(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    plane.run(provider.complete(request("healthy")))
    body = fake_upstream.attempts[0].body
    assert body["stream"] is False
    assert "stream_options" not in body


def test_organization_and_project_go_out_as_headers(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(
        plane, fake_upstream, "openai", options={"organization": "org-1", "project": "proj-2"}
    )
    collect(plane, provider, request("healthy"))
    headers = fake_upstream.attempts[0].headers
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-1", "proj-2")


def test_an_openai_provider_needs_an_api_key_and_known_options() -> None:
    with pytest.raises(ConfigError) as missing:
        OpenAIProvider(ProviderSettings.from_dict("o", {"type": "openai"}))
    assert missing.value.path == "providers.o.api_key"
    with pytest.raises(ConfigError) as unknown:
        OpenAIProvider(ProviderSettings.from_dict("o", {"type": "openai", "api_key": "k", "x": 1}))
    assert unknown.value.path == "providers.o.x"
    with pytest.raises(ConfigError) as field:
        OpenAIProvider(
            ProviderSettings.from_dict(
                "o", {"type": "openai", "api_key": "k", "max_tokens_field": "tokens"}
            )
        )
    assert field.value.path == "providers.o.max_tokens_field"


# --------------------------------------------------------------------------- decoding


def decode(lines: list[str]) -> tuple[list[StreamEvent], OpenAIStreamDecoder]:
    decoder = OpenAIStreamDecoder(request("m"), AttemptState("p", "m"))
    parser = SSEParser()
    out: list[StreamEvent] = []
    for event in parser.feed("".join(f"data: {line}\n\n" for line in lines).encode()):
        decoder.decode(event, out)
    return out, decoder


def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> str:
    return json.dumps(
        {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
    )


def test_chunks_become_text_and_tool_call_deltas_and_the_finish_reason() -> None:
    events, decoder = decode(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
            json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
            "[DONE]",
        ]
    )
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(0, "c1", "f", ""),
        ToolCallDelta(0, None, None, "{}"),
    ]
    assert decoder.finish_reason == FinishReason.TOOL_CALLS
    assert decoder.usage == Usage(3, 4)
    assert decoder.finished
    assert decoder.malformed == 0


def test_a_refusal_is_text_and_a_content_filter_is_its_finish_reason() -> None:
    events, decoder = decode([chunk({"refusal": "I can't."}), chunk({}, "content_filter")])
    assert events == [TextDelta("I can't.")]
    assert decoder.finish_reason == FinishReason.CONTENT_FILTER


def test_a_chunk_of_the_wrong_shape_is_skipped_as_malformed() -> None:
    events, decoder = decode(['{"choices": 5}', "[1, 2]", chunk({"content": "ok"})])
    assert events == [TextDelta("ok")]
    assert decoder.malformed == 2


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("function_call", "tool_calls"),
        ("eos", "stop"),
        ("something_new", "something_new"),
    ],
)
def test_finish_reasons_map_onto_ours(reason: str, expected: str) -> None:
    assert map_openai_finish_reason(reason) == expected


def test_an_error_chunk_becomes_the_failure() -> None:
    _, decoder = decode([json.dumps({"error": {"message": "boom", "type": "server_error"}})])
    assert decoder.failure is not None
    assert decoder.failure.error_class is ErrorClass.SERVER_ERROR


# --------------------------------------------------------------------------- odd servers


def test_a_json_answer_to_a_stream_request_is_streamed_as_events(plane: DataPlane) -> None:
    async def whole(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": KNOWN_TEXT},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 9},
            }
        )

    server = MiniServer(plane, whole).start()
    provider = make_provider(plane, None, "openai", base_url=server.url)
    outcome = collect(plane, provider, request("m"))
    assert outcome.error is None
    assert outcome.text == KNOWN_TEXT
    assert outcome.usage == Usage(5, 9)
    assert outcome.done is not None


def test_an_event_stream_that_ends_with_done_but_no_finish_reason_is_done(plane: DataPlane) -> None:
    async def sse(request: web.Request) -> web.StreamResponse:
        body = f"data: {chunk({'content': 'hi'})}\n\ndata: [DONE]\n\n"
        return web.Response(body=body.encode(), content_type="text/event-stream")

    server = MiniServer(plane, sse).start()
    provider = make_provider(plane, None, "openai", base_url=server.url)
    outcome = collect(plane, provider, request("m"))
    assert outcome.text == "hi"
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.STOP


def test_only_malformed_chunks_then_the_end_is_a_malformed_error(plane: DataPlane) -> None:
    async def sse(request: web.Request) -> web.StreamResponse:
        body = f"data: {chunk({'content': 'hi'})}\n\ndata: {{oops\n\n"
        return web.Response(body=body.encode(), content_type="text/event-stream")

    server = MiniServer(plane, sse).start()
    provider = make_provider(plane, None, "openai", base_url=server.url)
    outcome = collect(plane, provider, request("m"))
    assert outcome.error is not None
    assert outcome.error.error_class is ErrorClass.MALFORMED
    assert outcome.error.content_delivered is True


def test_an_error_page_that_echoes_the_key_never_shows_it(plane: DataPlane) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        return web.json_response(
            {"error": {"message": f"Incorrect API key provided: {key}", "type": "x"}}, status=401
        )

    server = MiniServer(plane, echo).start()
    provider = make_provider(plane, None, "openai", base_url=server.url)
    error = collect(plane, provider, request("m")).error
    assert error is not None
    assert error.error_class is ErrorClass.AUTHENTICATION
    for text in (str(error), repr(error), error.message, repr(provider), str(provider.settings)):
        assert API_KEY not in text


def test_health_is_a_get_of_the_models_route(plane: DataPlane, fake_upstream: FakeUpstream) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    health = plane.run(provider.check_health())
    assert health.healthy is True
    assert health.latency >= 0


def test_an_unhealthy_upstream_says_why(plane: DataPlane) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="down")

    server = MiniServer(plane, broken).start()
    provider = make_provider(plane, None, "openai", base_url=server.url)
    health = plane.run(provider.check_health())
    assert health.healthy is False
    assert health.error_class is ErrorClass.SERVER_ERROR
    assert server.requests[0]["path"] == "/models"


def test_done_comes_at_the_sentinel_and_the_connection_is_then_reused(plane: DataPlane) -> None:
    release = asyncio.Event()  # set on the data-plane loop once the client has its Done
    ports: list[int] = []

    async def sse(request: web.Request) -> web.StreamResponse:
        ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(
            f"data: {chunk({'content': 'hi'}, 'stop')}\n\ndata: [DONE]\n\n".encode()
        )
        await release.wait()  # the body's end comes only after the client is done
        await response.write_eof()
        return response

    server = MiniServer(plane, sse).start()
    provider = make_provider(plane, None, "openai", base_url=server.url)

    async def twice() -> list[str]:
        texts = []
        for _ in range(2):
            outcome = await collect_async(provider, request("m"))
            assert outcome.done is not None, outcome.error
            texts.append(outcome.text)
            release.set()  # a client waiting for the body's end would never get here
            while provider._drains:  # the background read of the body's end
                await asyncio.sleep(0.01)
            release.clear()
        return texts

    assert plane.run(twice(), timeout=10) == ["hi", "hi"]
    assert len(ports) == 2
    assert ports[0] == ports[1], "the second stream should reuse the first one's connection"


# --------------------------------------------------------------------------- pass-through


def _native_body(usage_chunk: bool = False, **fields: object) -> NativeBody:
    raw = {name: msgspec.Raw(json.dumps(value).encode()) for name, value in fields.items()}
    return NativeBody(WireFormat.OPENAI_CHAT, raw, usage_chunk=usage_chunk)


def _chunk(delta: dict[str, object] | None, **extra: object) -> SSEEvent:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}]
    return SSEEvent("message", json.dumps({"choices": choices, **extra}).encode())


_STREAM = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"reasoning_content": "hm"}),
    _chunk({"content": "Hi"}),
    _chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 1}),
    SSEEvent("message", b"[DONE]"),
]


@pytest.mark.parametrize("usage_chunk", [False, True])
def test_a_passed_through_stream_holds_the_role_chunk_and_keeps_the_usage_chunk_if_asked(
    usage_chunk: bool,
) -> None:
    request = ChatRequest.from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    native = _native_body(usage_chunk, model="m")
    decoder = OpenAIStreamDecoder(request, AttemptState("p", "m"), native)
    out: list[StreamEvent] = []
    for event in _STREAM:
        decoder.pass_on(event, out)
    wanted = [e.frame() for e in _STREAM if usage_chunk or e is not _STREAM[3]]
    assert b"".join(p.data for p in out if type(p) is Passthrough) == b"".join(wanted)
    first = out[0]
    assert type(first) is Passthrough
    assert first.data == _STREAM[0].frame() + _STREAM[1].frame()  # role chunk held for content
    assert first.opaque  # reasoning: no continuation can extend it
    assert [p.text for p in out if type(p) is Passthrough][1] == "Hi"
    assert decoder.usage == Usage(3, 1)
    assert decoder.finished


def test_a_pass_through_keeps_every_field_and_asks_for_the_usage_chunk(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    assert isinstance(provider, OpenAIProvider)
    native = _native_body(
        model="alias", seed=3, stream_options={"include_obfuscation": False}, max_tokens=9
    )
    body = json.loads(provider.encode_native(native, "gpt-x", stream=True))
    assert body == {
        "model": "gpt-x",
        "seed": 3,
        "stream_options": {"include_obfuscation": False, "include_usage": True},
        "stream": True,
        # OpenAI takes max_completion_tokens (the type's max_tokens_field).
        "max_completion_tokens": 9,
    }
    body = json.loads(provider.encode_native(native, "gpt-x", stream=False))
    assert body["stream_options"] == {"include_obfuscation": False}  # as the client sent it
