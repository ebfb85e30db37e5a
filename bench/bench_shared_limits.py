"""The time a request spends in its key's limits: count + acquire + release, local vs shared.

    python3 bench/bench_shared_limits.py [--calls 2000]

Starts a redis-server on loopback (runestone.testing.RedisServer). The shared paths are
what a clustered gateway awaits per request: ``count+acquire`` two round trips (a
route that counts, then takes a slot), ``admit`` one (a chat request: both in one
script); the release is sent without waiting, and let finish outside the timing. A
``ping`` on the same client is the floor: one round trip and no work. On uvloop where
it is installed, as ``runestone serve`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from runestone.cluster import Cluster, SharedLimits
from runestone.config import ApiKey, ClusterConfig
from runestone.providers.settings import Secret
from runestone.server.limits import KeyLimits
from runestone.testing.redis_server import RedisServer

KEY = ApiKey(key=Secret("sk-bench-0000"), name="bench", rpm=10**9, max_streams=10**6)


def _summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:<14} median {statistics.median(ordered) * 1e6:8.1f} us   "
        f"p99 {p99 * 1e6:8.1f} us   ({len(ordered)} calls)"
    )


def local(calls: int) -> list[float]:
    limits = KeyLimits([KEY])
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        limits.count(KEY)
        limits.acquire(KEY).release()
        samples.append(time.perf_counter() - started)
    return samples


async def shared(url: str, calls: int) -> dict[str, list[float]]:
    config = ClusterConfig(redis_url=url, instance="bench", secret="s", heartbeat=10.0)
    cluster = Cluster(config)
    await cluster.open()
    limits = SharedLimits(KeyLimits([KEY]), cluster)
    await limits.prepare()
    redis = cluster.link.redis

    async def ping() -> None:
        await redis.ping()

    async def both() -> None:
        await limits.count(KEY)
        (await limits.acquire(KEY)).release()

    async def admit() -> None:
        (await limits.admit(KEY)).release()

    ways = {"ping": ping, "count+acquire": both, "admit": admit}
    samples: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for way in ways.values():  # warm up
            for _ in range(200):
                await way()
            await limits.flush()
        for _ in range(calls):  # taking turns, so that drift hits all alike
            for name, way in ways.items():
                started = time.perf_counter()
                await way()
                samples[name].append(time.perf_counter() - started)
                await limits.flush()
        assert limits.mode == "shared"
    finally:
        await limits.aclose()
        await cluster.aclose()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls
    print(_summary("local", local(calls)))
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:  # pragma: no cover - where uvloop does not install
        run = asyncio.run
    with RedisServer() as server:
        found = run(shared(server.url, calls))
    for name, samples in found.items():
        print(_summary(name, samples))
    floor = statistics.median(found["ping"])
    for name in ("count+acquire", "admit"):
        rounds = statistics.median(found[name]) / floor
        print(f"{name}: {rounds:.2f} pings' worth")


if __name__ == "__main__":
    main()
