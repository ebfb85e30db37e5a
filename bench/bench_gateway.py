"""What the HTTP gateway costs: added latency, requests per second, and 1,000 long streams.

Every party runs in a process of its own on loopback: the fake upstream, a
``runestone serve``, a *relay* (this script with ``--serve-relay``: the same
uvicorn, provider and OpenAI chunk encoder as the gateway, without the actor
system — what the HTTP layer alone costs), LiteLLM's proxy when it is installed
(``litellm`` on PATH or ``--litellm PATH``; skipped with a message if not), and
this script as the client (aiohttp on uvloop).

1. Latency, side by side in one run: sequential requests, the targets taking
   turns so drift hits all alike. Printed: median and p99 of each, and what the
   gateway (and LiteLLM) add over calling the upstream directly. Target: the
   gateway adds under 2 ms at the median.
2. Requests per second at 64 concurrent clients, whole answers and streams, for
   each target. Target: at least 5x LiteLLM's proxy.
3. 1,000 concurrent streams of about 10 s each through the relay, then the
   gateway, from an upstream paced to take that long: how many complete correctly (the known
   text, then ``[DONE]``), time to first token p50/p99, total time p99, the
   server's CPU seconds over the run, its peak RSS and peak threads (read from
   /proc). Targets: all complete, total p99 under 11 s, CPU under 5 s, RSS under
   200 MB.

    python bench/bench_gateway.py [--requests 300] [--duration 5] [--streams 1000]
                                  [--stream-seconds 10] [--skip-load] [--litellm PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402 - after the path set-up above
from _common import (  # noqa: E402
    Party,
    proc_cpu_seconds,
    proc_status,
    start_serve,
    wait_line,
)

from runestone.io import new_event_loop  # noqa: E402
from runestone.testing.upstream import KNOWN_TEXT, KNOWN_TOKENS  # noqa: E402

MODEL = "healthy"
MESSAGES = [{"role": "user", "content": "Say the known text please"}]


# --------------------------------------------------------------------------- processes


def start_upstream(interval: float) -> Party:
    process, url = _common.start_upstream(interval)
    return Party("upstream", process, url + "/v1")


def start_gateway(upstream: Party, directory: Path, name: str = "gateway") -> Party:
    config = {
        "providers": {
            "up": {
                "type": "openai",
                "api_key": "sk-bench-upstream",
                "base_url": upstream.url,
                "max_connections": 4000,
                "timeouts": {"connect": 10, "first_token": 60, "idle": 60, "total": 600},
                "models": {MODEL: {}},
            }
        },
        "pool": {"max_in_flight": 4000},
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": 5},
        "logging": {"level": "WARNING"},
    }
    return start_serve(config, directory, name)


def start_relay(upstream: Party, directory: Path, name: str = "relay") -> Party:
    log = (directory / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-relay", upstream.url],
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=ROOT,
    )
    match = wait_line(process, r"serving on (http://\S+)", "the relay")
    return Party(name, process, match.group(1) + "/v1")


def serve_relay(upstream_url: str) -> int:
    """The relay: uvicorn, one provider and the gateway's chunk encoder; no actors."""
    import uvicorn

    from runestone.messages import ChatRequest, CompletionBuilder, Done, TextDelta
    from runestone.providers import ProviderSettings, create_provider
    from runestone.server import jsonio
    from runestone.server.openai_schema import ChunkEncoder, OpenAIDialect
    from runestone.server.runner import bind

    settings = {
        "type": "openai",
        "base_url": upstream_url,
        "api_key": "sk-bench-upstream",
        "max_connections": 4000,
        "timeouts": {"connect": 10, "first_token": 60, "idle": 60, "total": 600},
        "models": {MODEL: {}},
    }
    provider = create_provider(ProviderSettings.from_dict("up", settings))
    dialect = OpenAIDialect()

    async def app(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await provider.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = ChatRequest.from_dict(jsonio.loads(body))
        if not request.stream:
            builder = CompletionBuilder()
            builder.extend((await provider.complete(request)).events())
            payload = jsonio.dumps(dialect.whole(builder.build()))
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        encoder = ChunkEncoder(request.model)
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        pending = encoder.opening()
        async for event in provider.stream(request):
            if type(event) is TextDelta:
                frame, pending = pending + encoder.text(event.text), b""
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            elif type(event) is Done:
                closing = pending + encoder.closing(event.finish_reason, event.usage)
                await send({"type": "http.response.body", "body": closing})
                return

    sock = bind("127.0.0.1", 0)
    print(f"relay serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False, proxy_headers=False, backlog=4096
    )
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve(sockets=[sock]))
    return 0


def find_litellm(given: str | None) -> str | None:
    if given:
        return given
    return shutil.which("litellm")


async def start_litellm(executable: str, upstream: Party, directory: Path) -> Party:
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": upstream.url,
                    "api_key": "sk-bench-upstream",
                },
            }
        ],
        "litellm_settings": {"drop_params": True, "set_verbose": False},
        "general_settings": {"master_key": BENCH_KEY},
    }
    path = directory / "litellm.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    log = (directory / "litellm.log").open("wb")
    process = subprocess.Popen(
        [executable, "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
        env={**os.environ, "LITELLM_LOG": "ERROR"},
    )
    party = Party("litellm", process, f"http://127.0.0.1:{port}/v1")
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"litellm exited ({process.returncode}); see {directory}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/health/liveliness") as response:
                    if response.status == 200:
                        return party
            await asyncio.sleep(0.5)
    party.stop()
    raise SystemExit("litellm did not become ready within 120 s")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- one request


def _payload(stream: bool) -> bytes:
    body: dict[str, object] = {"model": MODEL, "messages": MESSAGES, "stream": stream}
    return json.dumps(body).encode()


# Sent to every target: LiteLLM's proxy refuses to start without a master key.
BENCH_KEY = "sk-bench-" + "7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e"
_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {BENCH_KEY}"}


async def whole(session: aiohttp.ClientSession, url: str, payload: bytes) -> bool:
    async with session.post(url, data=payload, headers=_HEADERS) as response:
        body = await response.read()
        return response.status == 200 and KNOWN_TEXT.encode() in body


async def streamed(session: aiohttp.ClientSession, url: str, payload: bytes) -> bool:
    async with session.post(url, data=payload, headers=_HEADERS) as response:
        last = b""
        async for line in response.content:
            if line.strip():
                last = line
        return response.status == 200 and last.strip() == b"data: [DONE]"


# --------------------------------------------------------------------------- 1. latency


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def latency(parties: list[Party], requests: int, stream: bool) -> dict[str, list[float]]:
    one = streamed if stream else whole
    payload = _payload(stream)
    times: dict[str, list[float]] = {party.name: [] for party in parties}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for party in parties:  # warm up each: connections, caches, JIT-less but lazy imports
            for _ in range(20):
                await one(session, party.chat_url, payload)
        for _ in range(requests):
            for party in parties:
                started = time.perf_counter()
                ok = await one(session, party.chat_url, payload)
                elapsed = time.perf_counter() - started
                if not ok:
                    raise SystemExit(f"{party.name}: a request failed during the latency run")
                times[party.name].append(elapsed)
    return times


def report_latency(title: str, times: dict[str, list[float]]) -> None:
    print(f"\n{title}: sequential requests, {len(times['upstream'])} each")
    base_median = statistics.median(times["upstream"]) * 1000
    base_p99 = _percentile(times["upstream"], 0.99) * 1000
    print(f"  {'target':10} {'median':>9} {'p99':>9} {'added median':>13} {'added p99':>10}")
    for name, values in times.items():
        median = statistics.median(values) * 1000
        p99 = _percentile(values, 0.99) * 1000
        added = "" if name == "upstream" else f"{median - base_median:+10.2f} ms"
        added_p99 = "" if name == "upstream" else f"{p99 - base_p99:+8.2f} ms"
        print(f"  {name:10} {median:6.2f} ms {p99:6.2f} ms {added:>13} {added_p99:>10}")


# --------------------------------------------------------------------------- 2. throughput


async def throughput(
    party: Party, clients: int, duration: float, stream: bool
) -> tuple[float, int]:
    one = streamed if stream else whole
    payload = _payload(stream)
    done = 0
    failed = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        end = time.perf_counter() + duration

        async def client() -> None:
            nonlocal done, failed
            while time.perf_counter() < end:
                try:
                    ok = await one(session, party.chat_url, payload)
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    done += 1
                else:
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return done / elapsed, failed


# --------------------------------------------------------------------------- 3. long streams


@dataclass
class StreamResult:
    ok: bool
    first_token: float | None
    total: float
    problem: str = ""


@dataclass
class ProcessSample:
    peak_threads: int = 0
    samples: list[int] = field(default_factory=list)


async def one_long_stream(session: aiohttp.ClientSession, url: str, payload: bytes) -> StreamResult:
    started = time.perf_counter()
    first: float | None = None
    text: list[str] = []
    try:
        async with session.post(url, data=payload, headers=_HEADERS) as response:
            if response.status != 200:
                body = await response.read()
                return StreamResult(False, None, time.perf_counter() - started, body[:200].decode())
            finished = False
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    finished = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    return StreamResult(False, first, time.perf_counter() - started, str(chunk))
                for choice in chunk.get("choices", ()):
                    content = choice.get("delta", {}).get("content")
                    if content:
                        if first is None:
                            first = time.perf_counter() - started
                        text.append(content)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return StreamResult(False, first, time.perf_counter() - started, repr(exc))
    total = time.perf_counter() - started
    if not finished:
        return StreamResult(False, first, total, "no [DONE]")
    if "".join(text) != KNOWN_TEXT:
        return StreamResult(False, first, total, "wrong text")
    return StreamResult(True, first, total)


async def long_streams(
    party: Party, streams: int
) -> tuple[list[StreamResult], float, float, ProcessSample]:
    pid = party.process.pid
    payload = _payload(True)
    sample = ProcessSample()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu_before = proc_cpu_seconds(pid)
        started = time.perf_counter()
        tasks = [
            asyncio.ensure_future(one_long_stream(session, party.chat_url, payload))
            for _ in range(streams)
        ]
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            threads = int(proc_status(pid).get("Threads", "0"))
            sample.samples.append(threads)
            sample.peak_threads = max(sample.peak_threads, threads)
        wall = time.perf_counter() - started
        cpu = proc_cpu_seconds(pid) - cpu_before
    return [task.result() for task in tasks], cpu, wall, sample


def report_long_streams(
    results: list[StreamResult], cpu: float, wall: float, party: Party, sample: ProcessSample
) -> None:
    ok = [r for r in results if r.ok]
    firsts = [r.first_token for r in ok if r.first_token is not None]
    totals = [r.total for r in ok]
    status = proc_status(party.process.pid)
    print(f"\n{len(results):,} concurrent streams through the {party.name.removesuffix('-load')}")
    print(f"  completed correctly: {len(ok)} / {len(results)}  (target: all)")
    if firsts:
        print(
            f"  time to first token: p50 {statistics.median(firsts) * 1000:.0f} ms, "
            f"p99 {_percentile(firsts, 0.99) * 1000:.0f} ms"
        )
    if totals:
        print(
            f"  total time: p50 {statistics.median(totals):.2f} s, "
            f"p99 {_percentile(totals, 0.99):.2f} s, max {max(totals):.2f} s  (target: p99 < 11 s)"
        )
    print(f"  wall time of the run: {wall:.2f} s")
    print(f"  server CPU over the run: {cpu:.2f} s  (target: < 5 s)")
    print(
        f"  server peak RSS: {status.get('VmHWM', '?')}  (target: < 200 MB); "
        f"now {status.get('VmRSS', '?')}"
    )
    print(f"  server peak threads: {sample.peak_threads}")
    problems: dict[str, int] = {}
    for result in results:
        if not result.ok:
            problems[result.problem[:120]] = problems.get(result.problem[:120], 0) + 1
    for problem, count in sorted(problems.items(), key=lambda item: -item[1])[:5]:
        print(f"  failed x{count}: {problem}")


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def parties() -> Iterator[list[Party]]:
    started: list[Party] = []
    try:
        yield started
    finally:
        for party in reversed(started):
            party.stop()


async def run(args: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="runestone-bench-"))
    version = sys.version.split()[0]
    print(f"bench_gateway: python {version}, {os.cpu_count()} CPUs; logs in {directory}")
    with parties() as started:
        upstream = start_upstream(0.0)
        started.append(upstream)
        relay = start_relay(upstream, directory)
        started.append(relay)
        gateway = start_gateway(upstream, directory)
        started.append(gateway)
        targets = [upstream, relay, gateway]
        litellm = find_litellm(args.litellm)
        if litellm is None:
            print("LiteLLM proxy: not installed (no `litellm` on PATH; --litellm PATH): skipped")
        else:
            print(f"LiteLLM proxy: {litellm}")
            proxy = await start_litellm(litellm, upstream, directory)
            started.append(proxy)
            targets.append(proxy)

        if args.requests:
            report_latency("Whole answers", await latency(targets, args.requests, stream=False))
            report_latency("Streams", await latency(targets, args.requests, stream=True))

        if args.duration:
            print(f"\nThroughput: {args.clients} concurrent clients, {args.duration:g} s each")
            print(f"  {'target':10} {'whole req/s':>12} {'streams/s':>10}")
            rates: dict[str, tuple[float, float]] = {}
            for party in targets:
                whole_rate, whole_failed = await throughput(
                    party, args.clients, args.duration, stream=False
                )
                stream_rate, stream_failed = await throughput(
                    party, args.clients, args.duration, stream=True
                )
                rates[party.name] = (whole_rate, stream_rate)
                failed = whole_failed + stream_failed
                note = f"  ({failed} failed)" if failed else ""
                print(f"  {party.name:10} {whole_rate:12.0f} {stream_rate:10.0f}{note}")
            if "litellm" in rates:  # the target: at least 5x LiteLLM's proxy
                g, lite = rates["gateway"], rates["litellm"]
                print(
                    f"  gateway / litellm: {g[0] / lite[0]:.1f}x whole, "
                    f"{g[1] / lite[1]:.1f}x streams  (target: >= 5x)"
                )

    if args.streams:
        interval = args.stream_seconds / len(KNOWN_TOKENS)
        starters = [(start_relay, "relay-load"), (start_gateway, "gateway-load")]
        for start, name in starters:
            with parties() as started:
                paced = start_upstream(interval)
                started.append(paced)
                party = start(paced, directory, name)
                started.append(party)
                results, cpu, wall, sample = await long_streams(party, args.streams)
                report_long_streams(results, cpu, wall, party, sample)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per target")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent long streams")
    parser.add_argument("--stream-seconds", type=float, default=10.0, help="length of each")
    parser.add_argument("--skip-load", action="store_true", help="no long-stream run")
    parser.add_argument("--litellm", default=None, help="the litellm executable")
    parser.add_argument("--serve-relay", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_relay:
        return serve_relay(args.serve_relay)
    if args.skip_load:
        args.streams = 0
    loop = new_event_loop()
    try:
        loop.run_until_complete(run(args))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
