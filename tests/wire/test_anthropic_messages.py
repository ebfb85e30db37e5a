"""Anthropic's Messages request schema: mapped onto the request model, closed to fields
it does not serve, every bad input refused naming its field as Anthropic does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runestone.exceptions import RequestValidationError
from runestone.messages import ChatRequest, ImagePart, Role, TextPart, ToolChoiceMode
from runestone.wire.anthropic_messages import (
    convert_messages_body,
    decode_fields,
    decode_messages_body,
    native_fields,
)

USER = [{"role": "user", "content": "Hi"}]
TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "smart", "max_tokens": 64, "messages": USER, **fields}


def decoded(data: object) -> ChatRequest:
    return decode_messages_body(json.dumps(data).encode()).to_request()


def test_a_body_decoded_from_bytes_is_the_request_its_dict_converts_to() -> None:
    data = body(
        system="Be brief.",
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "oops",
                        "is_error": True,
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                ],
            },
        ],
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        top_k=3,
        service_tier="auto",
    )
    request = decoded(data)
    assert request == convert_messages_body(data).to_request()
    assert [m.role for m in request.messages] == [
        Role.SYSTEM,
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.USER,
    ]
    assert request.messages[2].content is None
    assert request.messages[2].tool_calls[0].arguments == "{}"
    assert request.messages[3].content == "[tool error] oops"
    assert request.messages[4].content == (ImagePart("https://x/y.png"),)
    assert request.tool_choice is not None
    assert (request.tool_choice.mode, request.tool_choice.name) == (
        ToolChoiceMode.FUNCTION,
        "get_weather",
    )
    assert request.extra == {}  # top_k has no counterpart: only a native body carries it


def test_a_dicts_tool_schemas_are_copied_into_the_request() -> None:
    data = body(tools=[json.loads(json.dumps(TOOL))])
    request = convert_messages_body(data).to_request()
    data["tools"][0]["input_schema"]["type"] = "changed"
    assert request.tools[0].parameters == {"type": "object"}


def test_system_text_blocks_join_and_an_empty_system_adds_no_message() -> None:
    blocks = [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}]
    request = decoded(body(system=[*blocks, {"type": "text", "text": "b"}]))
    assert request.messages[0].content == "a\n\nb"
    assert decoded(body(system="")).messages[0].role is Role.USER


def test_a_user_turn_of_text_blocks_is_a_list_of_text_parts() -> None:
    request = decoded(body(messages=[{"role": "user", "content": [{"type": "text", "text": "x"}]}]))
    assert request.messages[0].content == (TextPart("x"),)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (body(model=" "), "model", "expected the model (or alias) to answer with"),
        (body(max_tokens=0), "max_tokens", "must be at least 1, got 0"),
        (body(messages=[]), "messages", "expected a non-empty list of messages"),
        (body(metadata={"user_id": 5}), "metadata.user_id", "expected a string, got a number"),
        (body(top_k=0), "top_k", "must be at least 1, got 0"),
        (body(stop_sequences=["", "x"]), "stop_sequences.0", "expected a non-empty string"),
        (body(tool_choice="auto"), "tool_choice", "expected an object like {'type': 'auto'}"),
        (body(tool_choice={"type": "any"}), "tool_choice", "'any' needs tools"),
        (
            body(tools=[TOOL], tool_choice={"type": "tool", "name": "other"}),
            "tool_choice.name",
            "names tool 'other', which is not in tools",
        ),
        (body(tools=[TOOL, TOOL]), "tools.1.name", "duplicate tool name 'get_weather'"),
        (body(tools=[{**TOOL, "name": "a b"}]), "tools.0.name", "1-64 letters"),
        (body(system=[{"type": "image"}]), "system.0.type", "expected a text block"),
        (
            body(messages=[{"role": "assistant", "content": [{"type": "text", "text": ""}]}]),
            "messages.0.content",
            "an assistant message needs text or tool_use blocks",
        ),
        (
            body(messages=[{"role": "assistant", "content": [{"type": "image"}]}]),
            "messages.0.content.0.type",
            "unsupported block type 'image' in an assistant message",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "tool_use"}]}]),
            "messages.0.content.0.type",
            "unsupported block type 'tool_use' in a user message",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "text/x", "data": "A"},
                            }
                        ],
                    }
                ]
            ),
            "messages.0.content.0.source.media_type",
            "expected an image media type like 'image/png'",
        ),
        (
            body(
                messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": ""}]}]
            ),
            "messages.0.content.0.tool_use_id",
            "the id of the tool_use it answers",
        ),
        (
            body(
                messages=[
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}],
                    }
                ]
            ),
            "messages.0.content.0.input",
            "expected an object, got a list",
        ),
        (body(thinking={"budget_tokens": 2048}), "thinking.type", "required"),
        (body(thinking={"type": "enabled", "budget_tokens": 0}), "thinking.budget_tokens", "0"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field_as_anthropic_does(
    data: dict[str, Any], field: str, message: str
) -> None:
    for decode in (decoded, lambda d: convert_messages_body(d).to_request()):
        with pytest.raises(RequestValidationError) as caught:
            decode(data)
        assert caught.value.field == field
        assert message in str(caught.value)


def test_a_tool_input_nested_too_deep_is_refused_even_in_a_short_body() -> None:
    deep: Any = {}
    for _ in range(40):
        deep = {"k": deep}
    block = {"type": "tool_use", "id": "t", "name": "f", "input": deep}
    data = body(messages=[*USER, {"role": "assistant", "content": [block]}])
    with pytest.raises(RequestValidationError, match="nested more than") as caught:
        decoded(data)
    assert caught.value.field == "messages.1.content.0.input"


# --------------------------------------------------------------------------- native fields


def _native(data: dict[str, Any]) -> tuple[list[str], set[str]]:
    raw = json.dumps(data).encode()
    return native_fields(decode_messages_body(raw), decode_fields(raw))


def test_a_plain_body_has_nothing_only_anthropic_carries() -> None:
    assert _native(body(system="Be brief.", tools=[TOOL], metadata={"user_id": "u"})) == ([], set())


def test_what_only_anthropic_carries_is_named_as_anthropic_names_fields() -> None:
    cached = {"type": "ephemeral"}
    names, needs = _native(
        body(
            system=[{"type": "text", "text": "s", "cache_control": cached}],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "q"},
                        {"type": "document", "source": {}},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "image", "source": {}}],
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "redacted_thinking", "data": "x"},
                        {"type": "text", "text": "a", "citations": []},
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "web_search_tool_result", "tool_use_id": "s"}],
                },
            ],
            tools=[{**TOOL, "cache_control": cached}, {"type": "web_search_20250305", "name": "w"}],
            top_k=3,
            metadata={"user_id": "u", "trace": "t"},
            context_management={},
        )
    )
    assert names == [
        "top_k",
        "context_management",
        "metadata.trace",
        "system.0.cache_control",
        "messages.0.content.1",
        "messages.0.content.2.content.0",
        "messages.1.content.0",
        "messages.1.content.1.citations",
        "messages.2.content.0",
        "tools.0.cache_control",
        "tools.1",
    ]
    assert needs == {"prompt_caching", "thinking", "server_tools"}


def test_thinking_maps_onto_the_nearest_reasoning_effort() -> None:
    for budget, effort in [(1024, "low"), (4096, "medium"), (16384, "high")]:
        request = decoded(body(thinking={"type": "enabled", "budget_tokens": budget}))
        assert request.extra == {"reasoning_effort": effort}
    assert decoded(body(thinking={"type": "disabled"})).extra == {}
    assert _native(body(thinking={"type": "enabled", "budget_tokens": 1024})) == ([], {"thinking"})
