"""OpenAI's legacy completions request schema: every kind of prompt is taken, every bad input
refused naming its field, and the fields the gateway does not read are left alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runestone.exceptions import RequestValidationError
from runestone.messages import Role
from runestone.routing.requirements import CHARS_PER_TOKEN, Requirements
from runestone.server.completions_schema import CompletionsDialect
from runestone.wire.openai_completions import (
    PROMPT,
    CompletionsBody,
    convert_completions_body,
    decode_completions_body,
)
from runestone.wire.schema import BodyError


def decoded(**fields: Any) -> CompletionsBody:
    body, _ = decode_completions_body(json.dumps({"model": "m", **fields}).encode())
    return body


@pytest.mark.parametrize(
    "prompt",
    ["Once upon a time", "", ["a", "b"], [1734, 318, 0], [[1, 2], [3]]],
)
def test_every_kind_of_prompt_is_taken(prompt: object) -> None:
    body = decoded(prompt=prompt)
    assert body.prompt == prompt
    assert body == convert_completions_body({"model": "m", "prompt": prompt})


def test_the_fields_not_read_are_kept_as_written() -> None:
    raw = (
        b'{"model": "m", "prompt": "x", "n": 2, "best_of": 3, "echo": true, "logprobs": 5, '
        b'"suffix": "!"}'
    )
    body, fields = decode_completions_body(raw)
    assert (body.model, body.prompt, body.stream, body.max_tokens) == ("m", "x", None, None)
    assert list(fields) == ["model", "prompt", "n", "best_of", "echo", "logprobs", "suffix"]
    assert bytes(fields["echo"]) == b"true"
    assert bytes(fields["suffix"]) == b'"!"'


def test_stream_options_include_usage_is_read() -> None:
    assert decoded(prompt="x", stream=True, stream_options={"include_usage": True}).include_usage
    assert not decoded(prompt="x", stream=True, stream_options={}).include_usage
    assert not decoded(prompt="x").include_usage


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"prompt": "x", "model": None}, "model", "the model"),
        ({"prompt": "x", "model": " "}, "model", "non-empty"),
        ({"prompt": "x", "model": 3}, "model", "got a number"),
        ({"model": "m"}, "prompt", "required"),
        ({"model": "m", "prompt": None}, "prompt", PROMPT),
        ({"model": "m", "prompt": []}, "prompt", "got an empty list"),
        ({"model": "m", "prompt": 3}, "prompt", "got a number"),
        ({"model": "m", "prompt": {"text": "x"}}, "prompt", "got an object"),
        ({"model": "m", "prompt": ["a", 1]}, "prompt[1]", "a string, as prompt[0] is"),
        ({"model": "m", "prompt": [1, "a"]}, "prompt[1]", "a token id"),
        ({"model": "m", "prompt": [1, True]}, "prompt[1]", "got a boolean"),
        ({"model": "m", "prompt": [1, -2]}, "prompt[1]", "got -2"),
        ({"model": "m", "prompt": [1, 2.5]}, "prompt[1]", "got 2.5"),
        ({"model": "m", "prompt": [[1], []]}, "prompt[1]", "got an empty list"),
        ({"model": "m", "prompt": [[1], 2]}, "prompt[1]", "a non-empty list of token ids"),
        ({"model": "m", "prompt": [[1], [2, "x"]]}, "prompt[1][1]", "a token id"),
        ({"model": "m", "prompt": [None]}, "prompt[0]", "got null"),
        ({"model": "m", "prompt": [{}]}, "prompt[0]", "got an object"),
        ({"model": "m", "prompt": "x", "stream": "yes"}, "stream", "true or false"),
        ({"model": "m", "prompt": "x", "max_tokens": -1}, "max_tokens", "at least 0"),
        ({"model": "m", "prompt": "x", "max_tokens": 1.5}, "max_tokens", "an integer"),
        ({"model": "m", "prompt": "x", "stream_options": 1}, "stream_options", "include_usage"),
        (
            {"model": "m", "prompt": "x", "stream_options": {"include_usage": "y"}},
            "stream_options.include_usage",
            "true or false",
        ),
    ],
)
def test_a_bad_input_is_refused_naming_its_field(
    fields: dict[str, Any], field: str, says: str
) -> None:
    for attempt in (
        lambda: decode_completions_body(json.dumps(fields).encode()),
        lambda: convert_completions_body(fields),
    ):
        with pytest.raises(RequestValidationError) as raised:
            attempt()
        assert raised.value.field == field
        assert says in str(raised.value)


@pytest.mark.parametrize("body", [b"", b"[]", b'"x"', b"{", b"null"])
def test_a_body_that_is_no_json_object_is_a_body_error(body: bytes) -> None:
    with pytest.raises(BodyError):
        decode_completions_body(body)


def test_max_tokens_zero_is_taken_and_needs_no_room_for_an_answer() -> None:
    assert decoded(prompt="x", max_tokens=0).max_tokens == 0
    raw = b'{"model": "m", "prompt": "x", "max_tokens": 0, "echo": true}'
    request = CompletionsDialect().decode(raw).request
    assert request.max_tokens is None
    assert Requirements.from_request(request).max_tokens is None
    assert request.native is not None
    assert bytes(request.native.fields["max_tokens"]) == b"0"  # passed on as written


# --------------------------------------------------------------------------- for routing


def test_the_request_for_routing_holds_the_longest_prompt_and_the_body_itself() -> None:
    raw = json.dumps(
        {"model": "m", "prompt": ["short", "the longest one"], "max_tokens": 7, "stream": True}
    ).encode()
    call = CompletionsDialect().decode(raw)
    request = call.request
    (message,) = request.messages
    assert (message.role, message.content) == (Role.USER, "the longest one")
    assert (request.model, request.max_tokens, request.stream) == ("m", 7, True)
    native = request.native
    assert native is not None
    assert native.only_native == ("prompt",)
    assert native.needs == {"completions"}
    assert not native.usage_chunk
    assert not call.include_usage


@pytest.mark.parametrize(("prompt", "tokens"), [([5] * 300, 300), ([[1] * 10, [2] * 250], 250)])
def test_token_ids_count_as_tokens_in_the_prompt_estimate(prompt: object, tokens: int) -> None:
    raw = json.dumps({"model": "m", "prompt": prompt}).encode()
    request = CompletionsDialect().decode(raw).request
    assert len(request.messages[0].text) == tokens * CHARS_PER_TOKEN
    needs = Requirements.from_request(request)
    assert tokens <= needs.prompt_tokens <= tokens + 10
    assert needs.completions
