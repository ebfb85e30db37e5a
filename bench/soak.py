"""Soak: an hour of mixed, partly faulty traffic through a real ``runestone serve``, watching it.

Parties, each a process of its own on 127.0.0.1: two fake upstreams (one per
provider), one ``runestone serve`` on a config written to a temp dir, and this
script as the client (aiohttp). The config has two providers, ``alpha``
(OpenAI wire) and ``beta`` (Anthropic wire, a model that honours a prefill),
each serving a healthy model and the fault models below; every model falls
back to the other provider's healthy one, so every fault can fail over.

Traffic: ``--clients`` loops, each request drawn at random (``--seed``):
/v1/chat/completions or /v1/messages, streamed or whole, alpha or beta first;
with probability ``--fault-rate`` it names a fault model (rate-limit, 5xx,
cut mid-stream, stall). On top of that, alpha's upstream goes *down briefly*
(stopped, ``--outage-seconds``, then restarted on the same port) every
``--outage-every`` seconds: its streams in flight are cut, new connections
refused, its circuit opens and closes again.

Every answer is checked: a whole one is a 200 carrying exactly the known text
or an error status with an error body; a stream ends with ``[DONE]`` /
``message_stop`` and exactly the known text, or with an in-band error event
after a prefix of it — a short "success", a stream ending with neither, a cut
connection or a client time-out is a violation. Outcomes are counted by kind.

Every ``--sample-every`` seconds the server's RSS, threads, open file
descriptors and sockets are read from /proc and printed; at the end each
metric's least-squares slope per 10 minutes after a warm-up (10 % of the run
or 5 minutes, whichever is shorter). Target: RSS slope under 1 MB per 10
minutes (flat). It stops by itself; Ctrl-C or SIGTERM stop it early, and the
processes are stopped either way. Exit status 0 when there is no violation
and RSS is flat.

    python bench/soak.py [--duration 3600] [--sample-every 30] [--clients 16]
                         [--fault-rate 0.05] [--seed 1] [--token-interval 0.01]
                         [--outage-every 300] [--outage-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402 - after the path set-up above
    Party,
    proc_fds,
    proc_status,
    spawn_upstream,
    start_serve,
    start_upstream,
    stop,
    upstream_url,
)

from runestone.io import new_event_loop  # noqa: E402
from runestone.testing.upstream import KNOWN_TEXT  # noqa: E402

HEALTHY = {"alpha": "healthy", "beta": "prefill"}
"""Each provider's healthy model; beta's continues a prefill (so alpha's cuts resume by prefill,
beta's by replay)."""
OTHER = {"alpha": "beta", "beta": "alpha"}
FAULTS: dict[str, tuple[str, ...]] = {
    "rate-limit": ("rate-limit",),
    "5xx": ("unavailable", "overloaded", "error-event-after:12"),
    "cut": ("cut-after:4", "cut-after:25", "reset"),
    "stall": ("stall-after:6", "blackhole"),
}
"""Per-request faults by kind (fake upstream behaviours, see runestone/testing/upstream.py)."""
HEALTHY_KIND = "healthy"
DOWN_KIND = "alpha down"
CLIENT_TIMEOUT = 90.0  # the gateway's own deadline is 60 s: past this the server hung
MAX_RATE_PER_CLIENT = 100  # requests a second: the bound on each client loop's count
MESSAGES = [{"role": "user", "content": "Say the known text please"}]

OK = "ok"
ALLOWED = ("http error", "in-band error")
"""Failures that are honest: an error status with an error body, or an in-band error event."""


# --------------------------------------------------------------------------- config


def soak_config(alpha_url: str, beta_url: str) -> dict[str, Any]:
    """Two providers on the fake upstreams; every model falls back to the other's healthy one."""
    faults = [model for models in FAULTS.values() for model in models]
    common = {
        "max_connections": 1000,
        "timeouts": {"connect": 2, "first_token": 3, "idle": 2, "total": 60},
        "retry": {"max_attempts": 2, "base_delay": 0.05, "max_delay": 0.2},
        "circuit_breaker": {
            "consecutive_failures": 5,
            "failure_rate": 0.5,
            "window": 30,
            "min_calls": 10,
            "recovery": 3,
            "half_open_probes": 1,
            "rate_limit_cooldown": 0.25,
        },
    }
    providers: dict[str, Any] = {
        "alpha": {
            "type": "openai",
            "api_key": "sk-soak-alpha",
            "base_url": alpha_url + "/v1",
            "models": {"healthy": {}, **{model: {} for model in faults}},
            **common,
        },
        "beta": {
            "type": "anthropic",
            "api_key": "sk-ant-soak-beta",
            "base_url": beta_url,
            "models": {"prefill": {"capabilities": ["prefill"]}, **{m: {} for m in faults}},
            **common,
        },
    }
    fallbacks = {
        f"{name}/{model}": [f"{OTHER[name]}/{HEALTHY[OTHER[name]]}"]
        for name, block in providers.items()
        for model in block["models"]
    }
    return {
        "providers": providers,
        "routing": {"policy": "priority", "fallbacks": fallbacks},
        "pool": {"max_in_flight": 1000, "request_timeout": 60},
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": 5},
        "logging": {"level": "WARNING"},
    }


# --------------------------------------------------------------------------- one request


@dataclass(frozen=True, slots=True)
class Draw:
    """What one request asks for."""

    api: str  # "openai" | "anthropic"
    stream: bool
    provider: str  # tried first
    model: str  # the upstream behaviour
    kind: str

    def body(self) -> bytes:
        data: dict[str, Any] = {
            "model": f"{self.provider}/{self.model}",
            "messages": MESSAGES,
            "stream": self.stream,
        }
        if self.api == "anthropic":
            data["max_tokens"] = 1024
        return json.dumps(data).encode()


def draw(rng: random.Random, fault_rate: float) -> Draw:
    api = rng.choice(("openai", "anthropic"))
    stream = rng.random() < 0.5
    provider = rng.choice(("alpha", "beta"))
    if rng.random() < fault_rate:
        kind = rng.choice(sorted(FAULTS))
        return Draw(api, stream, provider, rng.choice(FAULTS[kind]), kind)
    return Draw(api, stream, provider, HEALTHY[provider], HEALTHY_KIND)


@dataclass(frozen=True, slots=True)
class Result:
    outcome: str  # OK, one of ALLOWED, or a violation
    detail: str = ""
    provider: str = ""  # x-runestone-provider of an answer
    attempts: int = 0


def _error_message(body: bytes) -> str | None:
    """The message of an error body in OpenAI's or Anthropic's shape; None if it is not one."""
    with suppress(ValueError):
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("message", ""))
    return None


def _headers(response: aiohttp.ClientResponse) -> tuple[str, int]:
    attempts = response.headers.get("x-runestone-attempts", "0")
    provider = response.headers.get("x-runestone-provider", "")
    return provider, int(attempts) if attempts.isdigit() else 0


def check_whole(api: str, status: int, body: bytes) -> tuple[str, str]:
    if status != 200:
        message = _error_message(body)
        if message is not None:
            return "http error", f"{status} {message[:160]}"
        return "bad error body", f"{status}: {body[:200]!r}"
    try:
        data = json.loads(body)
        if api == "openai":
            choice = data["choices"][0]
            text, finish = choice["message"]["content"] or "", choice["finish_reason"]
            proper = finish == "stop"
        else:
            text = "".join(b.get("text", "") for b in data["content"] if b["type"] == "text")
            finish = data["stop_reason"]
            proper = finish == "end_turn"
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return "bad 200 body", f"{exc!r}: {body[:200]!r}"
    if text == KNOWN_TEXT and proper:
        return OK, ""
    if text != KNOWN_TEXT:
        return "short success" if KNOWN_TEXT.startswith(text) else "wrong text", repr(text[-60:])
    return "wrong finish", str(finish)


class StreamCheck:
    """Reads SSE frames of either dialect; says how the stream ended."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.text: list[str] = []
        self.ended: str | None = None  # "done" | "error"
        self.problem = ""

    def frame(self, data: bytes) -> None:
        if self.ended is not None:
            self.problem = self.problem or f"a frame after the {self.ended}: {data[:120]!r}"
            return
        if self.api == "openai" and data == b"[DONE]":
            self.ended = "done"
            return
        event = json.loads(data)
        if not isinstance(event, dict):
            raise ValueError(f"not an object: {data[:120]!r}")
        if "error" in event and (self.api == "openai" or event.get("type") == "error"):
            self.ended = "error"
        elif self.api == "openai":
            for choice in event.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    self.text.append(content)
        elif event.get("type") == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                self.text.append(delta.get("text", ""))
        elif event.get("type") == "message_stop":
            self.ended = "done"

    def verdict(self) -> tuple[str, str]:
        text = "".join(self.text)
        if self.problem:
            return "frames after the end", self.problem
        if self.ended == "done":
            if text == KNOWN_TEXT:
                return OK, ""
            if KNOWN_TEXT.startswith(text):
                return "short success", f"{len(text)}/{len(KNOWN_TEXT)} chars then a clean end"
            return "wrong text", repr(text[-60:])
        if not KNOWN_TEXT.startswith(text):
            return "wrong text", repr(text[-60:])
        if self.ended == "error":
            return "in-band error", f"after {len(text)} chars"
        return "no terminal frame", f"{len(text)} chars, then the stream just ended"


async def one(session: aiohttp.ClientSession, base: str, request: Draw) -> Result:
    url = base + ("/v1/chat/completions" if request.api == "openai" else "/v1/messages")
    headers = {"content-type": "application/json"}
    if request.api == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    try:
        async with session.post(url, data=request.body(), headers=headers) as response:
            provider, attempts = _headers(response)
            if not request.stream or response.status != 200:
                outcome, detail = check_whole(request.api, response.status, await response.read())
                return Result(outcome, detail, provider, attempts)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                return Result("not a stream", response.headers.get("content-type", ""))
            check = StreamCheck(request.api)
            async for raw in response.content:
                line = raw.strip()
                if line.startswith(b"data:"):
                    check.frame(line[5:].strip())
            outcome, detail = check.verdict()
            return Result(outcome, detail, provider, attempts)
    except TimeoutError:
        return Result("client time-out", f"no end within {CLIENT_TIMEOUT:g} s")
    except aiohttp.ClientPayloadError as exc:
        return Result("connection cut", repr(exc)[:200])
    except aiohttp.ClientError as exc:
        return Result("transport error", repr(exc)[:200])
    except ValueError as exc:
        return Result("bad frame", repr(exc)[:200])


# --------------------------------------------------------------------------- the tally


@dataclass
class Tally:
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    served_by: Counter[str] = field(default_factory=Counter)
    attempts: Counter[int] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    total: int = 0
    violations: int = 0

    def add(self, request: Draw, result: Result) -> None:
        self.total += 1
        self.by_kind.setdefault(request.kind, Counter())[result.outcome] += 1
        self.by_route[f"{request.api} {'stream' if request.stream else 'whole'}"] += 1
        if result.outcome == OK:
            self.served_by[result.provider] += 1
            self.attempts[result.attempts] += 1
        elif result.outcome not in ALLOWED:
            self.violations += 1
        if result.outcome != OK:
            examples = self.examples.setdefault(result.outcome, [])
            if len(examples) < 5:
                examples.append(
                    f"{request.api} {'stream' if request.stream else 'whole'} "
                    f"{request.provider}/{request.model}: {result.detail}"
                )


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    rss_mb: float
    threads: int
    fds: int
    sockets: int


METRICS = (("rss_mb", "RSS", "MB"), ("threads", "threads", ""), ("fds", "fds", ""))
METRICS += (("sockets", "sockets", ""),)


def sample(pid: int, t: float) -> Sample:
    status = proc_status(pid)
    rss_kb = int(status["VmRSS"].split()[0])
    fds, sockets = proc_fds(pid)
    return Sample(t, rss_kb / 1024, int(status["Threads"]), fds, sockets)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, v), per second."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


# --------------------------------------------------------------------------- the run


@dataclass
class Upstreams:
    """The processes to stop at the end; alpha's is replaced at each outage."""

    alpha: subprocess.Popen[str] | None = None
    beta: subprocess.Popen[str] | None = None
    alpha_port: int = 0
    windows: list[tuple[float, float]] = field(default_factory=list)
    down_since: float | None = None
    notes: list[str] = field(default_factory=list)

    def processes(self) -> list[subprocess.Popen[str]]:
        return [p for p in (self.alpha, self.beta) if p is not None]


async def outages(
    upstreams: Upstreams, interval: float, started: float, end: float, args: argparse.Namespace
) -> None:
    """Stop alpha's upstream for ``args.outage_seconds`` at the scheduled times, then restart it."""
    for at in outage_times(args):
        wait = started + at - time.monotonic()
        if started + at + args.outage_seconds + 5 > end:
            return
        await asyncio.sleep(wait)
        process = upstreams.alpha
        assert process is not None
        upstreams.down_since = time.monotonic()
        print(f"[{time.monotonic() - started:7.1f} s] alpha's upstream down", flush=True)
        await asyncio.to_thread(stop, process)
        upstreams.alpha = None
        await asyncio.sleep(args.outage_seconds)
        for attempt in range(5):
            process = spawn_upstream(interval, upstreams.alpha_port)
            upstreams.alpha = process
            try:
                await asyncio.to_thread(upstream_url, process)
                break
            except SystemExit as exc:  # the port is taken for the moment: try again
                upstreams.alpha = None
                upstreams.notes.append(f"restart {attempt + 1} failed: {exc}")
                await asyncio.sleep(0.5)
        else:
            upstreams.notes.append("alpha's upstream could not be restarted: it stays down")
            return
        down_since, upstreams.down_since = upstreams.down_since, None
        upstreams.windows.append((down_since, time.monotonic()))
        print(f"[{time.monotonic() - started:7.1f} s] alpha's upstream back", flush=True)


def outage_times(args: argparse.Namespace) -> Iterator[float]:
    if args.outage_every <= 0:
        return
    at = max(warm_up(args.duration), min(60.0, args.duration / 3))
    while at < args.duration:
        yield at
        at += args.outage_every


def warm_up(duration: float) -> float:
    return min(duration * 0.1, 300.0)


async def traffic(
    gateway: Party, upstreams: Upstreams, interval: float, args: argparse.Namespace
) -> tuple[Tally, list[Sample], Sample, Sample, str]:
    pid = gateway.process.pid
    base = gateway.root
    rng = random.Random(args.seed)
    tally = Tally()
    samples: list[Sample] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # A few requests first, so the baseline has every lazy import and pool in it.
        for _ in range(20):
            request = draw(rng, 0.0)
            result = await one(session, base, request)
            if result.outcome != OK:
                raise SystemExit(f"the gateway does not answer healthily: {result}")
        await asyncio.sleep(1)
        baseline = sample(pid, 0.0)
        started = time.monotonic()
        end = started + args.duration
        cap = int(args.duration * MAX_RATE_PER_CLIENT) + 1

        async def client() -> None:
            for _ in range(cap):
                if time.monotonic() >= end:
                    return
                request = draw(rng, args.fault_rate)
                if request.provider == "alpha" and upstreams.down_since is not None:
                    request = Draw(request.api, request.stream, "alpha", request.model, DOWN_KIND)
                tally.add(request, await one(session, base, request))

        async def sampler() -> None:
            last = 0
            while True:
                now = time.monotonic()
                s = sample(pid, now - started)
                samples.append(s)
                done = tally.total - last
                last = tally.total
                print(
                    f"[{s.t:7.1f} s] rss {s.rss_mb:7.1f} MB  threads {s.threads:3}  "
                    f"fds {s.fds:4}  sockets {s.sockets:4}  |  requests {tally.total:7} "
                    f"(+{done})  violations {tally.violations}",
                    flush=True,
                )
                if now >= end:
                    return
                await asyncio.sleep(min(args.sample_every, max(0.0, end - now)))

        watcher = asyncio.ensure_future(sampler())
        breaker = asyncio.ensure_future(outages(upstreams, interval, started, end, args))
        try:
            await asyncio.gather(*(client() for _ in range(args.clients)))
            await watcher
            await breaker
        finally:
            watcher.cancel()
            breaker.cancel()
        metrics = await gauge(session, base)
    # The client's keep-alive connections are closed now; let the server notice.
    await asyncio.sleep(3)
    after = sample(pid, time.monotonic() - started)
    return tally, samples, baseline, after, metrics


async def gauge(session: aiohttp.ClientSession, base: str) -> str:
    """The in-flight gauge and circuit states from /metrics, once traffic has stopped."""
    await asyncio.sleep(1)
    try:
        async with session.get(base + "/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError as exc:
        return f"/metrics: {exc!r}"
    wanted = ("runestone_in_flight_requests", "runestone_circuit_state")
    lines = [line for line in text.splitlines() if line.startswith(wanted)]
    return "\n".join(f"  {line}" for line in lines)


def report(
    tally: Tally,
    samples: list[Sample],
    baseline: Sample,
    after: Sample,
    metrics: str,
    upstreams: Upstreams,
    args: argparse.Namespace,
) -> bool:
    wall = samples[-1].t if samples else 0.0
    print(f"\n{tally.total} requests in {wall:.0f} s ({tally.total / max(wall, 1):.1f}/s)")
    print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.by_route.items())))
    outcomes = sorted({o for c in tally.by_kind.values() for o in c} - {OK})
    header = f"  {'kind':12} {'requests':>8} {'ok':>8}" + "".join(f" {o:>16}" for o in outcomes)
    print("\nOutcomes by kind (faults fail over to the other provider, so all should be ok):")
    print(header)
    kinds = [HEALTHY_KIND, *sorted(FAULTS), DOWN_KIND]
    for kind in [k for k in kinds if k in tally.by_kind]:
        counts = tally.by_kind[kind]
        row = f"  {kind:12} {sum(counts.values()):8} {counts[OK]:8}"
        print(row + "".join(f" {counts[o]:16}" for o in outcomes))
    print("  ok answers served by: " + ", ".join(f"{k}: {v}" for k, v in tally.served_by.items()))
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(tally.attempts.items()))
    print(f"  ok answers by attempts: {shown}")
    print(f"  alpha outages: {len(upstreams.windows)}")
    for note in upstreams.notes:
        print(f"  note: {note}")
    for outcome, examples in sorted(tally.examples.items()):
        allowed = "allowed" if outcome in ALLOWED else "VIOLATION"
        print(f"  {outcome} ({allowed}), e.g.:")
        for example in examples:
            print(f"    {example}")
    print(f"  violations: {tally.violations}  (target: 0)")

    warm = warm_up(args.duration)
    kept = [s for s in samples if s.t >= warm]
    flat = False
    print(f"\nSlopes per 10 minutes, least squares over {len(kept)} samples after {warm:.0f} s:")
    if len(kept) >= 3:
        for attr, name, unit in METRICS:
            points = [(s.t, float(getattr(s, attr))) for s in kept]
            per_10 = slope(points) * 600
            values = [v for _, v in points]
            verdict = ""
            if attr == "rss_mb":
                flat = per_10 < 1.0
                verdict = "  flat (target < 1 MB)" if flat else "  GROWING (target < 1 MB)"
            print(
                f"  {name:8} {per_10:+9.2f} {unit:2} / 10 min   "
                f"(min {min(values):.1f}, max {max(values):.1f}){verdict}"
            )
    else:
        print("  too few samples after the warm-up: run longer or sample more often")
    print("\nIdle, before the traffic and 3 s after it (client connections closed):")
    for attr, name, unit in METRICS:
        print(f"  {name:8} {getattr(baseline, attr):8.1f} -> {getattr(after, attr):8.1f} {unit}")
    print(f"After the traffic, from /metrics:\n{metrics}")
    return tally.violations == 0 and flat


@contextmanager
def stopped_at_exit(upstreams: Upstreams, parties: list[Party]) -> Iterator[None]:
    try:
        yield
    finally:
        for party in reversed(parties):
            party.stop()
        for process in upstreams.processes():
            stop(process)


def _sigterm(signum: int, frame: object) -> None:
    signal.raise_signal(signal.SIGINT)  # the runner cancels the run; the finally blocks clean up


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (3600)")
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds (30)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of faults (0.05)")
    parser.add_argument("--seed", type=int, default=1, help="of the traffic's draw (1)")
    parser.add_argument("--token-interval", type=float, default=0.01, help="upstream pacing, s")
    parser.add_argument("--outage-every", type=float, default=300.0, help="s; 0 = none (300)")
    parser.add_argument("--outage-seconds", type=float, default=5.0, help="each outage (5)")
    args = parser.parse_args()
    if args.duration <= 0 or args.sample_every <= 0 or args.clients < 1:
        parser.error("--duration and --sample-every must be > 0, --clients >= 1")
    if not 0 <= args.fault_rate <= 1:
        parser.error("--fault-rate is a share between 0 and 1")

    directory = Path(tempfile.mkdtemp(prefix="runestone-soak-"))
    print(
        f"soak: {args.duration:g} s, {args.clients} clients, fault rate {args.fault_rate:g}, "
        f"seed {args.seed}, sample every {args.sample_every:g} s; python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs; config and logs in {directory}",
        flush=True,
    )
    # Explicitly: a background job inherits SIGINT ignored, and then asyncio.Runner would not
    # install its handler (which cancels the run so the finally blocks stop the processes).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    upstreams = Upstreams()
    parties: list[Party] = []
    try:
        with stopped_at_exit(upstreams, parties):
            upstreams.alpha, alpha_url = start_upstream(args.token_interval)
            upstreams.alpha_port = int(alpha_url.rsplit(":", 1)[1])
            upstreams.beta, beta_url = start_upstream(args.token_interval)
            gateway = start_serve(soak_config(alpha_url, beta_url), directory, "gateway")
            parties.append(gateway)
            print(f"gateway pid {gateway.process.pid} at {gateway.root}", flush=True)
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                figures = runner.run(traffic(gateway, upstreams, args.token_interval, args))
            good = report(*figures, upstreams, args)
    except KeyboardInterrupt:
        print("\nsoak: interrupted; processes stopped", file=sys.stderr)
        return 130
    print(f"\nconfig and server log: {directory}")
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
