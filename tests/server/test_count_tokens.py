"""``POST /v1/messages/count_tokens`` through a real ``runestone serve``, with the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from runestone.testing.upstream import FakeUpstream
from runestone.token_count import estimate_tokens
from tests.server.serving import RunningServer

USER: Any = [{"role": "user", "content": "How many tokens is this question?"}]
TIMEOUTS = {"connect": 2, "first_token": 5, "idle": 5, "total": 10}


def _config(up: FakeUpstream) -> dict[str, Any]:
    def block(kind: str, base_url: str, models: list[str]) -> dict[str, Any]:
        return {
            "type": kind,
            "api_key": "sk-test-upstream",
            "base_url": base_url,
            "timeouts": TIMEOUTS,
            "retry": {"max_attempts": 1},
            "models": {name: {} for name in models},
        }

    return {
        "providers": {
            "claude": block("anthropic", up.anthropic_base_url, ["healthy", "unavailable"]),
            "gpt": block("openai", up.openai_base_url, ["healthy"]),
        },
        "routing": {
            "aliases": {
                "counted": ["claude/unavailable", "claude/healthy"],
                "uncounted": ["claude/unavailable", "gpt/healthy"],
            }
        },
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def client(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[anthropic.Anthropic]:
    directory: Path = tmp_path_factory.mktemp("count-tokens")
    with (
        RunningServer(_config(upstream), directory) as server,
        anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0) as sdk,
    ):
        yield sdk


def test_an_anthropic_upstream_counts_the_body_the_client_sent(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    tools: Any = [{"name": "lookup", "input_schema": {"type": "object"}}]
    raw = client.messages.with_raw_response.count_tokens(
        model="claude/healthy", messages=USER, system="Be brief.", tools=tools
    )
    assert raw.headers["x-runestone-token-count"] == "upstream"
    assert raw.headers["x-runestone-provider"] == "claude"
    sent = upstream.count_tokens_bodies[-1]
    assert sent["model"] == "healthy"  # the upstream's own name for it
    assert (sent["messages"], sent["system"], sent["tools"]) == (USER, "Be brief.", tools)
    counted = [sent.get("system"), sent["messages"], sent.get("tools")]
    assert raw.parse().input_tokens == len(json.dumps(counted)) // 4 + 1


def test_a_failing_counter_is_passed_over_for_the_next_that_counts(
    client: anthropic.Anthropic,
) -> None:
    raw = client.messages.with_raw_response.count_tokens(model="counted", messages=USER)
    assert raw.headers["x-runestone-token-count"] == "upstream"
    assert raw.parse().input_tokens > 0


def test_without_a_counting_upstream_the_answer_is_an_estimate_and_says_so(
    client: anthropic.Anthropic,
) -> None:
    for model in ("gpt/healthy", "uncounted"):
        raw = client.messages.with_raw_response.count_tokens(model=model, messages=USER)
        assert raw.headers["x-runestone-token-count"] == "estimate"
        assert "x-runestone-provider" not in raw.headers
        assert raw.parse().input_tokens == estimate_tokens({"model": model, "messages": USER})


def test_an_unknown_model_is_the_sdks_not_found_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.count_tokens(model="nope", messages=USER)
    assert "nope" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": USER}, "model"),
        ({"model": "gpt/healthy"}, "messages"),
        ({"model": "gpt/healthy", "messages": []}, "messages"),
        ({"model": "gpt/healthy", "messages": "hi"}, "messages"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(
    client: anthropic.Anthropic, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages/count_tokens", body=body, cast_to=object)
    assert field in str(caught.value)
    # The server is still up and answers the next request.
    assert client.messages.count_tokens(model="gpt/healthy", messages=USER).input_tokens > 0
