"""The request model (validation naming the field, round trips) and the event vocabulary."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runestone.exceptions import (
    ErrorClass,
    ProviderError,
    RequestValidationError,
    StreamCutError,
    UpstreamTimeoutError,
)
from runestone.messages import (
    MAX_NESTING,
    ChatRequest,
    Completion,
    CompletionBuilder,
    Done,
    FinishReason,
    ImagePart,
    NativeBody,
    RawPart,
    Role,
    StreamError,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
    Usage,
    WireFormat,
    nesting,
)

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def base(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": "Hi"}]}
    data.update(fields)
    return data


def test_a_minimal_request_reads_with_defaults() -> None:
    request = ChatRequest.from_dict(base())
    assert request.model == "fast"
    assert request.messages[0].role is Role.USER
    assert request.messages[0].text == "Hi"
    assert request.stream is False
    assert (request.tools, request.stop, request.extra) == ((), (), {})
    assert request.temperature is None


def test_a_full_request_reads_every_field() -> None:
    request = ChatRequest.from_dict(
        base(
            messages=[
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/y.png", "detail": "low"},
                        },
                        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ],
            stream=True,
            tools=[TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            temperature=0.5,
            top_p=1,
            max_completion_tokens=100,
            stop="END",
            response_format={"type": "json_object"},
            user="u1",
            metadata={"team": "a"},
            seed=42,
        )
    )
    user = request.messages[1]
    assert user.content == (
        TextPart("What is this?"),
        ImagePart("https://x/y.png", "low"),
        RawPart(
            "input_audio", {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
        ),
    )
    assert request.messages[2].tool_calls == (ToolCall("c1", "get_weather", "{}"),)
    assert request.messages[3].tool_call_id == "c1"
    assert request.tool_choice == ToolChoice(ToolChoiceMode.FUNCTION, "get_weather")
    assert request.max_tokens == 100
    assert request.stop == ("END",)
    assert request.extra == {"seed": 42}
    assert request.uses_tools
    assert request.uses_images
    assert request.wants_json
    assert not request.ends_with_assistant


def test_the_request_is_frozen_and_keeps_its_own_copies() -> None:
    data = base(tools=[copy.deepcopy(TOOL)], seed={"nested": [1]})
    request = ChatRequest.from_dict(data)
    data["tools"][0]["function"]["parameters"]["type"] = "changed"
    data["seed"]["nested"].append(2)
    assert request.tools[0].parameters == {"type": "object"}
    assert request.extra == {"seed": {"nested": [1]}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.model = "other"  # type: ignore[misc]


def test_to_dict_gives_back_the_openai_shape() -> None:
    data = base(tools=[TOOL], tool_choice="required", stop=["a", "b"], seed=1, stream=True)
    out = ChatRequest.from_dict(data).to_dict()
    assert out["messages"] == data["messages"]
    assert out["tools"] == [TOOL]
    assert (out["tool_choice"], out["stop"], out["seed"], out["stream"]) == (
        "required",
        ["a", "b"],
        1,
        True,
    )


_text = st.text(max_size=20)
_messages = st.lists(
    st.one_of(
        st.builds(lambda t: {"role": "system", "content": t}, _text),
        st.builds(lambda t: {"role": "user", "content": t}, _text),
        st.builds(lambda t: {"role": "user", "content": [{"type": "text", "text": t}]}, _text),
        st.builds(lambda t: {"role": "assistant", "content": t}, _text),
    ),
    min_size=1,
    max_size=5,
)


@given(
    messages=_messages,
    temperature=st.none() | st.floats(0, 2),
    top_p=st.none() | st.floats(0, 1),
    max_tokens=st.none() | st.integers(1, 10_000),
    stop=st.lists(st.text(min_size=1, max_size=5), max_size=3),
    user=st.none() | _text,
    stream=st.booleans(),
    extra=st.dictionaries(st.sampled_from(["seed", "top_k", "logprobs"]), st.integers()),
)
def test_from_dict_of_to_dict_is_the_same_request(
    messages: list[dict[str, Any]],
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    stop: list[str],
    user: str | None,
    stream: bool,
    extra: dict[str, int],
) -> None:
    request = ChatRequest.from_dict(
        base(
            messages=messages,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            stop=stop or None,
            user=user,
            stream=stream,
            **extra,
        )
    )
    assert ChatRequest.from_dict(request.to_dict()) == request


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "request"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        (base(model="  "), "model"),
        (base(messages=[]), "messages"),
        (base(messages="hi"), "messages"),
        (base(messages=["hi"]), "messages[0]"),
        (base(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (base(messages=[{"content": "x"}]), "messages[0].role"),
        (base(messages=[{"role": "user"}]), "messages[0].content"),
        (base(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (base(messages=[{"role": "user", "content": []}]), "messages[0].content"),
        (
            base(messages=[{"role": "user", "content": "a"}, {"role": "assistant"}]),
            "messages[1].content",
        ),
        (base(messages=[{"role": "user", "content": [5]}]), "messages[0].content[0]"),
        (
            base(messages=[{"role": "user", "content": [{"type": "text"}]}]),
            "messages[0].content[0].text",
        ),
        (
            base(messages=[{"role": "user", "content": [{"text": "x"}]}]),
            "messages[0].content[0].type",
        ),
        (
            base(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            "messages[0].content[0].image_url",
        ),
        (
            base(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}
                        ],
                    }
                ]
            ),
            "messages[0].content[0].image_url.url",
        ),
        (
            base(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://x", "detail": "ultra"},
                            }
                        ],
                    }
                ]
            ),
            "messages[0].content[0].image_url.detail",
        ),
        (
            base(
                messages=[
                    {
                        "role": "system",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x"}}],
                    }
                ]
            ),
            "messages[0].content[0].type",
        ),
        (
            base(
                messages=[
                    {
                        "role": "assistant",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x"}}],
                    }
                ]
            ),
            "messages[0].content[0].type",
        ),
        (base(messages=[{"role": "user", "content": "x", "name": 3}]), "messages[0].name"),
        (base(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
        (
            base(messages=[{"role": "assistant", "content": None, "tool_calls": "x"}]),
            "messages[0].tool_calls",
        ),
        (
            base(messages=[{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}]),
            "messages[0].tool_calls[0].function",
        ),
        (
            base(
                messages=[
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"function": {"name": "f"}}],
                    }
                ]
            ),
            "messages[0].tool_calls[0].id",
        ),
        (
            base(
                messages=[
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}
                        ],
                    }
                ]
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (base(stream="yes"), "stream"),
        (base(n=2), "n"),
        (base(temperature=3), "temperature"),
        (base(temperature="hot"), "temperature"),
        (base(temperature=True), "temperature"),
        (base(top_p=-0.1), "top_p"),
        (base(max_tokens=0), "max_tokens"),
        (base(max_tokens=1.5), "max_tokens"),
        (base(max_completion_tokens=-1), "max_completion_tokens"),
        (base(max_tokens=10, max_completion_tokens=20), "max_completion_tokens"),
        (base(stop=5), "stop"),
        (base(stop=["ok", ""]), "stop[1]"),
        (base(tools={}), "tools"),
        (base(tools=["x"]), "tools[0]"),
        (base(tools=[{"type": "retrieval"}]), "tools[0].type"),
        (base(tools=[{"type": "function"}]), "tools[0].function"),
        (
            base(tools=[{"type": "function", "function": {"name": "bad name"}}]),
            "tools[0].function.name",
        ),
        (base(tools=[TOOL, TOOL]), "tools[1].function.name"),
        (
            base(tools=[{"type": "function", "function": {"name": "f", "description": 1}}]),
            "tools[0].function.description",
        ),
        (
            base(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
            "tools[0].function.parameters",
        ),
        (
            base(tools=[{"type": "function", "function": {"name": "f", "strict": "yes"}}]),
            "tools[0].function.strict",
        ),
        (base(tool_choice="always", tools=[TOOL]), "tool_choice"),
        (base(tool_choice="required"), "tool_choice"),
        (base(tool_choice=1), "tool_choice"),
        (base(tool_choice={"type": "function"}, tools=[TOOL]), "tool_choice.function.name"),
        (
            base(tool_choice={"type": "function", "function": {"name": "other"}}, tools=[TOOL]),
            "tool_choice.function.name",
        ),
        (base(response_format="json"), "response_format"),
        (base(response_format={"type": "yaml"}), "response_format.type"),
        (base(response_format={"type": "json_schema"}), "response_format.json_schema"),
        (base(user=5), "user"),
        (base(metadata=[]), "metadata"),
        (base(metadata={"k": 1}), "metadata.k"),
    ],
)
def test_a_bad_request_names_the_field(data: Any, field: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        ChatRequest.from_dict(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def _nested(depth: int, leaf: Any = "x") -> Any:
    """``depth`` levels of objects and lists, alternating, an object outermost."""
    value = leaf
    for level in range(depth):
        value = {"a": value} if (depth - level) % 2 else [value]
    return value


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (base(extra_field=_nested(50)), "extra_field"),
        (
            base(
                messages=[{"role": "user", "content": [{"type": "input_audio", "x": _nested(50)}]}]
            ),
            "messages[0].content[0]",
        ),
        (
            base(
                tools=[{"type": "function", "function": {"name": "f", "parameters": _nested(50)}}]
            ),
            "tools[0].function.parameters",
        ),
        (base(response_format={"type": "json_object", "x": _nested(50)}), "response_format"),
    ],
)
def test_a_request_nested_too_deep_is_refused_naming_where(data: Any, field: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        ChatRequest.from_dict(data)
    assert caught.value.field == field
    assert f"nested more than {MAX_NESTING} levels deep" in str(caught.value)


def test_tool_call_arguments_holding_json_nested_too_deep_are_refused() -> None:
    arguments = json.dumps(_nested(300))
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    data = base(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
        ]
    )
    with pytest.raises(RequestValidationError) as caught:
        ChatRequest.from_dict(data)
    assert caught.value.field == "messages[1].tool_calls[0].function.arguments"


def test_nesting_up_to_the_limit_is_accepted() -> None:
    # The body's own levels count too: {"tools": [{"function": {"parameters": ...}}]} is 4.
    parameters = _nested(MAX_NESTING - 4)
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    request = ChatRequest.from_dict(base(tools=[tool]))
    assert request.tools[0].parameters == parameters
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": json.dumps(_nested(MAX_NESTING))},
    }
    data = base(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
        ]
    )
    assert (
        ChatRequest.from_dict(data).messages[1].tool_calls[0].arguments
        == call["function"]["arguments"]
    )


def test_an_assistant_prefill_and_a_tool_call_without_content_are_valid() -> None:
    request = ChatRequest.from_dict(
        base(messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure"}])
    )
    assert request.ends_with_assistant
    called = ChatRequest.from_dict(
        base(
            tools=[TOOL],
            messages=[
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
            ],
        )
    )
    assert called.messages[1].content is None


# --------------------------------------------------------------------------- events


def test_events_are_frozen_values() -> None:
    delta = TextDelta("hi")
    assert delta == TextDelta("hi")
    with pytest.raises(AttributeError):
        delta.text = "other"  # type: ignore[misc]
    assert Usage(2, 3).total_tokens == 5
    assert Done(FinishReason.STOP).finish_reason == "stop"


@pytest.mark.parametrize("error_class", list(ErrorClass))
def test_a_stream_error_round_trips_every_error_class(error_class: ErrorClass) -> None:
    event = StreamError(
        error_class, "went wrong", "p", "m", retry_after=1.5, content_delivered=True
    )
    exc = event.to_exception()
    assert isinstance(exc, ProviderError)
    assert exc.error_class is error_class
    assert StreamError.from_exception(exc) == event


def test_a_stream_error_comes_from_a_provider_error() -> None:
    event = StreamError.from_exception(
        StreamCutError("cut", provider="p", model="m", content_delivered=True)
    )
    assert event == StreamError(ErrorClass.STREAM_CUT, "cut", "p", "m", None, True)
    timeout = UpstreamTimeoutError("slow", error_class=ErrorClass.IDLE_TIMEOUT)
    assert StreamError.from_exception(timeout).error_class is ErrorClass.IDLE_TIMEOUT


def test_a_completion_builder_joins_text_and_tool_calls_by_index() -> None:
    builder = CompletionBuilder()
    builder.extend(
        [
            TextDelta("Hel"),
            ToolCallDelta(1, "c2", "g", "{"),
            ToolCallDelta(0, "c1", "f", "[1"),
            TextDelta("lo"),
            ToolCallDelta(1, None, None, "}"),
            ToolCallDelta(0, None, None, "]"),
            Usage(1, 2),
            Done("tool_calls", "p", "m", None),
        ]
    )
    completion = builder.build()
    assert completion == Completion(
        text="Hello",
        tool_calls=(ToolCall("c1", "f", "[1]"), ToolCall("c2", "g", "{}")),
        finish_reason="tool_calls",
        usage=Usage(1, 2),
        provider="p",
        model="m",
    )


def test_an_unfinished_stream_is_no_completion() -> None:
    builder = CompletionBuilder()
    builder.add(TextDelta("partial"))
    assert not builder.done
    with pytest.raises(ValueError, match="no Done"):
        builder.build()


def test_a_completion_replays_as_the_events_of_a_stream() -> None:
    completion = Completion("hi", (ToolCall("c", "f", "{}"),), "tool_calls", Usage(1, 1), "p", "m")
    builder = CompletionBuilder()
    builder.extend(completion.events())
    assert builder.build() == completion


# --------------------------------------------------------------------------- native bodies


def _native_of(text: bytes) -> NativeBody:
    fields = msgspec.json.decode(text, type=dict[str, msgspec.Raw])
    return NativeBody(WireFormat.ANTHROPIC_MESSAGES, fields)


def test_a_native_body_is_written_back_as_it_came_but_the_changes() -> None:
    text = b'{"model": "alias", "messages": [ {"role":"user"} ], "x": {"y": 1.50}}'
    native = _native_of(text)
    out = native.encode({"model": "real", "stream": True})
    # Untouched fields keep their bytes (spacing, number spelling); new ones go last.
    assert out == b'{"model":"real","messages":[ {"role":"user"} ],"x":{"y": 1.50},"stream":true}'
    assert json.loads(out) == {**json.loads(text), "model": "real", "stream": True}
    assert native.encode({}, dropped=("x", "messages")) == b'{"model":"alias"}'
    assert native.value("x") == {"y": 1.5}
    assert native.value("absent") is None


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=6,
    ),
    st.dictionaries(st.text(min_size=1, max_size=8), st.integers(), max_size=3),
)
def test_an_encoded_native_body_parses_to_the_body_with_the_changes(
    body: dict[str, Any], changes: dict[str, int]
) -> None:
    native = _native_of(json.dumps(body).encode())
    assert json.loads(native.encode(changes)) == {**body, **changes}


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=3),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
        max_leaves=20,
    ),
    st.integers(min_value=0, max_value=6),
)
def test_nesting_stopped_early_is_exact_up_to_its_bound_and_past_it_otherwise(
    value: Any, above: int
) -> None:
    depth = nesting(value)
    stopped = nesting(value, above=above)
    assert stopped == depth if depth <= above else stopped > above


def test_a_routing_refusal_keeps_the_field_no_candidate_could_carry() -> None:
    from runestone.exceptions import NoCandidatesError
    from runestone.server.errors import from_stream_error

    error = NoCandidatesError("nothing can serve 'x': a/b: cannot carry seed (…)", field="seed")
    event = StreamError.from_exception(error)
    assert event.field == "seed"
    api = from_stream_error(event, model="x")
    assert (api.status, api.code, api.param) == (400, "model_not_supported", "seed")
    plain = from_stream_error(StreamError.from_exception(NoCandidatesError("none")), model="x")
    assert plain.param == "model"
