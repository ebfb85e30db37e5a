"""One timer per attempt that enforces the headers, first-token, idle and total limits.

A per-read ``asyncio.timeout`` would schedule and cancel a timer for every
chunk. Instead the stream loop only stamps ``since`` (a float) and flips
``reading`` around each read, and this watchdog wakes up when the nearest limit
is due. If the limit really passed while the attempt was waiting on the
upstream, it cancels the attempt's task and remembers which limit fired; the
stream loop turns that cancellation into an ``UpstreamTimeoutError`` of the
right class (:meth:`StreamWatchdog.claim`).

It never cancels while the attempt is suspended at a ``yield`` (the consumer
is busy, not the upstream): a slow consumer is not an idle upstream. The total
limit is then enforced at the next read through :meth:`check`.
"""

from __future__ import annotations

import asyncio
import enum

from runestone.exceptions import ErrorClass
from runestone.providers.settings import Timeouts

__all__ = ["StreamWatchdog", "WatchPhase"]

# asyncio runs a timer up to one clock resolution early; never call that early a timeout.
_SLACK = 0.002


class WatchPhase(enum.Enum):
    """Which limit applies now."""

    HEADERS = "headers"  # waiting for the response headers
    FIRST_TOKEN = "first_token"  # headers in, no content yet
    STREAMING = "streaming"  # content flows: the idle limit applies between reads
    WHOLE = "whole"  # a non-streaming request: only the total limit


class StreamWatchdog:
    """Enforces :class:`Timeouts` on the task that runs one upstream attempt."""

    __slots__ = (
        "_cancelling",
        "_handle",
        "_loop",
        "_task",
        "_timeouts",
        "expired",
        "phase",
        "reading",
        "since",
        "start",
    )

    def __init__(
        self,
        timeouts: Timeouts,
        *,
        phase: WatchPhase = WatchPhase.HEADERS,
        loop: asyncio.AbstractEventLoop | None = None,
        task: asyncio.Task[object] | None = None,
    ) -> None:
        self._loop = loop or asyncio.get_running_loop()
        current = task or asyncio.current_task(self._loop)
        if current is None:
            raise RuntimeError("a StreamWatchdog must be created inside a task")
        self._task = current
        self._cancelling = current.cancelling()
        self._timeouts = timeouts
        self.start = self._loop.time()
        self.since = self.start
        self.phase = phase
        self.reading = True
        self.expired: ErrorClass | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._arm(self._deadline()[0])

    # ---- the stream loop's side

    def enter(self, phase: WatchPhase) -> None:
        """Move to ``phase``; its limit takes over from now on."""
        self.phase = phase
        if self._handle is not None:
            self._handle.cancel()
            self._arm(self._deadline()[0])

    def check(self) -> ErrorClass | None:
        """The limit that has passed by now, if any (for use between reads)."""
        deadline, error_class = self._deadline()
        if self._loop.time() >= deadline - _SLACK:
            return error_class
        return None

    def claim(self) -> ErrorClass | None:
        """After a ``CancelledError``: the limit that caused it, or None if it was not ours.

        Undoes the watchdog's own cancellation request so the task carries on and
        can raise a timeout error instead (as ``asyncio.timeout`` does).
        """
        if self.expired is None:
            return None
        if self._task.uncancel() > self._cancelling:
            return None  # someone else cancelled too: let the cancellation win
        return self.expired

    def cancel(self) -> None:
        """Stop watching (the attempt is over)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    # ---- the timer's side

    def _deadline(self) -> tuple[float, ErrorClass]:
        timeouts = self._timeouts
        total = self.start + timeouts.total
        phase = self.phase
        if phase is WatchPhase.STREAMING:
            # Idle time counts only while waiting on the upstream, from the read's start.
            limit = (self.since if self.reading else self._loop.time()) + timeouts.idle
            error_class = ErrorClass.IDLE_TIMEOUT
        elif phase is WatchPhase.FIRST_TOKEN:
            limit = self.start + timeouts.first_token
            error_class = ErrorClass.FIRST_TOKEN_TIMEOUT
        elif phase is WatchPhase.HEADERS:
            limit = self.start + timeouts.headers_limit
            error_class = ErrorClass.HEADERS_TIMEOUT
        else:
            return total, ErrorClass.TOTAL_TIMEOUT
        if total <= limit:
            return total, ErrorClass.TOTAL_TIMEOUT
        return limit, error_class

    def _arm(self, when: float) -> None:
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self.expired is not None or self._task.done():
            return
        deadline, error_class = self._deadline()
        now = self._loop.time()
        if now < deadline - _SLACK:
            self._arm(deadline)
            return
        if not self.reading:
            # Suspended at a yield: the consumer holds the attempt. Look again later;
            # the stream loop also calls check() before its next read.
            self._arm(now + min(self._timeouts.idle, 1.0))
            return
        self.expired = error_class
        self._task.cancel()
