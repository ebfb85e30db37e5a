"""One provider's health figures: a pure tracker on an injected clock, and its frozen snapshot.

- latency and time to first token: exponentially weighted moving averages
  (``alpha`` weighs the newest sample) over successful calls only, since a
  timeout's duration says nothing about how fast the provider answers;
- success rate over a sliding time window, counting only outcomes that count
  against the circuit (a request the provider rightly refused is not its fault);
- in-flight count, last error and when, circuit state-change times;
- one score in [0, 1]: the windowed success rate times a circuit factor
  (closed 1, half-open 0.5, open 0).

Feed it circuit transitions with ``breaker.add_listener(tracker.record_state_change)``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated

from msgspec import Meta

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import ErrorClass
from runestone.resilience.circuit_breaker import CircuitState, StateChange
from runestone.resilience.failure_policy import failure_policy
from runestone.schema import Positive, Shape

if TYPE_CHECKING:
    from runestone.request import AttemptOutcome

__all__ = ["CIRCUIT_SCORE_FACTORS", "HealthSnapshot", "HealthTracker"]

CIRCUIT_SCORE_FACTORS: Mapping[CircuitState, float] = MappingProxyType(
    {CircuitState.CLOSED: 1.0, CircuitState.HALF_OPEN: 0.5, CircuitState.OPEN: 0.0}
)
"""How much of the success rate each circuit state lets through into the score."""


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """A provider's health at one instant. Times are on the tracker's monotonic clock."""

    score: float
    success_rate: float
    window_calls: int
    window_failures: int
    latency: float | None
    first_token: float | None
    in_flight: int
    total_successes: int
    total_failures: int
    last_error: ErrorClass | None
    last_error_detail: str
    last_error_at: float | None
    circuit: CircuitState
    state_changed_at: float | None
    recent_changes: tuple[StateChange, ...]
    taken_at: float
    wall_offset: float
    """``clock.time() - clock.monotonic()`` when taken: turns the times above into wall time."""

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``health()`` output; times become epoch seconds (wall clock)."""

        def wall(at: float | None) -> float | None:
            return None if at is None else round(at + self.wall_offset, 3)

        return {
            "score": round(self.score, 6),
            "success_rate": round(self.success_rate, 6),
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "latency": self.latency,
            "first_token": self.first_token,
            "in_flight": self.in_flight,
            "total_successes": self.total_successes,
            "total_failures": self.total_failures,
            "last_error": None if self.last_error is None else self.last_error.value,
            "last_error_detail": self.last_error_detail,
            "last_error_at": wall(self.last_error_at),
            "circuit": self.circuit.value,
            "state_changed_at": wall(self.state_changed_at),
            "recent_changes": [
                {
                    "old": change.old.value,
                    "new": change.new.value,
                    "at": wall(change.at),
                    "reason": change.reason.value,
                }
                for change in self.recent_changes
            ],
        }


def _check_seconds(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected finite seconds >= 0, got {value!r}")


class _TrackerSettings(Shape, frozen=True):
    window: Positive
    alpha: Annotated[float, Meta(gt=0, le=1)]
    history: Annotated[int, Meta(ge=0)]


class HealthTracker:
    """Health figures for one provider; not thread-safe on purpose (one actor owns it)."""

    def __init__(
        self,
        clock: Clock = SYSTEM_CLOCK,
        *,
        window: float = 60.0,
        alpha: float = 0.2,
        history: int = 16,
    ) -> None:
        _TrackerSettings(window=window, alpha=alpha, history=history)  # refuses bad values
        self._clock = clock
        self._window = window
        self._alpha = alpha
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._window_failures = 0
        self._latency: float | None = None
        self._first_token: float | None = None
        self._in_flight = 0
        self._successes = 0
        self._failures = 0
        self._last_error: ErrorClass | None = None
        self._last_error_detail = ""
        self._last_error_at: float | None = None
        self._circuit = CircuitState.CLOSED
        self._changes: deque[StateChange] = deque(maxlen=history)
        self._changed_at: float | None = None

    @property
    def in_flight(self) -> int:
        """Calls started and not yet ended."""
        return self._in_flight

    def record_start(self) -> None:
        """A call to the provider started."""
        self._in_flight += 1

    def record_success(self, latency: float, *, first_token: float | None = None) -> None:
        """A call ended well after ``latency`` seconds (first token after ``first_token``)."""
        _check_seconds("latency", latency)
        _check_seconds("first_token", first_token)
        self._end()
        self._successes += 1
        self._push(failed=False)
        self._latency = self._average(self._latency, latency)
        if first_token is not None:
            self._first_token = self._average(self._first_token, first_token)

    def record_failure(self, error_class: ErrorClass, *, detail: str = "") -> None:
        """A call ended in ``error_class``; ``detail`` is a short reason (never a key)."""
        counts = failure_policy(error_class).counts_against_circuit
        self._end()
        self._failures += 1
        self._last_error = ErrorClass(error_class)
        self._last_error_detail = detail
        self._last_error_at = self._clock.monotonic()
        if counts:
            self._push(failed=True)

    def record_attempt(self, attempt: AttemptOutcome) -> None:
        """An attempt ended (its start is booked with its end, as a permit from the gate
        is never seen by the provider's actor): a success, or a failure of its class."""
        self.record_start()
        error = attempt.error
        if error is None:
            self.record_success(attempt.latency, first_token=attempt.first_token)
        else:
            self.record_failure(error.error_class, detail=attempt.detail)

    def record_cancelled(self) -> None:
        """A call ended without an outcome."""
        self._end()

    def record_state_change(self, change: StateChange) -> None:
        """The provider's circuit changed state (a circuit-breaker listener)."""
        self._circuit = change.new
        self._changed_at = change.at
        self._changes.append(change)

    def score(self) -> float:
        """One figure in [0, 1]: windowed success rate times the circuit factor."""
        self._prune(self._clock.monotonic())
        return self._success_rate() * CIRCUIT_SCORE_FACTORS[self._circuit]

    def snapshot(self) -> HealthSnapshot:
        """The figures now, as a frozen value."""
        now = self._clock.monotonic()
        self._prune(now)
        rate = self._success_rate()
        return HealthSnapshot(
            score=rate * CIRCUIT_SCORE_FACTORS[self._circuit],
            success_rate=rate,
            window_calls=len(self._outcomes),
            window_failures=self._window_failures,
            latency=self._latency,
            first_token=self._first_token,
            in_flight=self._in_flight,
            total_successes=self._successes,
            total_failures=self._failures,
            last_error=self._last_error,
            last_error_detail=self._last_error_detail,
            last_error_at=self._last_error_at,
            circuit=self._circuit,
            state_changed_at=self._changed_at,
            recent_changes=tuple(self._changes),
            taken_at=now,
            wall_offset=self._clock.time() - now,
        )

    def _end(self) -> None:
        # An outcome without a start (e.g. reported after a restart) must not go negative.
        self._in_flight = max(0, self._in_flight - 1)

    def _average(self, current: float | None, sample: float) -> float:
        if current is None:
            return sample
        return self._alpha * sample + (1.0 - self._alpha) * current

    def _push(self, *, failed: bool) -> None:
        now = self._clock.monotonic()
        self._outcomes.append((now, failed))
        self._window_failures += failed
        self._prune(now)

    def _prune(self, now: float) -> None:
        horizon = now - self._window
        outcomes = self._outcomes
        while outcomes and outcomes[0][0] <= horizon:
            _, failed = outcomes.popleft()
            self._window_failures -= failed

    def _success_rate(self) -> float:
        if not self._outcomes:
            return 1.0
        return 1.0 - self._window_failures / len(self._outcomes)
