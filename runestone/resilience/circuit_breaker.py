"""A per-provider circuit breaker: a pure state machine on an injected clock and random source.

::

              N consecutive failures, or failure rate >= threshold
              over the window once it holds min_calls
    CLOSED ─────────────────────────────────────────────────────▶ OPEN
      ▲                                                            │ recovery time passed
      │ half_open_successes probe successes                        ▼ (grows per opening,
      └──────────────────────────────────────────────────── HALF_OPEN   capped, jittered)
                                 one probe failure: back to OPEN ──┘

Every call asks :meth:`CircuitBreaker.acquire` for a :class:`Permit` and settles it
exactly once with :meth:`~CircuitBreaker.record_success`,
:meth:`~CircuitBreaker.record_failure`, :meth:`~CircuitBreaker.record_rate_limited`
or :meth:`~CircuitBreaker.release`. Half-open admits at most ``half_open_probes``
probes at once and refuses everyone else while they are in flight. Outcomes of
permits issued before the circuit last opened, closed, was forced or reset are
stale and change nothing: a success reported while open never closes the circuit.
A 429 is not a failure: it makes the breaker refuse calls for a cooling period
(``Retry-After`` or a default).

There are no threads, locks, timers or I/O here: one actor owns one breaker.
Time-based transitions (open -> half-open) happen when the breaker is next
looked at; an owner that wants listeners told promptly calls :meth:`poll` at
:attr:`retry_at`.

Out-of-band probes. The recovery time above grows with each opening, so on its
own it brings a provider back long after the provider has recovered. While the
circuit is open (and not forced) the owner therefore runs a cheap health probe
(a model listing, a one-token request) whenever :attr:`probe_at` comes:
:meth:`begin_probe` hands out one :class:`ProbeTicket` at a time, at most one
per ``probe_interval``, and :meth:`record_probe` settles it. A passing probe
moves the circuit to half-open at once (real traffic then closes it); a failing
one lengthens the probe interval, capped at ``probe_interval_max``. The growth
is in how often a dead provider is probed, never in how long a recovered one
waits: that is at most the probe cap.

Panic mode (every candidate's circuit open): ``acquire(panic=True)`` lets one
real request probe an open circuit when an out-of-band probe would be due,
moving it to half-open (reason ``panic_probe``) instead of refusing.
"""

from __future__ import annotations

import enum
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from msgspec import Meta

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import ErrorClass
from runestone.resilience.failure_policy import CircuitEffect, failure_policy
from runestone.schema import AtLeastOne, Count, NonNegative, Positive, Shape, convert, not_below

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerPolicy",
    "CircuitSnapshot",
    "CircuitState",
    "Permit",
    "ProbeTicket",
    "StateChange",
    "StateListener",
    "TransitionReason",
]


class CircuitState(enum.StrEnum):
    """The lifecycle of a circuit."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class TransitionReason(enum.StrEnum):
    """Why a circuit changed state."""

    CONSECUTIVE_FAILURES = "consecutive_failures"
    FAILURE_RATE = "failure_rate"
    RECOVERY_DUE = "recovery_due"
    PROBE_FAILED = "probe_failed"
    PROBES_SUCCEEDED = "probes_succeeded"
    HEALTH_PROBE_PASSED = "health_probe_passed"
    PANIC_PROBE = "panic_probe"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"
    RESET = "reset"
    CLUSTER = "cluster"
    """Adopted from the cluster's shared circuit (:meth:`CircuitBreaker.adopt`)."""


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition, as told to listeners; ``at`` is the breaker clock's monotonic time."""

    old: CircuitState
    new: CircuitState
    at: float
    reason: TransitionReason


StateListener = Callable[[StateChange], None]


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call; settle it exactly once."""

    id: int
    epoch: int
    probe: bool
    issued_at: float


@dataclass(frozen=True, slots=True)
class ProbeTicket:
    """Leave to run one out-of-band health probe; settle it with ``record_probe``."""

    id: int
    epoch: int
    started_at: float
    interval: float = 0.0
    """The probe interval in force when it began: the next is not due before it has passed."""


class CircuitBreakerPolicy(Shape, frozen=True):
    """The breaker's settings; field names are the ``circuit_breaker`` config keys.

    Times are in seconds. ``recovery_max`` defaults to ten times ``recovery``;
    ``rate_limit_cooldown_max`` to the larger of 300 s and ``rate_limit_cooldown``.
    ``probe_timeout`` frees a half-open probe slot whose permit was never settled
    (``None``: never), so a lost permit cannot wedge the circuit half-open.
    """

    consecutive_failures: Count = 5
    """Failures in a row that open the circuit."""
    failure_rate: Annotated[float, Meta(gt=0, le=1)] = 0.5
    """The share of failed calls in ``window`` that opens it (once ``min_calls`` were made)."""
    window: Positive = 60.0
    """The sliding window the failure rate is measured over."""
    min_calls: Count = 10
    """Calls in the window before the failure rate counts."""
    recovery: Positive = 30.0
    """How long the first opening lasts before a half-open probe."""
    recovery_max: Positive | None = None
    """The longest an opening grows to (default: ten times ``recovery``)."""
    recovery_multiplier: AtLeastOne = 2.0
    """How much each reopening after a failed probe lengthens the opening."""
    jitter: Annotated[float, Meta(ge=0, lt=1)] = 0.1
    """The random share added to an opening, so replicas do not probe in step."""
    half_open_probes: Count = 1
    """Calls let through at once while half-open."""
    half_open_successes: Count = 1
    """Successful probes that close the circuit again."""
    rate_limit_cooldown: NonNegative = 1.0
    """How long a 429 without Retry-After holds the provider back (cooling, not failing)."""
    rate_limit_cooldown_max: NonNegative | None = None
    """The longest a Retry-After may hold it back (default: max(300, rate_limit_cooldown))."""
    probe_timeout: Positive | None = 300.0
    """When an unsettled half-open probe slot is freed again (null: never)."""
    probe_interval: Positive | None = 0.5
    """Seconds between out-of-band probes of an open circuit (null: no probes)."""
    probe_interval_max: Positive | None = None
    """The longest gap between probes as it grows (default: twice ``probe_interval``)."""
    probe_multiplier: AtLeastOne = 2.0
    """How much the gap between failed probes grows."""

    def __post_init__(self) -> None:
        super().__post_init__()
        not_below("recovery_max", self.recovery_max, self.recovery)
        not_below("rate_limit_cooldown_max", self.rate_limit_cooldown_max, self.rate_limit_cooldown)
        not_below("probe_interval_max", self.probe_interval_max, self.probe_interval)

    @property
    def recovery_cap(self) -> float:
        """The longest an opening lasts, jitter included."""
        return self.recovery * 10 if self.recovery_max is None else self.recovery_max

    @property
    def probe_cap(self) -> float | None:
        """The longest time between out-of-band probes of an open circuit (None: no probes)."""
        if self.probe_interval is None:
            return None
        if self.probe_interval_max is None:
            return self.probe_interval * 2
        return self.probe_interval_max

    @property
    def cooldown_cap(self) -> float:
        """The longest cooling period a ``Retry-After`` can impose."""
        if self.rate_limit_cooldown_max is None:
            return max(300.0, self.rate_limit_cooldown)
        return self.rate_limit_cooldown_max

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, path: str = "circuit_breaker"
    ) -> CircuitBreakerPolicy:
        """Build from a config mapping; a :class:`ConfigError` names the full key path."""
        return convert(data, cls, path=path)


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    """The breaker's state at one instant, as plain data for routing and ``health()``."""

    state: CircuitState
    forced: CircuitState | None
    retry_at: float | None
    cooling_until: float | None
    consecutive_failures: int
    window_calls: int
    window_failures: int
    openings: int
    probes_in_flight: int
    changed_at: float | None
    taken_at: float

    def to_dict(self) -> dict[str, object]:
        """Plain data (strings and numbers); times become seconds from ``taken_at``."""

        def until(at: float | None) -> float | None:
            return None if at is None else round(at - self.taken_at, 6)

        return {
            "state": self.state.value,
            "forced": None if self.forced is None else self.forced.value,
            "retry_in": until(self.retry_at),
            "cooling_for": until(self.cooling_until),
            "consecutive_failures": self.consecutive_failures,
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "openings": self.openings,
            "probes_in_flight": self.probes_in_flight,
            "changed_ago": None
            if self.changed_at is None
            else round(self.taken_at - self.changed_at, 6),
        }


class CircuitBreaker:
    """One provider's circuit breaker (see the module docstring).

    Not thread-safe on purpose: exactly one owner (an actor) drives it. Listeners
    are called synchronously after each state change; an exception from one
    propagates to the caller, the breaker's state already being consistent.
    """

    def __init__(
        self,
        policy: CircuitBreakerPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._policy = policy if policy is not None else CircuitBreakerPolicy()
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._ids = itertools.count(1)
        self._listeners: list[StateListener] = []
        self._state = CircuitState.CLOSED
        self._forced: CircuitState | None = None
        self._epoch = 0
        self._changed_at: float | None = None
        self._consecutive = 0
        self._events: deque[tuple[float, bool]] = deque()
        self._window_failures = 0
        self._openings = 0
        self._next_recovery = self._policy.recovery
        self._open_until: float | None = None
        self._cooling_until = -math.inf
        self._probes: dict[int, float] = {}
        self._probe_successes = 0
        self._probe_interval = self._policy.probe_interval
        self._probe_at: float | None = None
        self._probe_ticket: ProbeTicket | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def policy(self) -> CircuitBreakerPolicy:
        """The settings this breaker runs with."""
        return self._policy

    @property
    def state(self) -> CircuitState:
        """The current state, after any transition that has fallen due."""
        return self.poll()

    @property
    def epoch(self) -> int:
        """Counts the breaker's fresh starts; a permit of an older epoch is stale."""
        return self._epoch

    @property
    def forced(self) -> CircuitState | None:
        """The state an operator forced, or ``None`` when the breaker runs by itself."""
        return self._forced

    @property
    def retry_at(self) -> float | None:
        """When a call refused for time reasons (open or cooling) may next be admitted.

        ``None`` when nothing time-based is holding calls back — including a
        circuit forced open, which stays open until :meth:`reset`.
        """
        now = self._clock.monotonic()
        self._refresh(now)
        return self._retry_at(now)

    @property
    def cooling_until(self) -> float | None:
        """The end of the current rate-limit cooling period, or ``None``."""
        now = self._clock.monotonic()
        return self._cooling_until if self._cooling_until > now else None

    @property
    def probe_at(self) -> float | None:
        """When the next out-of-band probe is due, or ``None`` when none is wanted now.

        Only an open, unforced circuit with probing configured wants probes; the
        time is never before the end of a cooling period.
        """
        now = self._clock.monotonic()
        self._refresh(now)
        return self._next_probe()

    @property
    def panic_retry_at(self) -> float | None:
        """When a refused panic-mode call (``acquire(panic=True)``) may next be admitted."""
        now = self._clock.monotonic()
        self._refresh(now)
        retry_at = self._retry_at(now)
        probe_at = self._next_probe()
        if (
            retry_at is None
            and self._state is CircuitState.HALF_OPEN
            and self._forced is None
            and self._probe_interval is not None
        ):
            # Its probes are out: ask again after one probe interval, when they have most
            # likely settled, rather than give up on a provider that may be back.
            return now + self._current_probe_interval()
        if retry_at is None or probe_at is None:
            return retry_at
        return min(retry_at, probe_at)

    def recovery_due(self) -> bool:
        """True when the circuit is open and its recovery time has come."""
        return (
            self._state is CircuitState.OPEN
            and self._forced is None
            and self._open_until is not None
            and self._clock.monotonic() >= self._open_until
        )

    def poll(self) -> CircuitState:
        """Apply the transitions that time has made due (telling listeners); return the state."""
        self._refresh(self._clock.monotonic())
        return self._state

    def snapshot(self) -> CircuitSnapshot:
        """The breaker's figures now, as a frozen value."""
        now = self._clock.monotonic()
        self._refresh(now)
        self._prune(now)
        return CircuitSnapshot(
            state=self._state,
            forced=self._forced,
            retry_at=self._retry_at(now),
            cooling_until=self._cooling_until if self._cooling_until > now else None,
            consecutive_failures=self._consecutive,
            window_calls=len(self._events),
            window_failures=self._window_failures,
            openings=self._openings,
            probes_in_flight=len(self._probes),
            changed_at=self._changed_at,
            taken_at=now,
        )

    # -- listeners -------------------------------------------------------------------------

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener`` with a :class:`StateChange` after every state change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        """Stop calling ``listener``; a listener that was never added is ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- the call protocol -----------------------------------------------------------------

    def acquire(self, *, panic: bool = False) -> Permit | None:
        """A permit for one call, or ``None`` when the breaker refuses it.

        ``panic``: every candidate is held back (routing's panic mode). An open
        circuit whose out-of-band probe is due then goes half-open at once and
        this call becomes its probe, rather than being refused.
        """
        now = self._clock.monotonic()
        self._refresh(now)
        if self._forced is CircuitState.CLOSED:
            return self._permit(now, probe=False)
        if self._forced is CircuitState.OPEN or now < self._cooling_until:
            return None
        if panic and self._state is CircuitState.OPEN:
            probe_at = self._next_probe()
            if probe_at is None or now < probe_at:
                return None
            # The probe budget is shared: a dead provider still sees one probe per interval.
            self._probe_at = now + self._current_probe_interval()
            self._state_change(now, CircuitState.HALF_OPEN, TransitionReason.PANIC_PROBE)
        if self._state is CircuitState.CLOSED:
            return self._permit(now, probe=False)
        if (
            self._state is CircuitState.HALF_OPEN
            and len(self._probes) < self._policy.half_open_probes
        ):
            permit = self._permit(now, probe=True)
            self._probes[permit.id] = now
            return permit
        return None

    def record_success(self, permit: Permit) -> None:
        """Settle ``permit``: the call succeeded."""
        now = self._clock.monotonic()
        self._refresh(now)
        if not self._is_current(permit):
            return
        if self._state is CircuitState.CLOSED:
            self._consecutive = 0
            self._push(now, failed=False)
        elif self._take_probe(permit):
            self._probe_successes += 1
            if self._probe_successes >= self._policy.half_open_successes:
                self._close(now, TransitionReason.PROBES_SUCCEEDED)

    def record_failure(
        self, permit: Permit, error_class: ErrorClass, *, retry_after: float | None = None
    ) -> None:
        """Settle ``permit``: the call failed with ``error_class`` (ARCHITECTURE §4 decides).

        A rate-limit class is passed on to :meth:`record_rate_limited` with
        ``retry_after``; classes that do not count against the circuit only
        free the permit's probe slot.
        """
        effect = failure_policy(error_class).circuit
        if effect is CircuitEffect.COOLING:
            self.record_rate_limited(permit, retry_after)
            return
        now = self._clock.monotonic()
        self._refresh(now)
        if not self._is_current(permit):
            return
        if effect is CircuitEffect.NONE:
            self._take_probe(permit)
            return
        if self._state is CircuitState.CLOSED:
            self._consecutive += 1
            self._push(now, failed=True)
            self._prune(now)
            if self._consecutive >= self._policy.consecutive_failures:
                self._open(now, TransitionReason.CONSECUTIVE_FAILURES)
            elif (
                len(self._events) >= self._policy.min_calls
                and self._window_failures / len(self._events) >= self._policy.failure_rate
            ):
                self._open(now, TransitionReason.FAILURE_RATE)
        elif self._take_probe(permit):
            self._open(now, TransitionReason.PROBE_FAILED)

    def record_rate_limited(self, permit: Permit, retry_after: float | None = None) -> None:
        """Settle ``permit``: a 429. Cool down for ``retry_after`` seconds (or the default).

        Not a failure. A missing, negative or non-finite ``retry_after`` means the
        policy's ``rate_limit_cooldown``; any value is capped at its ``cooldown_cap``.
        """
        now = self._clock.monotonic()
        self._refresh(now)
        if not self._is_current(permit):
            return
        self._take_probe(permit)
        delay = self._policy.rate_limit_cooldown
        if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
            delay = retry_after
        delay = min(delay, self._policy.cooldown_cap)
        self._cooling_until = max(self._cooling_until, now + delay)

    def cool(self, seconds: float) -> None:
        """Refuse calls for ``seconds`` (capped at ``cooldown_cap``): the cooling a 429 set
        on another replica (cluster mode). Not while forced; a non-positive or non-finite
        time changes nothing."""
        if self._forced is not None or not math.isfinite(seconds) or seconds <= 0:
            return
        now = self._clock.monotonic()
        delay = min(seconds, self._policy.cooldown_cap)
        self._cooling_until = max(self._cooling_until, now + delay)

    def release(self, permit: Permit) -> None:
        """Settle ``permit`` without an outcome (the call was cancelled or never made)."""
        now = self._clock.monotonic()
        self._refresh(now)
        if self._is_current(permit):
            self._take_probe(permit)

    def free_admission(self) -> tuple[int, float] | None:
        """Whether calls may be admitted without :meth:`acquire` (a permit gate's state).

        While the breaker is closed (or forced closed), admission keeps no books: a
        permit made elsewhere with the epoch returned here settles like one of
        :meth:`acquire`'s. Returned: ``(epoch, cooling_until)``, a call before
        ``cooling_until`` being refused (a 429's cooling); ``None`` when every call
        must come to :meth:`acquire` (open, half-open, forced open).
        """
        if self._forced is CircuitState.CLOSED:
            return self._epoch, -math.inf
        if self._forced is not None or self._state is not CircuitState.CLOSED:
            return None
        return self._epoch, self._cooling_until

    # -- a state decided elsewhere (cluster mode) -------------------------------------------

    def adopt(self, state: CircuitState, *, open_for: float | None = None) -> None:
        """Take on ``state``, decided by the cluster's shared circuit (reason ``cluster``).

        Open: for ``open_for`` more seconds (an opening already under way only has
        its end moved). Half-open: with no probes of its own in flight; the shared
        circuit counts them, and :meth:`grant_probe` issues the permits it granted.
        A forced state stands: an operator's word is not overruled by the cluster.
        """
        if self._forced is not None:
            return
        now = self._clock.monotonic()
        self._refresh(now)
        if state is CircuitState.OPEN:
            until = now + max(0.0, open_for or 0.0)
            if self._state is CircuitState.OPEN:
                self._open_until = until
                return
            self._openings += 1
            self._open_until = until
            self._probe_ticket = None
            self._probe_at = None if self._probe_interval is None else now + self._probe_interval
            self._enter(now, CircuitState.OPEN, TransitionReason.CLUSTER)
            self._refresh(now)  # an opening that is already over is half-open at once
        elif state is CircuitState.HALF_OPEN:
            if self._state is not CircuitState.HALF_OPEN:
                self._enter(now, CircuitState.HALF_OPEN, TransitionReason.CLUSTER)
        elif self._state is not CircuitState.CLOSED:
            self._close(now, TransitionReason.CLUSTER)

    def grant_probe(self) -> Permit:
        """A half-open probe permit whose slot the shared circuit granted (cluster mode).

        It settles like one from :meth:`acquire`; the local probe limit is not applied,
        the shared one having been. The breaker is made half-open first if it is not.
        """
        now = self._clock.monotonic()
        self._refresh(now)
        if self._state is not CircuitState.HALF_OPEN:
            self._enter(now, CircuitState.HALF_OPEN, TransitionReason.CLUSTER)
        permit = self._permit(now, probe=True)
        self._probes[permit.id] = now
        return permit

    # -- out-of-band probes ----------------------------------------------------------------

    def begin_probe(self) -> ProbeTicket | None:
        """A ticket for one out-of-band probe when one is due (see :attr:`probe_at`), else None.

        One probe at a time: the next is not due before this one is settled (or
        ``probe_timeout`` has passed since it began) and ``probe_interval`` has passed.
        """
        now = self._clock.monotonic()
        self._refresh(now)
        probe_at = self._next_probe()
        if probe_at is None or now < probe_at:
            return None
        interval = self._current_probe_interval()
        ticket = ProbeTicket(next(self._ids), self._epoch, now, interval)
        self._probe_ticket = ticket
        self._probe_at = now + interval
        return ticket

    def record_probe(self, ticket: ProbeTicket, *, healthy: bool) -> None:
        """Settle ``ticket``: the probe passed (``healthy``) or failed.

        A pass while the circuit is still open moves it to half-open at once; a
        failure lengthens the probe interval (capped). A ticket from before the
        circuit last changed epoch (closed, reopened, forced, reset) changes nothing.
        """
        now = self._clock.monotonic()
        self._refresh(now)
        if self._probe_ticket is not None and self._probe_ticket.id == ticket.id:
            self._probe_ticket = None
        if ticket.epoch != self._epoch or self._forced is not None:
            return
        if self._state is not CircuitState.OPEN:
            return
        if healthy:
            self._probe_interval = self._policy.probe_interval
            self._state_change(now, CircuitState.HALF_OPEN, TransitionReason.HEALTH_PROBE_PASSED)
            return
        self._grow_probe_interval()
        if self._probe_at is not None:
            self._probe_at = max(self._probe_at, ticket.started_at + self._current_probe_interval())

    # -- manual control --------------------------------------------------------------------

    def force_open(self) -> None:
        """Refuse every call until :meth:`reset` (or :meth:`force_closed`)."""
        self._force(CircuitState.OPEN, TransitionReason.FORCED_OPEN)

    def force_closed(self) -> None:
        """Admit every call, ignoring outcomes and cooling, until :meth:`reset`."""
        self._force(CircuitState.CLOSED, TransitionReason.FORCED_CLOSED)

    def reset(self) -> None:
        """Forget everything: closed, unforced, no cooling, no history."""
        self._forced = None
        self._openings = 0
        self._next_recovery = self._policy.recovery
        self._probe_interval = self._policy.probe_interval
        self._cooling_until = -math.inf
        self._enter(self._clock.monotonic(), CircuitState.CLOSED, TransitionReason.RESET)

    # -- internals -------------------------------------------------------------------------

    def _permit(self, now: float, *, probe: bool) -> Permit:
        return Permit(next(self._ids), self._epoch, probe, now)

    def _is_current(self, permit: Permit) -> bool:
        # Forced states ignore outcomes; an older epoch means the permit predates an opening.
        return self._forced is None and permit.epoch == self._epoch

    def _take_probe(self, permit: Permit) -> bool:
        """Free the permit's half-open probe slot; True when it held one."""
        return (
            self._state is CircuitState.HALF_OPEN
            and permit.probe
            and self._probes.pop(permit.id, None) is not None
        )

    def _retry_at(self, now: float) -> float | None:
        if self._state is CircuitState.OPEN:
            if self._forced is not None or self._open_until is None:
                return None
            return max(self._open_until, self._cooling_until)
        if self._forced is None and self._cooling_until > now:
            return self._cooling_until
        return None

    def _next_probe(self) -> float | None:
        if (
            self._state is not CircuitState.OPEN
            or self._forced is not None
            or self._probe_at is None
        ):
            return None
        due = self._probe_at
        ticket = self._probe_ticket
        if ticket is not None:
            # One probe at a time: the next waits for this one, or for it to be given up.
            timeout = self._policy.probe_timeout
            if timeout is None:
                return None
            due = max(due, ticket.started_at + timeout)
        return max(due, self._cooling_until)

    def _current_probe_interval(self) -> float:
        assert self._probe_interval is not None  # only called while probing is configured
        return self._probe_interval

    def _grow_probe_interval(self) -> None:
        cap = self._policy.probe_cap
        if self._probe_interval is not None and cap is not None:
            self._probe_interval = min(self._probe_interval * self._policy.probe_multiplier, cap)

    def _refresh(self, now: float) -> None:
        if self._state is CircuitState.OPEN:
            if self._forced is None and self._open_until is not None and now >= self._open_until:
                self._state_change(now, CircuitState.HALF_OPEN, TransitionReason.RECOVERY_DUE)
        elif self._state is CircuitState.HALF_OPEN and self._policy.probe_timeout is not None:
            expiry = now - self._policy.probe_timeout
            for permit_id in [pid for pid, at in self._probes.items() if at <= expiry]:
                del self._probes[permit_id]

    def _push(self, now: float, *, failed: bool) -> None:
        self._events.append((now, failed))
        self._window_failures += failed

    def _prune(self, now: float) -> None:
        horizon = now - self._policy.window
        events = self._events
        while events and events[0][0] <= horizon:
            _, failed = events.popleft()
            self._window_failures -= failed

    def _open(self, now: float, reason: TransitionReason) -> None:
        self._openings += 1
        base = self._next_recovery
        cap = self._policy.recovery_cap
        self._next_recovery = min(base * self._policy.recovery_multiplier, cap)
        jitter = self._policy.jitter
        spread = self._rng.uniform(1.0 - jitter, 1.0 + jitter) if jitter else 1.0
        self._open_until = now + min(base * spread, cap)
        if reason is TransitionReason.PROBE_FAILED:
            # The provider looked healthy (a probe passed) but real traffic failed: probe less.
            self._grow_probe_interval()
        self._probe_ticket = None
        self._probe_at = None if self._probe_interval is None else now + self._probe_interval
        self._enter(now, CircuitState.OPEN, reason)

    def _close(self, now: float, reason: TransitionReason) -> None:
        self._openings = 0
        self._next_recovery = self._policy.recovery
        self._probe_interval = self._policy.probe_interval
        self._enter(now, CircuitState.CLOSED, reason)

    def _force(self, state: CircuitState, reason: TransitionReason) -> None:
        self._forced = state
        self._open_until = None
        if state is CircuitState.CLOSED:
            self._cooling_until = -math.inf
        self._enter(self._clock.monotonic(), state, reason)

    def _enter(self, now: float, state: CircuitState, reason: TransitionReason) -> None:
        """Start a fresh epoch in ``state``: earlier permits become stale."""
        self._epoch += 1
        self._consecutive = 0
        self._events.clear()
        self._window_failures = 0
        self._probes.clear()
        self._probe_successes = 0
        self._state_change(now, state, reason)

    def _state_change(self, now: float, state: CircuitState, reason: TransitionReason) -> None:
        old = self._state
        self._state = state
        if state is CircuitState.HALF_OPEN:
            self._probes.clear()
            self._probe_successes = 0
        if old is state:
            return
        self._changed_at = now
        change = StateChange(old, state, now, reason)
        for listener in list(self._listeners):
            listener(change)
