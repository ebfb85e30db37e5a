"""Restart intensity: at most ``max_restarts`` restarts within ``max_seconds`` (OTP)."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

from runestone.clock import Clock

__all__ = ["IntensityPolicy", "RestartIntensity"]


@dataclass(frozen=True, slots=True)
class IntensityPolicy:
    """The bound on restart loops, shared by all the children of one supervisor."""

    max_restarts: int = 3
    max_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(f"max_restarts must be an integer >= 0, got {self.max_restarts!r}")
        if (
            not isinstance(self.max_seconds, int | float)
            or not self.max_seconds > 0
            or math.isinf(self.max_seconds)
        ):
            raise ValueError(f"max_seconds must be a finite number > 0, got {self.max_seconds!r}")


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
