"""OpenAI's chat request schema: bytes and dicts decode alike, every bad input is refused
naming its field, and any valid request survives a trip through JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runestone.exceptions import RequestValidationError
from runestone.messages import MAX_NESTING, ChatRequest, ImagePart, RawPart, TextPart
from runestone.wire.openai_chat import FIELDS, ChatBody, convert_chat, decode_chat
from runestone.wire.schema import BodyError

USER = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "fast", "messages": USER, **fields}


def decoded(data: object) -> ChatRequest:
    return decode_chat(json.dumps(data).encode()).to_request()


def test_the_fields_modelled_are_the_struct_fields() -> None:
    assert {"model", "messages", "stream_options", "max_completion_tokens"} <= FIELDS
    assert "seed" not in FIELDS


def test_a_body_decoded_from_bytes_is_the_request_its_dict_converts_to() -> None:
    data = body(
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
                    {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}},
                ],
            },
        ],
        tools=[TOOL],
        tool_choice="auto",
        stop="END",
        seed=7,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "strict": True}},
    )
    request = decoded(data)
    assert request == convert_chat(data).to_request()
    assert request.messages[1].content == (
        TextPart("What is this?"),
        ImagePart("data:image/png;base64,AAAA"),
        RawPart("input_audio", data["messages"][1]["content"][2]),
    )
    assert request.extra == {"seed": 7}
    assert request.response_format == data["response_format"]  # kept whole, as written


def test_unknown_fields_are_read_from_the_body_into_extra() -> None:
    request = decoded(body(seed=1, top_k=3, logit_bias={"5": 1}))
    assert request.extra == {"seed": 1, "top_k": 3, "logit_bias": {"5": 1}}


def test_a_dicts_free_form_values_are_copied_and_a_bodys_are_not_needed_to_be() -> None:
    data = body(tools=[json.loads(json.dumps(TOOL))], seed={"a": [1]})
    request = convert_chat(data).to_request()
    data["tools"][0]["function"]["parameters"]["type"] = "changed"
    data["seed"]["a"].append(2)
    assert request.tools[0].parameters == {"type": "object"}
    assert request.extra == {"seed": {"a": [1]}}


def test_include_usage_needs_stream() -> None:
    options = {"stream_options": {"include_usage": True}}
    assert decode_chat(json.dumps(body(stream=True, **options)).encode()).body.include_usage
    with pytest.raises(RequestValidationError) as caught:
        _ = decode_chat(json.dumps(body(**options)).encode()).body.include_usage
    assert caught.value.field == "stream_options"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (body(model=""), "model", "expected the model (or alias) to answer with"),
        (body(messages=[]), "messages", "expected a non-empty list of messages, got an empty"),
        (body(messages=[{"role": 1}]), "messages[0].role", "expected a string"),
        (
            body(messages=[{"role": "user", "content": [{"type": ""}]}]),
            "messages[0].content[0].type",
            "expected a non-empty string, got ''",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": 3}]}]),
            "messages[0].content[0].type",
            "expected a string, got a number",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            "messages[0].content[0].text",
            "expected a string, got a number",
        ),
        (
            body(
                messages=[
                    {"role": "user", "content": [{"type": "image_url", "image_url": "ftp://x"}]}
                ]
            ),
            "messages[0].content[0].image_url",
            "expected an http(s) or data: URL, got 'ftp://x'",
        ),
        (
            body(messages=[{"role": "tool", "tool_call_id": "", "content": "x"}]),
            "messages[0].tool_call_id",
            "expected for a tool message: the id of the call it answers",
        ),
        (
            body(messages=[{"role": "tool", "tool_call_id": "c", "content": [{"type": "x"}]}]),
            "messages[0].content[0].type",
            "this message takes only text parts, got 'x'",
        ),
        (
            body(messages=[{"role": "assistant", "content": []}]),
            "messages[0].content",
            "the list of content parts is empty",
        ),
        (body(n=0), "n", "must be between 1 and 128, got 0"),
        (body(stop=""), "stop", "expected a non-empty string, got ''"),
        (body(temperature=2.5), "temperature", "must be between 0 and 2, got 2.5"),
        (body(max_tokens=0), "max_tokens", "must be at least 1, got 0"),
        (body(stream_options=[]), "stream_options", "expected an object like"),
        (body(tools=[{"function": {"name": "f"}, "type": "x"}]), "tools[0].type", "only function"),
        (body(tool_choice="any", tools=[TOOL]), "tool_choice", "expected 'none', 'auto'"),
        (body(response_format={}), "response_format.type", "required"),
        (
            body(response_format={"type": "json_schema", "json_schema": {}}),
            "response_format.json_schema.name",
            "required",
        ),
        (body(metadata={"a": "ok", "b": [1]}), "metadata.b", "expected a string, got a list"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field_in_words(
    data: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        decoded(data)
    assert caught.value.field == field
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"model": "fast", "messages": [', "not valid JSON"),
        (b'{"model": 7, "messages": [', "not valid JSON"),  # refused early, broken later
        (b"[1, 2]", "must be a JSON object, got a list"),
        (b'"text"', "must be a JSON object, got a string"),
    ],
)
def test_a_body_that_is_no_json_object_is_a_body_error(raw: bytes, words: str) -> None:
    with pytest.raises(BodyError, match=words):
        decode_chat(raw)


def _deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (body(blob=_deep(40)), "blob"),
        (body(response_format={"type": "text", "x": _deep(40)}), "response_format"),
        (body(tools=[{"function": {"name": "f", "parameters": _deep(40)}}]), "tools[0].function"),
        (
            body(messages=[{"role": "user", "content": [{"type": "file", "file": _deep(40)}]}]),
            "messages[0].content[0]",
        ),
    ],
)
def test_free_form_json_nested_too_deep_is_refused_from_bytes_and_dicts(
    data: dict[str, Any], field: str
) -> None:
    for decode in (decoded, lambda d: convert_chat(d).to_request()):
        with pytest.raises(RequestValidationError, match=f"nested more than {MAX_NESTING}") as c:
            decode(data)
        assert c.value.field.startswith(field)


def test_the_struct_is_what_msgspec_decodes_and_nothing_else_is_kept() -> None:
    chat = decode_chat(json.dumps(body(seed=1)).encode()).body
    assert isinstance(chat, ChatBody)
    assert not hasattr(chat, "seed")


# --------------------------------------------------------------------------- round trip

_text = st.text(max_size=12)
_part = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _text),
    st.builds(
        lambda u, d: {"type": "image_url", "image_url": {"url": u, **({"detail": d} if d else {})}},
        st.sampled_from(["https://x/y.png", "data:image/png;base64,AAAA"]),
        st.sampled_from([None, "auto", "low", "high"]),
    ),
    st.builds(lambda t: {"type": "input_audio", "input_audio": {"data": t}}, _text),
)
_call = st.builds(
    lambda i, a: {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": a}},
    st.integers(0, 9),
    st.sampled_from(["{}", '{"a": 1}', "not json"]),
)
_message = st.one_of(
    st.builds(lambda t: {"role": "system", "content": t}, _text),
    st.builds(lambda t: {"role": "developer", "content": [{"type": "text", "text": t}]}, _text),
    st.builds(lambda c: {"role": "user", "content": c}, _text | st.lists(_part, min_size=1)),
    st.builds(lambda t: {"role": "assistant", "content": t}, _text),
    st.builds(
        lambda calls: {"role": "assistant", "content": None, "tool_calls": calls},
        st.lists(_call, min_size=1, max_size=2),
    ),
    st.builds(lambda t: {"role": "tool", "tool_call_id": "c1", "content": t}, _text),
)


@given(
    messages=st.lists(_message, min_size=1, max_size=5),
    tools=st.booleans(),
    choice=st.sampled_from([None, "auto", "none", "required", "named"]),
    temperature=st.none() | st.floats(0, 2),
    max_tokens=st.none() | st.integers(1, 10**6),
    stop=st.lists(st.text(min_size=1, max_size=4), max_size=2),
    fmt=st.sampled_from([None, {"type": "json_object"}, {"type": "text"}]),
    extra=st.dictionaries(st.sampled_from(["seed", "top_k", "logprobs"]), st.integers()),
    stream=st.booleans(),
)
def test_any_valid_request_encoded_to_json_decodes_to_an_equal_request(
    messages: list[dict[str, Any]],
    tools: bool,
    choice: str | None,
    temperature: float | None,
    max_tokens: int | None,
    stop: list[str],
    fmt: dict[str, str] | None,
    extra: dict[str, int],
    stream: bool,
) -> None:
    data: dict[str, Any] = {"model": "fast", "messages": messages, "stream": stream, **extra}
    if tools:
        data["tools"] = [TOOL]
    if choice is not None and (tools or choice in ("auto", "none")):
        named = {"type": "function", "function": {"name": "get_weather"}}
        data["tool_choice"] = named if choice == "named" else choice
    for name, value in (("temperature", temperature), ("max_tokens", max_tokens)):
        if value is not None:
            data[name] = value
    if stop:
        data["stop"] = stop
    if fmt is not None:
        data["response_format"] = fmt
    request = ChatRequest.from_dict(data)
    assert decoded(request.to_dict()) == request
    assert decoded(data) == request


def test_what_only_openai_carries_is_named_and_a_no_op_value_is_not() -> None:
    chat = decode_chat(
        json.dumps(
            body(n=2, seed=1, store=False, logprobs=False, top_k=3, metadata={"a": "b"})
        ).encode()
    )
    assert chat.body.native_fields(chat.extra) == ["n", "seed", "metadata"]
    plain = decode_chat(json.dumps(body(n=1, reasoning_effort="low")).encode())
    assert plain.body.native_fields(plain.extra) == []


def test_n_above_one_is_refused_where_no_upstream_can_take_it_as_written() -> None:
    with pytest.raises(RequestValidationError) as caught:
        ChatRequest.from_dict(body(n=2))
    assert caught.value.field == "n"
    assert "HTTP API only" in str(caught.value)
