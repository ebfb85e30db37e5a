"""Per-key limits: requests per minute, tokens per minute, requests in flight at once.

``rpm`` is exact over a sliding minute: a key never gets more than ``rpm``
requests admitted in any 60 seconds, and a refused caller is told exactly when
the oldest of them leaves the window. ``tpm`` is checked at the same point: a
request is refused while the tokens booked (:meth:`KeyLimits.book`, each
answer's prompt and completion tokens, once it is known) in the last 60 seconds
reach ``tpm``; an answer is never cut short for it, so one large answer can take a
key past its tpm, and its next request waits. ``max_streams`` bounds the requests a
key has in flight (streamed or not: every request holds an upstream stream).
Past any, a 429 with ``Retry-After``.

These are one process's counts; :class:`runestone.cluster.SharedLimits` makes
them exact across replicas.

Everything here runs on the server's event loop, so it needs no lock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.config import ApiKey
from runestone.server.errors import ApiError

__all__ = [
    "KeyLimits",
    "Lease",
    "Releasable",
    "SlidingWindow",
    "TokenWindow",
    "concurrency_refusal",
    "rate_refusal",
    "token_refusal",
]

WINDOW = 60.0


def _check_window(limit: int, window: float) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if not math.isfinite(window) or window <= 0:
        raise ValueError(f"window must be a positive number of seconds, got {window!r}")


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds (a log of the admitted ones)."""

    __slots__ = ("_clock", "_times", "limit", "window")

    def __init__(self, limit: int, *, window: float = WINDOW, clock: Clock = SYSTEM_CLOCK) -> None:
        _check_window(limit, window)
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


class TokenWindow:
    """The tokens booked in the last ``window`` seconds; refused while they reach ``limit``."""

    __slots__ = ("_bookings", "_clock", "limit", "total", "window")

    def __init__(self, limit: int, *, window: float = WINDOW, clock: Clock = SYSTEM_CLOCK) -> None:
        _check_window(limit, window)
        self.limit = limit
        self.window = window
        self._clock = clock
        self._bookings: deque[tuple[float, int]] = deque()
        self.total = 0
        """The tokens booked in the window, as of the last prune."""

    def _prune(self, now: float) -> None:
        bookings = self._bookings
        while bookings and bookings[0][0] <= now - self.window:
            self.total -= bookings.popleft()[1]

    def check(self) -> float | None:
        """``None`` while under the limit; else the seconds until enough bookings have left
        the window for the total to be under it again."""
        now = self._clock.monotonic()
        self._prune(now)
        excess = self.total - self.limit
        if excess < 0:
            return None
        for at, tokens in self._bookings:
            excess -= tokens
            if excess < 0:
                return at + self.window - now
        raise AssertionError("the bookings add up to their total")  # pragma: no cover

    def book(self, tokens: int) -> None:
        """Book ``tokens`` used now."""
        if tokens <= 0:
            return
        now = self._clock.monotonic()
        self._prune(now)
        self._bookings.append((now, tokens))
        self.total += tokens


def rate_refusal(key: ApiKey, wait: float) -> ApiError:
    """The 429 of ``key``'s rpm, to be retried in ``wait`` seconds."""
    return ApiError(
        429,
        f"rate limit reached for key {key.name!r}: {key.rpm} requests per minute; "
        f"retry in {max(1, math.ceil(wait))} s",
        code="rate_limit_exceeded",
        retry_after=wait,
    )


def token_refusal(key: ApiKey, wait: float) -> ApiError:
    """The 429 of ``key``'s tpm, to be retried in ``wait`` seconds."""
    return ApiError(
        429,
        f"token limit reached for key {key.name!r}: {key.tpm} tokens per minute; "
        f"retry in {max(1, math.ceil(wait))} s",
        code="token_limit_exceeded",
        retry_after=wait,
    )


def concurrency_refusal(key: ApiKey) -> ApiError:
    """The 429 of ``key``'s max_streams."""
    return ApiError(
        429,
        f"concurrency limit reached for key {key.name!r}: {key.max_streams} requests in "
        "flight at once; retry when one has finished",
        code="concurrency_limit_exceeded",
        retry_after=1,
    )


class Releasable(Protocol):
    """A held slot: :class:`Lease` here, or a cluster's shared lease."""

    def release(self) -> None:
        """Give the slot back; again does nothing."""


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
        self._tokens: dict[str, TokenWindow] = {}
        self._max_streams: dict[str, int] = {}
        self._streams: dict[str, int] = {}
        self.update(keys)

    def update(self, keys: Iterable[ApiKey]) -> None:
        """Limit ``keys`` from now on (a reload). A key keeps what it holds under its name:
        its requests in flight, its recent requests while its rate is unchanged, and the
        tokens it used (they are facts, whatever the new tpm)."""
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
        tokens = {}
        for key in keys:
            if key.tpm is None:
                continue
            booked = self._tokens.get(key.name)
            if booked is None:
                booked = TokenWindow(key.tpm, clock=self._clock)
            booked.limit = key.tpm
            tokens[key.name] = booked
        self._tokens = tokens
        self._max_streams = {
            key.name: key.max_streams for key in keys if key.max_streams is not None
        }
        # The same dict: the leases of requests in flight give their slots back to it.
        for name in self._max_streams:
            self._streams.setdefault(name, 0)

    def count(self, key: ApiKey | None) -> None:
        """Count one request against ``key``'s rpm; raises a 429 past it, or while the
        tokens it used in the last minute reach its tpm (then the request is not counted)."""
        if key is None:
            return
        booked = self._tokens.get(key.name)
        if booked is not None:
            wait = booked.check()
            if wait is not None:
                raise token_refusal(key, wait)
        window = self._windows.get(key.name)
        if window is None:
            return
        wait = window.take()
        if wait is not None:
            raise rate_refusal(key, wait)

    def book(self, key: ApiKey | None, tokens: int) -> None:
        """Book ``tokens`` (an answer's prompt and completion tokens) against ``key``'s tpm."""
        if key is None:
            return
        booked = self._tokens.get(key.name)
        if booked is not None:
            booked.book(tokens)

    def tokens_used(self, name: str) -> int:
        """The tokens key ``name`` has booked in the last minute."""
        booked = self._tokens.get(name)
        if booked is None:
            return 0
        booked.check()  # prunes
        return booked.total

    def acquire(self, key: ApiKey | None) -> Lease:
        """Take one of ``key``'s in-flight slots; raises a 429 when all are taken."""
        if key is None:
            return _FREE
        limit = self._max_streams.get(key.name)
        if limit is None:
            return _FREE
        held = self._streams[key.name]
        if held >= limit:
            raise concurrency_refusal(key)
        self._streams[key.name] = held + 1
        return Lease(self._streams, key.name)

    def in_flight(self, name: str) -> int:
        """How many slots key ``name`` holds now."""
        return self._streams.get(name, 0)
