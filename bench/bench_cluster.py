"""What cluster mode costs, and what three replicas serve next to one.

Every party is a process of its own on loopback: the fake upstream
(``runestone.testing.upstream``, unpaced), one redis-server
(``runestone.testing.redis_server``) and ``runestone serve`` processes with the same
providers and keys; this script is the client (aiohttp on uvloop). Sections, picked
with ``--only`` (comma-separated; all by default):

- ``latency``: one ``runestone serve`` without ``cluster`` and one with it (heartbeat
  ``--heartbeat``, deadline ``--deadline``), sequential whole answers taking turns
  request by request, after a warm-up: median and p99 of each and what cluster mode
  adds (target: <= 0.2 ms median). Twice in the same interleaved run: with a client key
  without limits, and with a key that has ``rpm`` and ``max_streams`` (generous: never
  reached), where shared limits pay their Redis round trips; the Redis commands each
  request cost are counted from Redis's own ``INFO commandstats`` (heartbeats
  excluded), so the figure says whether limits went to Redis at all.
- ``throughput``: three clustered replicas against one (the same process as the
  three's first), ``--clients`` concurrent clients spread evenly over the replicas, for
  ``--duration`` seconds in ``--rounds`` interleaved rounds: req/s, the replicas' CPU
  per request, failures. Every party shares this machine's cores with the upstream,
  Redis and this client: on two cores three replicas cannot serve three times one.
- ``circuits``: time for a circuit change to reach every replica, p99
  (``bench_circuit_propagation``: three in-process replicas, ``--cycles`` of
  open, half-open, closed).

A section is a function in :data:`SECTIONS`, taking the parsed arguments and the
running :class:`Rig`; a new one is a new entry.

    python bench/bench_cluster.py [--only latency,throughput,circuits] [--requests 500]
        [--warmup 50] [--clients 48] [--duration 6] [--rounds 3]
        [--heartbeat 1.0] [--deadline 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402 - after the path set-up above
import _load  # noqa: E402
from _common import Party, percentile, start_serves  # noqa: E402

from runestone.io import new_event_loop  # noqa: E402
from runestone.testing.redis_server import RedisServer  # noqa: E402
from runestone.testing.upstream import KNOWN_TEXT  # noqa: E402

MODEL = "healthy"
OPEN_KEY = "sk-bench-cluster-open-" + "5b2d4f6a8c0e1b3d"
LIMITED_KEY = "sk-bench-cluster-limited-" + "9c1e5b2d4f6a8c0e"
SECRET = "bench-cluster-secret"
_BODY = (
    b'{"model": "healthy", "stream": false, '
    b'"messages": [{"role": "user", "content": "Say the known text please"}]}'
)
_KNOWN = KNOWN_TEXT.encode()


# --------------------------------------------------------------------------- processes


def gateway_config(
    upstream_url: str, redis_url: str | None, instance: str, args: argparse.Namespace
) -> dict[str, Any]:
    """The same gateway for every party; with ``redis_url``, a replica of a cluster."""
    config: dict[str, Any] = {
        "providers": {
            "up": {
                "type": "openai_compatible",
                "base_url": upstream_url,
                "max_connections": 1000,
                "timeouts": {"connect": 30, "first_token": 60, "idle": 60, "total": 120},
                "models": {MODEL: {}},
            }
        },
        "pool": {"max_in_flight": 1000, "request_timeout": 120},
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": 5},
        "auth": {
            "keys": [
                {"key": OPEN_KEY, "name": "open"},
                # Limits that are checked on every request and never reached.
                {"key": LIMITED_KEY, "name": "limited", "rpm": 1_000_000, "max_streams": 10_000},
            ]
        },
        "logging": {"level": "WARNING"},
    }
    if redis_url is not None:
        config["cluster"] = {
            "redis_url": redis_url,
            "instance": instance,
            "secret": SECRET,
            "heartbeat": args.heartbeat,
            "deadline": args.deadline,
        }
    return config


@dataclass
class Rig:
    """What the sections run against: the upstream, Redis, and gateways started on demand."""

    args: argparse.Namespace
    directory: Path
    upstream_url: str
    redis: RedisServer
    started: list[Party] = field(default_factory=list)
    _by_name: dict[str, Party] = field(default_factory=dict)
    _client: Any = None

    def gateways(self, *names: str) -> list[Party]:
        """The gateways named ``single`` (no cluster) or ``rN`` (replica N), started
        concurrently where not running yet."""
        missing = [name for name in names if name not in self._by_name]
        configs = {
            name: gateway_config(
                self.upstream_url, None if name == "single" else self.redis.url, name, self.args
            )
            for name in missing
        }
        for party in start_serves(configs, self.directory) if configs else []:
            party.headers = {"authorization": f"Bearer {OPEN_KEY}"}
            self._by_name[party.name] = party
            self.started.append(party)
        return [self._by_name[name] for name in names]

    def redis_calls(self) -> dict[str, int]:
        """Redis's own count of the commands it ran, by command (``INFO commandstats``);
        ours are one ``info`` a call, on one connection kept open."""
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(self.redis.url)
        stats = self._client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@contextlib.contextmanager
def rig(args: argparse.Namespace, directory: Path) -> Iterator[Rig]:
    upstream, url = _common.start_upstream(0.0)
    try:
        with RedisServer() as redis_server:
            running = Rig(args, directory, url + "/v1", redis_server)
            try:
                yield running
            finally:
                running.close()
                with ThreadPoolExecutor(max(1, len(running.started))) as pool:
                    list(pool.map(Party.stop, running.started))
    finally:
        _common.stop(upstream)


def as_key(party: Party, name: str, key: str) -> Party:
    """The same process, asked with client key ``key``, reported as ``name``."""
    return Party(name, party.process, party.url, {"authorization": f"Bearer {key}"})


async def whole(client: aiohttp.ClientSession, party: Party) -> bool:
    async with client.post(party.chat_url, data=_BODY, headers=_headers(party)) as response:
        body = await response.read()
        return response.status == 200 and _KNOWN in body


def _headers(party: Party) -> dict[str, str]:
    return {"content-type": "application/json", **party.headers}


# --------------------------------------------------------------------------- sections


async def redis_commands_per_request(
    rig: Rig, party: Party, heartbeat: float, requests: int = 200
) -> float:
    """The Redis commands one request to ``party`` costs, less what its heartbeats cost.

    Counted from Redis's ``INFO commandstats``: over three idle heartbeats first (the
    heartbeats' own rate), then over ``requests`` sequential requests.
    """
    idle_from, idle_before = time.monotonic(), rig.redis_calls()
    await asyncio.sleep(3 * heartbeat)
    idle_seconds, idle_after = time.monotonic() - idle_from, rig.redis_calls()
    idle = _spent(idle_before, idle_after)
    started, before = time.monotonic(), rig.redis_calls()
    async with _load.session() as client:
        for _ in range(requests):
            if not await whole(client, party):
                raise SystemExit(f"{party.name}: a request failed while Redis was counted")
    seconds, after = time.monotonic() - started, rig.redis_calls()
    spent = _spent(before, after)
    extra = {
        name: count - idle.get(name, 0) * seconds / idle_seconds for name, count in spent.items()
    }
    extra.pop("info", None)  # ours
    per_request = max(0.0, sum(extra.values())) / requests
    # The heartbeat falls into a window or not: one beat's commands either way is noise.
    beat = sum(v for k, v in idle.items() if k != "info") * heartbeat / idle_seconds
    print(
        f"  {party.name}: Redis commands per request, heartbeats aside: {per_request:.2f} "
        f"over {requests} requests (one heartbeat more or less: +-{beat / requests:.2f})"
    )
    # Redis counts the commands a script runs as well as the script's own call: the
    # breakdown tells the round trips (evalsha, and what is sent alone) from those.
    shown = sorted(
        ((name, count / requests) for name, count in extra.items() if count / requests >= 0.05),
        key=lambda item: -item[1],
    )
    if shown:
        print("    by command: " + ", ".join(f"{name} {each:.2f}" for name, each in shown))
    return per_request


def _spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}


async def latency(args: argparse.Namespace, rig: Rig) -> dict[str, float]:
    single, clustered = rig.gateways("single", "r0")
    parties = [
        as_key(single, "single", OPEN_KEY),
        as_key(clustered, "cluster", OPEN_KEY),
        as_key(single, "single+limits", LIMITED_KEY),
        as_key(clustered, "cluster+limits", LIMITED_KEY),
    ]
    # Request by request, the four take turns: each request-count below is per party.
    times = await _load.sequential(parties, whole, args.requests, warmup=args.warmup)
    print(
        f"\nWhole answers, sequential, {args.requests} per party after {args.warmup} of warm-up, "
        f"the four taking turns request by request (heartbeat {args.heartbeat:g} s, "
        f"deadline {args.deadline:g} s)"
    )
    figures: dict[str, float] = {}
    width = 15
    print(f"  {'party':{width}} {'median':>9} {'p99':>9} {'added median':>13} {'added p99':>10}")
    for name, base in (
        ("single", None),
        ("cluster", "single"),
        ("single+limits", None),
        ("cluster+limits", "single+limits"),
    ):
        median = statistics.median(times[name]) * 1000
        p99 = percentile(times[name], 0.99) * 1000
        line = f"  {name:{width}} {median:6.3f} ms {p99:6.3f} ms"
        if base is None:
            print(f"{line} {'(the floor)':>13}")
            continue
        base_median = statistics.median(times[base]) * 1000
        base_p99 = percentile(times[base], 0.99) * 1000
        figures[f"{name} added median"] = median - base_median
        figures[f"{name} added p99"] = p99 - base_p99
        print(f"{line} {median - base_median:+10.3f} ms {p99 - base_p99:+7.3f} ms")
    for party in parties[1::2]:
        per_request = await redis_commands_per_request(rig, party, args.heartbeat)
        figures[f"{party.name} Redis commands per request"] = per_request
    verdict = "meets" if figures["cluster added median"] <= 0.2 else "misses"
    print(
        f"  cluster mode adds {figures['cluster added median']:+.3f} ms median "
        f"({verdict} the target of <= 0.2 ms); with limits "
        f"{figures['cluster+limits added median']:+.3f} ms"
    )
    return figures


async def _spread(parties: list[Party], clients: int, seconds: float) -> _load.Load:
    """``clients`` concurrent clients spread evenly over ``parties`` for ``seconds``."""
    return await _load.spread(parties, whole, clients, seconds)


async def throughput(args: argparse.Namespace, rig: Rig) -> dict[str, float]:
    replicas = rig.gateways("r0", "r1", "r2")
    sets = {"1 replica": replicas[:1], "3 replicas": replicas}
    for parties in sets.values():
        await _spread(parties, args.clients, 1.0)  # warm-up
    totals = {name: _load.Load() for name in sets}
    for _ in range(args.rounds):
        for name, parties in sets.items():
            part = await _spread(parties, args.clients, args.duration / args.rounds)
            total = totals[name]
            total.done += part.done
            total.failed += part.failed
            total.seconds += part.seconds
            total.cpu += part.cpu
    _load.report_loads(
        f"Whole answers at {args.clients} concurrent clients (spread over the replicas), "
        f"{args.duration:g} s each in {args.rounds} interleaved rounds; "
        f"{os.cpu_count()} CPUs shared with the upstream, Redis and this client",
        totals,
    )
    ratio = totals["3 replicas"].rate / totals["1 replica"].rate
    print(f"  three replicas serve {ratio:.2f}x what one does here")
    return {
        "1 replica req/s": totals["1 replica"].rate,
        "3 replicas req/s": totals["3 replicas"].rate,
        "ratio": ratio,
        "failed": float(sum(load.failed for load in totals.values())),
    }


async def circuits(args: argparse.Namespace, _rig: Rig) -> dict[str, float]:
    # In-process replicas (bench_circuit_propagation): a change's path through the script,
    # pub/sub and each replica's provider actor to the directory routing reads, timed
    # without HTTP polling in the way.
    from bench_circuit_propagation import measure, p99

    times = await asyncio.to_thread(measure, 3, args.cycles)
    every = [t for samples in times.values() for t in samples]
    print(
        f"\nTime for a circuit change to reach every one of 3 replicas ({len(every)} changes): "
        f"median {statistics.median(every) * 1e3:.2f} ms, p99 {p99(every) * 1e3:.2f} ms "
        "(target p99 <= 1 s, goal <= 100 ms)"
    )
    return {"median ms": statistics.median(every) * 1e3, "p99 ms": p99(every) * 1e3}


Section = Callable[[argparse.Namespace, Rig], Awaitable[dict[str, float]]]
SECTIONS: dict[str, Section] = {
    "latency": latency,
    "throughput": throughput,
    "circuits": circuits,
}


# --------------------------------------------------------------------------- main


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--requests", type=int, default=500, help="per party, latency")
    parser.add_argument("--warmup", type=int, default=50, help="per party, latency")
    parser.add_argument("--clients", type=int, default=48, help="throughput")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per set, throughput")
    parser.add_argument("--rounds", type=int, default=3, help="throughput")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="cluster.heartbeat")
    parser.add_argument("--deadline", type=float, default=0.1, help="cluster.deadline")
    parser.add_argument("--cycles", type=int, default=50, help="open/half-open/closed, circuits")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    chosen = [name for name in args.only.split(",") if name] or list(SECTIONS)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}: pick from {list(SECTIONS)}")
    directory = Path(tempfile.mkdtemp(prefix="runestone-bench-cluster-"))
    print(
        f"bench_cluster: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; sections: {', '.join(chosen)}; "
        f"logs in {directory}"
    )
    results: dict[str, dict[str, float]] = {}
    with rig(args, directory) as running:
        for name in chosen:
            results[name] = await SECTIONS[name](args, running)
    print("\nSummary")
    for section, figures in results.items():
        for label, value in figures.items():
            print(f"  {section:11} {label:42} {value:10.3f}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
