"""Per-key limits: requests per minute and requests in flight at once.

``rpm`` is exact over a sliding minute: a key never gets more than ``rpm``
requests admitted in any 60 seconds, and a refused caller is told exactly when
the oldest of them leaves the window. ``max_streams`` bounds the requests a
key has in flight (streamed or not: every request holds an upstream stream).
Past either, a 429 with ``Retry-After``.

Everything here runs on the server's event loop, so it needs no lock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.config import ApiKey
from runestone.server.errors import ApiError

__all__ = ["KeyLimits", "Lease", "SlidingWindow"]

WINDOW = 60.0


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds (a log of the admitted ones)."""

    __slots__ = ("_clock", "_times", "limit", "window")

    def __init__(self, limit: int, *, window: float = WINDOW, clock: Clock = SYSTEM_CLOCK) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if not math.isfinite(window) or window <= 0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque()

    def take(self) -> float | None:
        """Admit one event now (``None``), or refuse it: the seconds until one would fit."""
        now = self._clock.monotonic()
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return times[0] + self.window - now
        times.append(now)
        return None


class Lease:
    """A slot held by one request; :meth:`release` gives it back (once)."""

    __slots__ = ("_counts", "_name")

    def __init__(self, counts: dict[str, int] | None, name: str) -> None:
        self._counts = counts
        self._name = name

    def release(self) -> None:
        counts, self._counts = self._counts, None
        if counts is not None:
            counts[self._name] -= 1


_FREE = Lease(None, "")


class KeyLimits:
    """The limits of every configured key, by key name."""

    def __init__(self, keys: Iterable[ApiKey], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._windows: dict[str, SlidingWindow] = {}
        self._max_streams: dict[str, int] = {}
        self._streams: dict[str, int] = {}
        self.update(keys)

    def update(self, keys: Iterable[ApiKey]) -> None:
        """Limit ``keys`` from now on (a reload). A key keeps what it holds under its name:
        its requests in flight, and its recent requests while its rate is unchanged."""
        keys = list(keys)
        windows = {}
        for key in keys:
            if key.rpm is None:
                continue
            old = self._windows.get(key.name)
            if old is None or old.limit != key.rpm:
                old = SlidingWindow(key.rpm, clock=self._clock)
            windows[key.name] = old
        self._windows = windows
        self._max_streams = {
            key.name: key.max_streams for key in keys if key.max_streams is not None
        }
        # The same dict: the leases of requests in flight give their slots back to it.
        for name in self._max_streams:
            self._streams.setdefault(name, 0)

    def count(self, key: ApiKey | None) -> None:
        """Count one request against ``key``'s rpm; raises a 429 past it."""
        if key is None:
            return
        window = self._windows.get(key.name)
        if window is None:
            return
        wait = window.take()
        if wait is not None:
            raise ApiError(
                429,
                f"rate limit reached for key {key.name!r}: {window.limit} requests per minute; "
                f"retry in {max(1, math.ceil(wait))} s",
                code="rate_limit_exceeded",
                retry_after=wait,
            )

    def acquire(self, key: ApiKey | None) -> Lease:
        """Take one of ``key``'s in-flight slots; raises a 429 when all are taken."""
        if key is None:
            return _FREE
        limit = self._max_streams.get(key.name)
        if limit is None:
            return _FREE
        held = self._streams[key.name]
        if held >= limit:
            raise ApiError(
                429,
                f"concurrency limit reached for key {key.name!r}: {limit} requests in flight "
                "at once; retry when one has finished",
                code="concurrency_limit_exceeded",
                retry_after=1,
            )
        self._streams[key.name] = held + 1
        return Lease(self._streams, key.name)

    def in_flight(self, name: str) -> int:
        """How many slots key ``name`` holds now."""
        return self._streams.get(name, 0)
