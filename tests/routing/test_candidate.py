"""A candidate: its key, its estimated cost, whether its breaker holds it back."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from runestone.exceptions import ErrorClass
from runestone.providers.settings import Capability, ModelInfo
from runestone.resilience import (
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitState,
    HealthTracker,
)
from runestone.routing import Candidate, Requirements
from runestone.testing import FakeClock


def test_a_candidate_is_named_provider_slash_model_even_when_the_model_has_slashes() -> None:
    assert Candidate("together", "meta-llama/Llama-3-70b").key == "together/meta-llama/Llama-3-70b"


def test_the_estimated_cost_prices_prompt_and_answer_per_million_tokens() -> None:
    candidate = Candidate("p", "m", input_per_1m=3.0, output_per_1m=15.0)
    assert candidate.estimated_cost(Requirements(prompt_tokens=2_000, max_tokens=500)) == (
        pytest.approx((2_000 * 3.0 + 500 * 15.0) / 1e6)
    )


@pytest.mark.parametrize(
    ("circuit", "retry_at", "blocked"),
    [
        (CircuitState.CLOSED, None, False),
        (CircuitState.HALF_OPEN, None, False),
        (CircuitState.OPEN, 1001.0, True),
        (CircuitState.OPEN, 1000.0, False),  # recovery due: the next acquire probes
        (CircuitState.OPEN, None, True),  # forced open
        (CircuitState.CLOSED, 1005.0, True),  # cooling after a 429
        (CircuitState.CLOSED, 999.0, False),  # cooled down
    ],
)
def test_a_candidate_is_blocked_exactly_while_its_breaker_would_refuse(
    circuit: CircuitState, retry_at: float | None, blocked: bool
) -> None:
    assert Candidate("p", "m", circuit=circuit, retry_at=retry_at).is_blocked(1000.0) is blocked


def test_a_candidate_built_from_live_snapshots_is_blocked_when_its_breaker_refuses() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitBreakerPolicy(consecutive_failures=1), clock, random.Random(3))
    health = HealthTracker(clock)
    health.record_start()
    info = ModelInfo(
        name="m",
        input_per_1m=1.0,
        output_per_1m=2.0,
        context_window=8_000,
        capabilities=frozenset({Capability.TOOLS}),
        max_output_tokens=4_000,
    )
    fresh = Candidate.from_model("p", info, priority=3, circuit=breaker.snapshot())
    assert not fresh.is_blocked(clock.monotonic())
    permit = breaker.acquire()
    assert permit is not None
    breaker.record_failure(permit, ErrorClass.SERVER_ERROR)
    tripped = Candidate.from_model(
        "p", info, priority=3, health=health.snapshot(), circuit=breaker.snapshot()
    )
    assert tripped.is_blocked(clock.monotonic())
    assert tripped.in_flight == 1
    assert (tripped.context_window, tripped.max_output_tokens, tripped.priority) == (
        8_000,
        4_000,
        3,
    )
    assert tripped.capabilities == {Capability.TOOLS}
    assert fresh.in_flight == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"provider": ""}, "provider"),
        ({"provider": "a/b"}, "provider"),
        ({"model": ""}, "model"),
        ({"input_per_1m": -1.0}, "input_per_1m"),
        ({"output_per_1m": math.nan}, "output_per_1m"),
        ({"weight": math.inf}, "weight"),
        ({"weight": "heavy"}, "weight"),
        ({"context_window": 0}, "context_window"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
    ],
)
def test_a_bad_candidate_raises_a_value_error_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    fields: dict[str, Any] = {"provider": "p", "model": "m", **kwargs}
    with pytest.raises(ValueError, match=field):
        Candidate(**fields)
