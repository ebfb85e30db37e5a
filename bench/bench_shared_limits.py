"""The time a request spends in its key's limits: count + acquire + release, local vs shared.

    PYTHONPATH=. python3 bench/bench_shared_limits.py [--calls 2000]

Starts a redis-server on loopback (runestone.testing.RedisServer). The shared path is
what a clustered gateway awaits per request (count and acquire; release is sent
without waiting, and is let finish outside the timing).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

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
        f"{name:<8} median {statistics.median(ordered) * 1e6:8.1f} us   "
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


async def shared(url: str, calls: int) -> list[float]:
    config = ClusterConfig(redis_url=url, instance="bench", secret="s", heartbeat=10.0)
    cluster = Cluster(config)
    await cluster.open()
    limits = SharedLimits(KeyLimits([KEY]), cluster)
    await limits.prepare()
    samples = []
    try:
        for _ in range(200):  # warm up
            await limits.count(KEY)
            (await limits.acquire(KEY)).release()
        await limits.flush()
        for _ in range(calls):
            started = time.perf_counter()
            await limits.count(KEY)
            lease = await limits.acquire(KEY)
            lease.release()
            samples.append(time.perf_counter() - started)
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
    with RedisServer() as server:
        print(_summary("shared", asyncio.run(shared(server.url, calls))))


if __name__ == "__main__":
    main()
