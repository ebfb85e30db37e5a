"""The permit gate: a provider's admission, read on the data-plane loop without asking.

Each ProviderActor owns one gate and sets it whenever its breaker's state may
have changed (ARCHITECTURE §2). While the circuit is closed and not cooling
after a 429, the gate grants a permit at once, carrying the breaker's epoch, so
the happy path never waits on the actor; in every other state (open, half-open,
cooling, forced open, draining) :meth:`PermitGate.grant` returns ``None`` and
the stream task asks the actor, which counts half-open probes exactly. A
permit granted just before the circuit opened carries the older epoch and its
outcome is ignored, as one from :meth:`CircuitBreaker.acquire` would be.

The gate also counts the provider's attempts in flight: only the loop changes
the count (an ``int``, read by the actor and by routing from any thread).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from runestone.resilience import Permit

__all__ = ["PermitGate"]

# Permits of gates are numbered apart from the breaker's own (which count up from 1).
_ids = itertools.count(-1, -1)


@dataclass(frozen=True, slots=True)
class _Open:
    epoch: int
    cooling_until: float


class PermitGate:
    """See the module docstring."""

    __slots__ = ("_open", "in_flight", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._open: _Open | None = None
        self.in_flight = 0
        """Attempts holding a permit of this provider now (changed on the loop only)."""

    def set(self, admission: tuple[int, float] | None, *, draining: bool = False) -> None:
        """The actor's word (``CircuitBreaker.free_admission()``): one reference swapped."""
        if admission is None or draining:
            self._open = None
        else:
            epoch, cooling_until = admission
            current = self._open
            if current is None or current.epoch != epoch or current.cooling_until != cooling_until:
                self._open = _Open(epoch, cooling_until)

    @property
    def is_open(self) -> bool:
        """It grants without asking (cooling aside)."""
        return self._open is not None

    def grant(self, now: float) -> Permit | None:
        """A permit at once, or ``None``: ask the actor (``Acquire``) instead."""
        state = self._open
        if state is None or now < state.cooling_until:
            return None
        return Permit(next(_ids), state.epoch, False, now)

    def __repr__(self) -> str:
        state = self._open
        shown = "ask" if state is None else f"open epoch={state.epoch}"
        if state is not None and math.isfinite(state.cooling_until):
            shown += f" cooling_until={state.cooling_until:.3f}"
        return f"<PermitGate {self.provider} {shown} in_flight={self.in_flight}>"
