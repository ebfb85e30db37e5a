"""OpenAI's Responses request schema: bytes and dicts decode alike, the translation onto a
chat request is exact, and every bad input is refused naming its field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runestone.exceptions import RequestValidationError
from runestone.messages import (
    MAX_NESTING,
    ChatRequest,
    ImagePart,
    Message,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)
from runestone.wire.openai_responses import FIELDS, convert_responses, decode_responses
from runestone.wire.schema import BodyError

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    "strict": True,
}
CALL = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "fast", "input": "Hi", **fields}


def decoded(data: object) -> ChatRequest:
    request = decode_responses(json.dumps(data).encode()).to_request()
    assert request == convert_responses(data).to_request()
    return request


def refused(data: object) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as from_bytes:
        decode_responses(json.dumps(data).encode()).to_request()
    with pytest.raises(RequestValidationError) as from_dict:
        convert_responses(data).to_request()
    assert str(from_bytes.value) == str(from_dict.value)
    return from_bytes.value


# --------------------------------------------------------------------------- translation


def test_a_string_input_is_one_user_message() -> None:
    request = decoded(body())
    assert request.model == "fast"
    assert request.messages == (Message(Role.USER, "Hi"),)
    assert not request.stream
    assert request.extra == {}


def test_instructions_come_first_as_a_system_message() -> None:
    request = decoded(body(instructions="Be brief."))
    assert request.messages == (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Hi"))


def test_message_items_keep_their_roles_and_parts() -> None:
    request = decoded(
        body(
            input=[
                {"role": "developer", "content": "Use metric units."},
                {
                    "type": "message",
                    "role": "system",
                    "content": [{"type": "input_text", "text": "S"}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {
                            "type": "input_image",
                            "image_url": "https://x.test/a.png",
                            "detail": "low",
                        },
                    ],
                },
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "A cat. ", "annotations": []},
                        {"type": "refusal", "refusal": "No more."},
                    ],
                },
            ]
        )
    )
    assert request.messages == (
        Message(Role.DEVELOPER, "Use metric units."),
        Message(Role.SYSTEM, "S"),
        Message(
            Role.USER,
            (TextPart("What is this?"), ImagePart("https://x.test/a.png", "low")),
        ),
        Message(Role.ASSISTANT, "A cat. No more."),
    )


def test_function_calls_join_the_assistant_message_before_them() -> None:
    second = {**CALL, "call_id": "call_2", "arguments": '{"location": "Oslo"}'}
    request = decoded(
        body(
            input=[
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "Let me look."},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
                CALL,
                second,
                {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "call_2",
                    "output": [{"type": "input_text", "text": "Rain"}],
                },
            ],
            tools=[WEATHER],
        )
    )
    assert request.messages[1:] == (
        Message(
            Role.ASSISTANT,
            "Let me look.",
            tool_calls=(
                ToolCall("call_1", "get_weather", "{}"),
                ToolCall("call_2", "get_weather", '{"location": "Oslo"}'),
            ),
        ),
        Message(Role.TOOL, "Sunny", tool_call_id="call_1"),
        Message(Role.TOOL, "Rain", tool_call_id="call_2"),
    )


def test_a_function_call_with_no_message_before_it_is_an_assistant_message_of_its_own() -> None:
    request = decoded(body(input=[{"role": "user", "content": "Hi"}, CALL]))
    assert request.messages[-1] == Message(
        Role.ASSISTANT, None, tool_calls=(ToolCall("call_1", "get_weather", "{}"),)
    )


def test_the_settings_map_onto_chat_fields() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = decoded(
        body(
            tools=[WEATHER],
            tool_choice={"type": "function", "name": "get_weather"},
            temperature=0.5,
            top_p=0.9,
            max_output_tokens=64,
            text={
                "format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True},
                "verbosity": "low",
            },
            parallel_tool_calls=False,
            metadata={"k": "v"},
            user="u-1",
            stream=True,
            store=True,
            include=["message.output_text.logprobs"],
            truncation="disabled",
            reasoning={"effort": "low", "summary": "auto"},
            service_tier="flex",
            prompt_cache_key="pc",
            safety_identifier="si",
            stream_options={"include_obfuscation": False},
        )
    )
    assert request.tools == (
        Tool("get_weather", "The weather in a city.", WEATHER["parameters"], True),
    )
    assert request.tool_choice == ToolChoice(ToolChoiceMode.FUNCTION, "get_weather")
    assert (request.temperature, request.top_p, request.max_tokens) == (0.5, 0.9, 64)
    assert request.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": schema, "strict": True},
    }
    assert request.metadata == {"k": "v"}
    assert request.user == "u-1"
    assert request.stream
    assert request.extra == {
        "parallel_tool_calls": False,
        "reasoning_effort": "low",
        "service_tier": "flex",
        "prompt_cache_key": "pc",
        "safety_identifier": "si",
        "verbosity": "low",
    }


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [({"type": "text"}, {"type": "text"}), ({"type": "json_object"}, {"type": "json_object"})],
)
def test_the_plain_text_formats_map_onto_response_formats(
    fmt: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert decoded(body(text={"format": fmt})).response_format == expected


def test_store_absent_true_or_false_is_accepted() -> None:
    for store in (True, False):
        assert decoded(body(store=store)).messages == (Message(Role.USER, "Hi"),)
    assert decoded(body(previous_response_id=None, conversation=None, background=False))


def test_a_reasoning_item_without_text_is_dropped() -> None:
    item = {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "x"}]}
    request = decoded(body(input=[{"role": "user", "content": "Hi"}, item]))
    assert request.messages == (Message(Role.USER, "Hi"),)


def test_the_echo_repeats_the_settings_in_the_responses_shape() -> None:
    echo = convert_responses(
        body(tools=[WEATHER], tool_choice="required", instructions="I", temperature=1.5)
    ).body.echo()
    assert echo["tools"] == [WEATHER]
    assert echo["tool_choice"] == "required"
    assert echo["instructions"] == "I"
    assert echo["temperature"] == 1.5
    assert echo["parallel_tool_calls"] is True
    assert echo["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    assert convert_responses(body()).body.echo()["tool_choice"] == "auto"


def test_a_dict_converted_is_copied() -> None:
    data = body(tools=[json.loads(json.dumps(WEATHER))])
    request = convert_responses(data).to_request()
    data["tools"][0]["parameters"]["type"] = "changed"
    assert request.tools[0].parameters == WEATHER["parameters"]


def test_the_fields_taken_are_the_struct_fields() -> None:
    assert {"model", "input", "previous_response_id", "store", "text"} <= FIELDS
    assert "messages" not in FIELDS


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"model": "fast"}, "input", "required"),
        ({"input": "Hi"}, "model", "required"),
        (body(model=" "), "model", "non-empty"),
        (body(input=[]), "input", "non-empty list"),
        (body(input=3), "input", "a string or a non-empty list"),
        (body(messages=[]), "messages", "not supported by this gateway"),
        (body(previous_response_id="resp_1"), "previous_response_id", "stateless"),
        (body(conversation="conv_1"), "conversation", "stateless"),
        (body(conversation={"id": "conv_1"}), "conversation", "stateless"),
        (body(background=True), "background", "stateless"),
        (body(tools=[{"type": "web_search"}]), "tools[0].type", "only function tools"),
        (body(tools=[WEATHER, {"type": "file_search"}]), "tools[1].type", "'file_search'"),
        (body(tools=[{"type": "computer_use_preview"}]), "tools[0].type", "only function"),
        (body(tools=[{"name": "f"}]), "tools[0].type", "required"),
        (body(tools=[{"type": "function"}]), "tools[0].name", "required"),
        (body(tools=[{**WEATHER, "name": "a b"}]), "tools[0].name", "letters, digits"),
        (body(tools=[WEATHER, WEATHER]), "tools[1].name", "duplicate"),
        (body(tools=[{**WEATHER, "parameters": []}]), "tools[0].parameters", "JSON Schema"),
        (body(tool_choice="sometimes"), "tool_choice", "'none', 'auto', 'required'"),
        (body(tool_choice={"type": "allowed_tools"}), "tool_choice.type", "'allowed_tools'"),
        (body(tool_choice="required"), "tool_choice", "needs tools"),
        (
            body(tools=[WEATHER], tool_choice={"type": "function", "name": "other"}),
            "tool_choice.name",
            "not in tools",
        ),
        (body(temperature=3), "temperature", "between 0 and 2"),
        (body(top_p=-1), "top_p", "between 0 and 1"),
        (body(max_output_tokens=0), "max_output_tokens", "at least 1"),
        (body(stream="yes"), "stream", "true or false"),
        (body(store="yes"), "store", "true or false"),
        (body(metadata={"k": 1}), "metadata.k", "string"),
        (body(truncation="sometimes"), "truncation", "'auto'"),
        (body(reasoning={"effort": "max"}), "reasoning.effort", "'max'"),
        (body(reasoning={"budget": 3}), "reasoning.budget", "not supported"),
        (body(text={"format": {"type": "grammar"}}), "text.format.type", "'grammar'"),
        (
            body(text={"format": {"type": "json_schema", "name": "x"}}),
            "text.format.schema",
            "required",
        ),
        (
            body(text={"format": {"type": "json_schema", "schema": {}}}),
            "text.format.name",
            "required",
        ),
        (body(text={"style": "x"}), "text.style", "not supported"),
        (body(input=[{"role": "tool", "content": "x"}]), "input[0].role", "'tool'"),
        (body(input=[{"content": "x"}]), "input[0].role", "required"),
        (body(input=["Hi"]), "input[0]", "object"),
        (body(input=[{"type": "item_reference", "id": "m"}]), "input[0].type", "stateless"),
        (
            body(input=[{"type": "web_search_call", "id": "w"}]),
            "input[0].type",
            "'web_search_call'",
        ),
        (body(input=[{"role": "user"}]), "input[0].content", "required"),
        (body(input=[{"role": "user", "content": []}]), "input[0].content", "non-empty"),
        (
            body(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]),
            "input[0].content[0].type",
            "'input_file'",
        ),
        (
            body(input=[{"role": "user", "content": [{"type": "output_text", "text": "t"}]}]),
            "input[0].content[0].type",
            "'input_text' and 'input_image'",
        ),
        (
            body(input=[{"role": "assistant", "content": [{"type": "input_text", "text": "t"}]}]),
            "input[0].content[0].type",
            "'output_text' and 'refusal'",
        ),
        (
            body(
                input=[{"role": "system", "content": [{"type": "input_image", "image_url": "x"}]}]
            ),
            "input[0].content[0].type",
            "only 'input_text'",
        ),
        (
            body(input=[{"role": "user", "content": [{"type": "input_text", "text": 3}]}]),
            "input[0].content[0].text",
            "a string",
        ),
        (
            body(input=[{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]),
            "input[0].content[0].file_id",
            "image_url",
        ),
        (
            body(input=[{"role": "user", "content": [{"type": "input_image"}]}]),
            "input[0].content[0].image_url",
            "required",
        ),
        (
            body(
                input=[
                    {"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}
                ]
            ),
            "input[0].content[0].image_url",
            "http(s) or data: URL",
        ),
        (body(input=[{**CALL, "arguments": {}}]), "input[0].arguments", "JSON text"),
        (
            body(input=[{k: v for k, v in CALL.items() if k != "call_id"}]),
            "input[0].call_id",
            "required",
        ),
        (
            body(input=[{"type": "function_call_output", "call_id": "call_9", "output": "x"}]),
            "input[0].call_id",
            "send the function_call item",
        ),
        (
            body(input=[CALL, {"type": "function_call_output", "call_id": "call_1", "output": 3}]),
            "input[1].output",
            "a string or a list",
        ),
        (
            body(
                input=[{"type": "reasoning", "content": [{"type": "reasoning_text", "text": "x"}]}]
            ),
            "input[0].content",
            "reasoning text",
        ),
        (body(input=[{"role": "system", "content": "Only rules."}]), "input", "nothing to answer"),
    ],
)
def test_a_bad_input_is_refused_naming_its_field(
    data: dict[str, Any], field: str, says: str
) -> None:
    error = refused(data)
    assert error.field == field
    assert says in str(error)


def test_a_body_that_is_not_an_object_is_a_body_error() -> None:
    for raw in (b"", b"[1]", b"{"):
        with pytest.raises(BodyError):
            decode_responses(raw)


def test_free_form_json_nested_too_deep_is_refused_at_its_field() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_NESTING):
        node["x"] = {}
        node = node["x"]
    error = refused(body(tools=[{**WEATHER, "parameters": deep}]))
    assert error.field == "tools[0].parameters"
    error = refused(body(text={"format": {"type": "json_schema", "name": "n", "schema": deep}}))
    assert error.field == "text.format.schema"
