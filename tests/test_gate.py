"""The permit gate: at once while the breaker keeps no books at admission, else ask."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.exceptions import ErrorClass
from runestone.gate import PermitGate
from runestone.resilience import CircuitBreaker, CircuitBreakerPolicy, CircuitState
from runestone.testing import FakeClock


def breaker(clock: FakeClock) -> CircuitBreaker:
    policy = CircuitBreakerPolicy(consecutive_failures=2, recovery=1.0, half_open_probes=1)
    return CircuitBreaker(policy, clock, random.Random(3))


def test_a_closed_circuit_grants_at_once_with_its_epoch() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    gate = PermitGate("p")
    gate.set(cb.free_admission())
    permit = gate.grant(clock.monotonic())
    assert permit is not None
    assert not permit.probe
    cb.record_failure(permit, ErrorClass.SERVER_ERROR)
    cb.record_failure(gate.grant(clock.monotonic()), ErrorClass.SERVER_ERROR)  # type: ignore[arg-type]
    assert cb.state is CircuitState.OPEN  # the gate's permits count like acquire()'s


def test_an_open_or_half_open_circuit_makes_every_call_ask() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    gate = PermitGate("p")
    cb.force_open()
    gate.set(cb.free_admission())
    assert gate.grant(clock.monotonic()) is None
    cb.reset()
    gate.set(cb.free_admission())
    assert gate.grant(clock.monotonic()) is not None


def test_a_429_cooling_refuses_at_the_gate_until_it_ends_without_the_actor() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    gate = PermitGate("p")
    permit = cb.acquire()
    assert permit is not None
    cb.record_rate_limited(permit, retry_after=2.0)
    gate.set(cb.free_admission())
    assert gate.grant(clock.monotonic()) is None
    clock.advance(2.0)
    assert gate.grant(clock.monotonic()) is not None  # nobody had to tell the gate


def test_a_draining_provider_makes_every_call_ask() -> None:
    clock = FakeClock()
    gate = PermitGate("p")
    gate.set(breaker(clock).free_admission(), draining=True)
    assert gate.grant(clock.monotonic()) is None
    assert "ask" in repr(gate)


def test_a_permit_from_before_an_opening_is_ignored_by_the_breaker() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    gate = PermitGate("p")
    gate.set(cb.free_admission())
    stale = gate.grant(clock.monotonic())
    assert stale is not None
    cb.force_open()
    cb.reset()  # closed again, in a later epoch
    cb.record_failure(stale, ErrorClass.SERVER_ERROR)
    cb.record_failure(stale, ErrorClass.SERVER_ERROR)
    assert cb.state is CircuitState.CLOSED


_OPS = st.lists(
    st.sampled_from(
        [
            "acquire",
            "succeed",
            "fail",
            "rate_limit",
            "advance",
            "force_open",
            "force_closed",
            "reset",
        ]
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_the_gate_grants_at_once_exactly_when_acquire_would_grant_a_plain_permit(
    ops: list[str],
) -> None:
    clock = FakeClock()
    cb = breaker(clock)
    held = []
    for op in ops:
        if op == "acquire":
            permit = cb.acquire()
            if permit is not None:
                held.append(permit)
        elif op in ("succeed", "fail", "rate_limit") and held:
            permit = held.pop(0)
            if op == "succeed":
                cb.record_success(permit)
            elif op == "fail":
                cb.record_failure(permit, ErrorClass.SERVER_ERROR)
            else:
                cb.record_rate_limited(permit, retry_after=0.5)
        elif op == "advance":
            clock.advance(0.6)
        elif op == "force_open":
            cb.force_open()
        elif op == "force_closed":
            cb.force_closed()
        elif op == "reset":
            cb.reset()
        gate = PermitGate("p")
        gate.set(cb.free_admission())
        now = clock.monotonic()
        granted = gate.grant(now)
        if granted is not None:
            # The breaker would have granted the same: a plain permit of this epoch.
            permit = cb.acquire()
            assert permit is not None
            assert not permit.probe
            assert permit.epoch == granted.epoch
            held.append(permit)
        else:
            admission = cb.free_admission()
            cooling = admission is not None and now < admission[1]
            assert admission is None or cooling
            permit = cb.acquire()
            assert permit is None or permit.probe  # refused, or one of half-open's probes
            if permit is not None:
                held.append(permit)
