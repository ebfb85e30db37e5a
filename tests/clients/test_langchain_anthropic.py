"""langchain-anthropic's ``ChatAnthropic`` against the gateway's ``/v1/messages``."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.tools import tool

from tests.clients.conftest import DUMMY_KEY, QUESTION, TIMEOUT, Gateway, Location, weather_report

pytestmark = pytest.mark.timeout(30)


@tool
def get_weather(location: str) -> str:
    """The weather at a location."""
    return weather_report(location)


def chat(gateway: Gateway, model: str, **options: Any) -> ChatAnthropic:
    return ChatAnthropic(
        base_url=gateway.url,
        api_key=DUMMY_KEY,  # type: ignore[arg-type]
        model=model,
        max_retries=0,
        timeout=TIMEOUT,
        **options,
    )


def test_invoke_returns_the_whole_answer(gateway: Gateway) -> None:
    reply = chat(gateway, gateway.claude_text_model).invoke("Hello")
    assert reply.content == gateway.text
    assert reply.response_metadata["stop_reason"] == "end_turn"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] > 0


def test_a_stream_comes_in_pieces_that_add_up_to_the_whole_answer(gateway: Gateway) -> None:
    chunks = list(chat(gateway, gateway.claude_text_model).stream("Hello"))
    assert len([chunk for chunk in chunks if chunk.content]) > 5
    whole = sum(chunks[1:], chunks[0])
    assert isinstance(whole, AIMessageChunk)
    assert whole.text == gateway.text
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] > 0


def test_bound_tools_produce_a_tool_use_with_schema_valid_input(gateway: Gateway) -> None:
    reply = chat(gateway, gateway.claude_tool_model).bind_tools([get_weather]).invoke(QUESTION)
    [call] = reply.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"location": gateway.location}
    assert reply.response_metadata["stop_reason"] == "tool_use"


def test_a_streamed_tool_use_adds_up_to_the_same_call(gateway: Gateway) -> None:
    model = chat(gateway, gateway.claude_tool_model).bind_tools([get_weather])
    chunks = list(model.stream(QUESTION))
    whole = sum(chunks[1:], chunks[0])
    assert isinstance(whole, AIMessageChunk)
    [call] = whole.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"location": gateway.location}


def test_structured_output_comes_back_as_a_valid_instance(gateway: Gateway) -> None:
    # ChatAnthropic's default method is a forced tool call, which both setups can answer.
    result = chat(gateway, gateway.claude_tool_model).with_structured_output(Location).invoke("?")
    assert result == Location(location=gateway.location)


def test_a_tool_result_sent_back_gets_a_text_answer_quoting_it(bundled: Gateway) -> None:
    # Only on the bundled setup: the fake upstream's tool-call model calls the tool, always.
    model = chat(bundled, bundled.claude_tool_model).bind_tools([get_weather])
    messages: list[Any] = [("user", QUESTION)]
    first = model.invoke(messages)
    [call] = first.tool_calls
    messages += [first, get_weather.invoke(call)]
    final = model.invoke(messages)
    assert not final.tool_calls
    assert final.text == bundled.tool_result_answer()
    assert final.response_metadata["stop_reason"] == "end_turn"


def test_counting_tokens_asks_the_gateway_and_grows_with_the_prompt(gateway: Gateway) -> None:
    model = chat(gateway, gateway.claude_text_model)
    short = model.get_num_tokens_from_messages([HumanMessage("Hello")])
    long = model.get_num_tokens_from_messages([HumanMessage("Hello " * 50)])
    assert 0 < short < long
