"""OpenAI's legacy completions on an OpenAI provider: the body passed through to
``/completions`` as the client wrote it, its ``text_completion`` frames read for the books
and passed on unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runestone.io import DataPlane
from runestone.messages import ChatRequest, Passthrough, StreamEvent, Usage
from runestone.providers import OpenAIProvider
from runestone.providers.errors import AttemptState
from runestone.providers.openai import OpenAICompletionsStreamDecoder
from runestone.providers.sse import SSEEvent
from runestone.server.completions_schema import CompletionsDialect
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.providers.helpers import collect, make_provider


def completion_request(**fields: Any) -> ChatRequest:
    """A ``/v1/completions`` body as the gateway's dialect reads it."""
    body = {"model": "healthy", "prompt": "Say the known text", **fields}
    return CompletionsDialect().decode(json.dumps(body).encode()).request


def _chunk(text: str | None, finish: str | None = None, **extra: object) -> SSEEvent:
    choices = (
        []
        if text is None
        else [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]
    )
    chunk = {"id": "cmpl-1", "object": "text_completion", "choices": choices, **extra}
    return SSEEvent("message", json.dumps(chunk).encode())


_STREAM = [
    _chunk(""),  # nothing yet: held until the first text
    _chunk("Hel"),
    _chunk('lo "reasoning'),  # a prompt's words are text, never a reasoning field
    _chunk("", "length"),
    _chunk(None, usage={"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}),
    SSEEvent("message", b"[DONE]"),
]


@pytest.mark.parametrize("usage_chunk", [False, True])
def test_a_completions_stream_is_passed_on_and_read_for_the_books(usage_chunk: bool) -> None:
    stream_options = {"include_usage": True} if usage_chunk else None
    request = completion_request(stream=True, stream_options=stream_options)
    native = request.native
    assert native is not None
    decoder = OpenAICompletionsStreamDecoder(request, AttemptState("p", "m"), native)
    out: list[StreamEvent] = []
    for event in _STREAM:
        decoder.pass_on(event, out)
    passed = [event for event in out if type(event) is Passthrough]
    assert passed == out
    wanted = [e.frame() for e in _STREAM if usage_chunk or e is not _STREAM[4]]
    assert b"".join(p.data for p in passed) == b"".join(wanted)
    assert passed[0].data == _STREAM[0].frame() + _STREAM[1].frame()  # held for the text
    assert [p.text for p in passed[:2]] == ["Hel", 'lo "reasoning']
    assert not any(p.opaque for p in passed)
    assert decoder.finish_reason == "length"
    assert decoder.usage == Usage(4, 2)
    assert decoder.finished


def test_a_completions_body_keeps_every_field_and_asks_for_the_usage_chunk(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    assert isinstance(provider, OpenAIProvider)
    request = completion_request(
        model="alias",
        prompt=[[1, 2], [3]],
        max_tokens=9,
        echo=True,
        n=2,
        stream_options={"include_obfuscation": False},
    )
    native = request.native
    assert native is not None
    body = json.loads(provider.encode_native(native, "gpt-3.5-turbo-instruct", stream=True))
    assert body == {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": [[1, 2], [3]],
        # Legacy completions take max_tokens only: never renamed as chat's limit is.
        "max_tokens": 9,
        "echo": True,
        "n": 2,
        "stream_options": {"include_obfuscation": False, "include_usage": True},
        "stream": True,
    }
    whole = json.loads(provider.encode_native(native, "gpt-3.5-turbo-instruct", stream=False))
    assert whole["stream_options"] == {"include_obfuscation": False}  # as the client sent it
    assert whole["stream"] is False


def test_stream_usage_off_leaves_stream_options_as_the_client_wrote_them(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai_compatible", stream_usage=False)
    native = completion_request().native
    assert native is not None
    body = json.loads(provider.encode_native(native, "m", stream=True))
    assert "stream_options" not in body


@pytest.mark.parametrize("kind", ["openai", "openai_compatible"])
def test_a_completions_stream_goes_to_the_completions_endpoint_and_comes_back_as_sent(
    plane: DataPlane, fake_upstream: FakeUpstream, kind: str
) -> None:
    provider = make_provider(plane, fake_upstream, kind)
    outcome = collect(plane, provider, completion_request(stream=True))
    assert outcome.error is None
    passed = [event for event in outcome.events if type(event) is Passthrough]
    assert "".join(p.text for p in passed) == KNOWN_TEXT
    frames = b"".join(p.data for p in passed).decode()
    assert '"object":"text_completion"' in frames
    assert frames.endswith("data: [DONE]\n\n")
    assert '"usage":{' not in frames  # not asked for by the client: kept from it
    done = outcome.done
    assert done is not None
    assert done.finish_reason == "stop"
    assert outcome.usage is not None
    assert outcome.usage.completion_tokens == len(KNOWN_TEXT.split(" "))
    (attempt,) = fake_upstream.attempts
    assert attempt.api == "openai_completions"
    assert attempt.body["stream_options"] == {"include_usage": True}


def test_a_whole_completion_is_the_upstreams_body(
    plane: DataPlane, fake_upstream: FakeUpstream
) -> None:
    provider = make_provider(plane, fake_upstream, "openai")
    completion = plane.run(provider.complete(completion_request()), timeout=10)
    assert completion.text == KNOWN_TEXT
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.native is not None
    body = json.loads(completion.native)
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == KNOWN_TEXT
    (attempt,) = fake_upstream.attempts
    assert attempt.api == "openai_completions"
    assert attempt.body == {"model": "healthy", "prompt": "Say the known text", "stream": False}
