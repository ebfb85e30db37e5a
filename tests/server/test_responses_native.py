"""The Responses dialect keeps the body for a pass-through: what only an upstream speaking
the Responses API can carry is named (``only_native``) instead of refused, and the rest
is still checked and translated."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runestone.exceptions import RequestValidationError
from runestone.messages import Message, Role, WireFormat
from runestone.server.dialect import ChatCall
from runestone.server.errors import ApiError
from runestone.server.responses_schema import ResponsesDialect
from runestone.wire.schema import BodyError

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def decode(**fields: Any) -> ChatCall:
    body = {"model": "fast", "input": "Hi", **fields}
    return ResponsesDialect().decode(json.dumps(body).encode())


def test_a_plain_body_is_kept_whole_and_goes_anywhere() -> None:
    call = decode(store=True, temperature=0.5)
    native = call.request.native
    assert native is not None
    assert native.wire is WireFormat.OPENAI_RESPONSES
    assert native.only_native == ()
    assert list(native.fields) == ["model", "input", "store", "temperature"]
    assert call.request.messages == (Message(Role.USER, "Hi"),)
    assert call.request.temperature == 0.5


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"previous_response_id": "resp_1"}, ("previous_response_id",)),
        ({"conversation": "conv_1"}, ("conversation",)),
        ({"conversation": {"id": "conv_1"}}, ("conversation",)),
        ({"background": True}, ("background",)),
        ({"tools": [WEATHER, {"type": "web_search"}]}, ("tools[1].type",)),
        (
            {"tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}},
            ("tools[0].type", "tool_choice"),
        ),
        ({"include": ["reasoning.encrypted_content"]}, ("include",)),
        ({"seed": 1}, ("seed",)),
        (
            {
                "input": [
                    {"type": "item_reference", "id": "msg_1"},
                    {"role": "user", "content": "Hi"},
                ]
            },
            ("input[0].type",),
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Hi"},
                    {"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "x"},
                    {"type": "web_search_call", "id": "ws", "status": "completed"},
                ]
            },
            ("input[1].encrypted_content", "input[2].type"),
        ),
        # The state asked for is named first, whatever the body's order.
        ({"seed": 1, "previous_response_id": "resp_1"}, ("previous_response_id", "seed")),
    ],
)
def test_what_only_a_native_upstream_can_carry_is_named(
    fields: dict[str, Any], named: tuple[str, ...]
) -> None:
    call = decode(**fields)
    native = call.request.native
    assert native is not None
    assert native.only_native == named
    assert set(native.fields) == {"model", "input", *fields}  # the body is kept whole
    assert call.request.model == "fast"


def test_a_field_at_its_stateless_value_is_not_named() -> None:
    call = decode(previous_response_id=None, conversation=None, background=False)
    assert call.request.native is not None
    assert call.request.native.only_native == ()


def test_the_rest_of_a_native_only_body_is_still_checked() -> None:
    with pytest.raises(RequestValidationError) as caught:
        decode(previous_response_id="resp_1", temperature=3)
    assert caught.value.field == "temperature"
    with pytest.raises(RequestValidationError) as item:
        decode(input=[{"type": "item_reference", "id": "m"}, {"role": "tool", "content": "x"}])
    assert item.value.field == "input[1].role"  # the indices are the client's


def test_a_body_the_translation_cannot_make_sense_of_is_still_routed() -> None:
    # The call this output answers is kept upstream, with the previous response.
    output = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
    call = decode(previous_response_id="resp_1", input=[output], tools=[WEATHER])
    request = call.request
    assert request.native is not None
    assert request.native.only_native == ("previous_response_id",)
    (message,) = request.messages
    assert "sunny" in message.text


def test_a_body_that_is_no_object_is_a_body_error() -> None:
    with pytest.raises(BodyError):
        ResponsesDialect().decode(b"[1]")
    with pytest.raises(BodyError):
        ResponsesDialect().decode(b"{")


def test_no_candidate_for_previous_response_id_says_the_gateway_keeps_no_state() -> None:
    error = ApiError(
        400,
        "no configured model can serve this request: nothing can serve 'x': a/b: cannot carry "
        "previous_response_id (only an upstream speaking openai_responses can)",
        code="model_not_supported",
        param="previous_response_id",
    )
    body = ResponsesDialect().error_body(error)["error"]
    assert body["param"] == "previous_response_id"
    assert "keeps no responses or conversations" in body["message"]
    assert "a/b: cannot carry previous_response_id" in body["message"]
    other = ApiError(400, "m", code="model_not_supported", param="seed")
    said = ResponsesDialect().error_body(other)["error"]["message"]
    assert said == (
        "seed can only go to an upstream that speaks the Responses API itself, and none can "
        "take this request (m)"
    )
    tool = ApiError(400, "m", code="model_not_supported", param="tools[0].type")
    assert "only function tools" in ResponsesDialect().error_body(tool)["error"]["message"]
    model = ApiError(400, "m", code="model_not_supported", param="model")
    assert ResponsesDialect().error_body(model)["error"]["message"] == "m"
