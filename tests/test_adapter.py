"""The old ``stream_chat(request, on_event)`` shape on top of the new system."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import runestone
from runestone.adapter import stream_chat
from runestone.system import System
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
def system(fake_upstream: FakeUpstream) -> Iterator[System]:
    cfg = {
        "providers": {
            "main": {
                "type": "openai",
                "api_key": "sk-adapter-test",
                "base_url": fake_upstream.openai_base_url,
                "models": {"healthy": {}, "content-policy": {}},
            }
        },
        "routing": {"aliases": {"default": ["main/healthy"]}},
        "logging": {"level": "WARNING"},
    }
    started = runestone.start(cfg)
    yield started
    started.stop()


def test_the_old_vocabulary_arrives_in_order_and_the_router_picks_the_model(
    system: System, fake_upstream: FakeUpstream
) -> None:
    events: list[dict[str, Any]] = []
    text = stream_chat({"messages": USER}, events.append, system=system)
    assert text == KNOWN_TEXT
    kinds = [e["type"] for e in events]
    assert set(kinds[:-2]) == {"delta_text"}
    assert kinds[-2:] == ["metadata", "done"]
    assert "".join(e["text"] for e in events if e["type"] == "delta_text") == KNOWN_TEXT
    metadata = events[-2]
    assert (metadata["provider"], metadata["model"]) == ("main", "healthy")
    assert metadata["usage"]["completion_tokens"] > 0
    assert [a.model for a in fake_upstream.attempts] == ["healthy"], "the 'default' alias routed"


def test_a_failure_is_one_error_event(system: System) -> None:
    events: list[dict[str, Any]] = []
    stream_chat({"model": "main/content-policy", "messages": USER}, events.append, system=system)
    assert [e["type"] for e in events] == ["error"]
    assert events[0]["error"]["class"] == "content_policy"


def test_a_bad_request_is_an_error_event_not_an_exception(system: System) -> None:
    events: list[dict[str, Any]] = []
    assert stream_chat({"messages": "not a list"}, events.append, system=system) == ""
    assert [e["type"] for e in events] == ["error"]
    assert "messages" in events[0]["error"]["message"]
