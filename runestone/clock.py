"""Injected time: every timed decision reads a :class:`Clock`.

The supervision runtime, circuit breakers and retry schedules take a clock so
tests drive time with :class:`runestone.testing.FakeClock` instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Cancellable", "Clock", "SystemClock"]


@runtime_checkable
class Cancellable(Protocol):
    """A scheduled call that can still be called off."""

    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """Monotonic time, wall time and delayed calls."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (for timestamps shown to people)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` once after ``delay`` seconds, on some thread of the clock's."""
        ...


class SystemClock:
    """The real clock; ``call_later`` runs the callback on a short-lived daemon timer thread."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        timer = threading.Timer(max(0.0, delay), callback)
        timer.name = "runestone-timer"
        timer.daemon = True
        timer.start()
        return timer


SYSTEM_CLOCK: Clock = SystemClock()
