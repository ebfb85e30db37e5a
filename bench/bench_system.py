"""What the embedded system adds, measured side by side in one run.

1. Added latency of ``system.complete()`` and ``system.stream()`` (to the first
   event and to the end) over a direct aiohttp call to the same local upstream,
   and of LiteLLM's Router (embedded, ``Router.completion()``) when it is
   installed: median and p99, rounds interleaved so drift hits every side alike.
   Closes with the issue 10 row: what ``system.complete()`` and the Router each
   add over a direct call, median, and the ratio of the two.
2. Throughput with 1, 16 and 256 concurrent callers, against direct aiohttp.
3. (part of 1) LiteLLM's Router; ``--skip 3`` leaves it out.
4. 1,000 concurrent 10-second streams through ``system.stream()`` against a paced
   upstream: all complete?, total time p99, CPU of the whole run, peak RSS, threads.
5. The same through ``system.astream()`` from one asyncio caller.

The fake upstream runs in its own process, so its CPU is not counted. The peak
RSS of 4 and 5 is each run's own (the process's peak is reset before each).

Run: ``python bench/bench_system.py [--requests 400] [--streams 1000] [--seconds 10]
[--skip 1,2,3,4,5]``
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib.util
import os
import statistics
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import aiohttp
from _common import (
    cpu_seconds,
    peak_rss_mb,
    percentile,
    reset_peak_rss,
    start_upstream,
    stop,
    thread_count,
)

import runestone
from runestone.messages import Done, TextDelta
from runestone.system import System
from runestone.testing.upstream import KNOWN_TEXT, KNOWN_TOKENS

MESSAGES = [{"role": "user", "content": "Say the known text."}]

# No network here but package registries: LiteLLM's bundled model cost map, not a fetch of it
# (which would retry for seconds at import).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def system_config(base_url: str, max_in_flight: int = 2000) -> dict[str, Any]:
    return {
        "providers": {
            "local": {
                "type": "openai",
                "api_key": "sk-bench",
                "base_url": base_url + "/v1",
                "max_connections": 2000,
                "timeouts": {"connect": 10, "first_token": 60, "idle": 60, "total": 600},
                "models": {"healthy": {"input_per_1m": 1, "output_per_1m": 2}},
            }
        },
        "routing": {"aliases": {"m": ["local/healthy"]}},
        "pool": {"max_in_flight": max_in_flight, "request_timeout": 600},
        "logging": {"level": "WARNING"},
    }


# -- the direct side: aiohttp alone, on its own loop in a thread ----------------------------


class Direct:
    def __init__(self, base_url: str) -> None:
        self.url = base_url + "/v1/chat/completions"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-direct")
        self.thread.start()
        self.session: aiohttp.ClientSession = self.run(self._session())

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2000))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def complete(self) -> float:
        start = time.perf_counter()
        body = {"model": "healthy", "messages": MESSAGES}
        async with self.session.post(self.url, json=body) as response:
            data = await response.json()
        assert data["choices"][0]["message"]["content"] == KNOWN_TEXT
        return time.perf_counter() - start

    async def stream(self) -> tuple[float, float]:
        start = time.perf_counter()
        first = 0.0
        body = {"model": "healthy", "messages": MESSAGES, "stream": True}
        async with self.session.post(self.url, json=body) as response:
            async for line in response.content:
                if not first and b'"content"' in line:
                    first = time.perf_counter() - start
                if line.startswith(b"data: [DONE]"):
                    break
        return first, time.perf_counter() - start

    def close(self) -> None:
        self.run(self.session.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def system_complete(system: System) -> float:
    start = time.perf_counter()
    response = system.complete({"model": "m", "messages": MESSAGES})
    assert response.text == KNOWN_TEXT
    return time.perf_counter() - start


def system_stream(system: System) -> tuple[float, float]:
    start = time.perf_counter()
    first = 0.0
    for event in system.stream({"model": "m", "messages": MESSAGES}):
        if not first and isinstance(event, TextDelta):
            first = time.perf_counter() - start
        if isinstance(event, Done):
            break
    return first, time.perf_counter() - start


def summary(name: str, samples: list[float]) -> str:
    return (
        f"  {name:<34} median {statistics.median(samples) * 1e3:7.3f} ms"
        f"   p99 {percentile(samples, 0.99) * 1e3:7.3f} ms"
    )


def added(name: str, ours: list[float], direct: list[float]) -> str:
    median = (statistics.median(ours) - statistics.median(direct)) * 1e3
    p99 = (percentile(ours, 0.99) - percentile(direct, 0.99)) * 1e3
    return f"  added by {name:<25} median {median:7.3f} ms   p99 {p99:7.3f} ms"


def latency(
    system: System,
    direct: Direct,
    requests: int,
    router: Callable[[], float] | None = None,
    rounds: int = 8,
) -> None:
    per = max(1, requests // rounds)
    d_complete: list[float] = []
    s_complete: list[float] = []
    r_complete: list[float] = []
    d_first: list[float] = []
    d_end: list[float] = []
    s_first: list[float] = []
    s_end: list[float] = []
    for _ in range(3):  # warm both sides: connections, caches, code paths
        direct.run(direct.complete())
        system_complete(system)
        system_stream(system)
    for _ in range(rounds):
        for _ in range(per):
            d_complete.append(direct.run(direct.complete()))
        for _ in range(per):
            s_complete.append(system_complete(system))
        if router is not None:
            for _ in range(per):
                r_complete.append(router())
        for _ in range(per):
            first, end = direct.run(direct.stream())
            d_first.append(first)
            d_end.append(end)
        for _ in range(per):
            first, end = system_stream(system)
            s_first.append(first)
            s_end.append(end)
    print(f"\n1. latency, {per * rounds} sequential requests each, {rounds} interleaved rounds")
    print(summary("direct aiohttp, whole answer", d_complete))
    print(summary("system.complete()", s_complete))
    if r_complete:
        print(summary("litellm Router.completion()", r_complete))
    print(summary("direct aiohttp, stream first token", d_first))
    print(summary("system.stream() first event", s_first))
    print(summary("direct aiohttp, stream to the end", d_end))
    print(summary("system.stream() to the end", s_end))
    print(added("complete()", s_complete, d_complete))
    if r_complete:
        print(added("Router.completion()", r_complete, d_complete))
    print(added("stream(), first event", s_first, d_first))
    print(added("stream(), to the end", s_end, d_end))
    print("  targets: under 0.5 ms median and 2 ms p99 added")
    ours = (statistics.median(s_complete) - statistics.median(d_complete)) * 1e3
    print(
        f"\n  embedded system.complete() added over a direct call, median: {ours:.3f} ms"
        "  (target: <= 0.25 ms)"
    )
    if r_complete:
        theirs = (statistics.median(r_complete) - statistics.median(d_complete)) * 1e3
        print(f"  LiteLLM Router (embedded) added over a direct call, median:  {theirs:.3f} ms")
        ratio = f"{theirs / ours:.1f}x" if ours > 0 else "n/a (runestone adds nothing)"
        print(
            f"  the Router adds {ratio} what system.complete() adds; runestone / Router "
            f"= {ours / theirs:.3f}  (target: the Router adds >= 25x)"
        )


def throughput(system: System, direct: Direct, callers: int, total: int) -> tuple[float, float]:
    async def direct_load() -> None:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await direct.complete()

        await asyncio.gather(*(worker() for _ in range(callers)))

    start = time.perf_counter()
    direct.run(direct_load())
    direct_rate = total / (time.perf_counter() - start)

    counter = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            system_complete(system)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(callers) as pool:
        for future in [pool.submit(worker) for _ in range(callers)]:
            future.result()
    system_rate = total / (time.perf_counter() - start)
    return direct_rate, system_rate


def litellm_router(base_url: str) -> Callable[[], float] | None:
    """One timed, checked ``Router.completion()`` against the upstream; None if not installed."""
    if importlib.util.find_spec("litellm") is None:
        print("\n3. LiteLLM Router: not installed (pip install '.[bench]'), skipped")
        return None
    import litellm  # type: ignore[import-not-found]

    router = litellm.Router(
        model_list=[
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "openai/healthy",
                    "api_base": base_url + "/v1",
                    "api_key": "sk-bench",
                },
            }
        ]
    )

    def call() -> float:
        start = time.perf_counter()
        response = router.completion(model="m", messages=MESSAGES)
        assert response.choices[0].message.content == KNOWN_TEXT
        return time.perf_counter() - start

    for _ in range(20):
        call()
    # Its first calls leave its logging threads a second of lazy work: let it pass.
    time.sleep(3)
    print(f"\n3. LiteLLM {version('litellm')} Router, embedded: measured in 1, interleaved")
    return call


def many_streams(base_url: str, streams: int, seconds: float) -> None:
    system = runestone.start(system_config(base_url, max_in_flight=streams + 10))
    try:
        results: list[tuple[bool, float]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(streams + 1)

        def consume() -> None:
            barrier.wait()
            start = time.perf_counter()
            text = []
            ok = False
            for event in system.stream({"model": "m", "messages": MESSAGES}):
                if isinstance(event, TextDelta):
                    text.append(event.text)
                elif isinstance(event, Done):
                    ok = "".join(text) == KNOWN_TEXT
            with lock:
                results.append((ok, time.perf_counter() - start))

        threads = [threading.Thread(target=consume, name=f"caller-{i}") for i in range(streams)]
        threads_before = thread_count()
        rss_before = peak_rss_mb() if reset_peak_rss() else float("nan")
        for thread in threads:
            thread.start()
        cpu_before = cpu_seconds()
        barrier.wait()
        peak_threads = 0
        while any(t.is_alive() for t in threads):
            peak_threads = max(peak_threads, thread_count())
            threads[0].join(0.2) if threads[0].is_alive() else time.sleep(0.2)
        cpu = cpu_seconds() - cpu_before
        for thread in threads:
            thread.join()
        totals = [t for _, t in results]
        print(f"\n4. {streams} concurrent {seconds:g}-second streams through system.stream()")
        print(f"  completed correctly   {sum(ok for ok, _ in results)} / {streams}")
        p50, p99 = percentile(totals, 0.5), percentile(totals, 0.99)
        print(f"  total time p50 / p99  {p50:.2f} s / {p99:.2f} s")
        print(f"  CPU of the whole run  {cpu:.2f} s  (includes the {streams} caller threads)")
        print(
            f"  peak RSS              {peak_rss_mb():.0f} MB ({rss_before:.0f} MB before the run)"
        )
        print(f"  peak threads          {peak_threads} ({threads_before} before the run)")
        print("  targets: all complete, p99 under 11 s, CPU under 5 s, RSS under 300 MB")
    finally:
        system.stop()


def many_async_streams(base_url: str, streams: int, seconds: float) -> None:
    """The same load from one asyncio caller (``system.astream()``): no thread per stream."""
    system = runestone.start(system_config(base_url, max_in_flight=streams + 10))

    async def consume() -> tuple[bool, float]:
        start = time.perf_counter()
        text = []
        ok = False
        stream = await system.astream({"model": "m", "messages": MESSAGES, "stream": True})
        async for event in stream:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Done):
                ok = "".join(text) == KNOWN_TEXT
        return ok, time.perf_counter() - start

    async def run_all() -> list[tuple[bool, float]]:
        return list(await asyncio.gather(*(consume() for _ in range(streams))))

    try:
        rss_before = peak_rss_mb() if reset_peak_rss() else float("nan")
        cpu_before = cpu_seconds()
        results = asyncio.run(run_all())
        cpu = cpu_seconds() - cpu_before
        totals = [t for _, t in results]
        p50, p99 = percentile(totals, 0.5), percentile(totals, 0.99)
        print(f"\n5. {streams} concurrent {seconds:g}-second streams through system.astream()")
        print(f"  completed correctly   {sum(ok for ok, _ in results)} / {streams}")
        print(f"  total time p50 / p99  {p50:.2f} s / {p99:.2f} s")
        print(f"  CPU of the whole run  {cpu:.2f} s  (one asyncio caller thread)")
        print(
            f"  peak RSS              {peak_rss_mb():.0f} MB ({rss_before:.0f} MB before the run)"
        )
    finally:
        system.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: 1,2,3,4,5")
    args = parser.parse_args()
    skip = set(args.skip.split(","))

    process, base_url = start_upstream(0.0)
    try:
        router = None if "3" in skip or "1" in skip else litellm_router(base_url)
        system = runestone.start(system_config(base_url))
        direct = Direct(base_url)
        try:
            if "1" not in skip:
                latency(system, direct, args.requests, router)
            if "2" not in skip:
                print("\n2. throughput, non-streaming requests per second")
                for callers in (1, 16, 256):
                    total = max(200, callers * 4)
                    d, s = throughput(system, direct, callers, total)
                    print(
                        f"  {callers:>3} callers: direct {d:8.0f}/s   system {s:8.0f}/s"
                        f"   ratio {s / d:.2f}"
                    )
        finally:
            direct.close()
            system.stop()
    finally:
        stop(process)

    if not {"4", "5"} <= skip:
        interval = args.seconds / len(KNOWN_TOKENS)
        process, base_url = start_upstream(interval)
        try:
            if "4" not in skip:
                many_streams(base_url, args.streams, args.seconds)
            if "5" not in skip:
                many_async_streams(base_url, args.streams, args.seconds)
        finally:
            stop(process)


if __name__ == "__main__":
    main()
