"""Health figures on a fake clock: moving averages, the windowed success rate, the score."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.exceptions import ConfigError, ErrorClass, UpstreamServerError
from runestone.request import AttemptOutcome, OutcomeKind
from runestone.resilience import (
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitState,
    HealthTracker,
    StateChange,
    TransitionReason,
)
from runestone.testing import FakeClock


def test_latency_and_first_token_are_exponentially_weighted_moving_averages() -> None:
    health = HealthTracker(FakeClock(), alpha=0.5)
    for latency, first in [(2.0, 1.0), (4.0, 3.0), (1.0, None)]:
        health.record_start()
        health.record_success(latency, first_token=first)
    snap = health.snapshot()
    assert snap.latency == pytest.approx(0.5 * 1.0 + 0.5 * (0.5 * 4.0 + 0.5 * 2.0))
    assert snap.first_token == pytest.approx(0.5 * 3.0 + 0.5 * 1.0)


def test_nothing_measured_yet_reads_as_unknown_and_fully_healthy() -> None:
    snap = HealthTracker(FakeClock()).snapshot()
    assert (snap.latency, snap.first_token, snap.last_error) == (None, None, None)
    assert (snap.success_rate, snap.score, snap.window_calls) == (1.0, 1.0, 0)


def test_the_success_rate_covers_only_the_sliding_window() -> None:
    clock = FakeClock()
    health = HealthTracker(clock, window=10.0)
    health.record_failure(ErrorClass.SERVER_ERROR)
    clock.advance(5.0)
    health.record_success(1.0)
    assert health.snapshot().success_rate == 0.5
    clock.advance(5.0)  # the failure is now 10 s old: out
    snap = health.snapshot()
    assert (snap.success_rate, snap.window_calls, snap.window_failures) == (1.0, 1, 0)
    assert (snap.total_successes, snap.total_failures) == (1, 1)


def test_failures_that_are_the_requests_fault_do_not_lower_the_success_rate() -> None:
    clock = FakeClock()
    health = HealthTracker(clock)
    health.record_success(1.0)
    for cls in (ErrorClass.BAD_REQUEST, ErrorClass.CONTEXT_LENGTH, ErrorClass.RATE_LIMITED):
        health.record_failure(cls, detail=f"{cls} happened")
    snap = health.snapshot()
    assert snap.success_rate == 1.0
    assert snap.last_error is ErrorClass.RATE_LIMITED
    assert snap.last_error_detail == "rate_limited happened"
    assert snap.last_error_at == clock.monotonic()


def test_in_flight_counts_started_calls_until_they_end_and_never_goes_negative() -> None:
    health = HealthTracker(FakeClock())
    for _ in range(3):
        health.record_start()
    health.record_success(0.1)
    health.record_failure(ErrorClass.IDLE_TIMEOUT)
    assert health.in_flight == 1
    health.record_cancelled()
    health.record_cancelled()
    assert health.snapshot().in_flight == 0


def test_the_score_is_the_success_rate_damped_by_the_circuit_state() -> None:
    clock = FakeClock()
    health = HealthTracker(clock)
    breaker = CircuitBreaker(
        CircuitBreakerPolicy(consecutive_failures=3, recovery=5.0, jitter=0.0),
        clock,
        random.Random(0),
    )
    breaker.add_listener(health.record_state_change)
    health.record_success(1.0)
    assert health.score() == 1.0
    for _ in range(3):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record_failure(permit, ErrorClass.SERVER_ERROR)
        health.record_failure(ErrorClass.SERVER_ERROR)
    assert health.snapshot().circuit is CircuitState.OPEN
    assert health.score() == 0.0
    clock.advance(5.0)
    breaker.poll()
    assert health.score() == pytest.approx(0.5 * 0.25)
    snap = health.snapshot()
    assert snap.state_changed_at == clock.monotonic()
    assert [c.new for c in snap.recent_changes] == [CircuitState.OPEN, CircuitState.HALF_OPEN]


@settings(deadline=None)
@given(
    outcomes=st.lists(
        st.tuples(
            st.sampled_from([None, *ErrorClass]),
            st.floats(0.0, 30.0),
            st.floats(0.0, 100.0),
        ),
        max_size=40,
    ),
    circuit=st.sampled_from(list(CircuitState)),
)
def test_the_score_always_lies_between_zero_and_one(
    outcomes: list[tuple[ErrorClass | None, float, float]], circuit: CircuitState
) -> None:
    clock = FakeClock()
    health = HealthTracker(clock, window=20.0)
    for cls, gap, latency in outcomes:
        clock.advance(gap)
        health.record_start()
        if cls is None:
            health.record_success(latency, first_token=latency / 2)
        else:
            health.record_failure(cls)
    if circuit is not CircuitState.CLOSED:
        health.record_state_change(
            StateChange(CircuitState.CLOSED, circuit, clock.monotonic(), TransitionReason.RESET)
        )
    snap = health.snapshot()
    assert 0.0 <= snap.score <= 1.0
    assert 0.0 <= snap.success_rate <= 1.0
    assert snap.in_flight == 0
    assert snap.window_failures <= snap.window_calls


def test_the_snapshot_is_plain_data_with_wall_clock_times() -> None:
    clock = FakeClock(start=500.0, wall_start=1_700_000_000.0)
    health = HealthTracker(clock)
    clock.advance(2.0)
    health.record_failure(ErrorClass.CONNECTION_ERROR, detail="reset by peer")
    health.record_success(0.25, first_token=0.125)
    data = health.snapshot().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["last_error"] == "connection_error"
    assert data["last_error_at"] == 1_700_000_002.0
    assert data["circuit"] == "closed"
    assert data["latency"] == 0.25
    assert data["success_rate"] == 0.5


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "1s", True])
def test_a_bad_latency_raises_a_value_error_naming_it(bad: object) -> None:
    health = HealthTracker(FakeClock())
    with pytest.raises(ValueError, match="latency"):
        health.record_success(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first_token"):
        health.record_success(1.0, first_token=bad)  # type: ignore[arg-type]
    assert health.snapshot().total_successes == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("window", 0), ("window", -1), ("alpha", 0), ("alpha", 1.5), ("history", -1)],
)
def test_bad_tracker_settings_raise_a_config_error_naming_them(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        HealthTracker(FakeClock(), **{field: value})  # type: ignore[arg-type]


def test_an_attempt_outcome_is_booked_as_a_call_that_succeeded_or_failed_by_its_class() -> None:
    health = HealthTracker(FakeClock())
    health.record_attempt(AttemptOutcome("p", "m", OutcomeKind.OK, 2.0, 0.5))
    error = UpstreamServerError("bad gateway", provider="p")
    health.record_attempt(AttemptOutcome("p", "m", OutcomeKind.FAILED, 1.0, error=error))
    snap = health.snapshot()
    assert (snap.window_calls, snap.window_failures, snap.in_flight) == (2, 1, 0)
    assert (snap.last_error, snap.last_error_detail) == (ErrorClass.SERVER_ERROR, "bad gateway")
    assert snap.latency == pytest.approx(2.0)
    assert snap.first_token == pytest.approx(0.5)
