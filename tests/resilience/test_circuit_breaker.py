"""Circuit breaker rules one by one, on a fake clock (the model test covers their interplay)."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.exceptions import ConfigError, ErrorClass
from runestone.resilience import (
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitState,
    Permit,
    StateChange,
    TransitionReason,
)
from runestone.resilience.failure_policy import FAILURE_POLICIES
from runestone.testing import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
NOT_COUNTED = [cls for cls, policy in FAILURE_POLICIES.items() if not policy.counts_against_circuit]


def make(clock: FakeClock, seed: int = 7, **settings_: Any) -> CircuitBreaker:
    return CircuitBreaker(CircuitBreakerPolicy(**settings_), clock, random.Random(seed))


def admit(breaker: CircuitBreaker) -> Permit:
    permit = breaker.acquire()
    assert permit is not None, f"refused while {breaker.state}"
    return permit


def fail(breaker: CircuitBreaker, times: int, cls: ErrorClass = ErrorClass.SERVER_ERROR) -> None:
    for _ in range(times):
        breaker.record_failure(admit(breaker), cls)


def open_it(breaker: CircuitBreaker) -> None:
    fail(breaker, breaker.policy.consecutive_failures)
    assert breaker.state is OPEN


# -- closed -> open ------------------------------------------------------------------------


def test_the_circuit_opens_after_the_configured_consecutive_failures() -> None:
    breaker = make(FakeClock(), consecutive_failures=3, min_calls=100)
    fail(breaker, 2)
    assert breaker.state is CLOSED
    fail(breaker, 1)
    assert breaker.state is OPEN
    assert breaker.acquire() is None


def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker = make(FakeClock(), consecutive_failures=3, min_calls=100)
    fail(breaker, 2)
    breaker.record_success(admit(breaker))
    fail(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.snapshot().consecutive_failures == 2


def test_the_circuit_opens_when_the_failure_rate_reaches_the_threshold_over_min_calls() -> None:
    breaker = make(FakeClock(), consecutive_failures=100, failure_rate=0.5, min_calls=4)
    for _ in range(2):
        breaker.record_success(admit(breaker))
    fail(breaker, 1)
    assert breaker.state is CLOSED  # 1 of 3: under min_calls
    fail(breaker, 1)
    assert breaker.state is OPEN  # 2 of 4 = 50%
    assert breaker.snapshot().openings == 1


def test_failures_older_than_the_window_do_not_count_towards_the_rate() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=100, failure_rate=0.5, min_calls=4, window=10.0)
    fail(breaker, 3)
    clock.advance(10.0)
    assert breaker.snapshot().window_calls == 0
    for _ in range(3):
        breaker.record_success(admit(breaker))
    fail(breaker, 1)  # 1 of 4 within the window
    assert breaker.state is CLOSED


@settings(deadline=None)
@given(
    classes=st.lists(st.sampled_from(NOT_COUNTED), min_size=1, max_size=60),
    settings_=st.fixed_dictionaries(
        {"consecutive_failures": st.integers(1, 3), "min_calls": st.integers(1, 3)}
    ),
)
def test_failures_that_do_not_count_against_the_circuit_never_trip_it(
    classes: list[ErrorClass], settings_: dict[str, int]
) -> None:
    clock = FakeClock()
    breaker = make(clock, failure_rate=0.01, **settings_)
    for cls in classes:
        permit = breaker.acquire()
        if permit is None:  # cooling after a 429
            clock.advance(breaker.policy.cooldown_cap)
            continue
        breaker.record_failure(permit, cls)
        assert breaker.state is CLOSED
        assert breaker.snapshot().window_failures == 0


# -- open -> half-open ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    recovery=st.floats(0.1, 100.0),
    jitter=st.floats(0.0, 0.9),
    multiplier=st.floats(1.0, 4.0),
    cap_factor=st.floats(1.0, 20.0),
    openings=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    before=st.floats(0.0, 0.999),
)
def test_recovery_grows_per_consecutive_opening_capped_and_jittered_and_is_never_cut_short(
    recovery: float,
    jitter: float,
    multiplier: float,
    cap_factor: float,
    openings: int,
    seed: int,
    before: float,
) -> None:
    clock = FakeClock()
    cap = recovery * cap_factor
    breaker = make(
        clock,
        seed,
        consecutive_failures=1,
        recovery=recovery,
        recovery_max=cap,
        recovery_multiplier=multiplier,
        jitter=jitter,
    )
    open_it(breaker)
    base = recovery
    for opening in range(1, openings + 1):
        opened_at = clock.monotonic()
        retry_at = breaker.retry_at
        assert retry_at is not None
        duration = retry_at - opened_at
        assert base * (1 - jitter) * (1 - 1e-9) <= duration <= min(base * (1 + jitter), cap) + 1e-9
        assert duration <= cap + 1e-9
        # Any moment before the recovery time: refused, still open.
        clock.advance(duration * before)
        assert breaker.acquire() is None
        assert breaker.state is OPEN
        assert breaker.snapshot().openings == opening
        clock.advance(retry_at - clock.monotonic())
        probe = admit(breaker)
        assert probe.probe
        assert breaker.state is HALF_OPEN
        breaker.record_failure(probe, ErrorClass.CONNECTION_ERROR)
        assert breaker.state is OPEN
        base = min(base * multiplier, cap)


def test_recovery_starts_again_from_its_base_after_the_circuit_closes() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1, recovery=10.0, jitter=0.0, recovery_multiplier=3)
    open_it(breaker)
    clock.advance(10.0)
    breaker.record_failure(admit(breaker), ErrorClass.SERVER_ERROR)
    assert breaker.retry_at == clock.monotonic() + 30.0
    clock.advance(30.0)
    breaker.record_success(admit(breaker))
    assert breaker.state is CLOSED
    open_it(breaker)
    assert breaker.retry_at == clock.monotonic() + 10.0


def test_the_default_recovery_cap_is_ten_times_the_recovery() -> None:
    policy = CircuitBreakerPolicy(recovery=7.0)
    assert policy.recovery_cap == 70.0
    assert CircuitBreakerPolicy(recovery=7.0, recovery_max=9.0).recovery_cap == 9.0


def test_poll_tells_listeners_when_recovery_falls_due() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1, recovery=5.0, jitter=0.0)
    changes: list[StateChange] = []
    breaker.add_listener(changes.append)
    open_it(breaker)
    assert not breaker.recovery_due()
    clock.advance(5.0)
    assert breaker.recovery_due()
    assert breaker.poll() is HALF_OPEN
    assert not breaker.recovery_due()
    due = StateChange(OPEN, HALF_OPEN, clock.monotonic(), TransitionReason.RECOVERY_DUE)
    assert changes[-1] == due


# -- half-open -----------------------------------------------------------------------------


def half_open(clock: FakeClock, **settings_: Any) -> CircuitBreaker:
    breaker = make(clock, consecutive_failures=1, recovery=1.0, jitter=0.0, **settings_)
    open_it(breaker)
    clock.advance(1.0)
    return breaker


def test_half_open_admits_the_configured_probes_and_refuses_everyone_else_meanwhile() -> None:
    clock = FakeClock()
    breaker = half_open(clock, half_open_probes=2, half_open_successes=3)
    probes = [admit(breaker), admit(breaker)]
    assert all(p.probe for p in probes)
    assert breaker.acquire() is None
    assert breaker.acquire() is None
    breaker.record_success(probes[0])
    third = admit(breaker)  # a slot freed; the circuit needs one more success
    assert third.probe
    assert breaker.acquire() is None
    breaker.record_success(probes[1])
    assert breaker.state is HALF_OPEN
    breaker.record_success(third)
    assert breaker.state is CLOSED
    assert not admit(breaker).probe


def test_one_probe_failure_reopens_the_circuit() -> None:
    clock = FakeClock()
    breaker = half_open(clock, half_open_probes=2, half_open_successes=2)
    first, second = admit(breaker), admit(breaker)
    breaker.record_success(first)
    breaker.record_failure(second, ErrorClass.IDLE_TIMEOUT)
    assert breaker.state is OPEN


def test_a_released_or_not_counted_probe_frees_its_slot_without_deciding_anything() -> None:
    clock = FakeClock()
    breaker = half_open(clock)
    breaker.release(admit(breaker))
    breaker.record_failure(admit(breaker), ErrorClass.BAD_REQUEST)
    assert breaker.state is HALF_OPEN
    assert admit(breaker).probe


def test_a_probe_never_settled_frees_its_slot_after_the_probe_timeout() -> None:
    clock = FakeClock()
    breaker = half_open(clock, probe_timeout=20.0)
    lost = admit(breaker)
    clock.advance(19.0)
    assert breaker.acquire() is None
    clock.advance(1.0)
    replacement = admit(breaker)
    breaker.record_success(lost)  # too late: the slot was given away
    assert breaker.state is HALF_OPEN
    breaker.record_success(replacement)
    assert breaker.state is CLOSED


def test_a_success_reported_while_open_by_a_call_admitted_earlier_does_not_close_it() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=2, recovery=5.0, jitter=0.0)
    early = admit(breaker)
    fail(breaker, 2)
    assert breaker.state is OPEN
    breaker.record_success(early)
    assert breaker.state is OPEN
    clock.advance(5.0)
    assert breaker.state is HALF_OPEN
    breaker.record_success(early)  # still not a probe
    assert breaker.state is HALF_OPEN


def test_a_failure_reported_late_by_a_call_from_before_the_opening_changes_nothing() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1, recovery=5.0, jitter=0.0)
    early = admit(breaker)
    open_it(breaker)
    clock.advance(5.0)
    probe = admit(breaker)
    breaker.record_failure(early, ErrorClass.SERVER_ERROR)
    assert breaker.state is HALF_OPEN
    breaker.record_success(probe)
    assert breaker.state is CLOSED


# -- rate limiting -------------------------------------------------------------------------


def test_a_429_cools_the_provider_for_its_retry_after_without_counting_as_a_failure() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1)
    breaker.record_rate_limited(admit(breaker), 12.0)
    assert breaker.state is CLOSED
    assert breaker.snapshot().consecutive_failures == 0
    assert breaker.cooling_until == clock.monotonic() + 12.0
    assert breaker.retry_at == clock.monotonic() + 12.0
    clock.advance(11.9)
    assert breaker.acquire() is None
    clock.advance(0.1)
    assert breaker.snapshot().cooling_until is None
    admit(breaker)


@pytest.mark.parametrize("retry_after", [None, -3.0, float("nan"), float("inf")])
def test_a_429_without_a_usable_retry_after_cools_for_the_default(
    retry_after: float | None,
) -> None:
    clock = FakeClock()
    breaker = make(clock, rate_limit_cooldown=4.0, rate_limit_cooldown_max=60.0)
    breaker.record_failure(admit(breaker), ErrorClass.RATE_LIMITED, retry_after=retry_after)
    assert breaker.cooling_until == clock.monotonic() + 4.0


def test_a_huge_retry_after_is_capped() -> None:
    clock = FakeClock()
    breaker = make(clock, rate_limit_cooldown_max=60.0)
    breaker.record_rate_limited(admit(breaker), 86_400.0)
    assert breaker.cooling_until == clock.monotonic() + 60.0


def test_a_shorter_retry_after_never_shortens_a_cooling_period() -> None:
    clock = FakeClock()
    breaker = make(clock)
    first, second = admit(breaker), admit(breaker)
    breaker.record_rate_limited(first, 30.0)
    breaker.record_rate_limited(second, 1.0)
    assert breaker.cooling_until == clock.monotonic() + 30.0


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_a_cooling_from_the_cluster_needs_a_usable_time(seconds: float) -> None:
    clock = FakeClock()
    breaker = make(clock)
    breaker.cool(seconds)
    assert breaker.cooling_until is None


def test_a_cooling_from_the_cluster_holds_calls_back_capped_and_never_shortens() -> None:
    clock = FakeClock()
    breaker = make(clock, rate_limit_cooldown_max=60.0)
    breaker.cool(20.0)
    assert breaker.cooling_until == clock.monotonic() + 20.0
    assert breaker.acquire() is None
    assert breaker.state is CLOSED
    breaker.cool(5.0)
    assert breaker.cooling_until == clock.monotonic() + 20.0
    breaker.cool(600.0)
    assert breaker.cooling_until == clock.monotonic() + 60.0
    clock.advance(60.0)
    admit(breaker)
    breaker.force_closed()
    breaker.cool(30.0)  # an operator's word stands
    assert breaker.cooling_until is None


def test_a_rate_limited_probe_frees_its_slot_and_cools() -> None:
    clock = FakeClock()
    breaker = half_open(clock)
    breaker.record_rate_limited(admit(breaker), 3.0)
    assert breaker.state is HALF_OPEN
    assert breaker.acquire() is None
    clock.advance(3.0)
    assert admit(breaker).probe


# -- manual control and listeners ----------------------------------------------------------


def test_force_open_refuses_everything_until_reset() -> None:
    clock = FakeClock()
    breaker = make(clock)
    breaker.force_open()
    clock.advance(10_000.0)
    assert breaker.state is OPEN
    assert breaker.forced is OPEN
    assert breaker.acquire() is None
    assert breaker.retry_at is None
    breaker.reset()
    assert breaker.snapshot().forced is None
    admit(breaker)


def test_force_closed_admits_everything_and_ignores_outcomes_until_reset() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1)
    breaker.force_closed()
    fail(breaker, 10)
    breaker.record_rate_limited(admit(breaker), 30.0)
    assert breaker.state is CLOSED
    admit(breaker)
    breaker.reset()
    fail(breaker, 1)
    assert breaker.state is OPEN


def test_reset_forgets_history_cooling_and_recovery_growth() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=2, jitter=0.0, recovery=5.0)
    fail(breaker, 1)
    breaker.record_rate_limited(admit(breaker), 50.0)
    breaker.reset()
    snap = breaker.snapshot()
    assert (snap.state, snap.consecutive_failures, snap.window_calls, snap.cooling_until) == (
        CLOSED,
        0,
        0,
        None,
    )
    admit(breaker)


def test_listeners_hear_every_state_change_in_order_and_can_be_removed() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1, recovery=2.0, jitter=0.0)
    heard: list[StateChange] = []
    breaker.add_listener(heard.append)
    open_it(breaker)
    clock.advance(2.0)
    breaker.record_success(admit(breaker))
    breaker.force_open()
    breaker.remove_listener(heard.append)
    breaker.remove_listener(heard.append)  # twice is harmless
    breaker.reset()
    assert [(c.old, c.new, c.reason) for c in heard] == [
        (CLOSED, OPEN, TransitionReason.CONSECUTIVE_FAILURES),
        (OPEN, HALF_OPEN, TransitionReason.RECOVERY_DUE),
        (HALF_OPEN, CLOSED, TransitionReason.PROBES_SUCCEEDED),
        (CLOSED, OPEN, TransitionReason.FORCED_OPEN),
    ]
    assert [c.at for c in heard] == [1000.0, 1002.0, 1002.0, 1002.0]


def test_the_snapshot_is_plain_data() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1, recovery=5.0, jitter=0.0)
    open_it(breaker)
    clock.advance(1.0)
    data = breaker.snapshot().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["state"] == "open"
    assert data["retry_in"] == 4.0
    assert data["changed_ago"] == 1.0
    assert data["openings"] == 1


# -- bad settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("consecutive_failures", 0),
        ("consecutive_failures", 2.5),
        ("consecutive_failures", True),
        ("failure_rate", 0.0),
        ("failure_rate", 1.5),
        ("window", 0),
        ("window", float("inf")),
        ("min_calls", 0),
        ("recovery", -1),
        ("recovery", "30s"),
        ("recovery_max", 1.0),
        ("recovery_multiplier", 0.5),
        ("jitter", 1.0),
        ("jitter", -0.1),
        ("half_open_probes", 0),
        ("half_open_successes", 0),
        ("rate_limit_cooldown", -1),
        ("rate_limit_cooldown_max", 0.5),
        ("probe_timeout", 0),
        ("probe_timeout", float("nan")),
    ],
)
def test_a_bad_breaker_setting_raises_a_config_error_naming_the_field(
    field: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=field) as caught:
        CircuitBreakerPolicy(**{field: value})  # type: ignore[arg-type]
    assert caught.value.path == field


def test_a_breaker_policy_reads_a_config_mapping_and_names_the_full_key_path() -> None:
    policy = CircuitBreakerPolicy.from_mapping({"consecutive_failures": 3, "recovery": 12})
    assert (policy.consecutive_failures, policy.recovery) == (3, 12)
    with pytest.raises(ConfigError) as caught:
        CircuitBreakerPolicy.from_mapping({"window": -5}, path="providers.openai.circuit_breaker")
    assert caught.value.path == "providers.openai.circuit_breaker.window"
    with pytest.raises(ConfigError) as misspelt:
        CircuitBreakerPolicy.from_mapping({"recovry": 3}, path="providers.openai.circuit_breaker")
    assert str(misspelt.value) == (
        "providers.openai.circuit_breaker.recovry: unknown key; did you mean 'recovery'?"
    )
    with pytest.raises(ConfigError) as unknown:
        CircuitBreakerPolicy.from_mapping({"zzz": 3})
    assert str(unknown.value).startswith("circuit_breaker.zzz: unknown key; expected one of: ")
    with pytest.raises(ConfigError, match="expected a mapping"):
        CircuitBreakerPolicy.from_mapping([1, 2])  # type: ignore[arg-type]


def test_an_unknown_error_class_is_a_value_error_naming_it() -> None:
    breaker = make(FakeClock())
    with pytest.raises(ValueError, match="error_class"):
        breaker.record_failure(admit(breaker), "teapot")  # type: ignore[arg-type]


# -- out-of-band probes ---------------------------------------------------------------------


def test_a_provider_down_for_a_minute_is_half_open_within_the_probe_cap_of_its_recovery() -> None:
    # The scenario: 503 for 60 s, one real request every 4 s. Recovery time alone
    # doubles per opening (10, 20, 40 s …); the probes do not wait for it.
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=1, recovery=10.0, jitter=0.0)
    start, recovered_at = clock.monotonic(), clock.monotonic() + 60.0
    half_open_at: float | None = None
    while half_open_at is None:
        now = clock.monotonic()
        up = now >= recovered_at
        if breaker.state is OPEN:
            ticket = breaker.begin_probe()
            if ticket is not None:
                breaker.record_probe(ticket, healthy=up)
        if breaker.state is HALF_OPEN and up:
            half_open_at = now
        elif (now - start) % 4.0 < 0.05:
            permit = breaker.acquire()
            if permit is not None:
                breaker.record_failure(permit, ErrorClass.SERVER_ERROR)
        clock.advance(0.05)
    cap = breaker.policy.probe_cap
    assert cap is not None
    assert half_open_at - recovered_at <= cap + 1e-6


def test_a_provider_that_stays_dead_is_probed_at_most_once_per_probe_interval() -> None:
    clock = FakeClock()
    breaker = make(clock, probe_interval=0.5, probe_interval_max=2.0, probe_multiplier=2.0)
    open_it(breaker)
    starts: list[float] = []
    intervals: list[float] = []
    for _ in range(10):
        due = breaker.probe_at
        assert due is not None
        clock.advance(due - clock.monotonic() - 0.01)
        assert breaker.begin_probe() is None  # not a moment early
        clock.advance(0.01)
        ticket = breaker.begin_probe()
        assert ticket is not None
        starts.append(ticket.started_at)
        intervals.append(ticket.interval)
        breaker.record_probe(ticket, healthy=False)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.5
    assert gaps[:2] == [1.0, 2.0]  # grows per failed probe …
    assert max(gaps) == 2.0  # … up to its cap
    # Each ticket carries the interval in force as it began (what a cluster claims for).
    assert intervals[0] == 0.5
    assert gaps == [round(i, 6) for i in intervals[1:]]


def test_a_passing_probe_makes_an_open_circuit_half_open_at_once() -> None:
    clock = FakeClock()
    breaker = make(clock, recovery=30.0)
    seen: list[StateChange] = []
    breaker.add_listener(seen.append)
    open_it(breaker)
    assert breaker.begin_probe() is None  # not due yet
    clock.advance(0.5)
    ticket = breaker.begin_probe()
    assert ticket is not None
    assert breaker.begin_probe() is None  # one at a time
    breaker.record_probe(ticket, healthy=True)
    assert breaker.state is HALF_OPEN
    assert seen[-1].reason is TransitionReason.HEALTH_PROBE_PASSED
    breaker.record_success(admit(breaker))
    assert breaker.state is CLOSED


def test_a_probe_result_from_before_the_circuit_reopened_changes_nothing() -> None:
    clock = FakeClock()
    breaker = make(clock, recovery=1.0, jitter=0.0)
    open_it(breaker)
    clock.advance(0.5)
    ticket = breaker.begin_probe()
    assert ticket is not None
    clock.advance(0.6)  # recovery due: half-open by time; the real probe fails
    breaker.record_failure(admit(breaker), ErrorClass.SERVER_ERROR)
    assert breaker.state is OPEN
    breaker.record_probe(ticket, healthy=True)
    assert breaker.state is OPEN


def test_no_probes_when_probing_is_off_or_the_circuit_is_forced_open() -> None:
    clock = FakeClock()
    off = make(clock, probe_interval=None)
    open_it(off)
    clock.advance(5.0)
    assert (off.probe_at, off.begin_probe()) == (None, None)
    forced = make(clock)
    forced.force_open()
    clock.advance(5.0)
    assert (forced.probe_at, forced.begin_probe(), forced.acquire(panic=True)) == (None,) * 3


def test_a_panic_call_probes_an_open_circuit_when_a_probe_is_due_and_not_before() -> None:
    clock = FakeClock()
    breaker = make(clock, recovery=30.0)
    seen: list[StateChange] = []
    breaker.add_listener(seen.append)
    open_it(breaker)
    assert breaker.acquire(panic=True) is None
    assert breaker.panic_retry_at == breaker.probe_at
    clock.advance(0.5)
    permit = breaker.acquire(panic=True)
    assert permit is not None
    assert permit.probe
    assert seen[-1].reason is TransitionReason.PANIC_PROBE
    assert breaker.acquire(panic=True) is None  # its probe slot is taken
    breaker.record_success(permit)
    assert breaker.state is CLOSED


def test_a_panic_call_refused_while_the_probe_runs_is_told_when_to_ask_again() -> None:
    clock = FakeClock()
    breaker = make(clock, recovery=30.0)
    open_it(breaker)
    clock.advance(0.5)
    assert breaker.acquire(panic=True) is not None  # the probe, in flight
    assert breaker.acquire(panic=True) is None
    # Not "never" (the caller would give up on a provider about to recover), nor the
    # 30 s recovery: one probe interval, by when the probe has most likely settled.
    assert breaker.panic_retry_at == clock.monotonic() + 0.5
    off = make(clock, probe_interval=None, recovery=30.0)
    open_it(off)
    clock.advance(30.0)
    assert off.acquire(panic=True) is not None
    assert off.acquire(panic=True) is None
    assert off.panic_retry_at is None, "without probing there is nothing to wait for"


@pytest.mark.parametrize(
    ("settings_", "path"),
    [
        ({"probe_interval": 0}, "probe_interval"),
        ({"probe_interval": -1}, "probe_interval"),
        ({"probe_interval": 2.0, "probe_interval_max": 1.0}, "probe_interval_max"),
        ({"probe_multiplier": 0.5}, "probe_multiplier"),
        ({"probe_interval": True}, "probe_interval"),
    ],
)
def test_bad_probe_settings_name_their_key(settings_: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CircuitBreakerPolicy(**settings_)
    assert caught.value.path == path


# -- a state decided elsewhere (cluster mode) -------------------------------------------------


def test_adopting_an_opening_refuses_calls_for_as_long_as_the_cluster_said() -> None:
    clock = FakeClock()
    breaker = make(clock, recovery=30)
    changes: list[StateChange] = []
    breaker.add_listener(changes.append)
    before = admit(breaker)
    breaker.adopt(OPEN, open_for=2.0)
    assert breaker.state is OPEN
    assert changes[-1].reason is TransitionReason.CLUSTER
    assert breaker.acquire() is None
    assert breaker.retry_at == pytest.approx(clock.monotonic() + 2.0)
    breaker.record_success(before)  # a permit from before the opening is stale
    assert breaker.state is OPEN
    clock.advance(2.0)
    assert breaker.state is HALF_OPEN


def test_adopting_an_opening_while_open_only_moves_its_end() -> None:
    clock = FakeClock()
    breaker = make(clock, recovery=30, jitter=0)
    open_it(breaker)
    epoch = breaker.epoch
    breaker.adopt(OPEN, open_for=1.0)
    assert breaker.epoch == epoch
    assert breaker.retry_at == pytest.approx(clock.monotonic() + 1.0)


def test_adopting_an_opening_that_is_already_over_is_half_open_at_once() -> None:
    breaker = make(FakeClock())
    breaker.adopt(OPEN, open_for=0.0)
    assert breaker.state is HALF_OPEN


def test_adopting_half_open_and_closed_follows_the_cluster() -> None:
    breaker = make(FakeClock())
    open_it(breaker)
    breaker.adopt(HALF_OPEN)
    assert breaker.state is HALF_OPEN
    breaker.adopt(CLOSED)
    assert breaker.state is CLOSED
    assert breaker.acquire() is not None


def test_an_operators_forced_state_is_not_overruled_by_the_cluster() -> None:
    breaker = make(FakeClock())
    breaker.force_closed()
    breaker.adopt(OPEN, open_for=10)
    assert breaker.state is CLOSED
    assert breaker.forced is CLOSED


def test_a_probe_granted_by_the_cluster_ignores_the_local_limit_and_settles_as_a_probe() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=1, half_open_successes=2)
    open_it(breaker)
    breaker.adopt(HALF_OPEN)
    first, second = breaker.grant_probe(), breaker.grant_probe()
    assert first.probe
    assert second.probe
    assert breaker.snapshot().probes_in_flight == 2
    breaker.record_success(first)
    assert breaker.state is HALF_OPEN
    breaker.record_success(second)
    assert breaker.state is CLOSED
