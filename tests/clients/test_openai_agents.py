"""The OpenAI Agents SDK (``openai-agents``) against the gateway: its default model is the
Responses API, on an ``AsyncOpenAI`` client set as the default, with tracing off."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from agents import (
    Agent,
    MaxTurnsExceeded,
    RunConfig,
    Runner,
    RunResult,
    function_tool,
    set_default_openai_client,
    set_tracing_disabled,
)
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI

from tests.clients.conftest import DUMMY_KEY, QUESTION, TIMEOUT, Gateway, Location, weather_report

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")

calls: list[str] = []


@function_tool
def get_weather(location: str) -> str:
    """The weather at a location."""
    calls.append(location)
    return weather_report(location)


@pytest.fixture(autouse=True)
def no_calls_yet() -> Iterator[None]:
    calls.clear()
    yield
    calls.clear()


@pytest.fixture(autouse=True)
def no_tracing() -> None:
    """Tracing would export spans to OpenAI's servers; nothing may leave the machine."""
    set_tracing_disabled(True)


def run(gateway: Gateway, body: Callable[[], Awaitable[T]]) -> T:
    """``body()`` on a loop of its own, with a default client for ``gateway``, closed after."""

    async def main() -> T:
        async with AsyncOpenAI(
            base_url=gateway.base_url, api_key=DUMMY_KEY, max_retries=0, timeout=TIMEOUT
        ) as client:
            set_default_openai_client(client, use_for_tracing=False)
            return await body()

    return asyncio.run(main())


def weather_agent(gateway: Gateway, **options: Any) -> Agent[Any]:
    return Agent(
        name="weather",
        instructions="Answer questions about the weather.",
        model=gateway.tool_model,
        tools=[get_weather],
        **options,
    )


def test_an_agent_answers_in_text_through_the_responses_api(gateway: Gateway) -> None:
    agent = Agent(name="plain", instructions="Be helpful.", model=gateway.text_model)
    result: RunResult = run(gateway, lambda: Runner.run(agent, "Hello"))
    assert result.final_output == gateway.text
    [response] = result.raw_responses
    assert response.response_id is not None
    assert response.response_id.startswith("resp")  # a Responses API answer, not chat
    assert response.usage.output_tokens > 0


def test_the_default_model_is_the_responses_api() -> None:
    assert isinstance(RunConfig().model_provider.get_model("fast"), OpenAIResponsesModel)


def test_the_agent_calls_its_tool_then_answers_quoting_the_result(bundled: Gateway) -> None:
    agent = weather_agent(bundled)
    result: RunResult = run(bundled, lambda: Runner.run(agent, QUESTION, max_turns=4))
    assert calls == ["London"]
    assert result.final_output == bundled.tool_result_answer()
    assert len(result.raw_responses) == 2


def test_a_streamed_run_calls_the_tool_and_streams_the_answer(bundled: Gateway) -> None:
    agent = weather_agent(bundled)

    async def body() -> tuple[Any, list[str]]:
        streamed = Runner.run_streamed(agent, QUESTION, max_turns=4)
        deltas = [
            event.data.delta
            async for event in streamed.stream_events()
            if event.type == "raw_response_event"
            and event.data.type == "response.output_text.delta"
        ]
        return streamed.final_output, deltas

    final, deltas = run(bundled, body)
    assert calls == ["London"]
    assert final == bundled.tool_result_answer()
    assert len(deltas) > 1
    assert "".join(deltas) == final


def test_stopping_on_the_first_tool_ends_with_the_tools_result(gateway: Gateway) -> None:
    # On the fake upstream the tool-call model calls the tool on every turn; the SDK's
    # documented way out is to stop on the first tool and take its result as the answer.
    agent = weather_agent(gateway, tool_use_behavior="stop_on_first_tool")
    result: RunResult = run(gateway, lambda: Runner.run(agent, QUESTION, max_turns=4))
    assert calls == [gateway.location]
    assert result.final_output == weather_report(gateway.location)


def test_a_model_that_always_calls_the_tool_runs_out_of_turns(fake: Gateway) -> None:
    agent = weather_agent(fake)
    mark = fake.mark()
    with pytest.raises(MaxTurnsExceeded):
        run(fake, lambda: Runner.run(agent, QUESTION, max_turns=2))
    assert calls == ["Paris", "Paris"]
    # The second request carried the first call's result, as a chat completions tool message.
    second = fake.attempts_since(mark)[1].body
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == weather_report("Paris")


def test_an_output_type_comes_back_as_a_valid_instance(bundled: Gateway) -> None:
    # Structured output on the Responses API (text.format json_schema); only the bundled
    # setup writes JSON for a schema, the fake upstream answers prose whatever is asked.
    agent = Agent(name="where", model=bundled.text_model, output_type=Location)
    result: RunResult = run(bundled, lambda: Runner.run(agent, "Where?"))
    assert isinstance(result.final_output, Location)
    assert result.final_output.location == "London"
