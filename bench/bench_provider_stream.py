"""CPU per streamed chunk of a provider stream, against reading the raw lines with aiohttp alone.

Both sides read the same paced SSE streams from the fake upstream, which runs in
a separate process (its CPU is not counted), on the same event loop, side by
side in one run (rounds alternate so drift hits both alike):

- raw:      ``async for line in response.content`` with aiohttp alone;
- provider: ``async for event in provider.stream(request)`` — SSE parsing, JSON
            decoding and event objects, the watchdog, stream-ending rules.

Printed: CPU seconds per side, microseconds of CPU per streamed chunk (an SSE
data event on the wire), and the ratio provider / raw (target: within 2x), at
1 and at 1,000 concurrent streams.

    python bench/bench_provider_stream.py [--streams 1000] [--interval 0.1] [--wire openai]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import start_upstream

from runestone.io import new_event_loop
from runestone.messages import ChatRequest, TextDelta
from runestone.providers import Provider, ProviderSettings, create_provider

MODEL = "healthy"
PROMPT = "Say the known text please"


@dataclass
class Round:
    cpu: float
    wall: float
    chunks: int
    streams: int
    latencies: list[float]


def body_for(wire: str) -> dict[str, object]:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
    }
    if wire == "openai":
        body["stream_options"] = {"include_usage": True}
    else:
        body["max_tokens"] = 1024
    return body


async def raw_stream(session: aiohttp.ClientSession, url: str, payload: bytes) -> int:
    """aiohttp alone: read the response line by line, count the data lines."""
    chunks = 0
    async with session.post(url, data=payload) as response:
        async for line in response.content:
            if line.startswith(b"data:"):
                chunks += 1
    return chunks


async def provider_stream(provider: Provider, request: ChatRequest) -> int:
    """The provider: parse, decode and normalize every chunk into events."""
    deltas = 0
    async for event in provider.stream(request):
        if isinstance(event, TextDelta):
            deltas += 1
    return deltas


async def timed(one: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = await one()
    return count, loop.time() - start


async def run_round(one: Callable[[], Awaitable[int]], streams: int, concurrency: int) -> Round:
    """``streams`` streams, ``concurrency`` at a time; CPU of this process only."""
    semaphore = asyncio.Semaphore(concurrency)

    async def limited() -> tuple[int, float]:
        async with semaphore:
            return await timed(one)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(limited() for _ in range(streams)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return Round(cpu, wall, sum(r[0] for r in results), streams, [r[1] for r in results])


async def scenario(
    base_url: str, wire: str, streams: int, concurrency: int, rounds: int
) -> dict[str, list[Round]]:
    url = f"{base_url}/v1/chat/completions" if wire == "openai" else f"{base_url}/v1/messages"
    headers = {"Content-Type": "application/json"}
    if wire == "openai":
        headers["Authorization"] = "Bearer sk-bench"
    else:
        headers.update({"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"})
    payload = __import__("json").dumps(body_for(wire)).encode()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=0),
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )
    provider = create_provider(
        ProviderSettings.from_dict(
            wire,
            {
                "type": wire,
                "base_url": base_url + ("/v1" if wire == "openai" else ""),
                "api_key": "sk-bench",
                "max_connections": concurrency,
                "timeouts": {"connect": 10, "first_token": 60, "idle": 60, "total": 600},
            },
        )
    )
    request = ChatRequest.from_dict(
        {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    )
    sides: dict[str, Callable[[], Awaitable[int]]] = {
        "raw": lambda: raw_stream(session, url, payload),
        "provider": lambda: provider_stream(provider, request),
    }
    results: dict[str, list[Round]] = {"raw": [], "provider": []}
    try:
        # Warm-up: open the pools' connections so neither side pays set-up in the measure.
        for one in sides.values():
            await run_round(one, concurrency, concurrency)
        for _ in range(rounds):
            for name, one in sides.items():
                results[name].append(await run_round(one, streams, concurrency))
    finally:
        await session.close()
        await provider.aclose()
    return results


def report(title: str, results: dict[str, list[Round]], chunks_per_stream: int) -> float:
    print(f"\n{title}")
    per_chunk: dict[str, float] = {}
    for name, rounds in results.items():
        cpu = sum(r.cpu for r in rounds)
        chunks = sum(r.streams for r in rounds) * chunks_per_stream
        latencies = sorted(lat for r in rounds for lat in r.latencies)
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        per_chunk[name] = cpu / chunks * 1e6
        print(
            f"  {name:<9} CPU {cpu:7.3f} s for {chunks:>7} chunks = {per_chunk[name]:6.2f} us/chunk"
            f"   stream wall p50 {p50:6.3f} s  p99 {p99:6.3f} s"
        )
    ratio = per_chunk["provider"] / per_chunk["raw"]
    by_round = [p.cpu / r.cpu for r, p in zip(results["raw"], results["provider"], strict=True)]
    rounds_text = ", ".join(f"{x:.2f}" for x in by_round)
    print(f"  ratio provider / raw: {ratio:.2f}x  (target: within 2x); by round: {rounds_text}")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wire", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams (1,000)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between tokens")
    parser.add_argument("--single", type=int, default=20, help="sequential streams at 1")
    parser.add_argument("--single-interval", type=float, default=0.005)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    args = parser.parse_args()

    loop = new_event_loop()
    print(
        f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, "
        f"loop {type(loop).__module__}.{type(loop).__name__}, {os.cpu_count()} CPUs, "
        f"wire {args.wire}"
    )
    ratios = []
    try:
        for concurrency, streams, interval in (
            (1, args.single, args.single_interval),
            (args.streams, args.streams, args.interval),
        ):
            process, base_url = start_upstream(interval)
            try:
                # Chunks per stream as they are on the wire, counted by the raw reader.
                probe = loop.run_until_complete(scenario(base_url, args.wire, 1, 1, 1))
                chunks_per_stream = probe["raw"][0].chunks
                results = loop.run_until_complete(
                    scenario(base_url, args.wire, streams, concurrency, args.rounds)
                )
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
            title = (
                f"{concurrency} concurrent stream(s): {streams} streams x {args.rounds} rounds "
                f"per side, {chunks_per_stream} SSE chunks each, {interval * 1000:g} ms apart"
            )
            ratios.append(report(title, results, chunks_per_stream))
    finally:
        loop.close()
    print(f"\nworst ratio: {max(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
