"""langchain-openai's ``ChatOpenAI`` against the gateway, the way its README uses it."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.clients.conftest import DUMMY_KEY, QUESTION, TIMEOUT, Gateway, Location, weather_report

pytestmark = pytest.mark.timeout(30)


class Forecast(pydantic.BaseModel):
    """A forecast for a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"]
    temperature: int = pydantic.Field(ge=-50, le=60)


@tool
def get_weather(location: str) -> str:
    """The weather at a location."""
    return weather_report(location)


def chat(gateway: Gateway, model: str, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=gateway.base_url,
        api_key=DUMMY_KEY,  # type: ignore[arg-type]
        model=model,
        max_retries=0,
        timeout=TIMEOUT,
        **options,
    )


def test_invoke_returns_the_whole_answer(gateway: Gateway) -> None:
    reply = chat(gateway, gateway.text_model).invoke("Hello")
    assert reply.content == gateway.text
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] > 0


def test_a_stream_comes_in_pieces_that_add_up_to_the_whole_answer(gateway: Gateway) -> None:
    chunks = list(chat(gateway, gateway.text_model, stream_usage=True).stream("Hello"))
    pieces = [chunk.content for chunk in chunks if chunk.content]
    assert len(pieces) > 5
    whole = sum(chunks[1:], chunks[0])
    assert isinstance(whole, AIMessageChunk)
    assert whole.content == gateway.text
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] > 0


def test_structured_output_with_a_pydantic_model_is_a_valid_instance(bundled: Gateway) -> None:
    forecast = chat(bundled, bundled.text_model).with_structured_output(Forecast).invoke("Weather?")
    assert isinstance(forecast, Forecast)
    assert forecast.city == "London"
    assert forecast.unit == "celsius"  # an enum's first value
    assert -50 <= forecast.temperature <= 60


def test_structured_output_sends_the_models_schema_on_to_the_upstream(fake: Gateway) -> None:
    # The fake upstream answers its known text whatever the response_format, so the parse
    # fails by design (the OpenAI SDK's parse raises); what matters is that the schema went
    # through the gateway intact and the prose was not dressed up as JSON.
    mark = fake.mark()
    with pytest.raises(pydantic.ValidationError, match="Invalid JSON"):
        chat(fake, fake.text_model).with_structured_output(Location).invoke("Where?")
    [attempt] = fake.attempts_since(mark)
    response_format = attempt.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Location"
    assert response_format["json_schema"]["schema"]["properties"] == {
        "location": {"title": "Location", "type": "string"}
    }


def test_bound_tools_produce_a_call_with_schema_valid_arguments(gateway: Gateway) -> None:
    reply = chat(gateway, gateway.tool_model).bind_tools([get_weather]).invoke(QUESTION)
    [call] = reply.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"location": gateway.location}
    assert call["id"]
    assert reply.response_metadata["finish_reason"] == "tool_calls"


def test_a_streamed_tool_call_adds_up_to_the_same_call(gateway: Gateway) -> None:
    chunks = list(chat(gateway, gateway.tool_model).bind_tools([get_weather]).stream(QUESTION))
    whole = sum(chunks[1:], chunks[0])
    assert isinstance(whole, AIMessageChunk)
    [call] = whole.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"location": gateway.location}


def test_a_tool_result_sent_back_gets_a_text_answer_quoting_it(bundled: Gateway) -> None:
    # Only on the bundled setup: the fake upstream's tool-call model calls the tool, always.
    gateway = bundled
    model = chat(gateway, gateway.tool_model).bind_tools([get_weather])
    messages: list[Any] = [("user", QUESTION)]
    first = model.invoke(messages)
    [call] = first.tool_calls
    messages += [first, get_weather.invoke(call)]
    final = model.invoke(messages)
    assert not final.tool_calls
    assert final.content == gateway.tool_result_answer()


def test_the_responses_api_invoke_returns_the_whole_answer(gateway: Gateway) -> None:
    reply = chat(gateway, gateway.text_model, use_responses_api=True).invoke("Hello")
    assert reply.text == gateway.text
    assert reply.response_metadata["id"].startswith("resp")
    assert reply.response_metadata["status"] == "completed"


def test_the_responses_api_stream_adds_up_to_the_whole_answer(gateway: Gateway) -> None:
    chunks = list(chat(gateway, gateway.text_model, use_responses_api=True).stream("Hello"))
    assert "".join(chunk.text for chunk in chunks) == gateway.text


def test_the_responses_api_with_bound_tools_produces_a_call(gateway: Gateway) -> None:
    model = chat(gateway, gateway.tool_model, use_responses_api=True).bind_tools([get_weather])
    [call] = model.invoke(QUESTION).tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == {"location": gateway.location}
