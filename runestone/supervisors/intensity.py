"""Restart intensity: at most ``max_restarts`` restarts within ``max_seconds`` (OTP)."""

from __future__ import annotations

import collections
from typing import Annotated

from msgspec import Meta

from runestone.clock import Clock
from runestone.schema import Positive, Shape

__all__ = ["IntensityPolicy", "RestartIntensity"]


class IntensityPolicy(Shape, frozen=True):
    """The bound on restart loops, shared by all the children of one supervisor.

    A bad value raises :class:`~runestone.schema.FieldError` (a ``ValueError``).
    """

    max_restarts: Annotated[int, Meta(ge=0)] = 3
    """Restarts allowed within ``max_seconds``; one more escalates to the parent."""
    max_seconds: Positive = 5.0
    """The sliding window restarts are counted over."""


class RestartIntensity:
    """Counts restarts in a sliding window read from an injected clock.

    A restart at time ``t`` still counts at ``now`` while ``now - t < max_seconds``;
    :meth:`record` says whether one more restart stays within the bound
    (``max_restarts`` are allowed, the one after escalates).
    """

    def __init__(self, policy: IntensityPolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()

    def _prune(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.policy.max_seconds:
            self._times.popleft()

    def record(self) -> bool:
        """Count a restart now; ``False`` when it exceeds the intensity (escalate)."""
        now = self._clock.monotonic()
        self._prune(now)
        self._times.append(now)
        return len(self._times) <= self.policy.max_restarts

    @property
    def recent(self) -> int:
        """Restarts that still count against the bound."""
        self._prune(self._clock.monotonic())
        return len(self._times)
