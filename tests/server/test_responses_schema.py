"""The Responses dialect: whole responses and their event streams, checked field by field
against the openai SDK's own types (validated, not merely constructed)."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from openai.types.responses import (
    Response,
    ResponseStreamEvent,
)

from runestone.messages import Completion, FinishReason, ToolCall, ToolCallDelta, Usage
from runestone.server.errors import ApiError
from runestone.server.responses_schema import (
    ResponsesDialect,
    ResponseStream,
    parse_responses,
    response_body,
)

EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def events(data: bytes) -> list[dict[str, Any]]:
    """Each SSE frame's data, checked against the SDK's event types and its ``event:`` name."""
    out = []
    for frame in data.decode().split("\n\n"):
        if not frame:
            continue
        name, payload = frame.split("\n")
        event = json.loads(payload.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        EVENTS.validate_python(event)
        out.append(event)
    return out


def stream(**request: Any) -> ResponseStream:
    call = parse_responses({"model": "fast", "input": "Hi", "stream": True, **request})
    encoder = ResponsesDialect().stream_encoder(call)
    assert isinstance(encoder, ResponseStream)
    return encoder


def test_a_text_stream_is_openais_sequence() -> None:
    encoder = stream()
    encoder.set_model("healthy")
    data = (
        encoder.opening()
        + encoder.text("Hel")
        + encoder.text("lo")
        + encoder.closing(FinishReason.STOP, Usage(3, 2))
    )
    sent = events(data)
    assert [e["type"] for e in sent] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in sent] == list(range(10))
    created = sent[0]["response"]
    assert created["status"] == "in_progress"
    assert created["output"] == []
    assert created["model"] == "healthy"
    added = sent[2]
    assert added["item"]["status"] == "in_progress"
    assert added["item"]["content"] == []
    item_id = added["item"]["id"]
    assert item_id.startswith("msg_")
    assert sent[4] == {
        "type": "response.output_text.delta",
        "item_id": item_id,
        "output_index": 0,
        "content_index": 0,
        "logprobs": [],
        "delta": "Hel",
        "sequence_number": 4,
    }
    assert sent[6]["text"] == "Hello"
    assert sent[7]["part"] == {
        "type": "output_text",
        "text": "Hello",
        "annotations": [],
        "logprobs": [],
    }
    final = Response.model_validate(sent[-1]["response"])
    assert final.status == "completed"
    assert final.output_text == "Hello"
    assert final.id == created["id"]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 2)
    assert final.usage.total_tokens == 5
    assert final.usage.input_tokens_details.cached_tokens == 0
    assert final.usage.output_tokens_details.reasoning_tokens == 0
    assert final.store is False


def test_text_then_tool_calls_are_items_in_order() -> None:
    encoder = stream(tools=[WEATHER])
    data = (
        encoder.opening()
        + encoder.text("Looking.")
        + encoder.tool_call(ToolCallDelta(0, "call_a", "get_weather", '{"lo'))
        + encoder.tool_call(ToolCallDelta(0, arguments='c": 1}'))
        + encoder.tool_call(ToolCallDelta(1, "call_b", "get_weather", "{}"))
        + encoder.closing(FinishReason.TOOL_CALLS, Usage(1, 1))
    )
    sent = events(data)
    kinds = [e["type"] for e in sent]
    assert kinds[2:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    call = sent[8]["item"]
    assert call["type"] == "function_call"
    assert call["id"].startswith("fc_")
    assert (call["call_id"], call["name"], call["arguments"]) == ("call_a", "get_weather", "")
    assert sent[8]["output_index"] == 1
    assert sent[11]["arguments"] == '{"loc": 1}'
    assert sent[11]["name"] == "get_weather"  # the spec requires it; openai 3.x reads it
    final = Response.model_validate(sent[-1]["response"])
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    assert final.tools[0].type == "function"
    assert final.status == "completed"


def test_a_length_cut_is_response_incomplete() -> None:
    encoder = stream(max_output_tokens=2)
    sent = events(
        encoder.opening() + encoder.text("a ") + encoder.closing(FinishReason.LENGTH, Usage(1, 2))
    )
    assert sent[-1]["type"] == "response.incomplete"
    final = sent[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["max_output_tokens"] == 2
    assert final["output"][0]["status"] == "incomplete"


def test_an_answer_with_no_content_is_a_completed_empty_response() -> None:
    encoder = stream()
    sent = events(encoder.opening() + encoder.closing(FinishReason.STOP, None))
    assert [e["type"] for e in sent] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    assert sent[-1]["response"]["output"] == []
    assert sent[-1]["response"]["usage"] is None


def test_a_failure_is_an_error_event_then_response_failed() -> None:
    encoder = stream()
    error = ApiError(502, "upstream broke off", code="upstream_error")
    sent = events(encoder.opening() + encoder.text("Hel") + encoder.error(error))
    kinds = [e["type"] for e in sent]
    # The open item is closed first (as incomplete), so the output so far is whole items.
    assert kinds[-5:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "error",
        "response.failed",
    ]
    assert sent[-3]["item"]["status"] == "incomplete"
    assert "response.completed" not in kinds
    failure = sent[-2]
    assert failure["code"] == "upstream_error"
    assert failure["message"] == "upstream broke off"
    # The nested object is what the openai SDK raises as an APIError.
    assert failure["error"] == {
        "message": "upstream broke off",
        "type": "server_error",
        "param": None,
        "code": "upstream_error",
    }
    failed = Response.model_validate(sent[-1]["response"])
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "server_error"
    assert failed.output[0].type == "message"
    assert failed.output[0].status == "incomplete"
    assert [e["sequence_number"] for e in sent] == list(range(len(sent)))


def test_a_rate_limit_failure_has_the_rate_limit_code() -> None:
    sent = events(stream().error(ApiError(429, "slow down", code="upstream_rate_limited")))
    assert sent[-1]["response"]["error"]["code"] == "rate_limit_exceeded"


def test_a_whole_response_is_the_sdks_response() -> None:
    call = parse_responses(
        {
            "model": "fast",
            "input": "Hi",
            "tools": [WEATHER],
            "instructions": "Be brief.",
            "text": {"format": {"type": "json_object"}},
            "metadata": {"k": "v"},
            "store": True,
        }
    )
    completion = Completion(
        "Hi there",
        (ToolCall("call_1", "get_weather", "{}"),),
        FinishReason.TOOL_CALLS,
        Usage(4, 5),
        "main",
        "healthy",
    )
    body = ResponsesDialect().whole(completion, call)
    response = Response.model_validate(body)
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "healthy"
    assert response.output_text == "Hi there"
    message, function = response.output
    assert message.type == "message"
    assert message.status == "completed"
    assert function.type == "function_call"
    assert (function.call_id, function.name, function.arguments) == ("call_1", "get_weather", "{}")
    assert function.status == "completed"
    assert response.instructions == "Be brief."
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_object"
    assert response.metadata == {"k": "v"}
    assert response.store is False
    assert response.parallel_tool_calls is True
    assert response.tool_choice == "auto"
    assert response.error is None
    assert response.incomplete_details is None


@pytest.mark.parametrize(
    ("finish", "reason"),
    [(FinishReason.LENGTH, "max_output_tokens"), (FinishReason.CONTENT_FILTER, "content_filter")],
)
def test_a_cut_whole_response_is_incomplete_with_its_reason(finish: str, reason: str) -> None:
    call = parse_responses({"model": "fast", "input": "Hi"})
    body = ResponsesDialect().whole(Completion("a", finish_reason=finish), call)
    response = Response.model_validate(body)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == reason


def test_an_error_body_is_openais_shape() -> None:
    error = ApiError(400, "bad", code="invalid_value", param="previous_response_id")
    assert ResponsesDialect().error_body(error) == {
        "error": {
            "message": "bad",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "invalid_value",
        }
    }


def test_the_response_body_never_claims_storage_or_state() -> None:
    body = response_body(
        response_id="resp_x",
        created_at=1,
        model="m",
        status="completed",
        output=[],
        usage=None,
        echo={},
    )
    assert body["store"] is False
    assert body["previous_response_id"] is None
    assert body["background"] is False
