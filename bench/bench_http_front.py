"""Is the HTTP front the floor? The same trivial handler behind each candidate front.

The handler answers ``POST /v1/chat/completions`` with no upstream: a fixed small
chat-completion JSON body, or for ``"stream": true`` a stream of 20 SSE chunks
(then the finish chunk and ``[DONE]``), each chunk its own ASGI send. It reads
and parses the request body like a gateway would. Each front runs in its own
process:

- ``starlette-uvicorn``: a Starlette route on uvicorn (httptools, uvloop) — the
  front ``runestone serve`` has now;
- ``asgi-uvicorn``: a plain ASGI callable on uvicorn (httptools, uvloop);
- ``asgi-granian``: the plain ASGI callable on granian (``--interface asgi``,
  uvloop, one worker);
- ``starlette-granian``: the Starlette route on granian.

Measured side by side in one run, the fronts taking turns: sequential latency
(median, p99), whole answers per second at 64 concurrent clients and the
server's CPU per request (its process tree's /proc CPU seconds over the run /
requests served), and the same for the 20-chunk streams; each figure's ratio to
``starlette-uvicorn``. With no upstream, the client (one process) may be what
caps the rates of the faster fronts: their CPU per request is the figure to
compare then. granian is in the ``bench`` extra; missing, it is skipped
with one line.

    python bench/bench_http_front.py [--requests 1000] [--duration 6] [--rounds 3]
                                     [--clients 64] [--only NAMES] [--skip NAMES]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402 - after the path set-up above
import _load  # noqa: E402
from _common import Party, percentile, wait_line  # noqa: E402

from runestone import jsonio  # noqa: E402
from runestone.io import new_event_loop  # noqa: E402
from runestone.testing.upstream import KNOWN_TEXT, KNOWN_TOKENS  # noqa: E402

FRONTS = ("starlette-uvicorn", "asgi-uvicorn", "asgi-granian", "starlette-granian")
BASE = "starlette-uvicorn"
CHUNKS = 20
PATH = "/v1/chat/completions"

# --------------------------------------------------------------------------- the handler

BODY: bytes = jsonio.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "healthy",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": KNOWN_TEXT},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 41, "total_tokens": 46},
    }
)


def _frame(delta: dict[str, str], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "healthy",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + jsonio.dumps(chunk) + b"\n\n"


FRAMES: tuple[bytes, ...] = tuple(_frame({"content": t}) for t in KNOWN_TOKENS[:CHUNKS])
CLOSING: bytes = _frame({}, "stop") + b"data: [DONE]\n\n"
STREAM_TEXT = "".join(KNOWN_TOKENS[:CHUNKS])

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The plain ASGI front: the handler with nothing around it."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 404, "headers": _JSON})
        await send({"type": "http.response.body", "body": b'{"error": "not found"}'})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if not jsonio.loads(body).get("stream"):
        headers = [*_JSON, (b"content-length", str(len(BODY)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    for frame in FRAMES[:-1]:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": FRAMES[-1] + CLOSING})


def _starlette() -> Any:
    from collections.abc import AsyncIterator

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def frames() -> AsyncIterator[bytes]:
        for frame in FRAMES[:-1]:
            yield frame
        yield FRAMES[-1] + CLOSING

    async def chat(request: Request) -> Response:
        if not jsonio.loads(await request.body()).get("stream"):
            return Response(BODY, media_type="application/json")
        headers = {"cache-control": "no-cache"}
        return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)

    return Starlette(routes=[Route(PATH, chat, methods=["POST"])])


starlette_app = _starlette()
"""The Starlette front (module level, for granian to import)."""


# --------------------------------------------------------------------------- the fronts


def serve_uvicorn(kind: str) -> int:
    """Child process: ``kind``'s app on uvicorn (httptools) on a uvloop loop."""
    import uvicorn

    app = starlette_app if kind == "starlette-uvicorn" else asgi_app
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)  # before the banner: a client may connect as soon as it reads it
    print(f"{kind} serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        app,
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        backlog=4096,
        timeout_keep_alive=75,
    )
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve(sockets=[sock]))
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_front(kind: str, directory: Path) -> Party:
    log = (directory / f"{kind}.log").open("wb")
    if kind.endswith("-uvicorn"):
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", kind],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            preexec_fn=_common._die_with_parent,
        )
        match = wait_line(process, r"serving on (http://\S+)", kind)
        return Party(kind, process, match.group(1) + "/v1")
    port = _free_port()
    target = "bench_http_front:" + ("asgi_app" if kind == "asgi-granian" else "starlette_app")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "granian", "--interface", "asgi", "--http", "1", "--no-ws"),
            *("--loop", "uvloop", "--workers", "1", "--backlog", "4096"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            *("--working-dir", str(HERE), target),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=HERE,
        env=env,
        preexec_fn=_common._die_with_parent,
    )
    party = Party(kind, process, f"http://127.0.0.1:{port}/v1")
    deadline = time.monotonic() + 30
    async with _load.session(total=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{kind} exited ({process.returncode}); see {directory}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                if await whole(client, party):
                    return party
            await asyncio.sleep(0.2)
    party.stop()
    raise SystemExit(f"{kind} did not become ready within 30 s; see {directory}")


# --------------------------------------------------------------------------- the client

_WHOLE = jsonio.dumps({"model": "healthy", "messages": [{"role": "user", "content": "hi"}]})
_STREAM = jsonio.dumps(
    {"model": "healthy", "messages": [{"role": "user", "content": "hi"}], "stream": True}
)
_HEADERS = {"content-type": "application/json"}
_KNOWN = KNOWN_TEXT.encode()


async def whole(client: aiohttp.ClientSession, party: Party) -> bool:
    async with client.post(party.chat_url, data=_WHOLE, headers=_HEADERS) as response:
        body = await response.read()
        return response.status == 200 and _KNOWN in body


async def streamed(client: aiohttp.ClientSession, party: Party) -> bool:
    async with client.post(party.chat_url, data=_STREAM, headers=_HEADERS) as response:
        last = b""
        async for line in response.content:
            if line.strip():
                last = line
        return response.status == 200 and last.strip() == b"data: [DONE]"


async def check_stream(client: aiohttp.ClientSession, party: Party) -> str:
    """What is wrong with ``party``'s stream, or '' if it is the 20 chunks and [DONE]."""
    text: list[str] = []
    async with client.post(party.chat_url, data=_STREAM, headers=_HEADERS) as response:
        if response.status != 200:
            return f"status {response.status}"
        async for raw in response.content:
            line = raw.strip()
            if line == b"data: [DONE]":
                break
            if line.startswith(b"data: "):
                for choice in jsonio.loads(line[6:])["choices"]:
                    if choice["delta"].get("content"):
                        text.append(choice["delta"]["content"])
        else:
            return "no [DONE]"
    if len(text) != CHUNKS or "".join(text) != STREAM_TEXT:
        return f"{len(text)} chunks, not the {CHUNKS} known ones"
    return ""


# --------------------------------------------------------------------------- main


def _ratio(value: float, base: float) -> str:
    return f"{value / base:6.2f}x" if base and base == base and value == value else "     —"


def _cell(value: float, base: float, unit: str, digits: int) -> str:
    """``value`` with its unit, then its ratio to ``base``."""
    shown = f"{value:.{digits}f}" + (f" {unit}" if unit else "")
    return f"{shown:>10} {_ratio(value, base)}"


async def run(args: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="runestone-front-"))
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(FRONTS)
    if unknown:
        raise SystemExit(f"unknown fronts {sorted(unknown)}: pick from {FRONTS}")
    kinds = [k for k in FRONTS if (not only or k in only) and k not in skip]
    print(
        f"bench_http_front: python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"logs in {directory}"
    )
    if importlib.util.find_spec("granian") is None:
        print("granian: not installed (pip install '.[bench]'): its fronts are skipped")
        kinds = [k for k in kinds if not k.endswith("-granian")]
    else:
        from importlib.metadata import version

        print(
            f"granian {version('granian')}, uvicorn {version('uvicorn')}, "
            f"starlette {version('starlette')}"
        )
    parties: list[Party] = []
    try:
        async with _load.session(total=30) as client:
            for kind in kinds:
                try:
                    party = await start_front(kind, directory)
                except SystemExit as exc:
                    print(f"{kind}: did not start, skipped: {exc}")
                    continue
                parties.append(party)
                wrong = await check_stream(client, party)
                if wrong:
                    raise SystemExit(f"{kind}: its stream is wrong: {wrong}")
        if not parties:
            raise SystemExit("no front started")
        base = BASE if any(p.name == BASE for p in parties) else parties[0].name

        times = await _load.sequential(parties, whole, args.requests)
        medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
        print(f"\nWhole answers: {args.requests} sequential requests each, interleaved")
        print(f"  {'front':18} {'median':>9} {'p99':>9}  {'median / ' + base}")
        for name, values in times.items():
            p99 = percentile(values, 0.99) * 1000
            ratio = _ratio(medians[name], medians[base])
            print(f"  {name:18} {medians[name]:6.3f} ms {p99:6.2f} ms  {ratio}")

        loads = await _load.interleaved(parties, whole, args.clients, args.duration, args.rounds)
        _load.report_loads(
            f"Whole answers at {args.clients} concurrent clients, {args.duration:g} s each "
            f"in {args.rounds} interleaved rounds",
            loads,
        )
        streams = await _load.interleaved(
            parties, streamed, args.clients, args.duration, args.rounds
        )
        _load.report_loads(
            f"Streams of {CHUNKS} chunks at {args.clients} concurrent clients, "
            f"{args.duration:g} s each in {args.rounds} interleaved rounds",
            streams,
            "streams/s",
        )

        print(f"\nSummary: each front's figure and its ratio to {base}")
        heads = ("median", "req/s", "CPU/req", "streams/s", "CPU/stream")
        print(f"  {'front':18} " + " ".join(f"{head:>18}" for head in heads))
        for party in parties:
            name = party.name
            cells = [
                _cell(medians[name], medians[base], "ms", 3),
                _cell(loads[name].rate, loads[base].rate, "", 0),
                _cell(loads[name].cpu_per_request_ms, loads[base].cpu_per_request_ms, "ms", 3),
                _cell(streams[name].rate, streams[base].rate, "", 0),
                _cell(streams[name].cpu_per_request_ms, streams[base].cpu_per_request_ms, "ms", 3),
            ]
            print(f"  {name:18} " + " ".join(cells))
        print("  (times and CPU: below 1x is cheaper than the base; rates: above 1x is faster)")
    finally:
        for party in reversed(parties):
            party.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests each")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of load per front")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of that load")
    parser.add_argument("--only", default="", help=f"comma-separated fronts of {FRONTS}")
    parser.add_argument("--skip", default="", help="comma-separated fronts to leave out")
    serve = [k for k in FRONTS if k.endswith("-uvicorn")]
    parser.add_argument("--serve", choices=serve, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve_uvicorn(args.serve)
    loop = new_event_loop()
    try:
        loop.run_until_complete(run(args))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
