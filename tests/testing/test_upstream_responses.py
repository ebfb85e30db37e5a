"""The fake upstream's ``POST /v1/responses``: the Responses API's own events and bodies,
checked against the openai SDK's types, with the same behaviours as every route."""

from __future__ import annotations

import asyncio
import json
import typing
from typing import Any, Final

import aiohttp
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from runestone.testing.upstream import (
    KNOWN_TEXT,
    KNOWN_TOKENS,
    KNOWN_TOOL_ARGUMENTS,
    FakeUpstream,
)


def _event_types() -> dict[str, type[pydantic.BaseModel]]:
    """Each stream event's model, by its ``type`` (the SDK's union is not discriminated
    for pydantic, so a failure would list every member)."""
    union = typing.get_args(ResponseStreamEvent)[0]
    return {
        typing.get_args(member.model_fields["type"].annotation)[0]: member
        for member in typing.get_args(union)
    }


_EVENTS: Final = _event_types()
_TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]


def post(up: FakeUpstream, body: dict[str, Any]) -> tuple[int, str, bytes]:
    async def go() -> tuple[int, str, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(up.openai_base_url + "/responses", json=body) as response,
        ):
            return response.status, response.content_type, await response.read()

    return asyncio.run(go())


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each whole frame; each data checked against the SDK's types."""
    out = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        _EVENTS[data["type"]].model_validate(data, strict=False)
        out.append((lines["event"], data))
    return out


def body(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "input": "Please say the known text", **fields}


def test_a_healthy_stream_is_the_responses_event_sequence(fake_upstream: FakeUpstream) -> None:
    status, kind, raw = post(fake_upstream, body("healthy", stream=True))
    assert (status, kind) == (200, "text/event-stream")
    got = events(raw)
    names = [name for name, _ in got]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(KNOWN_TOKENS),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["sequence_number"] for _, data in got] == list(range(len(got)))
    text = "".join(data["delta"] for name, data in got if name == "response.output_text.delta")
    assert text == KNOWN_TEXT
    final = Response.model_validate(got[-1][1]["response"])
    assert final.output_text == KNOWN_TEXT
    assert final.status == "completed"
    assert final.usage is not None
    assert final.usage.input_tokens == 5
    assert final.usage.output_tokens == len(KNOWN_TOKENS)
    (attempt,) = fake_upstream.attempts
    assert attempt.api == "openai_responses"
    assert attempt.stream


def test_a_whole_answer_is_a_response_object(fake_upstream: FakeUpstream) -> None:
    status, kind, raw = post(fake_upstream, body("healthy", instructions="Be brief."))
    assert (status, kind) == (200, "application/json")
    response = Response.model_validate_json(raw)
    assert response.output_text == KNOWN_TEXT
    assert response.usage is not None
    assert response.usage.input_tokens == 7  # the instructions count too


def test_a_tool_call_is_a_function_call_item(fake_upstream: FakeUpstream) -> None:
    tools = [{"type": "web_search"}, *_TOOLS]
    _, _, raw = post(fake_upstream, body("tool-call", stream=True, tools=tools))
    got = events(raw)
    added = [data for name, data in got if name == "response.output_item.added"]
    assert [item["item"]["type"] for item in added] == ["function_call"]
    assert added[0]["item"]["name"] == "get_weather"
    pieces = [d["delta"] for n, d in got if n == "response.function_call_arguments.delta"]
    assert "".join(pieces) == KNOWN_TOOL_ARGUMENTS
    final = Response.model_validate(got[-1][1]["response"])
    (call,) = final.output
    assert call.type == "function_call"
    assert call.arguments == KNOWN_TOOL_ARGUMENTS
    _, _, whole = post(fake_upstream, body("tool-call", tools=_TOOLS))
    (item,) = Response.model_validate_json(whole).output
    assert item.type == "function_call"


def test_error_event_after_n_is_an_error_then_response_failed(
    fake_upstream: FakeUpstream,
) -> None:
    _, _, raw = post(fake_upstream, body("error-event-after:2", stream=True))
    got = events(raw)
    names = [name for name, _ in got]
    assert names[-2:] == ["error", "response.failed"]
    assert names.count("response.output_text.delta") == 2
    assert "response.completed" not in names
    assert got[-2][1]["code"] == "server_error"
    assert [data["sequence_number"] for _, data in got] == list(range(len(got)))


@pytest.mark.parametrize("model", ["rate-limit", "unavailable"])
def test_failures_before_the_answer_are_openai_error_bodies(
    fake_upstream: FakeUpstream, model: str
) -> None:
    status, _, raw = post(fake_upstream, body(model, stream=True))
    assert status in (429, 503)
    assert "message" in json.loads(raw)["error"]


def test_no_done_ends_without_response_completed(fake_upstream: FakeUpstream) -> None:
    _, _, raw = post(fake_upstream, body("no-done", stream=True))
    names = [name for name, _ in events(raw)]
    assert names[-1] == "response.output_item.done"


def test_a_malformed_frame_is_not_json(fake_upstream: FakeUpstream) -> None:
    _, _, raw = post(fake_upstream, body("malformed-chunk", stream=True))
    frames = [f for f in raw.decode().split("\n\n") if f.strip()]
    bad = [f for f in frames if not f.rstrip().endswith("}")]
    assert len(bad) == 1
    assert frames[-1].startswith("event: response.completed")
