"""OpenAI's wire format: stream_options read strictly, chunks and whole answers exact."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runestone.exceptions import RequestValidationError
from runestone.messages import ReasoningDelta, ToolCall, ToolCallDelta, Usage
from runestone.server.errors import ApiError
from runestone.server.openai_schema import ChunkEncoder, completion_body, parse_chat

USER = [{"role": "user", "content": "hi"}]


def frames(data: bytes) -> list[Any]:
    out = []
    for frame in data.decode().split("\n\n"):
        if frame:
            assert frame.startswith("data: ")
            payload = frame.removeprefix("data: ")
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_include_usage_is_read_from_stream_options() -> None:
    call = parse_chat(
        {"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert call.include_usage
    assert call.request.stream
    assert not parse_chat({"model": "m", "messages": USER, "stream": True}).include_usage


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": "yes"}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ],
)
def test_bad_stream_options_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_chat({"model": "m", "messages": USER, **body})
    assert caught.value.field == field


def test_chunks_carry_one_id_and_the_model_and_end_with_done() -> None:
    encoder = ChunkEncoder("alias", include_usage=True, completion_id="chatcmpl-1", created=7)
    encoder.set_model("real-model")
    data = (
        encoder.opening()
        + encoder.text('He said "hi"\n')
        + encoder.tool_call(ToolCallDelta(0, "call_1", "f", '{"a"'))
        + encoder.tool_call(ToolCallDelta(0, None, None, ": 1}"))
        + encoder.closing("tool_calls", Usage(2, 3))
    )
    chunks = frames(data)
    assert chunks[-1] == "[DONE]"
    objects = chunks[:-1]
    assert {c["id"] for c in objects} == {"chatcmpl-1"}
    assert {c["model"] for c in objects} == {"real-model"}
    assert {c["created"] for c in objects} == {7}
    assert objects[1]["choices"][0]["delta"] == {"content": 'He said "hi"\n'}
    assert objects[2]["choices"][0]["delta"] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"a"'},
            }
        ]
    }
    assert objects[3]["choices"][0]["delta"] == {
        "tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]
    }
    assert objects[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert objects[5]["choices"] == []
    assert objects[5]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert all(c["usage"] is None for c in objects[:5])


def test_an_error_frame_is_the_error_shape_alone() -> None:
    (frame,) = frames(ChunkEncoder.error(ApiError(502, "cut", code="upstream_error")))
    assert frame == {
        "error": {"message": "cut", "type": "server_error", "param": None, "code": "upstream_error"}
    }


def test_a_whole_answer_with_only_tool_calls_has_null_content() -> None:
    body = completion_body(
        completion_id="chatcmpl-2",
        created=1,
        model="m",
        text="",
        tool_calls=(ToolCall("call_1", "f", "{}"),),
        finish_reason="tool_calls",
        usage=None,
    )
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    assert body["usage"] is None


def test_reasoning_is_a_reasoning_content_delta_and_usage_details_are_kept() -> None:
    encoder = ChunkEncoder("m", include_usage=True, completion_id="c1", created=1)
    frames = [
        json.loads(line[6:])
        for line in (
            encoder.reasoning(ReasoningDelta("Hmm."))
            + encoder.reasoning(ReasoningDelta("", "sig"))  # no place for a signature
            + encoder.closing("stop", Usage(10, 4, cached_tokens=6, reasoning_tokens=2))
        )
        .decode()
        .split("\n\n")
        if line.startswith("data: {")
    ]
    assert frames[0]["choices"][0]["delta"] == {"reasoning_content": "Hmm."}
    assert frames[-1]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert len(frames) == 3
