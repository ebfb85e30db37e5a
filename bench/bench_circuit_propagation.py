"""How long a circuit change takes to reach every replica of a cluster (issue 13).

Three replicas (``--replicas``), each a whole Runestone System in this process
with its own data-plane loop and Redis connections, share one real
``redis-server`` (started here on a free loopback port). A driver, a fourth
member of the cluster, changes one provider's shared circuit through the same
Lua script a replica's provider actor uses — open, then half-open (the recovery
time having passed), then closed by a probe's success — and, for each change,
times how long until every replica's directory shows the new state: the script's
publication, pub/sub delivery, each replica's subscriber, its provider actor
adopting the state and publishing it to the directory that routing reads.

Targets: p99 at most 1 s; goal at most 100 ms. The directories are polled every
0.2 ms, so figures carry up to that much of it.

    python bench/bench_circuit_propagation.py [--replicas 3] [--cycles 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runestone
from runestone.cluster import Cluster, SharedCircuits
from runestone.config import ClusterConfig
from runestone.logging import configure_logging
from runestone.resilience import CircuitBreakerPolicy
from runestone.system import System
from runestone.testing.redis_server import RedisServer

BREAKER: dict[str, Any] = {"recovery": 0.05, "jitter": 0, "probe_interval": None}


def _replica(url: str, name: str) -> System:
    return runestone.start(
        {
            "providers": {
                "p": {"type": "simulated", "models": {"m": {}}, "circuit_breaker": BREAKER}
            },
            "cluster": {"redis_url": url, "instance": name, "heartbeat": 0.5, "deadline": 1.0},
            "logging": {"level": "ERROR"},
        },
        configure_logs=False,
    )


def _state(system: System) -> str:
    entry = system.directory.entries()["p"]
    return "" if entry.status is None else entry.status.state.value


def _reached(systems: list[System], state: str, started: float, timeout: float = 5.0) -> float:
    while True:
        if all(_state(s) == state for s in systems):
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"a change to {state} did not reach every replica in {timeout} s")
        time.sleep(0.0002)


async def _drive(url: str, systems: list[System], cycles: int) -> dict[str, list[float]]:
    cluster = Cluster(ClusterConfig(redis_url=url, instance="driver", deadline=1.0))
    await cluster.open()
    circuits = SharedCircuits(cluster, None)  # type: ignore[arg-type]  # run() only
    policy = CircuitBreakerPolicy(**BREAKER)
    times: dict[str, list[float]] = {"open": [], "half_open": [], "closed": []}

    async def change(op: str, expect: str, **extra: Any) -> None:
        started = time.perf_counter()
        state = await circuits.run("p", policy, op, epoch=None, **extra)
        assert state.state.value == expect, (op, state)
        times[expect].append(await asyncio.to_thread(_reached, systems, expect, started))

    try:
        for cycle in range(cycles):
            await change("open", "open", arg="consecutive_failures")
            await asyncio.sleep(BREAKER["recovery"] + 0.01)
            probe = f"driver:{cycle}"
            await change("acquire", "half_open", probe_id=probe)
            await change("settle", "closed", arg="success", probe_id=probe)
    finally:
        await cluster.aclose()
    return times


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _row(name: str, samples: list[float]) -> str:
    return (
        f"  {name:<10} n={len(samples):<4} median {statistics.median(samples) * 1e3:7.2f} ms"
        f"   p99 {p99(samples) * 1e3:7.2f} ms   max {max(samples) * 1e3:7.2f} ms"
    )


def measure(replicas: int, cycles: int) -> dict[str, list[float]]:
    """Seconds from each change to every replica showing it, by the state changed to."""
    # Every change is a warning in each replica's log: hundreds of lines, none the figure.
    configure_logging("ERROR")
    with RedisServer() as redis_server:
        systems = [_replica(redis_server.url, f"r{i}") for i in range(replicas)]
        try:
            _reached(systems, "closed", time.perf_counter())
            return asyncio.run(_drive(redis_server.url, systems, cycles))
        finally:
            for system in systems:
                system.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=100)
    args = parser.parse_args()
    times = measure(args.replicas, args.cycles)
    every = [t for samples in times.values() for t in samples]
    print(
        f"circuit change -> every one of {args.replicas} replicas "
        "(target p99 <= 1 s, goal <= 100 ms)"
    )
    for name, samples in times.items():
        print(_row(name, samples))
    print(_row("all", every))


if __name__ == "__main__":
    main()
