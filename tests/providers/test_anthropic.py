"""The Anthropic wire format: the OpenAI shape mapped out, and stream events decoded back."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from runestone.exceptions import BadRequestError, ConfigError, ErrorClass
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
from runestone.providers import AnthropicProvider, ProviderSettings
from runestone.providers.anthropic import AnthropicStreamDecoder, map_anthropic_stop_reason
from runestone.providers.errors import AttemptState
from runestone.providers.sse import SSEEvent, SSEParser
from runestone.testing.upstream import FakeUpstream
from tests.providers.helpers import collect, make_provider, request

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "now"}},
]


def sent_body(plane: DataPlane, upstream: FakeUpstream, data: dict[str, Any]) -> dict[str, Any]:
    provider = make_provider(plane, upstream, "anthropic")
    collect(plane, provider, ChatRequest.from_dict(data))
    body: dict[str, Any] = upstream.attempts[-1].body
    return body


def test_every_system_message_goes_to_system_in_order(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    body = sent_body(
        plane,
        fake_upstream,
        {
            "model": "healthy",
            "messages": [
                {"role": "system", "content": "First rule."},
                {"role": "user", "content": "Hi"},
                {"role": "developer", "content": [{"type": "text", "text": "Second rule."}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "system", "content": "Third rule."},
                {"role": "user", "content": "Go on"},
            ],
        },
    )
    assert body["system"] == [
        {"type": "text", "text": "First rule."},
        {"type": "text", "text": "Second rule."},
        {"type": "text", "text": "Third rule."},
    ]
    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Go on"},
    ]


def test_the_request_fields_are_mapped(plane: DataPlane, fake_upstream: FakeUpstream) -> None:
    body = sent_body(
        plane,
        fake_upstream,
        {
            "model": "healthy",
            "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 1.7,
            "top_p": 0.5,
            "max_tokens": 99,
            "stop": ["END"],
            "user": "u-1",
            "top_k": 5,
            "seed": 3,
        },
    )
    assert body["model"] == "healthy"
    assert body["stream"] is True
    assert body["max_tokens"] == 99
    assert body["temperature"] == 1.0  # clamped to Anthropic's range
    assert body["top_p"] == 0.5
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["top_k"] == 5
    assert "seed" not in body  # Anthropic does not take it
    assert "stream_options" not in body


def test_max_tokens_defaults_from_the_model_or_the_options(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(
        plane,
        fake_upstream,
        "anthropic",
        models={"big": {"max_output_tokens": 8192}},
        options={"max_tokens": 1000},
    )
    collect(plane, provider, request("big"))
    collect(plane, provider, request("healthy"))
    assert [a.body["max_tokens"] for a in fake_upstream.attempts] == [8192, 1000]


def test_the_key_and_version_go_in_anthropics_headers(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "anthropic", options={"anthropic_beta": "x-1"})
    collect(plane, provider, request("healthy"))
    headers = fake_upstream.attempts[0].headers
    assert "x-api-key" in headers
    assert "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "x-1"


def test_tools_and_tool_choice_are_mapped(plane: DataPlane, fake_upstream: FakeUpstream) -> None:
    cases = [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "now"}}, {"type": "tool", "name": "now"}),
    ]
    for choice, expected in cases:
        body = sent_body(
            plane,
            fake_upstream,
            {
                "model": "healthy",
                "messages": [{"role": "user", "content": "Hi"}],
                "tools": TOOLS,
                "tool_choice": choice,
            },
        )
        assert body["tool_choice"] == expected
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
        {"name": "now", "description": "", "input_schema": {"type": "object", "properties": {}}},
    ]
    body = sent_body(
        plane,
        fake_upstream,
        {
            "model": "healthy",
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": TOOLS,
            "parallel_tool_calls": False,
        },
    )
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_tool_calls_and_results_map_to_tool_use_and_tool_result_blocks(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    body = sent_body(
        plane,
        fake_upstream,
        {
            "model": "healthy",
            "tools": TOOLS,
            "messages": [
                {"role": "user", "content": "Weather in Oslo and the time?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location": "Oslo"}',
                            },
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "now", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "cloudy"},
                {"role": "tool", "tool_call_id": "c2", "content": "noon"},
                {"role": "user", "content": "Thanks"},
            ],
        },
    )
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Oslo and the time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "c1",
                    "name": "get_weather",
                    "input": {"location": "Oslo"},
                },
                {"type": "tool_use", "id": "c2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "cloudy"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "noon"},
            ],
        },
        {"role": "user", "content": "Thanks"},
    ]


def test_images_map_to_base64_and_url_sources(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    body = sent_body(
        plane,
        fake_upstream,
        {
            "model": "healthy",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                }
            ],
        },
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_a_prefill_is_sent_without_trailing_whitespace(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    body = sent_body(
        plane,
        fake_upstream,
        {
            "model": "healthy",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Runestone keeps "},
            ],
        },
    )
    assert body["messages"][-1] == {"role": "assistant", "content": "Runestone keeps"}


@pytest.mark.parametrize(
    ("part", "field"),
    [
        ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, "content[0]"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}, "content[0]"),
    ],
)
def test_content_anthropic_cannot_take_is_a_bad_request_naming_it(
    plane: DataPlane, fake_upstream: FakeUpstream, part: dict[str, Any], field: str
) -> None:
    provider = make_provider(plane, fake_upstream, "anthropic")
    chat = ChatRequest.from_dict(
        {"model": "healthy", "messages": [{"role": "user", "content": [part]}]}
    )
    outcome = collect(plane, provider, chat)
    assert isinstance(outcome.error, BadRequestError)
    assert f"messages[0].{field}" in str(outcome.error)
    assert fake_upstream.attempts == []


def test_tool_call_arguments_that_are_not_an_object_are_a_bad_request(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "anthropic")
    chat = ChatRequest.from_dict(
        {
            "model": "healthy",
            "messages": [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ],
        },
    )
    outcome = collect(plane, provider, chat)
    assert isinstance(outcome.error, BadRequestError)
    assert "messages[1].tool_calls[0].function.arguments" in str(outcome.error)


def test_an_anthropic_provider_checks_its_options() -> None:
    with pytest.raises(ConfigError) as bad:
        AnthropicProvider(
            ProviderSettings.from_dict("a", {"type": "anthropic", "api_key": "k", "max_tokens": 0})
        )
    assert bad.value.path == "providers.a.max_tokens"


def _encoded(extra: dict[str, Any]) -> dict[str, Any]:
    provider = AnthropicProvider(
        ProviderSettings.from_dict(
            "a", {"type": "anthropic", "api_key": "k", "models": {"m": {}}, "max_tokens": 2000}
        )
    )
    data = {"model": "m", "messages": [{"role": "user", "content": "Think."}], **extra}
    return provider.encode_request(ChatRequest.from_dict(data), stream=True)


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384)])
def test_reasoning_effort_becomes_a_thinking_budget_with_room_for_the_answer(
    effort: str, budget: int
) -> None:
    body = _encoded({"reasoning_effort": effort})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == 2000 + budget
    assert "reasoning_effort" not in body


def test_minimal_reasoning_effort_is_no_thinking() -> None:
    body = _encoded({"reasoning_effort": "minimal"})
    assert "thinking" not in body
    assert "reasoning_effort" not in body


def test_a_callers_max_tokens_bounds_the_thinking_budget() -> None:
    body = _encoded({"reasoning_effort": "high", "max_tokens": 5000})
    assert body["max_tokens"] == 5000
    assert body["thinking"]["budget_tokens"] == 4999


def test_an_anthropic_thinking_field_is_kept_over_reasoning_effort() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    body = _encoded({"reasoning_effort": "high", "thinking": thinking})
    assert body["thinking"] == thinking


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"reasoning_effort": "extreme"}, "reasoning_effort: expected one of minimal, low"),
        ({"reasoning_effort": "low", "max_tokens": 1000}, "reasoning_effort: thinking needs"),
        ({"reasoning_effort": "low", "temperature": 0.2}, "temperature: Anthropic takes none"),
    ],
)
def test_reasoning_effort_without_a_counterpart_is_refused_naming_the_field(
    extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequestError) as refused:
        _encoded(extra)
    assert refused.value.message.startswith(field)
    assert refused.value.error_class is ErrorClass.BAD_REQUEST


# --------------------------------------------------------------------------- decoding


def decode(
    events: list[dict[str, Any]], trim: str = ""
) -> tuple[list[StreamEvent], AnthropicStreamDecoder]:
    decoder = AnthropicStreamDecoder(request("m"), AttemptState("p", "m"), trim)
    wire = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    out: list[StreamEvent] = []
    for event in SSEParser().feed(wire.encode()):
        decoder.decode(event, out)
    return out, decoder


def message_start(input_tokens: int = 10, **usage: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [],
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
        },
    }


def text_delta(text: str, index: int = 0) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }


def message_delta(reason: str, output_tokens: int) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }


def test_a_stream_decodes_text_usage_and_stop_reason() -> None:
    events, decoder = decode(
        [
            message_start(10, cache_read_input_tokens=5),
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {"type": "ping"},
            text_delta("Hel"),
            text_delta("lo"),
            {"type": "content_block_stop", "index": 0},
            message_delta("max_tokens", 2),
            {"type": "message_stop"},
        ]
    )
    assert events == [TextDelta("Hel"), TextDelta("lo")]
    assert decoder.usage == Usage(prompt_tokens=15, completion_tokens=2, cached_tokens=5)
    assert decoder.finish_reason == FinishReason.LENGTH
    assert decoder.finished
    assert decoder.malformed == 0


def test_tool_use_blocks_become_tool_call_deltas_indexed_among_tool_calls() -> None:
    events, decoder = decode(
        [
            message_start(),
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            text_delta("Let me check."),
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": ": 1}"},
            },
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "t2", "name": "g", "input": {}},
            },
            message_delta("tool_use", 9),
            {"type": "message_stop"},
        ]
    )
    assert events == [
        TextDelta("Let me check."),
        ToolCallDelta(0, "t1", "f", ""),
        ToolCallDelta(0, None, None, '{"a"'),
        ToolCallDelta(0, None, None, ": 1}"),
        ToolCallDelta(1, "t2", "g", ""),
    ]
    assert decoder.finish_reason == FinishReason.TOOL_CALLS


def test_an_error_event_becomes_the_failure_with_its_class() -> None:
    _, decoder = decode(
        [
            message_start(),
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ]
    )
    assert decoder.failure is not None
    assert decoder.failure.error_class is ErrorClass.SERVER_ERROR


def test_unknown_event_types_are_ignored_not_malformed() -> None:
    events, decoder = decode([message_start(), {"type": "brand_new_event", "x": 1}])
    assert events == []
    assert decoder.malformed == 0


def test_the_whitespace_trimmed_from_a_prefill_is_dropped_from_the_continuation() -> None:
    events, _ = decode(
        [message_start(), text_delta(" "), text_delta(" next"), text_delta(" on")], trim="  "
    )
    assert events == [TextDelta("next"), TextDelta(" on")]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("new_reason", "new_reason"),
    ],
)
def test_stop_reasons_map_onto_finish_reasons(reason: str, expected: str) -> None:
    assert map_anthropic_stop_reason(reason) == expected


def test_health_is_a_get_of_the_models_route(plane: DataPlane, fake_upstream: FakeUpstream) -> None:
    provider = make_provider(plane, fake_upstream, "anthropic")
    assert plane.run(provider.check_health()).healthy is True


# --------------------------------------------------------------------------- pass-through


def _native(**fields: Any) -> NativeBody:
    raw = {name: msgspec.Raw(json.dumps(value).encode()) for name, value in fields.items()}
    return NativeBody(WireFormat.ANTHROPIC_MESSAGES, raw)


def _frames(*events: tuple[str, dict[str, Any]]) -> list[SSEEvent]:
    return [SSEEvent(name, json.dumps(data).encode()) for name, data in events]


_THINKING_STREAM = _frames(
    ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 4}}}),
    ("ping", {"type": "ping"}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hm"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Hi"},
        },
    ),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)


def test_a_passed_through_stream_holds_its_frames_until_the_first_block() -> None:
    request = ChatRequest.from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    decoder = AnthropicStreamDecoder(request, AttemptState("p", "m"), native=_native(model="m"))
    out: list[StreamEvent] = []
    for event in _THINKING_STREAM:
        decoder.pass_on(event, out)
    assert all(type(event) is Passthrough for event in out)
    passed = [event for event in out if type(event) is Passthrough]
    # message_start and ping wait for the first block, and go with it.
    assert passed[0].data == b"".join(e.frame() for e in _THINKING_STREAM[:3])
    assert b"".join(p.data for p in passed) == b"".join(e.frame() for e in _THINKING_STREAM)
    assert [p.opaque for p in passed[:3]] == [True, True, False]  # the thinking block
    assert [p.text for p in passed] == ["", "", "", "", "Hi", "", ""]
    assert (passed[4].blocks, passed[4].open_text) == (2, True)
    assert decoder.finished
    assert decoder.usage == Usage(4, 2)
    assert decoder.finish_reason == FinishReason.STOP


def test_an_error_event_is_not_passed_through_but_fails_the_attempt() -> None:
    request = ChatRequest.from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    decoder = AnthropicStreamDecoder(request, AttemptState("p", "m"), native=_native(model="m"))
    out: list[StreamEvent] = []
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    for event in [*_THINKING_STREAM[:3], *_frames(("error", error))]:
        decoder.pass_on(event, out)
    assert b"overloaded_error" not in b"".join(p.data for p in out if type(p) is Passthrough)
    assert decoder.failure is not None
    assert decoder.failure.error_class is ErrorClass.SERVER_ERROR


def test_the_clients_betas_follow_the_configured_ones_each_once(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "anthropic", anthropic_beta="a,b")
    assert isinstance(provider, AnthropicProvider)
    native = NativeBody(
        WireFormat.ANTHROPIC_MESSAGES,
        {},
        {"anthropic-beta": "b, c", "anthropic-version": "2099-01-01"},
    )
    assert provider.native_headers(native) == {
        "anthropic-beta": "a,b,c",
        "anthropic-version": "2099-01-01",
    }
    assert provider.native_headers(NativeBody(WireFormat.ANTHROPIC_MESSAGES, {})) is None
