"""LiteLLM's multi-instance limits on Redis, for comparison with Runestone's cluster mode.

    python3 bench/bench_cluster_peers.py [--rpm 10] [--rounds 3] [--requests 300]

LiteLLM's Router, embedded (what a user would run instead of several Runestone replicas):
a deployment with ``rpm`` under ``routing_strategy="usage-based-routing-v2"``, whose
pre-call check counts requests in Redis when ``redis_host``/``redis_port`` are given
(an INCR of a key per UTC minute, checked after the increment: a fixed window, not a
sliding one). The upstream is Runestone's fake OpenAI upstream; Redis a loopback
redis-server (``runestone.testing.redis_server``).

- ``limit``: three Routers on one Redis (one process, one loop, as three replicas would
  share the Redis), 3 x ``--rpm`` concurrent calls spread over them; admitted = calls
  that reached the upstream; the limit error is admitted / rpm. The same with one Router
  (the single-process baseline). ``--rounds`` rounds, Redis flushed between them.
- ``latency``: one Router without Redis and one with it (rpm never reached), sequential
  calls taking turns; what Redis adds, median and p99.

Compare with ``bench_cluster.py`` (Runestone: admitted / configured exactly 1.00; what
cluster mode adds to a request).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the cost map

import redis

from runestone.testing.redis_server import RedisServer
from runestone.testing.upstream import FakeUpstream

MODEL = "healthy"
MESSAGES = [{"role": "user", "content": "Tell me the known text."}]


def _router(upstream: FakeUpstream, rpm: int, server: RedisServer | None, tag: str) -> Any:
    """A Router with one deployment; ``tag`` is its id, so each round counts afresh
    (LiteLLM keeps counts in process as well as in Redis, by deployment id and minute)."""
    import litellm
    from litellm import Router

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    deployment = {
        "model_name": "m",
        "litellm_params": {
            "model": f"openai/{MODEL}",
            "api_base": upstream.openai_base_url,
            "api_key": "sk-fake",
            "rpm": rpm,
        },
        "model_info": {"id": tag},
    }
    extra: dict[str, Any] = {}
    if server is not None:
        extra = {"redis_host": "127.0.0.1", "redis_port": server.port}
    return Router(
        model_list=[deployment],
        routing_strategy="usage-based-routing-v2",
        num_retries=0,
        **extra,
    )


async def _call(router: Any) -> str:
    try:
        await router.acompletion(model="m", messages=MESSAGES)
    except Exception as exc:  # noqa: BLE001 - what LiteLLM raised is the figure
        return type(exc).__name__
    return "ok"


async def limit_round(
    upstream: FakeUpstream, server: RedisServer, rpm: int, n: int, tag: str
) -> Any:
    routers = [_router(upstream, rpm, server, tag) for _ in range(n)]
    before = len(upstream.attempts)
    outcomes = await asyncio.gather(*(_call(routers[i % n]) for i in range(3 * rpm)))
    admitted = len(upstream.attempts) - before
    return admitted, collections.Counter(outcomes)


async def latency(upstream: FakeUpstream, server: RedisServer, requests: int) -> Any:
    parties = {
        "no redis": _router(upstream, 10**9, None, "latency-alone"),
        "redis": _router(upstream, 10**9, server, "latency-redis"),
    }
    times: dict[str, list[float]] = {name: [] for name in parties}
    for router in parties.values():
        for _ in range(50):
            await _call(router)
    for _ in range(requests):
        for name, router in parties.items():
            started = time.perf_counter()
            outcome = await _call(router)
            times[name].append(time.perf_counter() - started)
            if outcome != "ok":
                raise SystemExit(f"{name}: a call failed: {outcome}")
    return times


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="per party, latency")
    args = parser.parse_args()
    print(
        f"bench_cluster_peers: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    figures: dict[str, float] = {}
    with FakeUpstream() as upstream, RedisServer() as server:
        flush = redis.Redis.from_url(server.url)
        try:
            print(f"\nLiteLLM Router, rpm {args.rpm}, {3 * args.rpm} concurrent calls a round")
            for n in (1, 3):
                ratios = []
                for r in range(args.rounds):
                    flush.flushall()
                    tag = f"limit-{n}-{r}"
                    admitted, outcomes = asyncio.run(
                        limit_round(upstream, server, args.rpm, n, tag)
                    )
                    ratios.append(admitted / args.rpm)
                    print(
                        f"  {n} router(s), round {r + 1}: admitted {admitted} of rpm {args.rpm} "
                        f"({admitted / args.rpm:.2f}); outcomes {dict(outcomes)}"
                    )
                figures[f"limit error, {n} router(s), mean"] = statistics.mean(ratios)
            flush.flushall()
            times = asyncio.run(latency(upstream, server, args.requests))
        finally:
            flush.close()
    base = statistics.median(times["no redis"]) * 1000
    base_p99 = _p99(times["no redis"]) * 1000
    print(f"\nSequential calls, {args.requests} each, interleaved")
    for name, values in times.items():
        median, p99 = statistics.median(values) * 1000, _p99(values) * 1000
        print(f"  {name:9} median {median:7.3f} ms  p99 {p99:7.3f} ms")
    figures["redis added median ms"] = statistics.median(times["redis"]) * 1000 - base
    figures["redis added p99 ms"] = _p99(times["redis"]) * 1000 - base_p99
    print("\nSummary")
    for name, value in figures.items():
        print(f"  litellm  {name:40} {value:8.3f}")


if __name__ == "__main__":
    main()
