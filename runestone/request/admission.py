"""The count of requests in flight: one bounded set, shared by every Pool incarnation.

Admission, checked where a request arrives (no actor asked), adds a request's
id; whoever ends the request (its stream task, its deadline timer, a refusal of
its spawn) removes it, directly,
with no message to the Pool. So the count never lags a request's end, never
leaks a slot when the Pool restarts (nothing is recounted), and a request ended
while the Pool was down still frees its slot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["InFlight"]


class InFlight:
    """Thread-safe set of the ids of admitted requests that have not ended yet."""

    __slots__ = ("_ids", "_lock", "admitted", "limit", "on_change", "refused")

    def __init__(self, limit: int = 1000, on_change: Callable[[int], None] | None = None) -> None:
        self.limit = limit
        """The bound (``pool.max_in_flight``; a reload changes it here)."""
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self.admitted = 0
        self.refused = 0
        self.on_change = on_change
        """Called with the new count after each change (the in-flight gauge)."""

    def __len__(self) -> int:
        return len(self._ids)

    def admit(self, request_id: str, limit: int | None = None) -> bool:
        """Count ``request_id`` in unless ``limit`` (default: :attr:`limit`) requests are
        already in flight."""
        if limit is None:
            limit = self.limit
        with self._lock:
            if len(self._ids) >= limit:
                self.refused += 1
                return False
            self._ids.add(request_id)
            self.admitted += 1
            count = len(self._ids)
        if self.on_change is not None:
            self.on_change(count)
        return True

    def release(self, request_id: str) -> None:
        """``request_id`` has ended (idempotent)."""
        with self._lock:
            if request_id not in self._ids:
                return
            self._ids.discard(request_id)
            count = len(self._ids)
        if self.on_change is not None:
            self.on_change(count)
