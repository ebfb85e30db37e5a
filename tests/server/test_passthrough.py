"""Same-dialect pass-through through a real ``runestone serve``: an Anthropic request reaches an
Anthropic upstream with every field and beta header it carries, and the answer comes back as
the upstream wrote it; the same for OpenAI. Requests with fields only one format carries go
only to upstreams of that format, and to models with the capabilities they ask for."""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from runestone.testing.upstream import (
    CACHE_CREATION_TOKENS,
    CACHE_READ_TOKENS,
    KNOWN_SIGNATURE,
    KNOWN_TEXT,
    KNOWN_THOUGHT,
    FakeUpstream,
)
from tests.server.serving import RunningServer, raw

TIMEOUTS = {"connect": 2, "first_token": 5, "idle": 5, "total": 20}
EVERYTHING = ["tools", "thinking", "prompt_caching", "server_tools"]
CONFIGURED_BETA = "configured-beta-2025-01-01"


def _block(kind: str, base_url: str, models: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "api_key": f"sk-test-{kind}",
        "base_url": base_url,
        "timeouts": TIMEOUTS,
        "retry": {"max_attempts": 1},
        "circuit_breaker": {"consecutive_failures": 1000, "min_calls": 1000},
        "models": models,
        **extra,
    }


def _config(up: FakeUpstream) -> dict[str, Any]:
    everything = {"capabilities": EVERYTHING}
    return {
        "providers": {
            "claude": _block(
                "anthropic",
                up.anthropic_base_url,
                {
                    "healthy": everything,
                    "thinking": everything,
                    "cut-after:5": everything,
                    "prefill": {"capabilities": [*EVERYTHING, "prefill"]},
                    "claude-plain": {"capabilities": ["tools"]},
                },
                anthropic_beta=CONFIGURED_BETA,
            ),
            # A 429 cools its whole provider down: this one fails on its own.
            "limited": _block(
                "anthropic",
                up.anthropic_base_url,
                {"rate-limit": everything},
                circuit_breaker={
                    "consecutive_failures": 1000,
                    "min_calls": 1000,
                    "rate_limit_cooldown": 0.01,
                },
            ),
            "gpt": _block(
                "openai",
                up.openai_base_url,
                {
                    "healthy": {"capabilities": ["tools", "thinking"]},
                    "thinking": {"capabilities": ["tools", "thinking"]},
                    "cut-after:5": {"capabilities": ["tools"]},
                    "gpt-plain": {"capabilities": ["tools"]},
                },
            ),
        },
        "routing": {
            "policy": "priority",
            "aliases": {
                "claude": ["claude/healthy"],
                "claude-think": ["claude/thinking"],
                "claude-failover": ["limited/rate-limit", "claude/thinking"],
                "claude-cut": ["claude/cut-after:5", "claude/prefill"],
                "gpt": ["gpt/healthy"],
                "gpt-think": ["gpt/thinking"],
                "gpt-cut": ["gpt/cut-after:5", "gpt/healthy"],
                "gpt-then-claude": ["gpt/healthy", "claude/healthy"],
                "plain-then-claude": ["gpt/gpt-plain", "claude/healthy"],
                "caching": ["claude/claude-plain", "claude/healthy"],
            },
            "resume": {"prefill": True, "replay": True},
        },
        "logging": {"level": "WARNING"},
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with RunningServer(_config(upstream), tmp_path_factory.mktemp("passthrough")) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(upstream: FakeUpstream) -> None:
    upstream.reset()


@pytest.fixture
def claude(server: RunningServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def gpt(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


EPHEMERAL = {"type": "ephemeral"}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
# What Claude Code and other Anthropic-native clients send: every field of it must arrive.
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 4096,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Read this.", "cache_control": EPHEMERAL},
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "A short doc."},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Earlier.", "signature": "c2ln"},
                {"type": "text", "text": "Read."},
            ],
        },
        {"role": "user", "content": "Now answer."},
    ],
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    "top_k": 5,
    "metadata": {"user_id": "u-1"},
    "tools": [
        {**WEATHER, "cache_control": EPHEMERAL},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
    ],
    "a_field_from_next_year": {"nested": [1, 2, {"deep": True}]},
}


def _post_messages(
    server: RunningServer, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    sent = {"anthropic-version": "2023-06-01", **(headers or {})}
    return raw(server, "POST", "/v1/messages", body, headers=sent)


def _direct(upstream: FakeUpstream) -> Any:
    """The upstream itself, to ask as the gateway does (what ``raw`` needs of a server)."""
    return types.SimpleNamespace(url=upstream.base_url)


def _events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list | tuple):
        return [_without_ids(v) for v in value]
    return value


# --------------------------------------------------------------------------- the request


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_request_reaches_an_anthropic_upstream_with_every_field_it_sent(
    server: RunningServer, upstream: FakeUpstream, stream: bool
) -> None:
    body = {**copy.deepcopy(ANTHROPIC_BODY), "stream": stream}
    response = _post_messages(
        server, body, {"anthropic-beta": "context-management-2025-06-27,interleaved-thinking"}
    )
    assert response.status == 200, response.body
    (attempt,) = upstream.attempts
    assert attempt.body == {**body, "model": "healthy", "stream": stream}
    assert attempt.headers["anthropic-version"] == "2023-06-01"
    # The configured betas first, then the client's, each once.
    assert attempt.headers["anthropic-beta"] == (
        f"{CONFIGURED_BETA},context-management-2025-06-27,interleaved-thinking"
    )


def test_an_anthropic_request_without_beta_headers_gets_the_configured_ones(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}
    assert _post_messages(server, body).status == 200
    (attempt,) = upstream.attempts
    assert attempt.headers["anthropic-beta"] == CONFIGURED_BETA
    assert attempt.body == {**body, "model": "healthy", "stream": False}


OPENAI_BODY: dict[str, Any] = {
    "model": "gpt",
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ],
    "n": 2,
    "seed": 7,
    "logprobs": True,
    "top_logprobs": 2,
    "logit_bias": {"50256": -100},
    "metadata": {"team": "search"},
    "store": True,
    "max_completion_tokens": 50,
    "reasoning_effort": "low",
    "verbosity": "low",
    "prompt_cache_key": "k-1",
    "a_field_from_next_year": {"nested": [1, 2]},
}


def test_an_openai_request_reaches_an_openai_upstream_with_every_field_it_sent(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = copy.deepcopy(OPENAI_BODY)
    response = raw(server, "POST", "/v1/chat/completions", body)
    assert response.status == 200, response.body
    (attempt,) = upstream.attempts
    assert attempt.body == {**body, "model": "healthy", "stream": False}


def test_an_openai_stream_asks_the_upstream_for_usage_and_keeps_the_clients_options(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {**copy.deepcopy(OPENAI_BODY), "n": 1, "stream": True}
    response = raw(server, "POST", "/v1/chat/completions", body)
    assert response.status == 200, response.body
    (attempt,) = upstream.attempts
    assert attempt.body == {
        **body,
        "model": "healthy",
        "stream_options": {"include_usage": True},
    }


# --------------------------------------------------------------------------- the answer


def test_an_anthropic_stream_comes_back_as_the_upstream_wrote_it(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {
        "model": "claude-think",
        "max_tokens": 4096,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [{"role": "user", "content": "Think, then answer."}],
    }
    through = _post_messages(server, body)
    direct = raw(
        _direct(upstream),
        "POST",
        "/v1/messages",
        {**body, "model": "thinking"},
        headers={"anthropic-version": "2023-06-01", "x-api-key": "sk-test-anthropic"},
    )
    assert through.status == direct.status == 200
    assert _without_ids(_events(through.body)) == _without_ids(_events(direct.body))
    kinds = [data.get("delta", {}).get("type") for _, data in _events(through.body)]
    assert "thinking_delta" in kinds
    assert "signature_delta" in kinds


def test_the_anthropic_sdk_sees_thinking_blocks_and_cache_usage_passed_through(
    claude: anthropic.Anthropic,
) -> None:
    for streamed in (False, True):
        kwargs: dict[str, Any] = {
            "model": "claude-think",
            "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [{"role": "user", "content": "Think, then answer."}],
        }
        if streamed:
            with claude.messages.stream(**kwargs) as stream:
                message = stream.get_final_message()
        else:
            message = claude.messages.create(**kwargs)
        thinking, text = message.content
        assert thinking.type == "thinking"
        assert (thinking.thinking, thinking.signature) == (KNOWN_THOUGHT, KNOWN_SIGNATURE)
        assert text.type == "text"
        assert text.text == KNOWN_TEXT
        assert message.usage.cache_read_input_tokens == CACHE_READ_TOKENS
        assert message.usage.cache_creation_input_tokens == CACHE_CREATION_TOKENS
        assert message.stop_reason == "end_turn"
        assert message.stop_sequence is None


def test_a_whole_anthropic_answer_is_the_upstreams_body_unchanged(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {
        "model": "claude-think",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Think, then answer."}],
    }
    through = _post_messages(server, body)
    assert through.status == 200
    assert len(upstream.attempts) == 1
    direct = raw(
        _direct(upstream),
        "POST",
        "/v1/messages",
        {**body, "model": "thinking"},
        headers={"anthropic-version": "2023-06-01", "x-api-key": "sk-test-anthropic"},
    )
    assert _without_ids(through.json()) == _without_ids(direct.json())
    assert through.headers["x-runestone-provider"] == "claude"


def test_an_openai_answer_keeps_what_the_gateway_does_not_model(
    gpt: openai.OpenAI, server: RunningServer
) -> None:
    whole = raw(
        server,
        "POST",
        "/v1/chat/completions",
        {"model": "gpt-think", "messages": [{"role": "user", "content": "Hi"}]},
    ).json()
    assert whole["choices"][0]["message"]["reasoning_content"] == KNOWN_THOUGHT
    assert whole["usage"]["prompt_tokens_details"] == {"cached_tokens": CACHE_READ_TOKENS}
    assert whole["system_fingerprint"] == "fp_runestone"
    chunks = list(
        gpt.chat.completions.create(
            model="gpt-think",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    reasoning = [
        getattr(c.choices[0].delta, "reasoning_content", None) for c in chunks if c.choices
    ]
    assert KNOWN_THOUGHT in reasoning
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == KNOWN_TEXT
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == CACHE_READ_TOKENS


def test_an_openai_stream_that_did_not_ask_for_usage_gets_no_usage_chunk(
    gpt: openai.OpenAI,
) -> None:
    chunks = list(
        gpt.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == KNOWN_TEXT


# ---------------------------------------------------------------- failover, continuation


def test_a_passed_through_stream_fails_over_before_content_to_the_next_candidate(
    claude: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    with claude.messages.stream(
        model="claude-failover",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "Hi"}],
    ) as stream:
        message = stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert [a.model for a in upstream.attempts] == ["rate-limit", "thinking"]


def test_an_anthropic_stream_cut_after_text_is_continued_in_the_same_block(
    claude: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    with claude.messages.stream(
        model="claude-cut", max_tokens=1000, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        message = stream.get_final_message()
    (block,) = message.content
    assert block.type == "text"
    assert block.text == KNOWN_TEXT
    cut, continued = upstream.attempts
    assert cut.model == "cut-after:5"
    assert continued.model == "prefill"
    assert continued.body["messages"][-1]["role"] == "assistant"  # a prefill: not passed through


def test_an_openai_stream_cut_after_text_is_continued(gpt: openai.OpenAI) -> None:
    chunks = list(
        gpt.chat.completions.create(
            model="gpt-cut", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == KNOWN_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_stream_only_an_anthropic_upstream_can_carry_is_not_continued_after_a_cut(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {
        "model": "claude-cut",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
        "context_management": {"edits": []},  # only an Anthropic upstream carries it
    }
    response = _post_messages(server, body)
    events = _events(response.body)
    assert events[-1][0] == "error"
    assert "message_stop" not in [name for name, _ in events]
    assert [a.model for a in upstream.attempts] == ["cut-after:5"]


# --------------------------------------------------------------------------- routing


def test_a_field_only_anthropic_carries_skips_openai_candidates(
    claude: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    message = claude.messages.create(
        model="gpt-then-claude",
        max_tokens=10,
        messages=[{"role": "user", "content": "Hi"}],
        extra_body={"context_management": {"edits": []}},
    )
    assert message.content[0].type == "text"
    assert [a.api for a in upstream.attempts] == ["anthropic"]


def test_an_anthropic_request_without_such_fields_may_go_to_an_openai_candidate(
    claude: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    message = claude.messages.create(
        model="gpt-then-claude", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].type == "text"
    assert [a.api for a in upstream.attempts] == ["openai"]


def test_thinking_goes_only_to_a_model_with_the_thinking_capability(
    claude: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    claude.messages.create(
        model="plain-then-claude",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert [(a.api, a.model) for a in upstream.attempts] == [("anthropic", "healthy")]


def test_thinking_crosses_to_openai_as_its_reasoning_effort(
    claude: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    claude.messages.create(
        model="gpt-then-claude",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "Hi"}],
    )
    (attempt,) = upstream.attempts
    assert attempt.api == "openai"
    assert attempt.body["reasoning_effort"] == "low"


def test_cache_control_goes_only_to_a_model_that_caches_prompts(
    claude: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    claude.messages.create(
        model="caching",
        max_tokens=10,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert [a.model for a in upstream.attempts] == ["healthy"]


@pytest.mark.parametrize(
    ("model", "field"),
    [("gpt", "context_management"), ("gpt", "messages.0.content.0"), ("gpt", "top_k")],
)
def test_an_anthropic_field_with_no_anthropic_candidate_is_a_400_naming_it(
    server: RunningServer, upstream: FakeUpstream, model: str, field: str
) -> None:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    if field == "context_management":
        body["context_management"] = {"edits": []}
    elif field == "top_k":
        body["top_k"] = 3
    else:
        body["messages"][0]["content"] = [
            {"type": "search_result", "source": "s", "title": "t", "content": []}
        ]
    response = _post_messages(server, body)
    assert response.status == 400
    message = response.json()["error"]["message"]
    assert f"cannot carry {field} " in message
    assert "gpt/healthy" in message
    assert upstream.attempts == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"n": 2}, "n"), ({"seed": 1}, "seed"), ({"logprobs": True}, "logprobs")],
)
def test_an_openai_field_with_no_openai_candidate_is_a_400_naming_it(
    server: RunningServer, upstream: FakeUpstream, extra: dict[str, Any], field: str
) -> None:
    body = {"model": "claude", "messages": [{"role": "user", "content": "Hi"}], **extra}
    response = raw(server, "POST", "/v1/chat/completions", body)
    assert response.status == 400
    error = response.json()["error"]
    assert f"cannot carry {field} " in error["message"]
    assert "claude/healthy" in error["message"]
    assert upstream.attempts == []


def test_an_openai_field_at_its_no_op_value_goes_anywhere(
    gpt: openai.OpenAI, upstream: FakeUpstream
) -> None:
    gpt.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Hi"}],
        n=1,
        store=False,
        logprobs=False,
        presence_penalty=0,
    )
    assert [a.api for a in upstream.attempts] == ["anthropic"]


# ---------------------------------------------------------------- reasoning across formats


def test_an_openai_client_sees_an_anthropic_upstreams_thinking_as_reasoning_content(
    gpt: openai.OpenAI, upstream: FakeUpstream
) -> None:
    messages: Any = [{"role": "user", "content": "Hi"}]
    chunks = list(
        gpt.chat.completions.create(
            model="claude-think",
            messages=messages,
            reasoning_effort="low",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    answer = [c for c in chunks if c.choices]
    pieces = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in answer]
    assert "".join(p for p in pieces if p) == KNOWN_THOUGHT
    assert "".join(c.choices[0].delta.content or "" for c in answer) == KNOWN_TEXT
    (attempt,) = upstream.attempts
    assert attempt.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    # Anthropic's cache usage, in OpenAI's words: cached prompt tokens are prompt tokens.
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == CACHE_READ_TOKENS
    assert usage.prompt_tokens >= CACHE_READ_TOKENS + CACHE_CREATION_TOKENS


def test_an_anthropic_client_sees_an_openai_upstreams_reasoning_as_a_thinking_block(
    claude: anthropic.Anthropic,
) -> None:
    kwargs: Any = {
        "model": "gpt-think",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with claude.messages.stream(**kwargs) as stream:
        streamed = stream.get_final_message()
    whole = claude.messages.create(**kwargs)
    for message in (streamed, whole):
        thinking, text = message.content
        assert thinking.type == "thinking"
        assert thinking.thinking == KNOWN_THOUGHT
        assert text.type == "text"
        assert text.text == KNOWN_TEXT
        # OpenAI's cached prompt tokens, in Anthropic's words: apart from input_tokens.
        assert message.usage.cache_read_input_tokens == CACHE_READ_TOKENS
