"""pydantic-ai agents against the gateway: ``Agent("openai:<model>")`` on OpenAI's Responses API,
and ``AnthropicModel`` on ``/v1/messages``."""

from __future__ import annotations

import asyncio
import typing
from typing import Any, Literal

import pydantic
import pytest
from pydantic_ai import Agent, AgentRunResult, UsageLimitExceeded, UsageLimits
from pydantic_ai.models import anthropic as pydantic_ai_anthropic
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider

from tests.clients.conftest import DUMMY_KEY, QUESTION, Gateway, Location, weather_report

pytestmark = pytest.mark.timeout(30)


class Forecast(pydantic.BaseModel):
    city: str
    unit: Literal["celsius", "fahrenheit"]
    temperature: int = pydantic.Field(ge=-50, le=60)


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch) -> typing.Callable[[Gateway], None]:
    """Point ``"openai:..."`` models at a gateway the way pydantic-ai documents it:
    ``OpenAIProvider()`` reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``."""

    def point(gateway: Gateway) -> None:
        monkeypatch.setenv("OPENAI_BASE_URL", gateway.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", DUMMY_KEY)

    return point


def run(agent: Agent[None, Any], prompt: str, **options: Any) -> AgentRunResult[Any]:
    """``agent.run`` on a loop of its own, inside ``async with agent`` so that the HTTP client
    the agent's provider made is closed after (``run_sync`` leaves it, and its loop, open)."""

    async def main() -> AgentRunResult[Any]:
        async with agent:
            return await agent.run(prompt, **options)

    return asyncio.run(main())


def weather_agent(model: object, calls: list[str], **options: typing.Any) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(model, **options)  # type: ignore[call-overload]

    @agent.tool_plain
    def get_weather(location: str) -> str:
        """The weather at a location."""
        calls.append(location)
        return weather_report(location)

    return agent


def test_the_default_openai_model_is_the_responses_api_and_answers_in_text(
    gateway: Gateway, openai_env: typing.Callable[[Gateway], None]
) -> None:
    openai_env(gateway)
    agent = Agent(f"openai:{gateway.text_model}")
    assert isinstance(agent.model, OpenAIResponsesModel)
    result = run(agent, "Hello")
    assert result.output == gateway.text
    assert result.usage.output_tokens > 0


def test_an_output_type_comes_back_as_a_valid_instance(
    gateway: Gateway, openai_env: typing.Callable[[Gateway], None]
) -> None:
    # pydantic-ai's default output mode is a final_result tool call: both setups answer it.
    openai_env(gateway)
    result = run(Agent(f"openai:{gateway.tool_model}", output_type=Location), "Where?")
    assert result.output == Location(location=gateway.location)


def test_a_richer_output_type_is_filled_with_values_valid_for_its_schema(
    bundled: Gateway, openai_env: typing.Callable[[Gateway], None]
) -> None:
    openai_env(bundled)
    result = run(Agent(f"openai:{bundled.tool_model}", output_type=Forecast), "Forecast?")
    assert isinstance(result.output, Forecast)
    assert result.output.city == "London"
    assert result.output.unit == "celsius"
    assert -50 <= result.output.temperature <= 60


def test_a_streamed_run_ends_with_the_whole_answer(
    gateway: Gateway, openai_env: typing.Callable[[Gateway], None]
) -> None:
    openai_env(gateway)
    agent = Agent(f"openai:{gateway.text_model}")

    async def main() -> list[str]:
        async with agent, agent.run_stream("Hello") as result:
            return [delta async for delta in result.stream_text(delta=True, debounce_by=None)]

    pieces = asyncio.run(main())
    assert len(pieces) > 1
    assert "".join(pieces) == gateway.text


def test_the_agent_calls_its_tool_then_answers_quoting_the_result(
    bundled: Gateway, openai_env: typing.Callable[[Gateway], None]
) -> None:
    openai_env(bundled)
    calls: list[str] = []
    result = run(weather_agent(f"openai:{bundled.tool_model}", calls), QUESTION)
    assert calls == ["London"]
    assert result.output == bundled.tool_result_answer()


def test_the_tool_result_reaches_the_upstream_as_a_tool_message(
    fake: Gateway, openai_env: typing.Callable[[Gateway], None]
) -> None:
    # The fake upstream's tool-call model calls the tool on every request, so the loop is
    # stopped after its second request; that request must carry the tool's result, turned
    # from a Responses function_call_output into a chat completions tool message.
    openai_env(fake)
    calls: list[str] = []
    mark = fake.mark()
    agent = weather_agent(f"openai:{fake.tool_model}", calls)
    with pytest.raises(UsageLimitExceeded):
        run(agent, QUESTION, usage_limits=UsageLimits(request_limit=2))
    assert calls == ["Paris", "Paris"]
    first, second = (attempt.body for attempt in fake.attempts_since(mark))
    [tool] = first["tools"]
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["parameters"]["properties"] == {"location": {"type": "string"}}
    call, result = second["messages"][-2:]
    assert call["role"] == "assistant"
    [tool_call] = call["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    assert result == {
        "role": "tool",
        "tool_call_id": tool_call["id"],
        "content": weather_report("Paris"),
    }


@pytest.fixture
def anthropic_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work around pydantic-ai (the version installable here) building its request with
    ``BetaMessageParam(role=..., content=...)``: anthropic 2.x made that TypedDict a Union of
    three, which cannot be called ("Cannot instantiate typing.Union"). A TypedDict call is a
    plain dict, so ``dict`` is an exact stand-in. Newer pydantic-ai releases (2.68) build it
    fine, but they need an openai SDK newer than 3.3.0, whose jiter (>=0.16) instructor's
    ``jiter<0.15`` rules out, so pip settles on this one next to instructor."""
    message_param = pydantic_ai_anthropic.BetaMessageParam  # type: ignore[attr-defined]
    if typing.get_origin(message_param) is typing.Union:
        monkeypatch.setattr(pydantic_ai_anthropic, "BetaMessageParam", dict)


def anthropic_model(gateway: Gateway, model: str) -> AnthropicModel:
    return AnthropicModel(
        model, provider=AnthropicProvider(base_url=gateway.url, api_key=DUMMY_KEY)
    )


@pytest.mark.usefixtures("anthropic_messages")
def test_an_anthropic_model_answers_in_text(gateway: Gateway) -> None:
    result = run(Agent(anthropic_model(gateway, gateway.claude_text_model)), "Hello")
    assert result.output == gateway.text


@pytest.mark.usefixtures("anthropic_messages")
def test_an_anthropic_model_fills_an_output_type(gateway: Gateway) -> None:
    agent = Agent(anthropic_model(gateway, gateway.claude_tool_model), output_type=Location)
    assert run(agent, "Where?").output == Location(location=gateway.location)


@pytest.mark.usefixtures("anthropic_messages")
def test_an_anthropic_model_calls_its_tool_then_answers_quoting_the_result(
    bundled: Gateway,
) -> None:
    calls: list[str] = []
    agent = weather_agent(anthropic_model(bundled, bundled.claude_tool_model), calls)
    result = run(agent, QUESTION)
    assert calls == ["London"]
    assert result.output == bundled.tool_result_answer()


@pytest.mark.usefixtures("anthropic_messages")
def test_an_anthropic_model_streams_the_whole_answer(gateway: Gateway) -> None:
    agent = Agent(anthropic_model(gateway, gateway.claude_text_model))

    async def main() -> list[str]:
        async with agent, agent.run_stream("Hello") as result:
            return [delta async for delta in result.stream_text(delta=True, debounce_by=None)]

    pieces = asyncio.run(main())
    assert len(pieces) > 1
    assert "".join(pieces) == gateway.text
