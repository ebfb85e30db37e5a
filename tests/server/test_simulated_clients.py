"""Structured-output and agent clients against ``runestone serve`` with the bundled config
and no keys: the simulated provider answers every part of the protocol (official SDKs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import anthropic
import openai
import pydantic
import pytest
import yaml

from runestone.config import BUNDLED_CONFIG
from tests.server.serving import RunningServer

MAX_ROUNDS = 5


class Address(pydantic.BaseModel):
    street: str
    city: str


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0, le=150)
    email: str
    role: Literal["admin", "member"]
    address: Address
    nickname: str | None
    friends: list[Person]


class GetWeather(pydantic.BaseModel):
    """The weather in a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"]


WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The bundled config as shipped (its ${VAR}s unexpanded), on a fresh machine: no keys."""
    config = yaml.safe_load(BUNDLED_CONFIG.read_text(encoding="utf-8"))
    with pytest.MonkeyPatch.context() as env:
        for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            env.delenv(name, raising=False)
        env.setenv("RUNESTONE_PORT", "0")
        env.setenv("RUNESTONE_SIM_TOKEN_RATE", "0")
        env.setenv("RUNESTONE_LOG_LEVEL", "WARNING")
        directory: Path = tmp_path_factory.mktemp("bundled")
        with RunningServer(config, directory, name="bundled") as running:
            yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="no-key", max_retries=0) as sdk:
        yield sdk


def test_parse_with_a_pydantic_model_returns_a_parsed_object(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="smart",
        messages=[{"role": "user", "content": "Make up a person."}],
        response_format=Person,
    )
    message = completion.choices[0].message
    assert isinstance(message.parsed, Person)
    assert message.parsed.name == "Ada Lovelace"
    assert message.parsed.address.city == "London"
    assert completion.choices[0].finish_reason == "stop"


def test_a_streamed_parse_returns_the_same_parsed_object(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Make up a person."}]
    whole = client.chat.completions.parse(model="fast", messages=messages, response_format=Person)
    pieces = []
    with client.chat.completions.stream(
        model="fast", messages=messages, response_format=Person
    ) as stream:
        for event in stream:
            if event.type == "content.delta":
                pieces.append(event.delta)
        final = stream.get_final_completion()
    assert len(pieces) > 1
    assert final.choices[0].message.parsed == whole.choices[0].message.parsed


def test_a_json_schema_response_format_is_valid_json_for_the_schema(
    client: openai.OpenAI,
) -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "integer"}, "minItems": 3}},
        "required": ["items"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "Three numbers."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "numbers", "schema": schema, "strict": True},
        },
    )
    assert json.loads(completion.choices[0].message.content or "") == {"items": [1, 2, 3]}


def test_a_forced_tool_call_has_arguments_that_parse_and_validate(
    client: openai.OpenAI,
) -> None:
    completion = client.chat.completions.parse(
        model="fast",
        messages=[{"role": "user", "content": "How warm is it?"}],
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice={"type": "function", "function": {"name": "GetWeather"}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="London", unit="celsius")


def run_agent(client: openai.OpenAI, question: str, *, stream: bool) -> list[Any]:
    """A minimal agent loop: answer tool calls with a canned result until the model answers
    in text. The messages it ends with."""
    messages: list[Any] = [{"role": "user", "content": question}]
    for _ in range(MAX_ROUNDS):
        if stream:
            with client.chat.completions.stream(
                model="fast", messages=messages, tools=[WEATHER]
            ) as events:
                message = events.get_final_completion().choices[0].message
        else:
            completion = client.chat.completions.create(
                model="fast", messages=messages, tools=[WEATHER]
            )
            message = completion.choices[0].message
        messages.append(message.model_dump(exclude_none=True, exclude={"parsed"}))
        if not message.tool_calls:
            return messages
        for call in message.tool_calls:
            assert call.type == "function"
            arguments = json.loads(call.function.arguments)
            result = {"city": arguments["city"], "temperature": 18}
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
            )
    raise AssertionError(f"the agent loop did not end in {MAX_ROUNDS} rounds: {messages}")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_agent_loop_calls_the_tool_then_answers_and_ends(
    client: openai.OpenAI, stream: bool
) -> None:
    messages = run_agent(client, "Use get_weather for the weather, please.", stream=stream)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[-1]["content"] == (
        'The get_weather tool returned: {"city": "London", "temperature": 18}'
    )


def test_a_question_naming_no_tool_is_answered_in_text(client: openai.OpenAI) -> None:
    messages = run_agent(client, "Hello there!", stream=False)
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_the_anthropic_sdk_gets_tool_use_then_a_text_answer(server: RunningServer) -> None:
    tool: Any = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    with anthropic.Anthropic(base_url=server.url, api_key="no-key", max_retries=0) as sdk:
        question: Any = {"role": "user", "content": "Call get_weather, please."}
        first = sdk.messages.create(model="fast", max_tokens=500, tools=[tool], messages=[question])
        assert first.stop_reason == "tool_use"
        [use] = [block for block in first.content if block.type == "tool_use"]
        assert use.name == "get_weather"
        assert use.input == {"city": "London"}
        result: Any = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C, clear"}],
        }
        second = sdk.messages.create(
            model="fast",
            max_tokens=500,
            tools=[tool],
            messages=[question, {"role": "assistant", "content": first.content}, result],
        )
    assert second.stop_reason == "end_turn"
    [text] = second.content
    assert text.type == "text"
    assert text.text == "The get_weather tool returned: 18 C, clear"


def test_embeddings_on_the_bundled_config_are_unit_vectors_the_same_every_time(
    client: openai.OpenAI,
) -> None:
    # The SDK asks for base64 by default and decodes it: both encodings must agree.
    first = client.embeddings.create(model="embed", input=["a cat", "a dog"])
    again = client.embeddings.create(model="embed", input="a cat", encoding_format="float")
    assert [row.index for row in first.data] == [0, 1]
    assert all(len(row.embedding) == 1536 for row in first.data)
    norm = sum(x * x for x in first.data[0].embedding)
    assert abs(norm - 1.0) < 1e-4
    assert first.data[0].embedding != first.data[1].embedding
    assert again.data[0].embedding == pytest.approx(first.data[0].embedding, abs=1e-6)
    assert first.model == "sim-embed"
    assert first.usage.prompt_tokens == 4


def test_a_bad_embeddings_request_is_a_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="embed", input=[])
    assert caught.value.body is not None
    assert "input" in str(caught.value)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError):  # a chat model is no embedding model
        client.embeddings.create(model="fast", input="x")
    assert client.embeddings.create(model="embed", input="still up").data


def test_the_anthropic_sdk_gets_a_signed_thinking_block_when_it_asks(
    server: RunningServer,
) -> None:
    question = "What is the capital of France?"
    with anthropic.Anthropic(base_url=server.url, api_key="no-key", max_retries=0) as sdk:
        kwargs: Any = {
            "model": "smart",
            "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [{"role": "user", "content": question}],
        }
        whole = sdk.messages.create(**kwargs)
        with sdk.messages.stream(**kwargs) as stream:
            streamed = stream.get_final_message()
    for message in (whole, streamed):
        thinking, text = message.content
        assert thinking.type == "thinking"
        assert question in thinking.thinking
        assert thinking.signature  # the same thought signs the same way
        assert text.type == "text"
        assert text.text
    assert whole.content[0] == streamed.content[0]


def test_the_openai_sdk_gets_reasoning_content_when_it_asks(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Why is the sky blue?"}]
    whole = client.chat.completions.create(
        model="fast", messages=messages, reasoning_effort="medium"
    )
    thought = (whole.choices[0].message.model_extra or {})["reasoning_content"]
    assert "(medium effort)" in thought
    chunks = list(
        client.chat.completions.create(
            model="fast", messages=messages, reasoning_effort="medium", stream=True
        )
    )
    pieces = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks]
    assert "".join(p for p in pieces if p) == thought
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks)
        == whole.choices[0].message.content
    )
