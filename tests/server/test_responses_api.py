"""``POST /v1/responses`` through the official OpenAI SDK and raw HTTP: a real ``runestone
serve`` process in front of the fake upstream and the simulated provider (see conftest.py)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from runestone.testing.upstream import KNOWN_TEXT, KNOWN_TOOL_ARGUMENTS, FakeUpstream
from tests.server.conftest import MAX_BODY, OPEN_KEY
from tests.server.serving import RunningServer
from tests.server.serving import raw as raw_with

# Every exchange here carries the unlimited key unless a test says otherwise.
raw = functools.partial(raw_with, key=OPEN_KEY)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"],  # one or more: collapsed below
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=OPEN_KEY, max_retries=0) as sdk:
        yield sdk


def collapsed(types: list[str]) -> list[str]:
    """The event types with each run of one type counted once."""
    out: list[str] = []
    for kind in types:
        if not out or out[-1] != kind:
            out.append(kind)
    return out


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Each SSE frame as its ``event:`` name and its JSON data."""
    out = []
    for frame in body.decode().split("\n\n"):
        if not frame:
            continue
        name, data = frame.split("\n")
        assert name.startswith("event: ")
        assert data.startswith("data: ")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


# --------------------------------------------------------------------------- answers


def test_a_plain_response_is_the_known_text_in_a_completed_response(
    client: openai.OpenAI,
) -> None:
    response = client.responses.create(model="fast", input="Tell me the known text.")
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == KNOWN_TEXT
    assert response.model == "healthy"
    (item,) = response.output
    assert item.type == "message"
    assert item.id.startswith("msg_")
    assert item.role == "assistant"
    assert item.status == "completed"
    assert [part.type for part in item.content] == ["output_text"]
    assert response.store is False
    assert response.error is None
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.output_tokens > 0


def test_instructions_are_a_system_message_first(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    response = client.responses.create(
        model="main/healthy",
        instructions="Answer in one word.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        temperature=0.2,
        max_output_tokens=500,
        metadata={"team": "search"},
    )
    assert response.instructions == "Answer in one word."
    assert response.temperature == 0.2
    assert response.metadata == {"team": "search"}
    sent = upstream.attempts[-1].body
    assert sent["messages"][:2] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    assert sent["max_completion_tokens"] == 500
    assert sent["temperature"] == 0.2


def test_a_stream_is_the_exact_event_sequence_with_increasing_sequence_numbers(
    client: openai.OpenAI,
) -> None:
    events = list(client.responses.create(model="fast", input="Hi", stream=True))
    types = [event.type for event in events]
    assert collapsed(types) == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == KNOWN_TEXT
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == KNOWN_TEXT
    assert done.response.usage is not None
    # One response, one item: every event names the same ones.
    assert {e.response.id for e in events if hasattr(e, "response")} == {done.response.id}
    assert {e.item_id for e in events if hasattr(e, "item_id")} == {done.response.output[0].id}


def test_a_stream_on_the_wire_is_event_and_data_frames(server: RunningServer) -> None:
    response = raw(
        server, "POST", "/v1/responses", {"model": "fast", "input": "Hi", "stream": True}
    )
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-runestone-provider"] == "main"
    events = sse_events(response.body)
    assert all(name == data["type"] for name, data in events)
    first = events[4][1]
    assert first["type"] == "response.output_text.delta"
    assert set(first) == {
        "type",
        "item_id",
        "output_index",
        "content_index",
        "delta",
        "logprobs",
        "sequence_number",
    }
    assert first["logprobs"] == []


def test_the_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="fast", input="Hi") as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == KNOWN_TEXT
    assert final.output_text == KNOWN_TEXT
    assert final.status == "completed"


def test_a_function_call_round_trip(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    first = client.responses.create(
        model="tool-call", input="What is the weather in Paris?", tools=[WEATHER]
    )
    (call,) = first.output
    assert call.type == "function_call"
    assert call.id is not None
    assert call.id.startswith("fc_")
    assert call.name == "get_weather"
    assert call.status == "completed"
    assert json.loads(call.arguments) == json.loads(KNOWN_TOOL_ARGUMENTS)
    assert first.tools[0].type == "function"
    assert first.tools[0].name == "get_weather"

    follow_up: list[Any] = [
        {"role": "user", "content": "What is the weather in Paris?"},
        *first.output,
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"},
    ]
    second = client.responses.create(model="tool-call", input=follow_up)
    assert second.output_text == KNOWN_TEXT
    sent = upstream.attempts[-1].body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny, 21 C"}
    assert sent[-2]["role"] == "assistant"
    assert sent[-2]["tool_calls"] == [
        {
            "id": call.call_id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": call.arguments},
        }
    ]


def test_a_streamed_function_call_is_its_own_item_with_argument_deltas(
    client: openai.OpenAI,
) -> None:
    events = list(
        client.responses.create(model="tool-call", input="Weather?", tools=[WEATHER], stream=True)
    )
    assert collapsed([event.type for event in events]) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    added = events[2]
    assert added.type == "response.output_item.added"
    assert added.item.type == "function_call"
    assert added.item.name == "get_weather"
    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(pieces) > 1
    assert "".join(pieces) == KNOWN_TOOL_ARGUMENTS
    final = events[-1]
    assert final.type == "response.completed"
    (call,) = final.response.output
    assert call.type == "function_call"
    assert call.arguments == KNOWN_TOOL_ARGUMENTS
    assert call.call_id == added.item.call_id


def test_text_format_json_schema_goes_upstream_as_the_response_format(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response = client.responses.create(
        model="structured",
        input="Which city?",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"
    assert upstream.attempts[-1].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": schema, "strict": True},
    }


def test_max_output_tokens_cut_is_an_incomplete_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model="sim-text", input="Hi", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 3
    assert response.usage is not None
    assert response.usage.output_tokens == 3


def test_a_streamed_max_output_tokens_cut_ends_with_response_incomplete(
    client: openai.OpenAI,
) -> None:
    events = list(
        client.responses.create(model="sim-text", input="Hi", max_output_tokens=3, stream=True)
    )
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert "response.completed" not in {event.type for event in events}


def test_the_async_client_creates_and_streams(server: RunningServer) -> None:
    async def run() -> None:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=OPEN_KEY, max_retries=0
        ) as sdk:
            whole = await sdk.responses.create(model="fast", input="Hi")
            assert whole.output_text == KNOWN_TEXT
            stream = await sdk.responses.create(model="fast", input="Hi", stream=True)
            types = [event.type async for event in stream]
            assert collapsed(types) == TEXT_EVENTS
            async with sdk.responses.stream(model="fast", input="Hi") as helper:
                final = await helper.get_final_response()
            assert final.output_text == KNOWN_TEXT
            with pytest.raises(openai.APIError):
                async for _ in await sdk.responses.create(
                    model="cut-after:3", input="Hi", stream=True
                ):
                    pass

    asyncio.run(run())


# --------------------------------------------------------------------------- failures


def test_a_cut_after_content_makes_the_sdk_raise_not_complete(client: openai.OpenAI) -> None:
    received: list[str] = []
    types: list[str] = []

    def read_all() -> None:
        for event in client.responses.create(model="cut-after:3", input="Hi", stream=True):
            types.append(event.type)
            if event.type == "response.output_text.delta":
                received.append(event.delta)

    with pytest.raises(openai.APIError) as caught:
        read_all()
    assert "".join(received) == "Runestone keeps answering "
    assert "stream_cut" in caught.value.message
    assert "response.completed" not in types


def test_the_stream_helper_raises_on_a_cut_too(client: openai.OpenAI) -> None:
    with (
        pytest.raises(openai.APIError),
        client.responses.stream(model="cut-after:3", input="Hi") as stream,
    ):
        for _ in stream:
            pass


def test_an_error_after_content_is_an_error_event_then_response_failed(
    server: RunningServer,
) -> None:
    response = raw(
        server,
        "POST",
        "/v1/responses",
        {"model": "error-event-after:2", "input": "Hi", "stream": True},
    )
    assert response.status == 200
    events = sse_events(response.body)
    names = [name for name, _ in events]
    assert names[-2:] == ["error", "response.failed"]
    assert "response.completed" not in names
    error = events[-2][1]
    assert error["code"] == "upstream_error"
    assert error["error"]["code"] == "upstream_error"
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    # The text delivered before the failure, as an incomplete item.
    assert failed["output"][0]["status"] == "incomplete"
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


def test_a_failure_before_content_is_an_http_error_not_a_stream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="context-length", input="Hi", stream=True)
    assert caught.value.code == "context_length_exceeded"


def test_an_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-nonexistent", input="Hi")
    assert caught.value.code == "model_not_found"


def test_a_failover_answers_from_the_backup(client: openai.OpenAI) -> None:
    response = client.responses.with_raw_response.create(model="failover", input="Hi")
    assert response.headers["x-runestone-provider"] == "backup"
    assert response.parse().output_text == KNOWN_TEXT


# --------------------------------------------------------------------------- bad input


def test_previous_response_id_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="fast", input="Hi", previous_response_id="resp_123")
    assert caught.value.param == "previous_response_id"
    assert "stateless" in caught.value.message


def test_a_conversation_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="fast", input="Hi", conversation="conv_123")
    assert caught.value.param == "conversation"


def test_a_non_function_tool_is_a_400_naming_its_type(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="fast", input="Hi", tools=[WEATHER, {"type": "web_search"}])
    assert caught.value.param == "tools[1].type"
    assert "only function tools" in caught.value.message


def test_store_is_accepted_and_nothing_is_stored(client: openai.OpenAI) -> None:
    response = client.responses.create(model="fast", input="Hi", store=True)
    assert response.store is False
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(response.id)
    assert caught.value.code == "response_not_found"
    assert "stateless" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel(response.id)


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"input": None}, "input", "invalid_value"),
        # Only an upstream speaking the Responses API could take these; none here does.
        ({"seed": 1}, "seed", "model_not_supported"),
        (
            {"input": [{"type": "item_reference", "id": "msg_1"}]},
            "input[0].type",
            "model_not_supported",
        ),
        ({"max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
        ({"tool_choice": "required"}, "tool_choice", "invalid_value"),
    ],
)
def test_bad_fields_are_400s_in_openais_error_shape(
    server: RunningServer, fields: dict[str, Any], param: str, code: str
) -> None:
    body = {"model": "fast", "input": "Hi", **fields}
    body = {key: value for key, value in body.items() if value is not None}
    response = raw(server, "POST", "/v1/responses", body)
    assert response.status == 400
    error = response.error
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["code"] == ("missing_required_parameter" if param == "input" else code)


def test_a_missing_key_is_a_401_before_the_body_is_read(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/responses", b"not json", key=None)
    assert response.status == 401
    assert response.error["code"] == "missing_api_key"


def test_an_oversize_body_is_a_413(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/responses", {"model": "fast", "input": "x" * MAX_BODY})
    assert response.status == 413
    assert response.error["code"] == "request_too_large"


def test_malformed_json_is_a_400_invalid_json(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/responses", b"{")
    assert response.status == 400
    assert response.error["code"] == "invalid_json"
