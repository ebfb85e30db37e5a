"""Embeddings requests: routed to embedding models only, failing over to same-length ones."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

import runestone
from runestone.exceptions import NoCandidatesError, UpstreamServerError
from runestone.messages import EmbeddingRequest
from runestone.providers.simulated import embedding_of
from runestone.system import System
from runestone.testing.upstream import FakeUpstream

EIGHT = {"capabilities": ["embeddings"], "dimensions": 8}


def _config(up: FakeUpstream) -> dict[str, Any]:
    return {
        "providers": {
            "up": {
                "type": "openai",
                "api_key": "sk-test",
                "base_url": up.openai_base_url,
                "retry": {"max_attempts": 2, "base_delay": 0.001, "max_delay": 0.002},
                "circuit_breaker": {"consecutive_failures": 1000, "min_calls": 1000},
                "models": {
                    "unavailable": EIGHT,
                    "healthy": EIGHT,
                    "wide": {"capabilities": ["embeddings"], "dimensions": 16},
                    "chat": {},
                },
            },
            "sim": {"type": "simulated", "models": {"sim-embed": EIGHT, "sim-chat": {}}},
        },
        "routing": {
            "aliases": {
                "embed": ["up/unavailable", "up/wide", "sim/sim-embed"],
                "down": ["up/unavailable"],
                "chatty": ["up/chat", "sim/sim-chat"],
            }
        },
    }


@pytest.fixture
def system() -> Iterator[tuple[System, FakeUpstream]]:
    with FakeUpstream() as up:
        started = runestone.start(_config(up))
        try:
            yield started, up
        finally:
            started.stop()


def test_an_embedding_model_answers_one_vector_per_input_in_order(
    system: tuple[System, FakeUpstream],
) -> None:
    sys_, up = system
    answer = sys_.embed(EmbeddingRequest("up/healthy", ("one", "three words here")))
    assert (answer.provider, answer.model) == ("up", "healthy")
    assert [len(v) for v in answer.vectors] == [8, 8]
    assert answer.vectors[0] != answer.vectors[1]
    assert answer.prompt_tokens == 4
    assert up.embedding_bodies[-1]["input"] == ["one", "three words here"]
    assert up.embedding_bodies[-1]["model"] == "healthy"


def test_a_failing_model_fails_over_only_to_one_of_the_same_dimensions(
    system: tuple[System, FakeUpstream],
) -> None:
    sys_, up = system
    answer = sys_.embed(EmbeddingRequest("embed", ("hello",)))
    # up/wide gives 16 numbers where up/unavailable gives 8: it is passed over.
    assert answer.provider == "sim"
    assert answer.vectors == (embedding_of("hello", 8),)
    assert not any(body["model"] == "wide" for body in up.embedding_bodies)


def test_the_last_failure_is_raised_when_every_candidate_failed(
    system: tuple[System, FakeUpstream],
) -> None:
    sys_, _ = system
    with pytest.raises(UpstreamServerError) as caught:
        sys_.embed(EmbeddingRequest("down", ("hello",)))
    assert caught.value.provider == "up"


def test_requests_find_only_models_of_their_kind(system: tuple[System, FakeUpstream]) -> None:
    sys_, _ = system
    with pytest.raises(NoCandidatesError):
        sys_.embed(EmbeddingRequest("chatty", ("hello",)))
    with pytest.raises(NoCandidatesError):
        sys_.complete({"model": "up/healthy", "messages": [{"role": "user", "content": "hi"}]})
    # The system is still up: both kinds answer.
    assert sys_.embed(EmbeddingRequest("sim/sim-embed", ("hi",))).vectors
    assert sys_.complete({"model": "chatty", "messages": [{"role": "user", "content": "hi"}]}).text


def test_simulated_embeddings_are_deterministic_unit_vectors() -> None:
    first = embedding_of("same text", 64)
    assert first == embedding_of("same text", 64)
    assert first != embedding_of("other text", 64)
    assert math.isclose(math.fsum(x * x for x in first), 1.0, rel_tol=1e-9)
