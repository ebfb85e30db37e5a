"""Hypothesis strategies shared by the routing tests: candidate pools and requirements."""

from __future__ import annotations

from hypothesis import strategies as st

from runestone.messages import WireFormat
from runestone.providers.settings import Capability
from runestone.resilience import CircuitState
from runestone.routing import Candidate, Requirements

NOW = 1000.0

prices = st.sampled_from([0.0, 0.15, 0.6, 2.5, 3.0, 10.0, 15.0, 60.0])
capability_sets = st.frozensets(st.sampled_from(list(Capability)))
wire_sets = st.frozensets(st.sampled_from(list(WireFormat)))
windows = st.one_of(st.none(), st.sampled_from([4_096, 8_192, 32_000, 128_000, 200_000]))


@st.composite
def circuits(draw: st.DrawFn) -> tuple[CircuitState, float | None]:
    """A breaker's state and retry_at, as a snapshot would show them."""
    kind = draw(st.sampled_from(["closed", "half_open", "open", "due", "forced", "cooling"]))
    later = NOW + draw(st.floats(0.5, 300.0))
    return {
        "closed": (CircuitState.CLOSED, None),
        "half_open": (CircuitState.HALF_OPEN, None),
        "open": (CircuitState.OPEN, later),
        "due": (CircuitState.OPEN, NOW - 0.1),
        "forced": (CircuitState.OPEN, None),
        "cooling": (CircuitState.CLOSED, later),
    }[kind]


@st.composite
def pools(draw: st.DrawFn, min_size: int = 1, max_size: int = 8) -> list[Candidate]:
    """Distinct candidates over a few providers, with random prices, limits and circuits."""
    size = draw(st.integers(min_size, max_size))
    pool = []
    for priority in range(size):
        circuit, retry_at = draw(circuits())
        pool.append(
            Candidate(
                provider=f"p{draw(st.integers(0, 3))}",
                model=f"m{priority}",
                input_per_1m=draw(prices),
                output_per_1m=draw(prices),
                context_window=draw(windows),
                capabilities=draw(capability_sets),
                weight=draw(st.sampled_from([0.0, 1.0, 2.0, 5.0])),
                priority=priority,
                circuit=circuit,
                retry_at=retry_at,
                wires=draw(wire_sets),
            )
        )
    return pool


requirements = st.builds(
    Requirements,
    tools=st.booleans(),
    vision=st.booleans(),
    json=st.booleans(),
    prefill=st.booleans(),
    embeddings=st.booleans(),
    completions=st.booleans(),
    prompt_tokens=st.integers(0, 150_000),
    max_tokens=st.one_of(st.none(), st.integers(1, 50_000)),
    wire=st.one_of(st.none(), st.sampled_from(list(WireFormat))),
    native_field=st.just("field"),
)
