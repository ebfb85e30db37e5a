"""The circuit breaker against a small reference model, driven by hypothesis.

The model is written from ARCHITECTURE §5 and the breaker's documented rules,
black-box: it never reads the breaker's private state. The one thing it cannot
predict is the jittered recovery time; it knows its bounds and, inside them,
accepts whichever state the breaker shows and then holds the breaker to it.

Besides agreeing with the model step by step, four properties are asserted on
their own: no admission while open before the recovery time; never more than
``half_open_probes`` probes in flight; closing only after ``half_open_successes``
probe successes; a success reported while open (from a call admitted earlier)
never closes the circuit.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from runestone.exceptions import ErrorClass
from runestone.resilience import (
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitState,
    Permit,
    ProbeTicket,
    StateChange,
    TransitionReason,
)
from runestone.resilience.failure_policy import FAILURE_POLICIES, CircuitEffect
from runestone.testing import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
EPS = 1e-9  # float slack on the jitter bounds only

policies = st.builds(
    CircuitBreakerPolicy,
    consecutive_failures=st.integers(1, 4),
    failure_rate=st.sampled_from([0.25, 0.5, 1.0]),
    window=st.sampled_from([5.0, 30.0]),
    min_calls=st.integers(1, 6),
    recovery=st.sampled_from([1.0, 10.0]),
    recovery_max=st.sampled_from([None, 25.0]),
    recovery_multiplier=st.sampled_from([1.0, 2.0, 3.0]),
    jitter=st.sampled_from([0.0, 0.2, 0.5]),
    half_open_probes=st.integers(1, 3),
    half_open_successes=st.integers(1, 3),
    rate_limit_cooldown=st.sampled_from([0.0, 2.0]),
    rate_limit_cooldown_max=st.sampled_from([None, 20.0]),
    probe_timeout=st.sampled_from([None, 15.0]),
)
steps = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]),
    st.floats(0.0, 60.0, allow_nan=False),
)


@dataclass
class Model:
    """What the breaker must do, from its rules; ``open_lo``/``open_hi`` bound the recovery."""

    policy: CircuitBreakerPolicy
    state: CircuitState = CLOSED
    forced: CircuitState | None = None
    epoch: int = 0
    consecutive: int = 0
    events: list[tuple[float, bool]] = field(default_factory=list)
    next_recovery: float = 0.0
    open_lo: float = math.inf
    open_hi: float = math.inf
    cooling_until: float = -math.inf
    probes: dict[int, float] = field(default_factory=dict)
    probe_successes: int = 0
    permit_epochs: dict[int, int] = field(default_factory=dict)
    changes: list[tuple[CircuitState, CircuitState, float, TransitionReason]] = field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        self.next_recovery = self.policy.recovery

    def change(self, now: float, new: CircuitState, reason: TransitionReason) -> None:
        if new is not self.state:
            self.changes.append((self.state, new, now, reason))
        self.state = new
        if new is HALF_OPEN:
            self.probes.clear()
            self.probe_successes = 0

    def enter(self, now: float, new: CircuitState, reason: TransitionReason) -> None:
        self.epoch += 1
        self.consecutive = 0
        self.events.clear()
        self.probes.clear()
        self.probe_successes = 0
        self.change(now, new, reason)

    def open(self, now: float, reason: TransitionReason) -> None:
        base = self.next_recovery
        cap = self.policy.recovery_cap
        self.next_recovery = min(base * self.policy.recovery_multiplier, cap)
        self.open_lo = now + min(base * (1 - self.policy.jitter), cap) - EPS
        self.open_hi = now + min(base * (1 + self.policy.jitter), cap) + EPS
        self.enter(now, OPEN, reason)

    def close(self, now: float, reason: TransitionReason) -> None:
        self.next_recovery = self.policy.recovery
        self.enter(now, CLOSED, reason)

    def sync(self, now: float, observed: CircuitState) -> None:
        """Apply what time made due; inside the jitter bounds, adopt what the breaker shows."""
        due = now >= self.open_hi or (now >= self.open_lo and observed is HALF_OPEN)
        if self.state is OPEN and self.forced is None and due:
            self.change(now, HALF_OPEN, TransitionReason.RECOVERY_DUE)
        if self.state is HALF_OPEN and self.policy.probe_timeout is not None:
            expiry = now - self.policy.probe_timeout
            for pid in [pid for pid, at in self.probes.items() if at <= expiry]:
                del self.probes[pid]

    def current(self, permit: Permit) -> bool:
        return self.forced is None and self.permit_epochs.get(permit.id) == self.epoch

    def take_probe(self, permit: Permit) -> bool:
        return self.state is HALF_OPEN and self.probes.pop(permit.id, None) is not None

    def prune(self, now: float) -> None:
        self.events = [(t, failed) for t, failed in self.events if t > now - self.policy.window]


class CircuitBreakerMachine(RuleBasedStateMachine):
    permits = Bundle("permits")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.seen: list[StateChange] = []
        # Per half-open episode, counted by the test itself (independent of the model).
        self.episode_probes: set[int] = set()
        self.episode_probe_successes = 0

    @initialize(policy=policies, seed=st.integers(0, 2**32 - 1))
    def start(self, policy: CircuitBreakerPolicy, seed: int) -> None:
        self.breaker = CircuitBreaker(policy, self.clock, random.Random(seed))
        self.breaker.add_listener(self.on_change)
        self.model = Model(policy)

    def on_change(self, change: StateChange) -> None:
        self.seen.append(change)
        if change.new is HALF_OPEN:
            self.episode_probes.clear()
            self.episode_probe_successes = 0

    def now(self) -> float:
        now = self.clock.monotonic()
        self.model.sync(now, self.breaker.state)
        return now

    # -- rules -----------------------------------------------------------------------------

    @rule(target=permits)
    def acquire(self) -> object:
        now = self.now()
        m = self.model
        before = m.state
        permit = self.breaker.acquire()
        if before is OPEN and (m.forced is OPEN or now < m.open_lo):
            assert permit is None, "admitted while open before the recovery time"
        if m.forced is CLOSED:
            expect, probe = True, False
        elif m.forced is OPEN or now < m.cooling_until:
            expect, probe = False, False
        elif m.state is CLOSED:
            expect, probe = True, False
        elif m.state is HALF_OPEN and len(m.probes) < m.policy.half_open_probes:
            expect, probe = True, True
        else:
            expect, probe = False, False
        assert (permit is not None) == expect, (m.state, m.forced, now, m.cooling_until)
        if permit is None:
            return multiple()
        assert permit.probe == probe
        m.permit_epochs[permit.id] = m.epoch
        if probe:
            m.probes[permit.id] = now
            self.episode_probes.add(permit.id)
        return permit

    @rule(permit=consumes(permits))
    def succeed(self, permit: Permit) -> None:
        now = self.now()
        m = self.model
        before = m.state
        self.breaker.record_success(permit)
        if permit.id in self.episode_probes:
            self.episode_probe_successes += 1
        if m.current(permit):
            if m.state is CLOSED:
                m.consecutive = 0
                m.events.append((now, False))
            elif m.take_probe(permit):
                m.probe_successes += 1
                if m.probe_successes >= m.policy.half_open_successes:
                    m.close(now, TransitionReason.PROBES_SUCCEEDED)
        if before is OPEN:
            assert self.breaker.state is OPEN, "a success while open closed the circuit"

    @rule(permit=consumes(permits), error_class=st.sampled_from(list(ErrorClass)))
    def fail(self, permit: Permit, error_class: ErrorClass) -> None:
        now = self.now()
        m = self.model
        self.breaker.record_failure(permit, error_class)
        effect = FAILURE_POLICIES[error_class].circuit
        if effect is CircuitEffect.COOLING:
            self._cool(now, permit, None)
        elif m.current(permit) and effect is CircuitEffect.NONE:
            m.take_probe(permit)
        elif m.current(permit) and m.state is CLOSED:
            m.consecutive += 1
            m.events.append((now, True))
            m.prune(now)
            failures = sum(failed for _, failed in m.events)
            if m.consecutive >= m.policy.consecutive_failures:
                m.open(now, TransitionReason.CONSECUTIVE_FAILURES)
            elif (
                len(m.events) >= m.policy.min_calls
                and failures / len(m.events) >= m.policy.failure_rate
            ):
                m.open(now, TransitionReason.FAILURE_RATE)
        elif m.current(permit) and m.take_probe(permit):
            m.open(now, TransitionReason.PROBE_FAILED)

    @rule(
        permit=consumes(permits),
        retry_after=st.one_of(st.none(), st.sampled_from([0.0, 3.0, 50.0, -1.0, math.nan])),
    )
    def rate_limited(self, permit: Permit, retry_after: float | None) -> None:
        now = self.now()
        self.breaker.record_rate_limited(permit, retry_after)
        self._cool(now, permit, retry_after)

    def _cool(self, now: float, permit: Permit, retry_after: float | None) -> None:
        m = self.model
        if not m.current(permit):
            return
        m.take_probe(permit)
        delay = m.policy.rate_limit_cooldown
        if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
            delay = retry_after
        m.cooling_until = max(m.cooling_until, now + min(delay, m.policy.cooldown_cap))

    @rule(permit=consumes(permits))
    def release(self, permit: Permit) -> None:
        self.now()
        self.breaker.release(permit)
        if self.model.current(permit):
            self.model.take_probe(permit)

    @rule(seconds=steps)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(
        edge=st.sampled_from(["lo", "hi"]),
        offset=st.sampled_from([-0.5, -1e-6, 0.0, 1e-6, 0.5]),
    )
    def advance_near_recovery(self, edge: str, offset: float) -> None:
        """Land just before, on and just after the bounds of the recovery time."""
        m = self.model
        bound = (m.open_lo + EPS) if edge == "lo" else (m.open_hi - EPS)
        now = self.clock.monotonic()
        if m.state is OPEN and math.isfinite(bound) and bound + offset > now:
            self.clock.advance(bound + offset - now)

    @rule()
    def force_open(self) -> None:
        now = self.now()
        self.breaker.force_open()
        self.model.forced = OPEN
        self.model.open_lo = self.model.open_hi = math.inf
        self.model.enter(now, OPEN, TransitionReason.FORCED_OPEN)

    @rule()
    def force_closed(self) -> None:
        now = self.now()
        self.breaker.force_closed()
        self.model.forced = CLOSED
        self.model.cooling_until = -math.inf
        self.model.enter(now, CLOSED, TransitionReason.FORCED_CLOSED)

    @rule()
    def reset(self) -> None:
        now = self.now()
        self.breaker.reset()
        m = self.model
        m.forced = None
        m.next_recovery = m.policy.recovery
        m.cooling_until = -math.inf
        m.enter(now, CLOSED, TransitionReason.RESET)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        self.now()
        snap = self.breaker.snapshot()
        assert snap.state is self.model.state
        assert snap.forced is self.model.forced
        assert snap.probes_in_flight == len(self.model.probes)
        self.model.prune(snap.taken_at)
        assert snap.consecutive_failures == self.model.consecutive
        assert snap.window_calls == len(self.model.events)
        assert snap.window_failures == sum(failed for _, failed in self.model.events)
        assert [(c.old, c.new, c.at, c.reason) for c in self.seen] == self.model.changes

    @invariant()
    def never_more_probes_than_configured(self) -> None:
        if hasattr(self, "model"):
            probes = self.breaker.snapshot().probes_in_flight
            assert probes <= self.breaker.policy.half_open_probes

    @invariant()
    def closes_only_after_the_configured_successes(self) -> None:
        for change in self.seen:
            if change.reason is TransitionReason.PROBES_SUCCEEDED:
                assert (change.old, change.new) == (HALF_OPEN, CLOSED)
        last = self.seen[-1] if self.seen else None
        if last is not None and last.reason is TransitionReason.PROBES_SUCCEEDED:
            assert self.episode_probe_successes >= self.breaker.policy.half_open_successes

    @invariant()
    def an_open_circuit_refuses_until_its_recovery_time(self) -> None:
        if not hasattr(self, "model"):
            return
        self.now()
        if self.model.state is not OPEN:
            return
        retry_at = self.breaker.retry_at
        if self.model.forced is OPEN:
            assert retry_at is None
        else:
            assert retry_at is not None
            assert retry_at > self.clock.monotonic()


CircuitBreakerMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTheCircuitBreakerAgreesWithItsReferenceModel = CircuitBreakerMachine.TestCase


# -- out-of-band probes and panic mode ------------------------------------------------------

probing_policies = st.builds(
    CircuitBreakerPolicy,
    consecutive_failures=st.integers(1, 3),
    recovery=st.sampled_from([10.0, 30.0]),
    recovery_multiplier=st.sampled_from([1.0, 2.0]),
    jitter=st.sampled_from([0.0, 0.2]),
    half_open_probes=st.integers(1, 2),
    half_open_successes=st.integers(1, 2),
    probe_timeout=st.sampled_from([None, 15.0]),
    probe_interval=st.sampled_from([0.25, 0.5, 2.0]),
    probe_interval_max=st.sampled_from([None, 4.0]),
    probe_multiplier=st.sampled_from([1.0, 2.0, 3.0]),
)


class ProbingMachine(RuleBasedStateMachine):
    """An owner that probes an open circuit whenever :attr:`probe_at` comes, against an
    upstream that goes down and comes back, with real calls and panic calls in between.

    Properties: at most one out-of-band probe per ``probe_interval`` and never two at
    once; a passing probe makes an open circuit half-open at once; once the upstream is
    back, an open circuit is half-open within the probe cap (while no real call has
    failed since) — however many times it opened before.
    """

    permits = Bundle("probing_permits")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.seen: list[StateChange] = []
        self.probe_starts: list[float] = []
        self.in_flight: list[ProbeTicket] = []
        self.healthy = False
        self.healthy_since: float | None = None
        self.last_real_failure = -math.inf

    @initialize(policy=probing_policies, seed=st.integers(0, 2**32 - 1))
    def start(self, policy: CircuitBreakerPolicy, seed: int) -> None:
        self.policy = policy
        self.breaker = CircuitBreaker(policy, self.clock, random.Random(seed))
        self.breaker.add_listener(self.seen.append)

    def _probe_now(self, *, settle: bool) -> None:
        before = self.breaker.state
        ticket = self.breaker.begin_probe()
        if ticket is None:
            return
        assert before is OPEN, "a probe was handed out for a circuit that is not open"
        self.probe_starts.append(ticket.started_at)
        if settle:
            self.breaker.record_probe(ticket, healthy=self.healthy)
            if self.healthy:
                assert self.breaker.state is HALF_OPEN, "a passing probe left the circuit open"
                assert self.seen[-1].reason is TransitionReason.HEALTH_PROBE_PASSED
            else:
                assert self.breaker.state is OPEN
        else:
            self.in_flight.append(ticket)

    # -- the owner and the world --------------------------------------------------------

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 3.0, 10.0]))
    def run_on_time(self, seconds: float) -> None:
        """Let time pass, probing (and settling at once) whenever a probe falls due."""
        end = self.clock.monotonic() + seconds
        while True:
            due = self.breaker.probe_at
            now = self.clock.monotonic()
            if due is None or due > end:
                break
            self.clock.advance(max(0.0, due - now))
            self._probe_now(settle=True)
        self.clock.advance(max(0.0, end - self.clock.monotonic()))

    @rule()
    def start_a_probe_and_leave_it_in_flight(self) -> None:
        self._probe_now(settle=False)

    @rule()
    def settle_the_oldest_probe(self) -> None:
        if self.in_flight:
            ticket = self.in_flight.pop(0)
            self.breaker.record_probe(ticket, healthy=self.healthy)

    @rule(healthy=st.booleans())
    def upstream_changes(self, healthy: bool) -> None:
        if healthy and not self.healthy:
            self.healthy_since = self.clock.monotonic()
        if not healthy:
            self.healthy_since = None
        self.healthy = healthy

    @rule(target=permits, panic=st.booleans())
    def acquire(self, panic: bool) -> object:
        before = self.breaker.state
        due = self.breaker.probe_at
        permit = self.breaker.acquire(panic=panic)
        now = self.clock.monotonic()
        if before is OPEN and permit is not None:
            assert panic, "an open circuit admitted a call"
            assert due is not None
            assert now >= due, "a panic call probed before a probe was due"
            assert self.seen[-1].reason is TransitionReason.PANIC_PROBE
            assert permit.probe
            self.probe_starts.append(now)
        return permit if permit is not None else multiple()

    @rule(permit=consumes(permits))
    def call_ends(self, permit: Permit) -> None:
        if self.healthy:
            self.breaker.record_success(permit)
        else:
            self.breaker.record_failure(permit, ErrorClass.SERVER_ERROR)
            self.last_real_failure = self.clock.monotonic()

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def at_most_one_probe_per_probe_interval(self) -> None:
        if not hasattr(self, "policy"):
            return
        interval = self.policy.probe_interval
        assert interval is not None
        starts = self.probe_starts
        for earlier, later in itertools.pairwise(starts):
            assert later - earlier >= interval - EPS, (earlier, later, interval)

    @invariant()
    def never_two_out_of_band_probes_at_once(self) -> None:
        if hasattr(self, "policy") and self.policy.probe_timeout is None:
            assert len(self.in_flight) <= 1

    @invariant()
    def a_recovered_upstream_is_tried_within_the_probe_cap(self) -> None:
        if not hasattr(self, "policy") or self.healthy_since is None or self.in_flight:
            return
        cap = self.policy.probe_cap
        assert cap is not None
        now = self.clock.monotonic()
        since = max(self.healthy_since, self.last_real_failure)
        if now >= since + cap + EPS and self.breaker.forced is None:
            assert self.breaker.state is not OPEN, (now, since, cap, self.breaker.probe_at)

    @invariant()
    def an_open_circuit_always_has_its_next_probe_within_the_cap(self) -> None:
        if not hasattr(self, "policy") or self.in_flight:
            return
        cap = self.policy.probe_cap
        assert cap is not None
        if self.breaker.state is OPEN:
            probe_at = self.breaker.probe_at
            assert probe_at is not None
            last = max([self.seen[-1].at, *self.probe_starts[-1:]])
            assert probe_at <= last + cap + EPS


ProbingMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOutOfBandProbesBringARecoveredProviderBackWithinTheProbeCap = ProbingMachine.TestCase
