"""What one resilience or routing decision costs, in microseconds.

1. Circuit breaker: one call's decision, ``acquire()`` plus settling the permit
   (success; a failure that does not trip; a refusal while open), on the real
   clock. Health bookkeeping for the same call is shown beside it.
2. Retry: one ``decide_retry`` for a retryable failure.
3. Routing: one ``plan()`` for an alias over 2, 10 and 100 candidates (each with
   a fallback, a quarter of them open), for every policy; plus reading a
   request's requirements.

Each figure is CPU time per decision, the median over ``--repeat`` runs of
``--number`` decisions (``--number / size`` for plans over ``size`` candidates).
Run: ``python bench/bench_decisions.py [--number 20000] [--repeat 7]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from runestone.clock import SYSTEM_CLOCK
from runestone.exceptions import ErrorClass
from runestone.providers.settings import Capability
from runestone.resilience import (
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitState,
    HealthTracker,
    RetryPolicy,
    decide_retry,
)
from runestone.routing import Candidate, Requirements, RoutingTable, make_policy, plan
from runestone.routing.policies import POLICIES

SIZES = (2, 10, 100)


def per_call_us(action: Callable[[], object], number: int, repeat: int) -> float:
    """Median CPU microseconds per call of ``action`` over ``repeat`` runs of ``number`` calls.

    CPU time of this process, not wall time: on a shared machine other work
    would otherwise be counted in.
    """
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            action()
        runs.append((time.process_time() - start) / number * 1e6)
    return statistics.median(runs)


def breaker_figures(number: int, repeat: int) -> dict[str, float]:
    rng = random.Random(1)
    closed = CircuitBreaker(CircuitBreakerPolicy(), SYSTEM_CLOCK, rng)
    never_trips = CircuitBreaker(
        CircuitBreakerPolicy(consecutive_failures=10**9, failure_rate=1.0, min_calls=10**9),
        SYSTEM_CLOCK,
        rng,
    )
    open_ = CircuitBreaker(CircuitBreakerPolicy(), SYSTEM_CLOCK, rng)
    open_.force_open()
    health = HealthTracker(SYSTEM_CLOCK)

    def success() -> None:
        permit = closed.acquire()
        assert permit is not None
        closed.record_success(permit)

    def failure() -> None:
        permit = never_trips.acquire()
        assert permit is not None
        never_trips.record_failure(permit, ErrorClass.SERVER_ERROR)

    def refused() -> None:
        open_.acquire()

    def bookkeeping() -> None:
        health.record_start()
        health.record_success(0.25, first_token=0.05)

    return {
        "acquire + record_success (closed)": per_call_us(success, number, repeat),
        "acquire + record_failure (closed, no trip)": per_call_us(failure, number, repeat),
        "acquire refused (open)": per_call_us(refused, number, repeat),
        "health: record_start + record_success": per_call_us(bookkeeping, number, repeat),
    }


def retry_figure(number: int, repeat: int) -> float:
    policy, rng = RetryPolicy(max_attempts=3), random.Random(2)

    def decide() -> None:
        decide_retry(
            policy,
            ErrorClass.RATE_LIMITED,
            attempt=1,
            now=100.0,
            rng=rng,
            deadline=160.0,
            retry_after=1.5,
        )

    return per_call_us(decide, number, repeat)


def pool(size: int) -> tuple[list[Candidate], RoutingTable]:
    rng = random.Random(size)
    now = SYSTEM_CLOCK.monotonic()
    candidates = []
    for i in range(size):
        opened = i % 4 == 3
        candidates.append(
            Candidate(
                provider=f"provider{i % 7}",
                model=f"model{i}",
                input_per_1m=rng.choice([0.15, 0.5, 2.5, 3.0, 15.0]),
                output_per_1m=rng.choice([0.6, 1.5, 10.0, 15.0, 75.0]),
                context_window=rng.choice([32_000, 128_000, 200_000]),
                capabilities=frozenset({Capability.TOOLS, Capability.JSON}),
                weight=rng.choice([1.0, 2.0, 5.0]),
                priority=i,
                circuit=CircuitState.OPEN if opened else CircuitState.CLOSED,
                retry_at=now + 3600 if opened else None,
            )
        )
    keys = [c.key for c in candidates]
    table = RoutingTable(
        aliases={"fleet": tuple(keys)},
        fallbacks={key: (keys[(i + 1) % size],) for i, key in enumerate(keys)},
    )
    return candidates, table


def routing_figures(number: int, repeat: int) -> dict[str, dict[int, float]]:
    needs = Requirements(tools=True, prompt_tokens=1_200, max_tokens=400)
    figures: dict[str, dict[int, float]] = {}
    for name in POLICIES:
        figures[name] = {}
        for size in SIZES:
            candidates, table = pool(size)
            policy = make_policy(name, rng=random.Random(3))
            now = SYSTEM_CLOCK.monotonic()

            def decide(
                candidates: list[Candidate] = candidates,
                table: RoutingTable = table,
                policy: object = policy,
                now: float = now,
            ) -> None:
                plan("fleet", needs, candidates, table, policy, now=now)  # type: ignore[arg-type]

            # Fewer rounds for big pools: the figure is per decision either way.
            figures[name][size] = per_call_us(decide, max(200, number // size), repeat)
    return figures


def requirements_figure(number: int, repeat: int) -> float:
    request = {
        "model": "fleet",
        "messages": [
            {"role": "system", "content": "You are terse." * 10},
            {"role": "user", "content": "Summarise the attached report. " * 40},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        "max_tokens": 400,
    }
    return per_call_us(lambda: Requirements.from_request(request), number, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="decisions per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs; the median is shown")
    args = parser.parse_args()

    print("circuit breaker (per call, real clock)")
    for label, micros in breaker_figures(args.number, args.repeat).items():
        print(f"  {label:<44} {micros:7.2f} us")
    print(
        f"  {'retry: decide_retry (429, Retry-After)':<44} "
        f"{retry_figure(args.number, args.repeat):7.2f} us"
    )

    print("\nrouting: one plan() for an alias (a quarter open, one fallback each)")
    print(f"  {'policy':<14}" + "".join(f"{f'{n} cand.':>12}" for n in SIZES) + "   us/cand. @100")
    for name, by_size in routing_figures(args.number, args.repeat).items():
        row = "".join(f"{by_size[n]:10.2f}us" for n in SIZES)
        print(f"  {name:<14}{row}   {by_size[100] / 100:8.3f}")
    reading = requirements_figure(args.number, args.repeat)
    print(f"\n  requirements from a request dict: {reading:.2f} us")


if __name__ == "__main__":
    main()
