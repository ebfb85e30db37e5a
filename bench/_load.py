"""The client side of the HTTP benchmarks: sequential and concurrent load, interleaved.

The client is this process (aiohttp, on uvloop where installed); every server is
a process of its own, so its CPU is read from /proc and never mixed with ours.
Parties take turns — request by request in the latency runs, round by round in
the throughput runs — so drift on a noisy machine hits every party alike.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
from _common import Party, percentile, proc_tree_cpu_seconds

OneRequest = Callable[[aiohttp.ClientSession, Party], Awaitable[bool]]
"""One request to a party; whether its answer was the right one."""


def session(limit: int = 0, total: float | None = None) -> aiohttp.ClientSession:
    """A client session with no connection cap (``limit=0``) unless given one."""
    timeout = aiohttp.ClientTimeout(total=total)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), timeout=timeout)


# --------------------------------------------------------------------------- latency


async def sequential(
    parties: Sequence[Party], one: OneRequest, requests: int, warmup: int = 20
) -> dict[str, list[float]]:
    """Seconds per request, one at a time, the parties taking turns request by request."""
    times: dict[str, list[float]] = {party.name: [] for party in parties}
    async with session() as client:
        for party in parties:  # connections, caches, lazy imports
            for _ in range(warmup):
                await one(client, party)
        for _ in range(requests):
            for party in parties:
                started = time.perf_counter()
                ok = await one(client, party)
                elapsed = time.perf_counter() - started
                if not ok:
                    raise SystemExit(f"{party.name}: a request failed during the latency run")
                times[party.name].append(elapsed)
    return times


def report_sequential(title: str, times: dict[str, list[float]], base: str) -> dict[str, float]:
    """Print median and p99 of each party and what each adds over ``base``; the added medians."""
    print(f"\n{title}: sequential requests, {len(times[base])} each, interleaved")
    base_median = statistics.median(times[base]) * 1000
    base_p99 = percentile(times[base], 0.99) * 1000
    width = max(12, *(len(name) for name in times))
    print(f"  {'party':{width}} {'median':>9} {'p99':>9} {'added median':>13} {'added p99':>11}")
    added: dict[str, float] = {}
    for name, values in times.items():
        median = statistics.median(values) * 1000
        p99 = percentile(values, 0.99) * 1000
        if name == base:
            extra = f"{'(the floor)':>13} {'':>11}"
        else:
            added[name] = median - base_median
            extra = f"{median - base_median:+10.3f} ms {p99 - base_p99:+8.2f} ms"
        print(f"  {name:{width}} {median:6.3f} ms {p99:6.2f} ms {extra}")
    return added


# --------------------------------------------------------------------------- throughput


@dataclass
class Load:
    """What one party served under concurrent load, over all its rounds."""

    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    """The server's CPU seconds (its process and children) over the timed rounds."""

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_request_ms(self) -> float:
        return self.cpu / self.done * 1000 if self.done else float("nan")


async def _run(party: Party, one: OneRequest, clients: int, seconds: float) -> Load:
    return await spread([party], one, clients, seconds)


async def spread(parties: Sequence[Party], one: OneRequest, clients: int, seconds: float) -> Load:
    """``clients`` concurrent clients spread evenly over ``parties`` for ``seconds``: what
    they served together, and the CPU all of them spent."""
    result = Load()
    async with session() as client:
        end = time.perf_counter() + seconds

        async def worker(party: Party) -> None:
            while time.perf_counter() < end:
                try:
                    ok = await one(client, party)
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                if ok:
                    result.done += 1
                else:
                    result.failed += 1

        def cpu() -> float:
            return sum(proc_tree_cpu_seconds(p.pid) for p in parties)

        cpu_before = cpu()
        started = time.perf_counter()
        await asyncio.gather(*(worker(parties[n % len(parties)]) for n in range(clients)))
        result.seconds = time.perf_counter() - started
        result.cpu = cpu() - cpu_before
    return result


async def interleaved(
    parties: Sequence[Party],
    one: OneRequest,
    clients: int,
    seconds: float,
    rounds: int,
    warmup: float = 1.0,
) -> dict[str, Load]:
    """``clients`` concurrent clients per party, ``seconds`` in all, in ``rounds`` turns."""
    for party in parties:
        if warmup:
            await _run(party, one, clients, warmup)
    totals = {party.name: Load() for party in parties}
    for _ in range(rounds):
        for party in parties:
            part = await _run(party, one, clients, seconds / rounds)
            total = totals[party.name]
            total.done += part.done
            total.failed += part.failed
            total.seconds += part.seconds
            total.cpu += part.cpu
    return totals


def report_loads(title: str, loads: dict[str, Load], what: str = "req/s") -> None:
    print(f"\n{title}")
    width = max(12, *(len(name) for name in loads))
    print(
        f"  {'party':{width}} {what:>10} {'server CPU':>11} {'CPU per request':>16} {'failed':>7}"
    )
    for name, load in loads.items():
        print(
            f"  {name:{width}} {load.rate:10.0f} {load.cpu:9.2f} s "
            f"{load.cpu_per_request_ms:13.3f} ms {load.failed:7}"
        )
