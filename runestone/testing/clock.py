"""A clock that moves only when told to: time-based logic tested without sleeping."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FakeClock"]


@dataclass(order=True)
class _Scheduled:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A :class:`runestone.clock.Clock` whose time advances only through :meth:`advance`.

    Callbacks scheduled with :meth:`call_later` run in the thread that calls
    :meth:`advance`, in due order, once their time is reached.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._lock = threading.Lock()
        self._queue: list[_Scheduled] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def time(self) -> float:
        with self._lock:
            return self._now + self._wall_offset

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Scheduled:
        with self._lock:
            item = _Scheduled(self._now + max(0.0, delay), next(self._seq), callback)
            heapq.heappush(self._queue, item)
            return item

    @property
    def pending(self) -> int:
        """How many scheduled calls are still waiting (cancelled ones excluded)."""
        with self._lock:
            return sum(1 for item in self._queue if not item.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running every callback that falls due."""
        if seconds < 0:
            raise ValueError(f"a clock never goes back: advance({seconds})")
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                if not self._queue or self._queue[0].due > target:
                    self._now = target
                    return
                item = heapq.heappop(self._queue)
                self._now = max(self._now, item.due)
            if not item.cancelled:
                item.callback()
