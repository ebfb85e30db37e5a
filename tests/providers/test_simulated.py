"""The simulated provider: no network, the same text every time, at a configured pace."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest

from runestone.exceptions import ConfigError
from runestone.io import DataPlane
from runestone.messages import (
    ChatRequest,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from runestone.providers import ProviderSettings, SimulatedProvider, create_provider
from runestone.providers.simulated import DEFAULT_TEXT, reasoning_of, signature_of, split_tokens
from tests.providers.helpers import collect, request


def simulated(**options: Any) -> SimulatedProvider:
    provider = create_provider(
        ProviderSettings.from_dict("sim", {"type": "simulated", "options": options})
    )
    assert isinstance(provider, SimulatedProvider)
    return provider


def test_it_streams_the_default_text_word_by_word_then_usage_and_done(plane: DataPlane) -> None:
    outcome = collect(plane, simulated(token_rate=0, first_token_delay=0), request("any-model"))
    assert outcome.error is None
    assert outcome.text == DEFAULT_TEXT
    assert outcome.texts == list(split_tokens(DEFAULT_TEXT))
    assert len(outcome.texts) > 20
    assert outcome.usage == Usage(
        len(["Say", "the", "known", "text", "please"]), len(outcome.texts)
    )
    assert outcome.done is not None
    assert (outcome.done.finish_reason, outcome.done.provider, outcome.done.model) == (
        FinishReason.STOP,
        "sim",
        "any-model",
    )


def test_the_answer_is_the_same_every_time(plane: DataPlane) -> None:
    provider = simulated(token_rate=0, first_token_delay=0, text="one two three")
    first = collect(plane, provider, request("m"))
    second = collect(plane, provider, request("m", text="something else"))
    assert first.texts == second.texts == ["one ", "two ", "three"]


def test_the_pace_follows_the_token_rate_and_first_token_delay() -> None:
    provider = simulated(token_rate=100, first_token_delay=0.1, text="a b c d e f g h i j k")

    async def timed() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = None
        async for event in provider.stream(request("m")):
            if first is None and isinstance(event, TextDelta):
                first = loop.time() - start
        assert first is not None
        return first, loop.time() - start

    first, total = asyncio.run(timed())
    assert first >= 0.1
    assert total >= 0.1 + 10 * 0.01  # 11 tokens, 10 gaps of 1/100 s


def test_max_tokens_cuts_the_answer_with_finish_reason_length(plane: DataPlane) -> None:
    outcome = collect(
        plane, simulated(token_rate=0, first_token_delay=0), request("m", max_tokens=3)
    )
    assert len(outcome.texts) == 3
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.LENGTH


def test_a_prefill_of_the_text_gets_only_the_rest(plane: DataPlane) -> None:
    provider = simulated(token_rate=0, first_token_delay=0)
    start = "".join(split_tokens(DEFAULT_TEXT)[:4])
    chat = ChatRequest.from_dict(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": start},
            ],
        }
    )
    assert start + collect(plane, provider, chat).text == DEFAULT_TEXT


def test_a_required_tool_choice_yields_one_call(plane: DataPlane) -> None:
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    outcome = collect(
        plane,
        simulated(first_token_delay=0),
        request("m", tools=tools, tool_choice="required"),
    )
    assert outcome.tool_deltas == [ToolCallDelta(0, "call_simulated_0", "lookup", "{}")]
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.TOOL_CALLS


def test_complete_assembles_the_stream(plane: DataPlane) -> None:
    completion = plane.run(simulated(token_rate=0, first_token_delay=0).complete(request("m")))
    assert completion.text == DEFAULT_TEXT
    assert completion.provider == "sim"


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"token_rate": -1}, "providers.sim.token_rate"),
        ({"first_token_delay": "soon"}, "providers.sim.first_token_delay"),
        ({"text": ""}, "providers.sim.text"),
        ({"speed": 3}, "providers.sim.speed"),
    ],
)
def test_bad_options_name_their_key_path(options: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        simulated(**options)
    assert caught.value.path == path


# --------------------------------------------------------------------------- the protocol

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "pattern": "^[A-Z][a-z]+/[A-Z][a-z]+$"}},
            "required": ["timezone"],
        },
    },
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "born": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
    },
    "required": ["name", "age", "born", "tags"],
    "additionalProperties": False,
}


def fast() -> SimulatedProvider:
    return simulated(token_rate=0, first_token_delay=0)


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}


def arguments_of(outcome: Any) -> tuple[str, Any]:
    """The one tool call's name and parsed arguments; the answer ended for tool calls."""
    [delta] = outcome.tool_deltas
    assert outcome.text == ""
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.TOOL_CALLS
    return delta.name, json.loads(delta.arguments)


def test_a_json_schema_response_format_gets_json_valid_against_the_schema(
    plane: DataPlane,
) -> None:
    chat = request("m", response_format=json_schema_format(PERSON_SCHEMA))
    outcome = collect(plane, fast(), chat)
    answer = json.loads(outcome.text)
    jsonschema.validate(answer, PERSON_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert answer["name"] == "Ada Lovelace"
    assert len(outcome.texts) > 1  # streamed word by word, as text is
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.STOP
    assert collect(plane, fast(), chat).texts == outcome.texts  # the same every time


def test_a_json_object_response_format_gets_the_text_as_an_object(plane: DataPlane) -> None:
    outcome = collect(plane, fast(), request("m", response_format={"type": "json_object"}))
    assert json.loads(outcome.text) == {"answer": DEFAULT_TEXT}


def test_a_schema_nothing_satisfies_still_gets_json(plane: DataPlane) -> None:
    impossible = {"type": "string", "minLength": 3, "maxLength": 1}
    outcome = collect(plane, fast(), request("m", response_format=json_schema_format(impossible)))
    assert json.loads(outcome.text)["error"] == "the schema cannot be satisfied"


def test_max_tokens_cuts_a_json_answer_with_finish_reason_length(plane: DataPlane) -> None:
    chat = request("m", response_format=json_schema_format(PERSON_SCHEMA), max_tokens=2)
    outcome = collect(plane, fast(), chat)
    assert len(outcome.texts) == 2
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.LENGTH


def test_a_prefill_of_a_json_answer_gets_only_the_rest(plane: DataPlane) -> None:
    whole = collect(plane, fast(), request("m", response_format={"type": "json_object"})).text
    chat = ChatRequest.from_dict(
        {
            "model": "m",
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": whole[:12]},
            ],
        }
    )
    assert whole[:12] + collect(plane, fast(), chat).text == whole


def test_a_named_tool_choice_calls_that_tool_with_valid_arguments(plane: DataPlane) -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    chat = request("m", tools=[TIME, WEATHER], tool_choice=choice)
    name, arguments = arguments_of(collect(plane, fast(), chat))
    assert name == "get_weather"
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    assert arguments == {"city": "London", "unit": "celsius", "days": 1}


def test_a_required_tool_choice_calls_the_tool_the_user_names_else_the_first(
    plane: DataPlane,
) -> None:
    tools = [TIME, WEATHER]
    named = request("m", text="Use get_weather", tools=tools, tool_choice="required")
    assert arguments_of(collect(plane, fast(), named))[0] == "get_weather"
    name, arguments = arguments_of(
        collect(plane, fast(), request("m", tools=tools, tool_choice="required"))
    )
    assert name == "get_time"
    jsonschema.validate(arguments, TIME["function"]["parameters"])


@pytest.mark.parametrize("tool_choice", ["auto", None])
def test_auto_calls_a_tool_the_last_user_message_names(
    plane: DataPlane, tool_choice: str | None
) -> None:
    fields: dict[str, Any] = {"tools": [TIME, WEATHER]}
    if tool_choice is not None:
        fields["tool_choice"] = tool_choice
    chat = request("m", text="What does GET_WEATHER say for Paris?", **fields)
    name, arguments = arguments_of(collect(plane, fast(), chat))
    assert name == "get_weather"
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])


@pytest.mark.parametrize(
    "text",
    ["What is the weather in Paris?", "Try get_weather_forecast", "Use my-get_weather tool"],
)
def test_auto_answers_in_text_when_no_tool_is_named_as_a_word(plane: DataPlane, text: str) -> None:
    outcome = collect(plane, fast(), request("m", text=text, tools=[WEATHER], tool_choice="auto"))
    assert outcome.tool_deltas == []
    assert outcome.text == DEFAULT_TEXT


def test_tool_choice_none_never_calls(plane: DataPlane) -> None:
    chat = request("m", text="get_weather please", tools=[WEATHER], tool_choice="none")
    outcome = collect(plane, fast(), chat)
    assert (outcome.tool_deltas, outcome.text) == ([], DEFAULT_TEXT)


def conversation_after_a_call(result: str, **fields: Any) -> ChatRequest:
    call = {
        "id": "call_simulated_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "London"}'},
    }
    return ChatRequest.from_dict(
        {
            "model": "m",
            "tools": [WEATHER],
            "messages": [
                {"role": "user", "content": "Call get_weather for London"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_simulated_0", "content": result},
            ],
            **fields,
        }
    )


@pytest.mark.parametrize("tool_choice", ["auto", None])
def test_a_tool_result_is_acknowledged_in_text_and_no_tool_is_called_again(
    plane: DataPlane, tool_choice: str | None
) -> None:
    fields = {"tool_choice": tool_choice} if tool_choice else {}
    chat = conversation_after_a_call('{"temperature": 18, "sky": "clear"}', **fields)
    outcome = collect(plane, fast(), chat)
    assert outcome.tool_deltas == []
    assert outcome.text == 'The get_weather tool returned: {"temperature": 18, "sky": "clear"}'
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.STOP


def test_a_long_tool_result_is_quoted_in_part(plane: DataPlane) -> None:
    outcome = collect(plane, fast(), conversation_after_a_call("x" * 2000))
    assert outcome.text == "The get_weather tool returned: " + "x" * 500 + "…"


def test_a_forced_call_after_a_tool_result_calls_again_with_the_next_id(
    plane: DataPlane,
) -> None:
    chat = conversation_after_a_call("18 C", tool_choice="required")
    [delta] = collect(plane, fast(), chat).tool_deltas
    assert (delta.id, delta.name) == ("call_simulated_1", "get_weather")


@pytest.mark.parametrize("effort", ["low", "high"])
def test_asked_to_reason_it_shows_a_signed_thought_before_the_same_answer(
    plane: DataPlane, effort: str
) -> None:
    provider = simulated(token_rate=0, first_token_delay=0)
    outcome = collect(plane, provider, request("m", reasoning_effort=effort))
    reasoning = [e for e in outcome.events if isinstance(e, ReasoningDelta)]
    thought = "".join(e.text for e in reasoning)
    assert thought == reasoning_of(request("m", reasoning_effort=effort))
    assert f"({effort} effort)" in thought
    assert "Say the known text please" in thought
    assert reasoning[-1] == ReasoningDelta("", signature_of(thought))
    first_text = next(i for i, e in enumerate(outcome.events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in outcome.events[:first_text])
    assert outcome.text == DEFAULT_TEXT


def test_minimal_effort_or_none_shows_no_reasoning(plane: DataPlane) -> None:
    provider = simulated(token_rate=0, first_token_delay=0)
    for chat in (request("m"), request("m", reasoning_effort="minimal")):
        outcome = collect(plane, provider, chat)
        assert not any(isinstance(e, ReasoningDelta) for e in outcome.events)
