"""One (provider, model) pair the router may choose, with everything a policy looks at."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from runestone.messages import WireFormat
from runestone.providers.settings import Capability, ModelInfo
from runestone.resilience import CircuitSnapshot, CircuitState, HealthSnapshot
from runestone.routing.requirements import Requirements

__all__ = ["Candidate"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A routable model with its prices, limits, capabilities and live state.

    ``priority`` is its position in configuration order (lower first); prices are
    per million tokens. ``circuit`` and ``retry_at`` come from the provider's
    circuit breaker: ``retry_at`` is the monotonic time a refusing breaker
    (open, or cooling after a 429) admits calls again, ``None`` when nothing
    time-based holds it back (an open circuit without one is forced open).
    """

    provider: str
    model: str
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    context_window: int | None = None
    max_output_tokens: int | None = None
    capabilities: frozenset[Capability] = frozenset()
    weight: float = 1.0
    priority: int = 0
    health: HealthSnapshot | None = None
    circuit: CircuitState = CircuitState.CLOSED
    retry_at: float | None = None
    wires: frozenset[WireFormat] = frozenset()
    """The wire formats its provider speaks natively, whose every field it carries
    (empty: it takes only what the one request model says)."""
    _key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str) or not self.provider or "/" in self.provider:
            raise ValueError(f"provider: expected a name without '/', got {self.provider!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model: expected a non-empty name, got {self.model!r}")
        for name in ("input_per_1m", "output_per_1m", "weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        for name in ("context_window", "max_output_tokens"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name}: expected a whole number >= 1 or None, got {value!r}")
        object.__setattr__(self, "_key", f"{self.provider}/{self.model}")

    @property
    def key(self) -> str:
        """``"provider/model"``: how configuration and plans name this candidate."""
        return self._key

    @property
    def in_flight(self) -> int:
        """Calls this candidate's provider has in flight (0 when unknown)."""
        return 0 if self.health is None else self.health.in_flight

    def estimated_cost(self, requirements: Requirements) -> float:
        """The request's estimated price: prompt and answer tokens at this model's prices."""
        return (
            requirements.prompt_tokens * self.input_per_1m
            + requirements.output_tokens * self.output_per_1m
        ) / 1_000_000

    def is_blocked(self, now: float) -> bool:
        """True when its breaker would refuse a call at ``now`` for time reasons or forcing."""
        if self.retry_at is not None:
            return self.retry_at > now
        return self.circuit is CircuitState.OPEN

    @classmethod
    def from_model(
        cls,
        provider: str,
        model: ModelInfo,
        *,
        priority: int = 0,
        weight: float = 1.0,
        health: HealthSnapshot | None = None,
        circuit: CircuitSnapshot | None = None,
        wires: frozenset[WireFormat] = frozenset(),
    ) -> Candidate:
        """Build from a configured model and (optionally) its provider's live snapshots."""
        return cls(
            provider=provider,
            model=model.name,
            input_per_1m=model.input_per_1m,
            output_per_1m=model.output_per_1m,
            context_window=model.context_window,
            max_output_tokens=model.max_output_tokens,
            capabilities=model.capabilities,
            weight=weight,
            priority=priority,
            health=health,
            circuit=CircuitState.CLOSED if circuit is None else circuit.state,
            retry_at=None if circuit is None else circuit.retry_at,
            wires=wires,
        )
