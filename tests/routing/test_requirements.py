"""What a request needs: flags read from the request, and the documented token estimate."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.exceptions import RequestValidationError
from runestone.messages import (
    ChatRequest,
    Message,
    NativeBody,
    RawPart,
    Role,
    TextPart,
    WireFormat,
)
from runestone.providers.settings import Capability
from runestone.routing import Requirements, estimate_prompt_tokens
from runestone.routing.requirements import (
    DEFAULT_OUTPUT_TOKENS,
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
)

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


def test_plain_text_costs_a_token_per_four_characters_plus_framing() -> None:
    messages = [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 21}]
    assert estimate_prompt_tokens(messages) == 61 // 4 + 2 * MESSAGE_OVERHEAD_TOKENS + 1


def test_each_image_adds_a_fixed_allowance() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "abcd"}, IMAGE, IMAGE]}]
    assert estimate_prompt_tokens(messages) == 1 + MESSAGE_OVERHEAD_TOKENS + 2 * IMAGE_TOKENS + 1


def test_tool_schemas_and_tool_calls_count_by_their_json() -> None:
    bare = estimate_prompt_tokens([{"role": "user", "content": "hi"}])
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    assert estimate_prompt_tokens([{"role": "user", "content": "hi"}], [tool]) > bare
    with_call = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
    ]
    assert estimate_prompt_tokens(with_call) > bare + MESSAGE_OVERHEAD_TOKENS


texts = st.text(max_size=300)


@settings(deadline=None)
@given(system=texts, user=st.lists(texts, min_size=1, max_size=4), max_tokens=st.integers(1, 10**5))
def test_a_dict_and_its_validated_request_need_the_same(
    system: str, user: list[str], max_tokens: int
) -> None:
    raw: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "system", "content": system}]
        + [{"role": "user", "content": [{"type": "text", "text": t}, IMAGE]} for t in user],
        "max_tokens": max_tokens,
        "response_format": {"type": "json_object"},
    }
    from_dict = Requirements.from_request(raw)
    assert from_dict == Requirements.from_request(ChatRequest.from_dict(raw))
    assert from_dict.prompt_tokens >= sum(len(t) for t in [system, *user]) // 4
    assert (from_dict.vision, from_dict.json, from_dict.tools) == (True, True, False)


def test_requirements_name_the_capabilities_they_need() -> None:
    request = {
        "messages": [{"role": "user", "content": [IMAGE]}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_schema", "json_schema": {}},
    }
    needs = Requirements.from_request(request)
    assert needs.capabilities == {Capability.TOOLS, Capability.VISION, Capability.JSON}
    assert Requirements(prefill=True).capabilities == {Capability.PREFILL}
    assert Requirements().capabilities == frozenset()


def test_a_tool_result_in_the_history_needs_tools_too() -> None:
    request = {"messages": [{"role": "tool", "tool_call_id": "c1", "content": "42"}]}
    assert Requirements.from_request(request).tools


def test_the_context_needed_is_the_prompt_plus_max_tokens() -> None:
    needs = Requirements.from_request(
        {"messages": [{"role": "user", "content": "z" * 400}], "max_completion_tokens": 1000}
    )
    assert needs.max_tokens == 1000
    assert needs.context_tokens == needs.prompt_tokens + 1000
    assert needs.output_tokens == 1000


def test_without_max_tokens_only_the_prompt_must_fit_and_cost_assumes_a_default_answer() -> None:
    needs = Requirements(prompt_tokens=100)
    assert needs.context_tokens == 100
    assert needs.output_tokens == DEFAULT_OUTPUT_TOKENS


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ([], "request"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": ["hello"]}, "messages[0]"),
        ({"messages": [], "tools": "all"}, "tools"),
        ({"messages": [], "max_tokens": 0}, "max_tokens"),
        ({"messages": [], "max_tokens": "5"}, "max_tokens"),
        ({"messages": [], "max_completion_tokens": True}, "max_completion_tokens"),
    ],
)
def test_a_bad_request_raises_a_validation_error_naming_the_field(
    request_: Any, field: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        Requirements.from_request(request_)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"prompt_tokens": -1}, "prompt_tokens"), ({"max_tokens": 0}, "max_tokens")],
)
def test_impossible_requirements_raise_a_value_error_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        Requirements(**kwargs)


def test_tool_calls_count_alike_in_a_dict_and_its_validated_request() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}
    raw: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
    }
    from_dict = Requirements.from_request(raw)
    assert from_dict == Requirements.from_request(ChatRequest.from_dict(raw))
    assert from_dict.tools


def test_a_native_request_with_fields_only_its_format_carries_needs_that_format() -> None:
    native = NativeBody(
        WireFormat.ANTHROPIC_MESSAGES,
        {},
        only_native=("system.0.cache_control", "tools.1"),
        needs=frozenset({"prompt_caching", "server_tools"}),
    )
    request = ChatRequest.from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    needs = Requirements.from_request(request.replace(native=native))
    assert (needs.wire, needs.native_field) == (
        WireFormat.ANTHROPIC_MESSAGES,
        "system.0.cache_control",
    )
    assert needs.capabilities == {Capability.PROMPT_CACHING, Capability.SERVER_TOOLS}
    plain = Requirements.from_request(request.replace(native=replace(native, only_native=())))
    assert plain.wire is None


def test_a_completions_request_needs_a_completions_model_of_its_format() -> None:
    native = NativeBody(
        WireFormat.OPENAI_COMPLETIONS,
        {},
        only_native=("prompt",),
        needs=frozenset({Capability.COMPLETIONS}),
    )
    request = ChatRequest.from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    needs = Requirements.from_request(request.replace(native=native))
    assert (needs.wire, needs.native_field) == (WireFormat.OPENAI_COMPLETIONS, "prompt")
    assert needs.completions
    assert needs.capabilities == {Capability.COMPLETIONS}


def test_a_reasoning_effort_needs_a_thinking_model_unless_minimal() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    thinks = Requirements.from_request(ChatRequest.from_dict({**base, "reasoning_effort": "low"}))
    assert Capability.THINKING in thinks.capabilities
    quiet = {**base, "reasoning_effort": "minimal"}
    assert (
        Capability.THINKING
        not in Requirements.from_request(ChatRequest.from_dict(quiet)).capabilities
    )


def test_an_attachment_kept_verbatim_is_allowed_for_like_an_image_not_by_its_length() -> None:
    document = RawPart(
        "document",
        {"type": "document", "source": {"type": "base64", "data": "QUJD" * 50_000}},
    )
    message = Message(Role.USER, (TextPart("Summarise this."), document))
    tokens = estimate_prompt_tokens([message])
    assert IMAGE_TOKENS < tokens < IMAGE_TOKENS + 100  # not 200,000 characters' worth
