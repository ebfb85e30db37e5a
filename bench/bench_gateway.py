"""What the HTTP gateway costs, side by side with LiteLLM's proxy and Portkey's gateway.

Every party runs in a process of its own on loopback, against the same fake
upstream (``runestone.testing.upstream``, its own process too); this script is
the client (aiohttp on uvloop). The parties:

- ``runestone``: ``runestone serve``;
- ``relay``: this script with ``--serve-relay`` — the same uvicorn, provider and
  OpenAI chunk encoder as the gateway without the actor system, what the HTTP
  layer alone costs;
- ``litellm``: LiteLLM's proxy (``pip install 'litellm[proxy]'``; ``litellm`` on
  PATH or ``--litellm PATH``);
- ``portkey``: Portkey's gateway on Node (``npm install @portkey-ai/gateway``;
  ``--portkey PATH`` to its ``build/start-server.js``, by default the one under
  /work/peers; ``--node PATH``), routed with ``x-portkey-provider: openai`` and
  ``x-portkey-custom-host``. Its streams fail ("TypeError: immutable", on node
  20 and 22 alike) with the @hono/node-server it pulls in today: from 1.14.2 on,
  a Response built on an upstream fetch Response shares that one's immutable
  headers, and Portkey appends to them. Pin the last good one with npm
  overrides in the package.json of the install directory, then ``npm install``::

      {"dependencies": {"@portkey-ai/gateway": "^1.15.2"},
       "overrides": {"@hono/node-server": "1.13.8"}}

A party that is not installed, or does not start, is skipped with one line.

Sections, each measured side by side in one run, the parties taking turns:

- ``latency``: sequential whole answers (and streams), the parties taking turns
  request by request; what each adds over calling the upstream directly, median.
- ``rps``: whole answers at 64 concurrent clients, rounds interleaved; req/s and
  the server's CPU per request (its /proc CPU seconds over the run / requests).
- ``streams``: streams of 20 text chunks at 64 concurrent clients (the fake
  upstream's ``prefill`` behaviour continues a prefix of its known text: the
  prefix is chosen so the rest is 20 tokens); streams/s and CPU per stream.
- ``routes``: issue 12, route by route on the same upstream and the same ``runestone
  serve``: chat completions, ``/v1/messages`` passed through to the upstream's Anthropic
  API (a small body and a Claude-Code-like one of ~50 KB of messages, ``--large-kb``), and
  ``/v1/responses`` translated onto chat completions, each whole and streamed. Sequential
  requests, the direct call to the upstream taking turns with the gateways: added median
  and p90; then concurrent rounds, interleaved: the gateway's CPU per request. LiteLLM
  serves all four; Portkey ``/v1/messages`` (``x-portkey-provider: anthropic``), not
  ``/v1/responses`` here (it forwards OpenAI's own Responses API, which the fake upstream
  lacks): a route a party cannot serve is said with the reason. See bench/README.md.
- ``long``: 1,000 concurrent streams of about 10 s each from a paced upstream,
  one party at a time, each in a fresh process: how many complete correctly,
  time to first token p99, total p99, server CPU over the run, peak RSS (VmHWM),
  peak threads. LiteLLM's run is long (``--no-litellm-long`` leaves it out).
- ``huge``: 10,000 concurrent 10-s streams through runestone: all complete?,
  total p99, peak RSS, peak threads. Each stream holds two sockets in the
  gateway; the open-file limit is raised to its hard limit, and when that cannot
  hold the streams the run is capped to what fits, said in one line.

A closing table gives each figure for each party, runestone's ratio to each peer,
and the target of issue 10 for each row; the routes section has tables of its own.

    python bench/bench_gateway.py [--only NAMES] [--skip NAMES] [--requests 300]
        [--duration 6] [--rounds 3] [--streams 1000] [--huge 10000]
        [--route-requests 100] [--route-duration 2.4] [--large-kb 50]
        [--litellm PATH] [--portkey PATH] [--node PATH] [--no-litellm-long]

NAMES are comma-separated parties (runestone, relay, litellm, portkey) and/or
sections (latency, rps, streams, routes, long, huge): ``--only runestone,portkey,rps``
runs the rps section for those two.
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
import _load  # noqa: E402
import _requests  # noqa: E402
from _common import (  # noqa: E402
    Party,
    percentile,
    proc_status,
    proc_tree_cpu_seconds,
    proc_tree_peak_rss_mb,
    proc_tree_threads,
    raise_open_files,
    start_serve,
    wait_line,
)

from runestone import jsonio  # noqa: E402
from runestone.io import new_event_loop  # noqa: E402
from runestone.testing.upstream import KNOWN_TEXT, KNOWN_TOKENS  # noqa: E402

MODEL = "healthy"
MESSAGES = [{"role": "user", "content": "Say the known text please"}]

# 20 text chunks: the fake upstream's ``prefill`` model streams only the rest of its known
# text after a final assistant message holding a prefix of it.
CHUNKS = 20
PREFILL_MODEL = "prefill"
PREFIX = "".join(KNOWN_TOKENS[: len(KNOWN_TOKENS) - CHUNKS])
REST = KNOWN_TEXT[len(PREFIX) :]
MESSAGES_20 = [*MESSAGES, {"role": "assistant", "content": PREFIX}]

# The routes section's Anthropic model: a name the fake upstream does not know answers
# healthily (KNOWN_TEXT), on its Anthropic API; the capabilities a Claude-Code-like request
# needs (thinking, cache_control, tools).
CLAUDE_MODEL = "claude-healthy"
CLAUDE_CAPABILITIES = ("tools", "prefill", "thinking", "prompt_caching")
ANTHROPIC_VERSION = "2023-06-01"
ANTHROPIC_BETA = "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"

PARTIES = ("runestone", "relay", "litellm", "portkey")
SECTIONS = ("latency", "rps", "streams", "routes", "long", "huge")
PEERS = ("litellm", "portkey")
DEFAULT_PORTKEY = Path("/work/peers/node_modules/@portkey-ai/gateway/build/start-server.js")

# Sent to every party: LiteLLM's proxy refuses to start without a master key.
BENCH_KEY = "sk-bench-" + "7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e"
_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {BENCH_KEY}"}


# --------------------------------------------------------------------------- processes


def start_upstream(interval: float) -> Party:
    process, url = _common.start_upstream(interval)
    return Party("upstream", process, url + "/v1")


def _timeouts() -> dict[str, float]:
    # Generous: under the long runs a saturated machine accepts late, and a stream that is late
    # is to be counted late (in its total time), not failed by a timeout of ours.
    return {"connect": 60, "first_token": 120, "idle": 60, "total": 600}


def start_runestone(
    upstream: Party,
    directory: Path,
    name: str = "runestone",
    streams: int = 4000,
    routes: bool = False,
) -> Party:
    """``runestone serve`` on ``upstream``; with ``routes``, its Anthropic API as a provider too."""
    providers: dict[str, object] = {
        "up": {
            "type": "openai",
            "api_key": "sk-bench-upstream",
            "base_url": upstream.url,
            "max_connections": streams,
            "timeouts": _timeouts(),
            "models": {MODEL: {}, PREFILL_MODEL: {}},
        }
    }
    if routes:
        providers["ant"] = {
            "type": "anthropic",
            "api_key": "sk-bench-upstream",
            "base_url": upstream.root,
            "max_connections": streams,
            "timeouts": _timeouts(),
            "models": {CLAUDE_MODEL: {"capabilities": list(CLAUDE_CAPABILITIES)}},
        }
    config = {
        "providers": providers,
        "pool": {"max_in_flight": streams, "request_timeout": 600},
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": 5},
        "logging": {"level": "WARNING"},
    }
    party = start_serve(config, directory, name)
    party.name = "runestone"
    return party


def start_relay(upstream: Party, directory: Path, name: str = "relay") -> Party:
    log = (directory / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-relay", upstream.url],
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=ROOT,
        preexec_fn=_common._die_with_parent,
    )
    match = wait_line(process, r"serving on (http://\S+)", "the relay")
    return Party("relay", process, match.group(1) + "/v1")


def serve_relay(upstream_url: str) -> int:
    """The relay: uvicorn, one provider and the gateway's chunk encoder; no actors."""
    import uvicorn

    from runestone.messages import ChatRequest, CompletionBuilder, Done, TextDelta
    from runestone.providers import ProviderSettings, create_provider
    from runestone.server.dialect import ChatCall
    from runestone.server.openai_schema import ChunkEncoder, OpenAIDialect
    from runestone.server.runner import bind

    settings = {
        "type": "openai",
        "base_url": upstream_url,
        "api_key": "sk-bench-upstream",
        "max_connections": 4000,
        "timeouts": _timeouts(),
        "models": {MODEL: {}, PREFILL_MODEL: {}},
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
            payload = jsonio.dumps(dialect.whole(builder.build(), ChatCall(request)))
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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(party: Party, url: str, what: str, directory: Path, limit: float) -> None:
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            if party.process.poll() is not None:
                raise SystemExit(f"{what} exited ({party.process.returncode}); see {directory}")
            with contextlib.suppress(aiohttp.ClientError):
                async with client.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.25)
    party.stop()
    raise SystemExit(f"{what} did not become ready within {limit:g} s; see {directory}")


async def start_litellm(
    executable: str, upstream: Party, directory: Path, routes: bool = False
) -> Party:
    def entry(model: str, kind: str = "openai", base: str = upstream.url) -> dict[str, object]:
        params = {"model": f"{kind}/{model}", "api_base": base, "api_key": "sk-bench-up"}
        return {"model_name": model, "litellm_params": params}

    models = [entry(MODEL), entry(PREFILL_MODEL)]
    config: dict[str, object] = {
        "model_list": models,
        "litellm_settings": {"drop_params": True, "set_verbose": False},
        "general_settings": {"master_key": BENCH_KEY},
    }
    if routes:
        models.append(entry(CLAUDE_MODEL, "anthropic", upstream.root))
        # /v1/responses onto chat completions, as runestone does (the fake upstream has no
        # Responses API); a refused request must not cool the model down for the next route.
        models[0]["litellm_params"]["use_chat_completions_api"] = True  # type: ignore[index]
        config["router_settings"] = {"disable_cooldowns": True}
    path = directory / "litellm.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    log = (directory / "litellm.log").open("wb")
    # No network here but package registries: the bundled model cost map, not a fetch.
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    process = subprocess.Popen(
        [executable, "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
        env=env,
        preexec_fn=_common._die_with_parent,
    )
    party = Party("litellm", process, f"http://127.0.0.1:{port}/v1")
    await _wait_ready(party, party.root + "/health/liveliness", "litellm", directory, 180)
    return party


async def start_portkey(node: str, script: Path, upstream: Party, directory: Path) -> Party:
    port = _free_port()
    log = (directory / "portkey.log").open("wb")
    process = subprocess.Popen(
        [node, str(script), f"--port={port}", "--headless"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
        preexec_fn=_common._die_with_parent,
    )
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url}
    party = Party("portkey", process, f"http://127.0.0.1:{port}/v1", headers)
    await _wait_ready(party, party.root + "/", "portkey", directory, 60)
    return party


@dataclass
class Installed:
    """Where each peer is, or why it is not there."""

    litellm: str | None = None
    portkey: tuple[str, Path] | None = None


def find_peers(args: argparse.Namespace, parties: list[str]) -> Installed:
    found = Installed()
    if "litellm" in parties:
        found.litellm = args.litellm or shutil.which("litellm")
        if found.litellm is None:
            print("LiteLLM proxy: not installed (no `litellm` on PATH; --litellm PATH): skipped")
        else:
            print(f"LiteLLM proxy: {found.litellm}")
    if "portkey" in parties:
        script = Path(args.portkey) if args.portkey else DEFAULT_PORTKEY
        node = args.node or shutil.which("node")
        if not script.is_file():
            print(f"Portkey gateway: not installed (no {script}; --portkey PATH): skipped")
        elif node is None:
            print("Portkey gateway: no `node` on PATH (--node PATH): skipped")
        else:
            found.portkey = (node, script)
            version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
            print(f"Portkey gateway: {script} on node {version.strip()}")
    return found


async def start_party(
    name: str,
    upstream: Party,
    directory: Path,
    peers: Installed,
    streams: int = 4000,
    routes: bool = False,
) -> Party | None:
    """Start party ``name`` against ``upstream``; None (said in one line) if it cannot run.

    With ``routes``, runestone and LiteLLM also get the upstream's Anthropic API.
    """
    try:
        if name == "runestone":
            label = f"runestone-{upstream.pid}"
            return start_runestone(upstream, directory, label, streams, routes)
        if name == "relay":
            return start_relay(upstream, directory, f"relay-{upstream.pid}")
        if name == "litellm" and peers.litellm is not None:
            return await start_litellm(peers.litellm, upstream, directory, routes)
        if name == "portkey" and peers.portkey is not None:
            return await start_portkey(*peers.portkey, upstream, directory)
    except SystemExit as exc:
        print(f"{name}: did not start, skipped: {exc}")
    return None


# --------------------------------------------------------------------------- one request


def _payload(stream: bool, messages: list[dict[str, str]] = MESSAGES, model: str = MODEL) -> bytes:
    body: dict[str, object] = {"model": model, "messages": messages, "stream": stream}
    return json.dumps(body).encode()


_WHOLE = _payload(False)
_STREAM = _payload(True)
_STREAM_20 = _payload(True, MESSAGES_20, PREFILL_MODEL)
_KNOWN = KNOWN_TEXT.encode()


def _headers(party: Party) -> dict[str, str]:
    return {**_HEADERS, **party.headers} if party.headers else _HEADERS


async def whole(client: aiohttp.ClientSession, party: Party) -> bool:
    async with client.post(party.chat_url, data=_WHOLE, headers=_headers(party)) as response:
        body = await response.read()
        return response.status == 200 and _KNOWN in body


async def _streamed(client: aiohttp.ClientSession, party: Party, payload: bytes) -> bool:
    async with client.post(party.chat_url, data=payload, headers=_headers(party)) as response:
        last = b""
        async for line in response.content:
            if line.strip():
                last = line
        return response.status == 200 and last.strip() == b"data: [DONE]"


async def streamed(client: aiohttp.ClientSession, party: Party) -> bool:
    return await _streamed(client, party, _STREAM)


async def streamed_20(client: aiohttp.ClientSession, party: Party) -> bool:
    return await _streamed(client, party, _STREAM_20)


@dataclass
class StreamResult:
    ok: bool
    first_token: float | None
    total: float
    chunks: int = 0
    problem: str = ""


async def read_stream(
    client: aiohttp.ClientSession, party: Party, payload: bytes, expected: str
) -> StreamResult:
    """One stream read in full: its text checked, time to the first text and to the end."""
    started = time.perf_counter()
    first: float | None = None
    text: list[str] = []
    try:
        async with client.post(party.chat_url, data=payload, headers=_headers(party)) as response:
            if response.status != 200:
                body = await response.read()
                return StreamResult(
                    False, None, time.perf_counter() - started, 0, body[:200].decode()
                )
            finished = False
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    finished = True
                    break
                chunk = jsonio.loads(data)
                if "error" in chunk:
                    return StreamResult(False, first, time.perf_counter() - started, 0, str(chunk))
                for choice in chunk.get("choices", ()):
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if first is None:
                            first = time.perf_counter() - started
                        text.append(content)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return StreamResult(False, first, time.perf_counter() - started, len(text), repr(exc))
    total = time.perf_counter() - started
    if not finished:
        return StreamResult(False, first, total, len(text), "no [DONE]")
    if "".join(text) != expected:
        return StreamResult(False, first, total, len(text), "wrong text")
    return StreamResult(True, first, total, len(text))


# --------------------------------------------------------------------------- long streams


@dataclass
class LongRun:
    results: list[StreamResult]
    cpu: float
    wall: float
    peak_threads: int
    peak_rss_mb: float
    asked: int = 0

    @property
    def ok(self) -> list[StreamResult]:
        return [r for r in self.results if r.ok]

    def ttft_p99(self) -> float:
        return percentile([r.first_token for r in self.ok if r.first_token is not None], 0.99)

    def total_p99(self) -> float:
        return percentile([r.total for r in self.ok], 0.99)


async def long_streams(party: Party, streams: int, seconds: float) -> LongRun:
    pid = party.pid
    peak_threads = 0
    # Generous: a stream runs ``seconds``; one far past that has failed.
    async with _load.session(total=max(120.0, 8 * seconds)) as client:
        cpu_before = proc_tree_cpu_seconds(pid)
        started = time.perf_counter()
        tasks = [
            asyncio.ensure_future(read_stream(client, party, _STREAM, KNOWN_TEXT))
            for _ in range(streams)
        ]
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                peak_threads = max(peak_threads, proc_tree_threads(pid))
        wall = time.perf_counter() - started
        cpu = proc_tree_cpu_seconds(pid) - cpu_before
    rss = proc_tree_peak_rss_mb(pid) if party.process.poll() is None else float("nan")
    return LongRun([t.result() for t in tasks], cpu, wall, peak_threads, rss, streams)


def report_long(run: LongRun, party: Party, seconds: float) -> None:
    ok = run.ok
    firsts = [r.first_token for r in ok if r.first_token is not None]
    totals = [r.total for r in ok]
    print(f"\n{len(run.results):,} concurrent {seconds:g}-s streams through {party.name}")
    print(f"  completed correctly: {len(ok)} / {len(run.results)}")
    if firsts:
        print(
            f"  time to first token: p50 {statistics.median(firsts) * 1000:.0f} ms, "
            f"p99 {percentile(firsts, 0.99) * 1000:.0f} ms"
        )
    if totals:
        print(
            f"  total time: p50 {statistics.median(totals):.2f} s, "
            f"p99 {percentile(totals, 0.99):.2f} s, max {max(totals):.2f} s"
        )
    print(f"  wall time of the run: {run.wall:.2f} s")
    print(f"  server CPU over the run: {run.cpu:.2f} s")
    now = proc_status(party.pid).get("VmRSS", "?") if party.process.poll() is None else "exited"
    print(f"  server peak RSS: {run.peak_rss_mb:.0f} MB (now {now})")
    print(f"  server peak threads: {run.peak_threads}")
    problems: dict[str, int] = {}
    for result in run.results:
        if not result.ok:
            problems[result.problem[:120]] = problems.get(result.problem[:120], 0) + 1
    for problem, count in sorted(problems.items(), key=lambda item: -item[1])[:5]:
        print(f"  failed x{count}: {problem}")


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class RouteCase:
    """One route measured against a direct call of the upstream (issue 12)."""

    key: str
    """Of the summary rows: ``chat``, ``messages``, ``messages_large``, ``responses``."""
    title: str
    stream: bool
    path: str
    """Under a gateway's root: ``/v1/chat/completions``, ``/v1/messages``, ``/v1/responses``."""
    body: bytes
    direct_path: str
    """Under the upstream's root: the same API, or chat completions for /v1/responses."""
    direct_body: bytes
    anthropic: bool = False
    beta: bool = False
    """Send ``anthropic-beta`` as Claude Code does."""

    @property
    def mode(self) -> str:
        return "stream" if self.stream else "whole"

    @property
    def name(self) -> str:
        return f"{self.key}_{self.mode}"

    def terminal(self, direct: bool) -> bytes:
        """What the terminal event's line of a complete stream holds."""
        path = self.direct_path if direct else self.path
        if path.endswith("/messages"):
            return b'"message_stop"'
        if path.endswith("/responses"):
            return b'"response.completed"'
        return b"data: [DONE]"


def _anthropic_body(stream: bool) -> bytes:
    body = {"model": CLAUDE_MODEL, "max_tokens": 1024, "messages": MESSAGES, "stream": stream}
    return json.dumps(body).encode()


def _responses_body(stream: bool) -> bytes:
    return json.dumps({"model": MODEL, "input": MESSAGES, "stream": stream}).encode()


def route_cases(large_bytes: int) -> list[RouteCase]:
    cases = []
    for stream in (False, True):
        chat = _payload(stream)
        kind = "streamed" if stream else "whole"
        large = json.dumps(_requests.claude_code(CLAUDE_MODEL, large_bytes, stream=stream))
        cases += [
            RouteCase(
                "chat",
                f"POST /v1/chat/completions, {kind}: OpenAI body to the OpenAI upstream",
                stream,
                "/v1/chat/completions",
                chat,
                "/v1/chat/completions",
                chat,
            ),
            RouteCase(
                "messages",
                f"POST /v1/messages, {kind}: Anthropic body to the Anthropic upstream "
                "(pass-through)",
                stream,
                "/v1/messages",
                _anthropic_body(stream),
                "/v1/messages",
                _anthropic_body(stream),
                anthropic=True,
            ),
            RouteCase(
                "messages_large",
                f"POST /v1/messages, {kind}, Claude-Code-like body of {len(large) / 1000:.0f} KB "
                f"(~{large_bytes / 1000:.0f} KB of messages, cache_control, tool_use/tool_result, "
                "thinking)",
                stream,
                "/v1/messages",
                large.encode(),
                "/v1/messages",
                large.encode(),
                anthropic=True,
                beta=True,
            ),
            RouteCase(
                "responses",
                f"POST /v1/responses, {kind}: translated onto chat completions "
                "(direct: the same prompt as chat completions)",
                stream,
                "/v1/responses",
                _responses_body(stream),
                "/v1/chat/completions",
                chat,
            ),
        ]
    return cases


def _route_headers(case: RouteCase, party: Party, direct: bool) -> dict[str, str]:
    headers = _headers(party)
    if case.anthropic and not direct:
        headers = {**headers, "anthropic-version": ANTHROPIC_VERSION}
        if party.name == "portkey":
            headers["x-portkey-provider"] = "anthropic"
    elif case.anthropic:
        headers = {**headers, "anthropic-version": ANTHROPIC_VERSION}
    if case.beta:
        headers["anthropic-beta"] = ANTHROPIC_BETA
    return headers


def route_request(case: RouteCase) -> _load.OneRequest:
    """One request of ``case``; the upstream party gets the direct call."""
    prepared: dict[str, tuple[str, bytes, dict[str, str], bytes]] = {}

    def target(party: Party) -> tuple[str, bytes, dict[str, str], bytes]:
        found = prepared.get(party.name)
        if found is None:
            direct = party.name == "upstream"
            path, body = (case.direct_path, case.direct_body) if direct else (case.path, case.body)
            headers = _route_headers(case, party, direct)
            found = (party.root + path, body, headers, case.terminal(direct))
            prepared[party.name] = found
        return found

    async def one(client: aiohttp.ClientSession, party: Party) -> bool:
        url, body, headers, terminal = target(party)
        async with client.post(url, data=body, headers=headers) as response:
            if not case.stream:
                data = await response.read()
                return response.status == 200 and _KNOWN in data
            # Seen, not last: LiteLLM follows response.completed with a data: [DONE].
            ended = False
            async for line in response.content:
                ended = ended or terminal in line
            return response.status == 200 and ended

    one.target = target  # type: ignore[attr-defined]
    return one


def _stream_text(case: RouteCase, direct: bool, raw: bytes) -> str:
    """The answer's text, from a stream's data lines, in the format of the API called."""
    path = case.direct_path if direct else case.path
    text = []
    for line in raw.splitlines():
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = jsonio.loads(line[6:])
        if path.endswith("/chat/completions"):
            for choice in event.get("choices", ()):
                text.append((choice.get("delta") or {}).get("content") or "")
        elif path.endswith("/messages"):
            if event.get("type") == "content_block_delta":
                text.append(event["delta"].get("text", ""))
        elif event.get("type") == "response.output_text.delta":
            text.append(event["delta"])
    return "".join(text)


async def check_route(case: RouteCase, party: Party) -> str:
    """Why ``party`` cannot serve ``case`` here ("" when it answers it in full and right)."""
    one = route_request(case)
    url, body, headers, _ = one.target(party)  # type: ignore[attr-defined]
    direct = party.name == "upstream"
    try:
        async with _load.session(total=60) as client:
            async with client.post(url, data=body, headers=headers) as response:
                raw = await response.read()
                if response.status != 200:
                    return f"HTTP {response.status}: {raw[:160].decode(errors='replace')}"
            if case.stream:
                if _stream_text(case, direct, raw) != KNOWN_TEXT:
                    return f"the streamed text is not the upstream's: {raw[:160]!r}"
            elif _KNOWN not in raw:
                return f"the answer does not hold the upstream's text: {raw[:160]!r}"
            if not await one(client, party):  # what the timed requests check
                return "the timed request's check fails"
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
        return repr(exc)[:200]
    return ""


@dataclass
class RouteResult:
    times: dict[str, list[float]]
    loads: dict[str, _load.Load]
    refused: dict[str, str]


async def measure_route(
    args: argparse.Namespace, case: RouteCase, upstream: Party, gateways: list[Party]
) -> RouteResult:
    """Sequential requests, the gateways and the direct call taking turns (latency), then
    concurrent rounds, interleaved (the gateway's CPU per request)."""
    problem = await check_route(case, upstream)
    if problem:
        raise SystemExit(f"the fake upstream failed {case.name} called directly: {problem}")
    refused = {}
    serving = []
    for party in gateways:
        problem = await check_route(case, party)
        if problem:
            refused[party.name] = problem
        else:
            serving.append(party)
    one = route_request(case)
    times = await _load.sequential([upstream, *serving], one, args.route_requests)
    loads = await _load.interleaved(
        serving, one, args.clients, args.route_duration, args.rounds, warmup=0.5
    )
    return RouteResult(times, loads, refused)


def report_route(
    case: RouteCase, result: RouteResult, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Print one route's table; each gateway's added median, added p90 and CPU per request."""
    times = result.times
    base = times["upstream"]
    base_median, base_p90 = statistics.median(base) * 1000, percentile(base, 0.9) * 1000
    print(f"\n{case.title}")
    print(
        f"  latency: {len(base)} sequential requests each, the direct call and the gateways "
        f"taking turns; CPU per request and req/s: {args.clients} concurrent clients, "
        f"{args.route_duration:g} s each in {args.rounds} interleaved rounds"
    )
    width = 12
    print(
        f"  {'party':{width}} {'median':>9} {'p90':>9} {'added median':>13} {'added p90':>10}"
        f" {'CPU/request':>12} {'req/s':>7}"
    )
    figures: dict[str, dict[str, float]] = {}
    for name, values in times.items():
        median, p90 = statistics.median(values) * 1000, percentile(values, 0.9) * 1000
        line = f"  {name:{width}} {median:6.3f} ms {p90:6.3f} ms"
        if name == "upstream":
            print(f"{line} {'(direct call)':>13}")
            continue
        load = result.loads[name]
        figures[name] = {
            "median": median - base_median,
            "p90": p90 - base_p90,
            "cpu": load.cpu_per_request_ms,
        }
        failed = f" ({load.failed} failed)" if load.failed else ""
        print(
            f"{line} {median - base_median:+10.3f} ms {p90 - base_p90:+7.3f} ms"
            f" {load.cpu_per_request_ms:9.3f} ms {load.rate:7.0f}{failed}"
        )
    for name, problem in result.refused.items():
        print(f"  {name:{width}} not served here: {problem}")
    return figures


# --------------------------------------------------------------------------- the summary


@dataclass
class Row:
    label: str
    unit: str
    lower_is_better: bool
    target: str = ""
    meets: Callable[[float], bool] | None = None
    values: dict[str, float] = field(default_factory=dict)
    digits: int = 2


def _rows(args: argparse.Namespace) -> dict[str, Row]:
    n, huge, secs = args.streams, args.huge, args.stream_seconds
    long = f"{n:,} concurrent {secs:g}-s streams:"
    big = f"{huge:,} concurrent {secs:g}-s streams:"
    return {
        "latency": Row(
            "added latency, sequential whole answers, median",
            "ms",
            True,
            "<= 0.6 ms",
            lambda v: v <= 0.6,
            digits=3,
        ),
        "rps": Row(
            f"req/s at {args.clients} clients, whole answers",
            "/s",
            False,
            ">= 1,500",
            lambda v: v >= 1500,
            digits=0,
        ),
        "cpu": Row(
            "gateway CPU per request", "ms", True, "<= 0.6 ms", lambda v: v <= 0.6, digits=3
        ),
        "streams": Row(
            f"streams/s at {args.clients} clients ({CHUNKS} chunks)",
            "/s",
            False,
            ">= 1,000",
            lambda v: v >= 1000,
            digits=0,
        ),
        "stream_cpu": Row(f"gateway CPU per stream ({CHUNKS} chunks)", "ms", True, digits=3),
        "long_ok": Row(f"{long} completed", "", False, f"all {n:,}", lambda v: v >= n, digits=0),
        "long_ttft": Row(f"{long} TTFT p99", "s", True, "<= 0.3 s", lambda v: v <= 0.3),
        "long_total": Row(f"{long} total p99", "s", True, "<= 10.6 s", lambda v: v <= 10.6),
        "long_cpu": Row(f"{long} server CPU", "s", True, "<= 2.5 s", lambda v: v <= 2.5),
        "long_rss": Row(f"{long} peak RSS", "MB", True, "<= 150 MB", lambda v: v <= 150, digits=0),
        "long_threads": Row(f"{long} peak threads", "", True, digits=0),
        "huge_ok": Row(
            f"{big} completed", "", False, f"all {huge:,}", lambda v: v >= huge, digits=0
        ),
        "huge_total": Row(f"{big} total p99", "s", True, "<= 12 s", lambda v: v <= 12),
        "huge_rss": Row(
            f"{big} peak RSS", "MB", True, "<= 1,024 MB", lambda v: v <= 1024, digits=0
        ),
        "huge_threads": Row(f"{big} peak threads", "", True, "not growing with streams", digits=0),
    }


@dataclass
class RouteFigures:
    figures: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """Per case (``messages_stream``, …), per gateway: added median, added p90, CPU."""
    refused: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per case, the gateways that could not serve it here, and why."""


async def routes_section(
    args: argparse.Namespace, upstream: Party, parties: list[Party]
) -> RouteFigures:
    gateways = [party for party in parties if party.name != "relay"]
    if len(gateways) != len(parties):
        print("\nrelay: it serves chat completions only; left out of the routes section")
    out = RouteFigures()
    for case in route_cases(args.large_kb * 1000):
        result = await measure_route(args, case, upstream, gateways)
        out.figures[case.name] = report_route(case, result, args)
        if result.refused:
            out.refused[case.name] = result.refused
    return out


_ROUTE_KEYS = ("chat", "messages", "messages_large", "responses")
_ROUTE_LABELS = {
    "chat": "/v1/chat/completions",
    "messages": "/v1/messages pass-through",
    "messages_large": "/v1/messages pass-through, large",
    "responses": "/v1/responses onto chat",
}
_FIGURES = {"median": "added median", "p90": "added p90", "cpu": "CPU per request"}


def route_rows(figures: dict[str, dict[str, dict[str, float]]]) -> dict[str, Row]:
    """The summary rows of the routes section: each figure of each route, each gateway."""
    rows: dict[str, Row] = {}
    for mode in ("whole", "stream"):
        for key in _ROUTE_KEYS:
            measured = figures.get(f"{key}_{mode}")
            if measured is None:
                continue
            for figure, what in _FIGURES.items():
                row = Row(f"{_ROUTE_LABELS[key]}, {mode}: {what}", "ms", True, digits=3)
                row.values = {name: values[figure] for name, values in measured.items()}
                chat = figures.get(f"chat_{mode}", {}).get("runestone", {}).get(figure)
                if key.startswith("messages") and figure != "p90" and chat is not None:
                    # Issue 12: a pass-through /v1/messages adds no more than chat completions.
                    row.target = f"<= chat's {chat:.3f} ms"
                    row.meets = lambda v, chat=chat: v <= chat
                rows[f"{key}_{mode}_{figure}"] = row
    return rows


def print_route_ratios(figures: dict[str, dict[str, dict[str, float]]]) -> None:
    """Runestone's figures for /v1/messages and /v1/responses over its chat completions'."""
    ours = {case: values["runestone"] for case, values in figures.items() if "runestone" in values}
    print("\nRunestone, each route over chat completions in the same mode (below 1: cheaper)")
    head = f"{'route':42} {'mode':>6}" + "".join(f" {what:>16}" for what in _FIGURES.values())
    print(head)
    print("-" * len(head))
    for mode in ("whole", "stream"):
        chat = ours.get(f"chat_{mode}")
        for key in _ROUTE_KEYS[1:]:
            route = ours.get(f"{key}_{mode}")
            if chat is None or route is None:
                continue
            line = f"{_ROUTE_LABELS[key] + ' / chat':42} {mode:>6}"
            for figure in _FIGURES:
                # An added latency near zero makes a ratio of noise: both are in the rows above.
                if chat[figure] > 0.005:
                    line += f" {route[figure] / chat[figure]:15.2f}x"
                else:
                    line += f" {'n/a':>16}"
            print(line)


def _cell(value: float | None, row: Row) -> str:
    if value is None:
        return "—"
    if value != value:  # NaN: nothing completed, nothing to take a percentile of
        return "n/a"
    unit = f" {row.unit}" if row.unit and row.unit != "/s" else ""
    return f"{value:,.{row.digits}f}{unit}"


_HEADING = (
    "Summary (ratio = runestone / peer; for times, CPU and memory below 1 is better;",
    "the targets are issue 10's, set for the default sizes of each run)",
)


def print_summary(
    rows: dict[str, Row], parties: list[str], heading: tuple[str, ...] = _HEADING
) -> None:
    shown = [row for row in rows.values() if row.values]
    if not shown:
        return
    peers = [p for p in PEERS if p in parties]
    columns = [p for p in ("runestone", *PEERS, "relay") if p in parties]
    width = max(len(row.label) for row in shown)
    head = f"{'figure':{width}} " + " ".join(f"{c:>11}" for c in columns)
    head += "".join(f" {'rs / ' + p:>13}" for p in peers) + f"  {'target':>24}  verdict"
    print()
    for line in heading:
        print(line)
    print(head)
    print("-" * len(head))
    for row in shown:
        line = f"{row.label:{width}} " + " ".join(
            f"{_cell(row.values.get(c), row):>11}" for c in columns
        )
        ours = row.values.get("runestone")
        for peer in peers:
            theirs = row.values.get(peer)
            if ours is None or theirs is None or not theirs or ours != ours or theirs != theirs:
                line += f" {'—':>13}"
            else:
                line += f" {ours / theirs:12.2f}x"
        verdict = ""
        if ours is not None and row.meets is not None and ours == ours:
            verdict = "meets" if row.meets(ours) else "misses"
        line += f"  {row.target:>24}  {verdict}"
        print(line)


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def running() -> Iterator[list[Party]]:
    started: list[Party] = []
    try:
        yield started
    finally:
        for party in reversed(started):
            party.stop()


def selection(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The parties and sections to run, from ``--only`` and ``--skip``."""
    known = set(PARTIES) | set(SECTIONS)
    only = {name for name in args.only.split(",") if name}
    skip = {name for name in args.skip.split(",") if name}
    if args.skip_load:
        skip |= {"long", "huge"}
    unknown = (only | skip) - known
    if unknown:
        raise SystemExit(f"unknown names {sorted(unknown)}: pick from {PARTIES} and {SECTIONS}")
    parties = [p for p in PARTIES if (p in only or not only & set(PARTIES)) and p not in skip]
    sections = [s for s in SECTIONS if (s in only or not only & set(SECTIONS)) and s not in skip]
    return parties, sections


async def run(args: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="runestone-bench-"))
    version = sys.version.split()[0]
    files = raise_open_files()
    print(
        f"bench_gateway: python {version}, {os.cpu_count()} CPUs, "
        f"open-file limit {files}; logs in {directory}"
    )
    names, sections = selection(args)
    print(f"parties: {', '.join(names) or 'none'}; sections: {', '.join(sections) or 'none'}")
    peers = find_peers(args, names)
    rows = _rows(args)

    routes = RouteFigures()
    if {"latency", "rps", "streams", "routes"} & set(sections):
        with running() as started:
            upstream = start_upstream(0.0)
            started.append(upstream)
            targets = [upstream]
            for name in names:
                party = await start_party(
                    name, upstream, directory, peers, routes="routes" in sections
                )
                if party is not None:
                    started.append(party)
                    targets.append(party)
            await short_sections(args, sections, targets, rows)
            if "routes" in sections:
                routes = await routes_section(args, upstream, targets[1:])

    if "long" in sections:
        interval = args.stream_seconds / len(KNOWN_TOKENS)
        for name in names:
            if name == "litellm" and args.no_litellm_long:
                print("\nlitellm: its long-stream run is left out (--no-litellm-long)")
                continue
            with running() as started:
                paced = start_upstream(interval)
                started.append(paced)
                party = await start_party(name, paced, directory, peers, args.streams + 100)
                if party is None:
                    continue
                started.append(party)
                long = await long_streams(party, args.streams, args.stream_seconds)
                report_long(long, party, args.stream_seconds)
                book_long(rows, "long", name, long)

    if "huge" in sections and "runestone" in names:
        # Two sockets per stream in the gateway (the caller's, the upstream's), and some spare.
        fits = (files - 256) // 2
        streams = args.huge
        if streams > fits:
            print(
                f"\n{args.huge:,} streams need {2 * args.huge + 256:,} open files in the gateway; "
                f"the hard limit here is {files:,} and cannot be raised without "
                f"CAP_SYS_RESOURCE: running {fits:,} streams"
            )
            streams = fits
        interval = args.stream_seconds / len(KNOWN_TOKENS)
        with running() as started:
            paced = start_upstream(interval)
            started.append(paced)
            party = start_runestone(paced, directory, "runestone-huge", streams + 100)
            started.append(party)
            huge = await long_streams(party, streams, args.stream_seconds)
            report_long(huge, party, args.stream_seconds)
            book_long(rows, "huge", "runestone", huge)
            if streams != args.huge:
                label = f"{streams:,} concurrent {args.stream_seconds:g}-s streams"
                for key, what in (("ok", "completed"), ("total", "total p99"), ("rss", "peak RSS")):
                    rows[f"huge_{key}"].label = f"{label} ({args.huge:,} asked): {what}"
                rows["huge_threads"].label = f"{label} ({args.huge:,} asked): peak threads"
                rows["huge_ok"].target = f"all {streams:,}"
                rows["huge_ok"].meets = lambda v: v >= streams
        long_threads = rows["long_threads"].values.get("runestone")
        if long_threads is not None:
            rows["huge_threads"].target = f"~{long_threads:.0f} (at {args.streams:,})"
            rows["huge_threads"].meets = lambda v: v <= long_threads + 16

    elif "huge" in sections:
        print("\nthe huge run is runestone's alone: left out with it")

    print_summary(rows, names)
    if routes.figures:
        print_summary(
            route_rows(routes.figures),
            [name for name in names if name != "relay"],
            (
                "Routes (issue 12): what each gateway adds over calling the fake upstream "
                "directly, in ms;",
                "ratio = runestone / peer, below 1 is better; the target: a pass-through "
                "/v1/messages adds no more than chat completions",
            ),
        )
        for case, refused in routes.refused.items():
            for name, problem in refused.items():
                print(f"  — {name} does not serve {case} here: {problem[:110]}")
        print_route_ratios(routes.figures)


def book_long(rows: dict[str, Row], prefix: str, name: str, long: LongRun) -> None:
    rows[f"{prefix}_ok"].values[name] = len(long.ok)
    rows[f"{prefix}_total"].values[name] = long.total_p99()
    rows[f"{prefix}_rss"].values[name] = long.peak_rss_mb
    rows[f"{prefix}_threads"].values[name] = long.peak_threads
    if prefix == "long":
        rows["long_ttft"].values[name] = long.ttft_p99()
        rows["long_cpu"].values[name] = long.cpu


async def short_sections(
    args: argparse.Namespace, sections: list[str], targets: list[Party], rows: dict[str, Row]
) -> None:
    if "latency" in sections and args.requests:
        times = await _load.sequential(targets, whole, args.requests)
        added = _load.report_sequential("Whole answers", times, "upstream")
        rows["latency"].values.update(added)
        times = await _load.sequential(targets, streamed, args.requests)
        _load.report_sequential("Streams (to [DONE])", times, "upstream")

    if "rps" in sections and args.duration:
        loads = await _load.interleaved(targets, whole, args.clients, args.duration, args.rounds)
        _load.report_loads(
            f"Whole answers at {args.clients} concurrent clients, {args.duration:g} s each "
            f"in {args.rounds} interleaved rounds",
            loads,
        )
        for name, load in loads.items():
            if name != "upstream":
                rows["rps"].values[name] = load.rate
                rows["cpu"].values[name] = load.cpu_per_request_ms

    if "streams" in sections and args.duration:
        checked = []
        async with _load.session(total=60) as client:
            for party in targets:
                result = await read_stream(client, party, _STREAM_20, REST)
                if result.ok and result.chunks == CHUNKS:
                    checked.append(party)
                else:
                    problem = result.problem or f"{result.chunks} text chunks"
                    print(f"\n{party.name}: its {CHUNKS}-chunk stream failed ({problem}): left out")
        loads = await _load.interleaved(
            checked, streamed_20, args.clients, args.duration, args.rounds
        )
        _load.report_loads(
            f"Streams of {CHUNKS} text chunks (checked) at {args.clients} concurrent clients, "
            f"{args.duration:g} s each in {args.rounds} interleaved rounds",
            loads,
            "streams/s",
        )
        for name, load in loads.items():
            if name != "upstream":
                rows["streams"].values[name] = load.rate
                rows["stream_cpu"].values[name] = load.cpu_per_request_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated parties and/or sections")
    parser.add_argument("--skip", default="", help="comma-separated parties and/or sections")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per party")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of load per party")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of that load")
    parser.add_argument(
        "--route-requests", type=int, default=100, help="sequential requests per route and party"
    )
    parser.add_argument(
        "--route-duration", type=float, default=2.4, help="seconds of load per route and party"
    )
    parser.add_argument(
        "--large-kb", type=int, default=50, help="KB of messages in the large /v1/messages body"
    )
    parser.add_argument("--streams", type=int, default=1000, help="concurrent long streams")
    parser.add_argument("--huge", type=int, default=10_000, help="streams of the huge run")
    parser.add_argument("--stream-seconds", type=float, default=10.0, help="length of each")
    parser.add_argument("--skip-load", action="store_true", help="= --skip long,huge")
    parser.add_argument("--no-litellm-long", action="store_true", help="no long run of litellm")
    parser.add_argument("--litellm", default=None, help="the litellm executable")
    parser.add_argument("--portkey", default=None, help=f"start-server.js ({DEFAULT_PORTKEY})")
    parser.add_argument("--node", default=None, help="the node executable for Portkey")
    parser.add_argument("--serve-relay", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_relay:
        return serve_relay(args.serve_relay)
    loop = new_event_loop()
    try:
        loop.run_until_complete(run(args))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
