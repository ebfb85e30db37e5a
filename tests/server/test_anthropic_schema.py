"""Anthropic's Messages API: the mapping onto the request model, and the official
``anthropic`` SDK against the real server (see conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from runestone.exceptions import RequestValidationError
from runestone.messages import Passthrough, ReasoningDelta, Role, ToolCallDelta, Usage
from runestone.server.anthropic_schema import MessageStream, parse_messages
from runestone.server.errors import ApiError
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.server.conftest import OPEN_KEY
from tests.server.serving import RunningServer

USER = [{"role": "user", "content": "Tell me the known text."}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}


@pytest.fixture
def client(server: RunningServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key=OPEN_KEY, max_retries=0) as sdk:
        yield sdk


# --------------------------------------------------------------------------- mapping


def test_a_messages_body_maps_onto_the_request_model() -> None:
    request = parse_messages(
        {
            "model": "fast",
            "max_tokens": 50,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me look."},
                        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"l": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "Sunny"},
                        {"type": "text", "text": "Thanks."},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AAA="},
                        },
                    ],
                },
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "any"},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_k": 5,
            "metadata": {"user_id": "u-1"},
        }
    )
    assert [m.role for m in request.messages] == [
        Role.SYSTEM,
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.USER,
    ]
    assert request.messages[0].content == "Be brief."
    assistant = request.messages[2]
    assert assistant.content == "Let me look."
    assert assistant.tool_calls[0].id == "t1"
    assert json.loads(assistant.tool_calls[0].arguments) == {"l": 1}
    assert request.messages[3].tool_call_id == "t1"
    assert request.messages[3].content == "Sunny"
    assert request.messages[4].has_images
    assert request.max_tokens == 50
    assert request.stop == ("END",)
    assert request.tools[0].name == "get_weather"
    assert request.tool_choice is not None
    assert request.tool_choice.mode.value == "required"
    assert request.extra == {}  # top_k has no counterpart: only a native body carries it
    assert request.user == "u-1"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"messages": USER, "max_tokens": 5}, "model", "required"),
        ({"model": "m", "messages": USER}, "max_tokens", "required"),
        ({"model": "m", "max_tokens": 5}, "messages", "non-empty list"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages.0.role",
            "'user' or 'assistant'",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_use"}]}],
            },
            "messages.0.content.0.type",
            "unsupported block type",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": USER, "temperature": 1.5},
            "temperature",
            "between 0 and 1",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": USER, "thinking": {}},
            "thinking.type",
            "required",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": USER, "tools": [{"name": "x"}]},
            "tools.0.input_schema",
            "JSON Schema",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": USER, "tool_choice": {"type": "some"}},
            "tool_choice.type",
            "expected 'auto'",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ],
            },
            "messages.0.content.0.source.type",
            "'base64' or 'url'",
        ),
    ],
)
def test_a_bad_messages_body_names_the_field_as_anthropic_does(
    body: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_messages(body)
    assert caught.value.field == field
    assert words in str(caught.value)


def _stream_events(frames: bytes) -> list[tuple[str, dict[str, Any]]]:
    return [
        (chunk.split("\n")[0].removeprefix("event: "), json.loads(chunk.split("\n")[1][6:]))
        for chunk in frames.decode().strip().split("\n\n")
    ]


def test_reasoning_is_a_thinking_block_before_the_text_and_cache_reads_are_apart() -> None:
    stream = MessageStream("m", message_id="msg_1")
    frames = (
        stream.opening()
        + stream.reasoning(ReasoningDelta("Hmm, "))
        + stream.reasoning(ReasoningDelta("yes."))
        + stream.reasoning(ReasoningDelta("", "c2ln"))
        + stream.text("Yes")
        + stream.closing("stop", Usage(10, 4, cached_tokens=6))
    )
    events = _stream_events(frames)
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert deltas == [
        {"type": "thinking_delta", "thinking": "Hmm, "},
        {"type": "thinking_delta", "thinking": "yes."},
        {"type": "signature_delta", "signature": "c2ln"},
        {"type": "text_delta", "text": "Yes"},
    ]
    assert [data["index"] for name, data in events if name == "content_block_start"] == [0, 1]
    assert events[-2][1]["usage"] == {
        "input_tokens": 4,
        "cache_read_input_tokens": 6,
        "output_tokens": 4,
    }


def test_a_stream_taking_over_passed_frames_goes_on_in_the_open_text_block() -> None:
    stream = MessageStream("m", message_id="msg_1")
    stream.follow(Passthrough(b"", "Hel", blocks=2, open_text=True))
    events = _stream_events(stream.text("lo") + stream.closing("stop", Usage(1, 2)))
    assert [name for name, _ in events] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["index"] == events[1][1]["index"] == 1
    stream = MessageStream("m", message_id="msg_2")
    stream.follow(Passthrough(b"", blocks=2, open_text=False))
    assert _stream_events(stream.text("x"))[0][1]["index"] == 2  # a new block, numbered after


def test_a_stream_opens_and_closes_one_block_per_kind_of_content() -> None:
    stream = MessageStream("m", message_id="msg_1")
    frames = (
        stream.opening()
        + stream.text("Hi ")
        + stream.text("there")
        + stream.tool_call(ToolCallDelta(0, "t1", "get_weather", '{"lo'))
        + stream.tool_call(ToolCallDelta(0, None, None, 'c": 1}'))
        + stream.closing("tool_calls", Usage(3, 4))
    )
    events = [
        (chunk.split("\n")[0].removeprefix("event: "), json.loads(chunk.split("\n")[1][6:]))
        for chunk in frames.decode().strip().split("\n\n")
    ]
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "t1",
        "name": "get_weather",
        "input": {},
    }
    assert events[6][1] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"lo'},
    }
    assert events[9][1]["delta"]["stop_reason"] == "tool_use"
    assert events[9][1]["usage"] == {"input_tokens": 3, "output_tokens": 4}
    error = MessageStream.error(ApiError(502, "gone"))
    assert error.startswith(b"event: error\n")
    assert json.loads(error.split(b"data: ")[1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": "gone"},
    }


# --------------------------------------------------------------------------- the SDK


def test_a_message_through_the_sdk_is_the_known_text(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model="fast", max_tokens=200, messages=USER)
    message = raw.parse()
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "healthy"
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == KNOWN_TEXT  # type: ignore[union-attr]
    assert message.usage.output_tokens > 0
    assert raw.headers["x-runestone-provider"] == "main"
    assert raw.headers["x-request-id"]


def test_a_stream_through_the_sdk_is_the_known_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="fast", max_tokens=200, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == KNOWN_TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert final.usage.input_tokens > 0


def test_a_tool_use_round_trip_through_the_sdk(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    first = client.messages.create(
        model="tool-call",
        max_tokens=200,
        messages=USER,
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather"
    assert call.input == {"location": "Paris"}

    second = client.messages.create(
        model="tool-call",
        max_tokens=200,
        messages=[
            *USER,  # type: ignore[list-item]
            {"role": "assistant", "content": [call.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}],
            },
        ],
    )
    assert second.content[0].text == KNOWN_TEXT  # type: ignore[union-attr]
    sent = upstream.attempts[-1].body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny"}


def test_a_streamed_tool_use_through_the_sdk(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="tool-call",
        max_tokens=200,
        messages=USER,
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_message()
    (call,) = [block for block in final.content if block.type == "tool_use"]
    assert call.input == {"location": "Paris"}
    assert final.stop_reason == "tool_use"


def test_an_unknown_model_is_the_sdks_not_found_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-nonexistent", max_tokens=10, messages=USER)
    assert caught.value.status_code == 404
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"


def test_a_wrong_key_is_the_sdks_authentication_error(server: RunningServer) -> None:
    with (
        anthropic.Anthropic(base_url=server.url, api_key="sk-wrong", max_retries=0) as sdk,
        pytest.raises(anthropic.AuthenticationError),
    ):
        sdk.messages.create(model="fast", max_tokens=10, messages=USER)


def test_a_field_only_anthropic_carries_with_no_anthropic_upstream_is_a_400_naming_it(
    client: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="fast",
            max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "video"}]}],  # type: ignore[list-item]
        )
    # A block of a type the gateway does not model is kept for an Anthropic upstream;
    # with none to route to, the refusal names it.
    assert "cannot carry messages.0.content.0 " in caught.value.message


def test_every_upstream_failing_is_the_sdks_server_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model="main/unavailable", max_tokens=10, messages=USER)
    assert caught.value.status_code == 502


def test_a_cut_mid_stream_reaches_the_sdk_as_an_error(client: anthropic.Anthropic) -> None:
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model="cut-after:3", max_tokens=200, messages=USER) as stream,
    ):
        received.extend(stream.text_stream)
    assert "".join(received) == "Runestone keeps answering "
    assert "stream_cut" in caught.value.message
