"""OpenAI's Responses API on an OpenAI provider: the body passed through to ``/responses``
as the client wrote it, its events read for the books and passed on unchanged."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from runestone.exceptions import RateLimitedError, StreamCutError, UpstreamServerError
from runestone.io import DataPlane
from runestone.messages import (
    ChatRequest,
    Message,
    NativeBody,
    Passthrough,
    ReasoningDelta,
    Role,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    WireFormat,
)
from runestone.providers import OpenAIProvider
from runestone.providers.errors import AttemptState
from runestone.providers.openai_responses import OpenAIResponsesStreamDecoder, decode_response
from runestone.providers.sse import SSEEvent
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.providers.helpers import collect, make_provider

_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def responses_request(**fields: Any) -> ChatRequest:
    """A ``/v1/responses`` body kept as the client wrote it (the request model beside it
    is a plain one: only the native body matters here)."""
    body = {"model": "healthy", "input": "Say the known text", **fields}
    native = NativeBody(WireFormat.OPENAI_RESPONSES, _FIELDS.decode(json.dumps(body).encode()))
    return ChatRequest(
        model=body["model"],
        messages=(Message(Role.USER, "Say the known text"),),
        stream=bool(body.get("stream")),
        native=native,
    )


def _event(kind: str, seq: int, **payload: object) -> SSEEvent:
    data = {"type": kind, **payload, "sequence_number": seq}
    return SSEEvent(kind, json.dumps(data).encode())


_USAGE = {
    "input_tokens": 5,
    "input_tokens_details": {"cached_tokens": 2},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 3},
    "total_tokens": 12,
}
_RESPONSE = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
_MESSAGE = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant"}
_CALL = {
    "id": "fc_1",
    "type": "function_call",
    "status": "in_progress",
    "call_id": "call_1",
    "name": "get_weather",
    "arguments": "",
}
_PART = {"type": "output_text", "text": "", "annotations": []}


def _stream() -> list[SSEEvent]:
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    done = {
        **_RESPONSE,
        "status": "completed",
        "output": [{**_MESSAGE, "status": "completed"}, {**_CALL, "status": "completed"}],
        "usage": _USAGE,
    }
    return [
        _event("response.created", 0, response=_RESPONSE),
        _event("response.in_progress", 1, response=_RESPONSE),
        _event("response.output_item.added", 2, output_index=0, item=_MESSAGE),
        _event("response.content_part.added", 3, **where, part=_PART),
        _event("response.output_text.delta", 4, **where, delta="Hel", logprobs=[]),
        _event("response.output_text.delta", 5, **where, delta="lo", logprobs=[]),
        _event("response.output_text.done", 6, **where, text="Hello", logprobs=[]),
        _event("response.content_part.done", 7, **where, part={**_PART, "text": "Hello"}),
        _event("response.output_item.done", 8, output_index=0, item=_MESSAGE),
        _event("response.output_item.added", 9, output_index=1, item=_CALL),
        _event(
            "response.function_call_arguments.delta", 10, item_id="fc_1", output_index=1, delta="{}"
        ),
        _event(
            "response.function_call_arguments.done",
            11,
            item_id="fc_1",
            output_index=1,
            arguments="{}",
        ),
        _event("response.output_item.done", 12, output_index=1, item=_CALL),
        _event("response.completed", 13, response=done),
    ]


def test_a_responses_stream_is_decoded_for_the_books() -> None:
    request = responses_request(stream=True)
    decoder = OpenAIResponsesStreamDecoder(request, AttemptState("p", "m"))
    out: list[StreamEvent] = []
    for event in _stream():
        decoder.decode(event, out)
    assert out == [
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(0, "call_1", "get_weather", ""),
        ToolCallDelta(0, None, None, "{}"),
    ]
    assert decoder.finish_reason == "tool_calls"
    assert decoder.usage == Usage(5, 7, 2, 3)
    assert decoder.finished
    assert decoder.failure is None


def test_a_responses_stream_is_passed_on_whole_and_held_until_its_first_content() -> None:
    request = responses_request(stream=True)
    native = request.native
    assert native is not None
    decoder = OpenAIResponsesStreamDecoder(request, AttemptState("p", "m"), native)
    stream = _stream()
    out: list[StreamEvent] = []
    for event in stream:
        decoder.pass_on(event, out)
    passed = [event for event in out if type(event) is Passthrough]
    assert passed == out
    assert b"".join(p.data for p in passed) == b"".join(e.frame() for e in stream)
    # The opening frames wait for the first text, and go with it.
    assert passed[0].data == b"".join(e.frame() for e in stream[:5])
    assert [p.text for p in passed[:2]] == ["Hel", "lo"]
    # Another upstream cannot carry on a Responses stream: every content frame is opaque.
    assert passed[0].opaque
    assert decoder.finish_reason == "tool_calls"
    assert decoder.finished


def test_reasoning_summaries_are_reasoning() -> None:
    decoder = OpenAIResponsesStreamDecoder(responses_request(), AttemptState("p", "m"))
    out: list[StreamEvent] = []
    event = _event(
        "response.reasoning_summary_text.delta",
        3,
        item_id="rs_1",
        output_index=0,
        summary_index=0,
        delta="Thinking",
    )
    decoder.decode(event, out)
    assert out == [ReasoningDelta("Thinking")]
    assert decoder.has_content


@pytest.mark.parametrize(
    ("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")]
)
def test_an_incomplete_response_finishes_with_its_reason(reason: str, finish: str) -> None:
    decoder = OpenAIResponsesStreamDecoder(responses_request(), AttemptState("p", "m"))
    response = {**_RESPONSE, "status": "incomplete", "incomplete_details": {"reason": reason}}
    decoder.decode(_event("response.incomplete", 9, response=response), [])
    assert decoder.finish_reason == finish
    assert decoder.finished


def test_an_error_event_is_the_failure_and_response_failed_does_not_replace_it() -> None:
    decoder = OpenAIResponsesStreamDecoder(responses_request(), AttemptState("p", "m"))
    decoder.decode(
        _event("error", 5, code="rate_limit_exceeded", message="slow down", param=None), []
    )
    assert isinstance(decoder.failure, RateLimitedError)
    failed = {**_RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "x"}}
    decoder.decode(_event("response.failed", 6, response=failed), [])
    assert isinstance(decoder.failure, RateLimitedError)
    alone = OpenAIResponsesStreamDecoder(responses_request(), AttemptState("p", "m"))
    alone.decode(_event("response.failed", 6, response=failed), [])
    assert isinstance(alone.failure, UpstreamServerError)
    assert not alone.finished


def test_an_unreadable_event_is_skipped() -> None:
    decoder = OpenAIResponsesStreamDecoder(responses_request(), AttemptState("p", "m"))
    decoder.decode(SSEEvent("response.output_text.delta", b'{"type": "respo'), [])
    assert decoder.malformed == 1


def test_a_whole_response_is_read_from_its_output_items() -> None:
    data = {
        **_RESPONSE,
        "status": "completed",
        "output": [
            {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "T"}]},
            {
                **_MESSAGE,
                "content": [
                    {**_PART, "text": "Hel"},
                    {"type": "refusal", "refusal": "lo"},
                ],
            },
            {**_CALL, "arguments": '{"a": 1}'},
        ],
        "usage": _USAGE,
    }
    completion = decode_response(data, responses_request(), "p")
    assert completion.text == "Hello"
    assert completion.reasoning == "T"
    assert completion.tool_calls == (ToolCall("call_1", "get_weather", '{"a": 1}'),)
    assert completion.finish_reason == "tool_calls"
    assert completion.usage == Usage(5, 7, 2, 3)
    plain = decode_response({**data, "output": data["output"][1:2]}, responses_request(), "p")
    assert plain.finish_reason == "stop"
    with pytest.raises(KeyError):
        decode_response({"object": "response"}, responses_request(), "p")


def test_a_responses_body_changes_in_its_model_and_stream_alone(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    assert isinstance(provider, OpenAIProvider)
    request = responses_request(
        model="alias",
        store=True,
        previous_response_id="resp_0",
        max_output_tokens=9,
        include=["reasoning.encrypted_content"],
        stream_options={"include_obfuscation": False},
    )
    native = request.native
    assert native is not None
    assert provider.endpoint(native) == provider.base_url + "/responses"
    body = json.loads(provider.encode_native(native, "gpt-5", stream=True))
    assert body == {
        "model": "gpt-5",
        "input": "Say the known text",
        "store": True,
        "previous_response_id": "resp_0",
        "max_output_tokens": 9,  # never renamed
        "include": ["reasoning.encrypted_content"],
        "stream_options": {"include_obfuscation": False},  # no usage chunk to ask for
        "stream": True,
    }
    assert json.loads(provider.encode_native(native, "gpt-5", stream=False))["stream"] is False


@pytest.mark.parametrize(
    ("kind", "options", "speaks"),
    [
        ("openai", {}, True),
        ("openai", {"responses": False}, False),
        ("openai_compatible", {}, False),
        ("openai_compatible", {"responses": True}, True),
    ],
)
def test_which_providers_speak_the_responses_api(
    plane: DataPlane, fake_upstream: FakeUpstream, kind: str, options: dict[str, Any], speaks: bool
) -> None:
    provider = make_provider(plane, fake_upstream, kind, **options)
    assert (WireFormat.OPENAI_RESPONSES in provider.wires) is speaks
    assert WireFormat.OPENAI_CHAT in provider.wires
    native = responses_request().native
    assert (provider.native_body(responses_request()) is not None) is speaks
    assert native is not None


@pytest.mark.parametrize(
    ("kind", "options"), [("openai", {}), ("openai_compatible", {"responses": True})]
)
def test_a_responses_stream_goes_to_the_responses_endpoint_and_comes_back_as_sent(
    plane: DataPlane, fake_upstream: FakeUpstream, kind: str, options: dict[str, Any]
) -> None:
    provider = make_provider(plane, fake_upstream, kind, **options)
    outcome = collect(plane, provider, responses_request(stream=True, store=False))
    assert outcome.error is None
    passed = [event for event in outcome.events if type(event) is Passthrough]
    assert "".join(p.text for p in passed) == KNOWN_TEXT
    frames = b"".join(p.data for p in passed).decode()
    assert frames.startswith("event: response.created\n")
    assert "event: response.completed\n" in frames
    done = outcome.done
    assert done is not None
    assert done.finish_reason == "stop"
    assert outcome.usage is not None
    assert outcome.usage.completion_tokens == len(KNOWN_TEXT.split(" "))
    (attempt,) = fake_upstream.attempts
    assert attempt.api == "openai_responses"
    assert attempt.body == {
        "model": "healthy",
        "input": "Say the known text",
        "stream": True,
        "store": False,
    }


def test_a_cut_responses_stream_is_a_stream_cut(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    outcome = collect(plane, provider, responses_request(model="cut-after:3", stream=True))
    assert isinstance(outcome.error, StreamCutError)
    assert outcome.error.content_delivered
    failed = collect(plane, provider, responses_request(model="error-event-after:2", stream=True))
    # After content an upstream's error event is a cut, as on every stream.
    assert isinstance(failed.error, StreamCutError)
    assert "server_error" in str(failed.error)


def test_a_whole_response_is_the_upstreams_body(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    completion = plane.run(provider.complete(responses_request()), timeout=10)
    assert completion.text == KNOWN_TEXT
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.native is not None
    body = json.loads(completion.native)
    assert body["object"] == "response"
    assert body["output"][0]["content"][0]["text"] == KNOWN_TEXT
    (attempt,) = fake_upstream.attempts
    assert attempt.api == "openai_responses"
