"""A fault-injecting fake LLM upstream: a real loopback HTTP server speaking OpenAI and Anthropic.

Real sockets and real SSE through :mod:`aiohttp.web`; raw transport tricks
where a framework cannot produce the fault (a TCP reset before any response
byte, a chunked body that never ends). The request's ``model`` picks the
behaviour — ``"<behaviour>"`` or ``"<behaviour>:<arg>"``, see :class:`Behaviour`;
any other model name is answered healthily. Every healthy answer is exactly
:data:`KNOWN_TEXT`, so a truncated answer can never pass for a complete one.
Every request is recorded as an :class:`Attempt`.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (legacy
``text_completion`` frames and bodies, a ``prompt`` instead of messages),
``POST /v1/responses`` (the Responses API: ``input`` and ``instructions``; its named
events from ``response.created`` to ``response.completed``, each with its
``sequence_number``, or a whole ``response`` object) and ``GET /v1/models`` (OpenAI;
base URL ``openai_base_url``), ``POST /v1/messages`` (Anthropic; base URL
``anthropic_base_url``). ``GET /v1/models`` answers in Anthropic's shape when
the request carries ``anthropic-version`` or ``x-api-key``; like a real server
that is down it answers 503 while a ``down-for`` window requested since
start/reset is still running. Listings are recorded too (:attr:`listings`).

Behaviours (stream / whole answer where they differ):

============================ ========================================================
healthy (or any other name)  KNOWN_TEXT, token by token / whole, with usage
rate-limit-once[:secs]       first request for this exact model since start/reset:
                             429 with ``Retry-After: secs`` (default 1) and
                             ``retry-after-ms``; then healthy
rate-limit                   429 every time, no Retry-After
error-once                   first request for this exact model: 500; then healthy
unavailable                  503 every time
overloaded                   Anthropic 529 ``overloaded_error``; OpenAI 503
reset                        TCP reset after reading the request, before any byte
blackhole                    reads the request, never answers, holds the connection
slow-first-token:secs        headers and opening frames at once, first token after secs
                             / whole body after secs
cut-after:N                  N tokens, then FIN mid-body (no finish, no terminal chunk)
                             / half the body, short of its Content-Length, then FIN
stall-after:N                N tokens, then silence / headers, then silence
malformed-chunk              one unparseable frame mid-stream, the rest complete
                             / a 200 whose body is not JSON
no-done                      finish reason and usage, no ``[DONE]`` / ``message_stop``
                             (Responses: the items closed, no ``response.completed``)
                             / healthy
error-event-after:N          N tokens, then an in-stream error (OpenAI ``data:
                             {"error": …}``, Anthropic ``event: error`` overloaded,
                             Responses ``event: error`` then ``response.failed``)
                             / OpenAI 500, Anthropic 529
invalid-event-after:N        N tokens, then an in-stream error that is the request's
                             fault (``invalid_request_error``) / 400
context-length               400: OpenAI ``context_length_exceeded``; Anthropic
                             ``invalid_request_error`` "prompt is too long: …"
content-policy               400: OpenAI ``content_policy_violation``; Anthropic
                             ``invalid_request_error`` naming the content policy
prefill                      a final assistant message holding a prefix of KNOWN_TEXT
                             gets only the rest; any other gets KNOWN_TEXT whole
reject-prefill               400 when the last message is the assistant's; else healthy
down-for:secs                503 for secs after start/reset (injected clock), then healthy
unauthorized                 401: OpenAI ``invalid_api_key``; Anthropic
                             ``authentication_error``
tool-call                    with tools: a call of the first tool with arguments
                             KNOWN_TOOL_ARGUMENTS in several pieces; without: healthy
thinking                     reasoning first, then KNOWN_TEXT: Anthropic a signed
                             ``thinking`` block and cache usage fields; OpenAI
                             ``reasoning_content`` and cached/reasoning token details
                             (legacy completions, Responses: the token details only)
============================ ========================================================

The behaviours are the same on every route; on ``/v1/completions`` those that need
messages or tools (``prefill``, ``reject-prefill``, ``tool-call``) answer healthily, on
``/v1/responses`` those that need a prefill (``prefill``, ``reject-prefill``); its
``tool-call`` calls the first ``function`` tool, in a ``function_call`` item.

A known behaviour with a bad argument (``cut-after:x``), or a request the real
API would refuse (no ``max_tokens`` or ``anthropic-version`` for Anthropic, a
``system`` role in Anthropic messages, …), gets a 400 naming the problem.

From the command line::

    python -m runestone.testing.upstream --port 8099 [--host 127.0.0.1] [--token-interval 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import math
import signal
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn, Self

from aiohttp import web

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.logging import REDACTED
from runestone.testing._upstream_behaviour import Behaviour, BehaviourError, parse_model
from runestone.testing._upstream_request import BadRequestError, ChatCall, read_chat_call
from runestone.testing._upstream_script import (
    Ending,
    Outcome,
    Script,
    Timing,
    error_script,
    script_for,
)
from runestone.testing._upstream_wire import (
    CACHE_CREATION_TOKENS,
    CACHE_READ_TOKENS,
    KNOWN_SIGNATURE,
    KNOWN_TEXT,
    KNOWN_THOUGHT,
    KNOWN_TOKENS,
    KNOWN_TOOL_ARGUMENTS,
    AnthropicWire,
    ErrorKind,
    OpenAICompletionsWire,
    OpenAIResponsesWire,
    OpenAIWire,
    Reply,
    Wire,
)

__all__ = [
    "CACHE_CREATION_TOKENS",
    "CACHE_READ_TOKENS",
    "KNOWN_SIGNATURE",
    "KNOWN_TEXT",
    "KNOWN_THOUGHT",
    "KNOWN_TOKENS",
    "KNOWN_TOOL_ARGUMENTS",
    "Attempt",
    "Behaviour",
    "FakeUpstream",
    "Outcome",
    "main",
]

_THREAD_NAME = "runestone-fake-upstream"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
# Backstop only: stop() aborts every live connection first, so nothing should wait this long.
_SHUTDOWN_GRACE = 1.0
_SETTLE_TURNS = 3
_MAX_BODY = 64 * 1024 * 1024
# Benchmarks open a thousand connections at once; a backlog of 128 would drop SYNs.
_BACKLOG = 4096
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key"})
_WIRES: dict[str, Wire] = {
    "openai": OpenAIWire(),
    "openai_completions": OpenAICompletionsWire(),
    "openai_responses": OpenAIResponsesWire(),
    "anthropic": AnthropicWire(),
}
_ROUTES_HINT = (
    "the OpenAI API is POST /v1/chat/completions, POST /v1/completions, POST /v1/responses "
    "and GET /v1/models "
    "(base URL http://host:port/v1); the Anthropic API is POST /v1/messages "
    "(base URL http://host:port)"
)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request the fake upstream received, and what it did with it."""

    time: float
    """When it was received, on the injected clock's monotonic time."""
    api: str
    """``"openai"`` (chat), ``"openai_completions"`` (legacy completions),
    ``"openai_responses"`` (the Responses API) or ``"anthropic"``."""
    model: str
    behaviour: Behaviour | None
    """``None`` when the request was refused before its model could be read."""
    arg: float | int | None
    stream: bool
    outcome: Outcome
    body: dict[str, Any]
    """The parsed JSON request (``{}`` if it was not a JSON object)."""
    headers: dict[str, str]
    """Request headers, lower-cased, with credentials replaced by ``[redacted]``."""


class FakeUpstream:
    """A fake OpenAI + Anthropic server on a loopback port, for tests and benchmarks.

    ``start()`` runs it on its own event loop in a thread named
    ``runestone-fake-upstream``; ``await start_async()`` runs it on the caller's
    loop instead. ``stop()`` / ``await stop_async()`` close every connection,
    held ones included. Also a context manager (sync and async).

    ``token_interval`` paces tokens; ``first_token_delay`` comes before the first
    one (a whole answer takes as long as its stream would). With ``api_key`` set,
    a request carrying another key gets 401. ``clock`` times attempts and
    ``down-for`` windows.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_interval: float = 0.0,
        first_token_delay: float = 0.0,
        api_key: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        delays = (("token_interval", token_interval), ("first_token_delay", first_token_delay))
        for name, value in delays:
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1-65535, got {port!r}")
        self._host = host
        self._requested_port = port
        self._timing = Timing(first_token_delay=first_token_delay, token_interval=token_interval)
        self._api_key = api_key
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._attempts: list[Attempt] = []
        self._async_waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._seen_models: set[str] = set()
        self._listings: list[float] = []
        self.count_tokens_bodies: list[dict[str, Any]] = []
        """Every body ``POST /v1/messages/count_tokens`` counted, as received."""
        self.embedding_bodies: list[dict[str, Any]] = []
        """Every body ``POST /v1/embeddings`` answered, as received."""
        self._epoch = self._clock.monotonic()
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested: asyncio.Event | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not running"
        return f"FakeUpstream({where}, attempts={len(self._attempts)})"

    # -- addresses ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the free one chosen when ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the fake upstream is not running: call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The base URL an OpenAI client takes: ``base_url + "/v1"``."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The base URL an Anthropic client takes (it appends ``/v1/messages``)."""
        return self.base_url

    # -- what happened ------------------------------------------------------------------

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt since start or the last :meth:`reset`, oldest first (a copy)."""
        with self._lock:
            return list(self._attempts)

    @property
    def listings(self) -> list[float]:
        """When each ``GET /v1/models`` came (the clock's monotonic time), oldest first."""
        with self._lock:
            return list(self._listings)

    def wait_for_attempts(self, n: int, timeout: float = 5.0) -> list[Attempt]:
        """Block until at least ``n`` attempts are recorded; return them all.

        Raises :class:`TimeoutError` naming what was seen. Not for use on the
        server's own loop (async mode): use :meth:`wait_for_attempts_async` there.
        """
        if self._loop_thread_id == threading.get_ident():
            raise RuntimeError(
                "wait_for_attempts() would block the fake upstream's own event loop; "
                "use await wait_for_attempts_async()"
            )
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._attempts) >= n, timeout):
                raise TimeoutError(self._timeout_message(n, timeout))
            return list(self._attempts)

    async def wait_for_attempts_async(self, n: int, timeout: float = 5.0) -> list[Attempt]:
        """Like :meth:`wait_for_attempts`, awaiting on the caller's loop instead of blocking."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = (n, loop, future)
        with self._lock:
            if len(self._attempts) >= n:
                return list(self._attempts)
            self._async_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(self._timeout_message(n, timeout)) from None
        finally:
            with self._lock:
                if waiter in self._async_waiters:
                    self._async_waiters.remove(waiter)
        return self.attempts

    def _timeout_message(self, n: int, timeout: float) -> str:
        seen = [f"{a.api} {a.model!r} -> {a.outcome}" for a in self._attempts]
        return (
            f"fake upstream: waited {timeout} s for {n} attempt(s), "
            f"saw {len(seen)}: {seen or 'none'}"
        )

    def reset(self) -> None:
        """Forget every attempt, re-arm the ``*-once`` behaviours, restart ``down-for`` windows."""
        with self._lock:
            self._attempts.clear()
            self._seen_models.clear()
            self._listings.clear()
            self._epoch = self._clock.monotonic()

    # -- lifecycle: own thread ----------------------------------------------------------

    def start(self) -> None:
        """Serve on an event loop of its own in a thread named ``runestone-fake-upstream``."""
        self._ensure_stopped()
        ready = threading.Event()
        failures: list[BaseException] = []
        thread = threading.Thread(
            target=self._thread_main, args=(ready, failures), name=_THREAD_NAME, daemon=True
        )
        self._thread = thread
        thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError(f"the fake upstream did not start within {_START_TIMEOUT} s")
        if failures:
            thread.join(_STOP_TIMEOUT)
            self._thread = None
            raise RuntimeError(
                f"the fake upstream could not listen on {self._host}:{self._requested_port}: "
                f"{failures[0]}"
            ) from failures[0]

    def stop(self) -> None:
        """Close every connection (held ones too), stop the loop and join its thread."""
        thread = self._thread
        if thread is None:
            if self._runner is not None:
                raise RuntimeError("started with start_async(): stop it with await stop_async()")
            return
        loop, stop_requested = self._loop, self._stop_requested
        if loop is not None and stop_requested is not None:
            loop.call_soon_threadsafe(stop_requested.set)
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the fake upstream thread did not stop within {_STOP_TIMEOUT} s")
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _thread_main(self, ready: threading.Event, failures: list[BaseException]) -> None:
        asyncio.run(self._serve_in_thread(ready, failures))

    async def _serve_in_thread(self, ready: threading.Event, failures: list[BaseException]) -> None:
        try:
            await self._open()
        except Exception as exc:  # noqa: BLE001 - handed to start(), which raises it in the caller
            failures.append(exc)
            ready.set()
            return
        stop_requested = self._stop_requested = asyncio.Event()
        ready.set()
        try:
            await stop_requested.wait()
        finally:
            await self._close()

    # -- lifecycle: caller's loop -------------------------------------------------------

    async def start_async(self) -> None:
        """Serve on the running event loop (no thread of its own)."""
        self._ensure_stopped()
        await self._open()

    async def stop_async(self) -> None:
        """Close every connection and the listening socket (the counterpart of start_async)."""
        if self._thread is not None:
            raise RuntimeError("started with start(): stop it with stop()")
        if self._runner is not None:
            await self._close()

    async def __aenter__(self) -> Self:
        await self.start_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()

    def _ensure_stopped(self) -> None:
        if self._thread is not None or self._runner is not None:
            raise RuntimeError(f"the fake upstream is already running at {self.base_url}")

    async def _open(self) -> None:
        # Our own listening socket, so stop() can stop accepting before closing it (below).
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.create_server(
            (self._host, self._requested_port), family=family, backlog=_BACKLOG
        )
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/v1/completions", self._openai_completions)
        app.router.add_post("/v1/responses", self._openai_responses)
        app.router.add_post("/v1/messages", self._anthropic_chat)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # handler_cancellation: a held (blackhole/stall) handler ends when its client leaves.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_GRACE
        )
        try:
            await runner.setup()
            await web.SockSite(runner, listener).start()
        except BaseException:
            await runner.cleanup()
            listener.close()
            raise
        self._port = int(listener.getsockname()[1])
        self._listener = listener
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        with self._lock:
            self._seen_models.clear()
            self._epoch = self._clock.monotonic()

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        listener, self._listener = self._listener, None
        if runner is not None and listener is not None:
            loop = asyncio.get_running_loop()
            # Stop accepting first and let accepts already under way attach: on Python
            # 3.11 an accept that completes after the server is closed leaks its socket.
            with contextlib.suppress(NotImplementedError):
                loop.remove_reader(listener.fileno())
            for _ in range(_SETTLE_TURNS):
                await asyncio.sleep(0)
            # Every connection goes now, idle or held (blackhole, stall, a slow stream):
            # aiohttp's own shutdown would wait for held handlers.
            server = runner.server
            if server is not None:
                for handler in server.connections:
                    if handler.transport is not None:
                        handler.transport.abort()
            await runner.cleanup()  # closes the listener too
            # Aborted transports close their sockets on the next loop turn.
            await asyncio.sleep(0)
        self._port = None
        self._loop = None
        self._loop_thread_id = None
        self._stop_requested = None

    # -- request handling ---------------------------------------------------------------

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, _WIRES["openai"])

    async def _openai_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, _WIRES["openai_completions"])

    async def _openai_responses(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, _WIRES["openai_responses"])

    async def _anthropic_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, _WIRES["anthropic"])

    async def _chat(self, request: web.Request, wire: Wire) -> web.StreamResponse:
        script = await self._decide(request, wire)
        return await self._play(request, wire, script)

    async def _decide(self, request: web.Request, wire: Wire) -> Script:
        """Read the request, choose the script, record the attempt."""
        raw = await request.read()
        received = self._clock.monotonic()
        headers = _redacted(request.headers)
        problem: str | None = None
        try:
            body: object = json.loads(raw)
        except ValueError as exc:
            body, problem = None, f"request body is not JSON: {exc}"
        recorded_body = body if isinstance(body, dict) else {}
        raw_model = recorded_body.get("model")
        model = raw_model if isinstance(raw_model, str) else ""
        stream = recorded_body.get("stream") is True

        def record(script: Script, call: ChatCall | None) -> Script:
            selection = call.selection if call is not None else None
            self._record(
                Attempt(
                    time=received,
                    api=wire.api,
                    model=model,
                    behaviour=selection.behaviour if selection is not None else None,
                    arg=selection.arg if selection is not None else None,
                    stream=stream,
                    outcome=script.outcome,
                    body=recorded_body,
                    headers=headers,
                )
            )
            return script

        if not self._authorized(wire, request.headers):
            return record(error_script(wire, ErrorKind.UNAUTHORIZED, Outcome.UNAUTHORIZED), None)
        try:
            if problem is not None:
                raise BadRequestError(problem)
            call = read_chat_call(wire.api, body, request.headers)
        except BadRequestError as exc:
            refusal = error_script(
                wire, ErrorKind.BAD_REQUEST, Outcome.BAD_REQUEST, detail=f"fake upstream: {exc}"
            )
            return record(refusal, None)
        with self._lock:
            first = model not in self._seen_models
            self._seen_models.add(model)
            elapsed = received - self._epoch
        reply = Reply(
            id=wire.id_prefix + uuid.uuid4().hex[:24],
            model=model,
            created=int(self._clock.time()),
            input_tokens=call.input_tokens,
            include_usage=call.include_usage,
            thinking=call.selection.behaviour is Behaviour.THINKING,
        )
        script = script_for(
            call, wire.for_reply(), reply, self._timing, first=first, elapsed=elapsed
        )
        return record(script, call)

    async def _play(self, request: web.Request, wire: Wire, script: Script) -> web.StreamResponse:
        """Put ``script`` on the wire."""
        if script.ending is Ending.RESET:
            _reset_connection(request.transport)
            await _hold()
        if script.ending is Ending.BLACKHOLE:
            await _hold()
        response = web.StreamResponse(status=script.status, headers=dict(script.headers))
        response.headers[wire.request_id_header] = "req_" + uuid.uuid4().hex[:24]
        if script.content_length is None:
            response.enable_chunked_encoding()
        else:
            response.content_length = script.content_length
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        # Pauses add up on a fixed schedule, so a busy loop delays tokens but never
        # stretches the whole stream by its lag at every token.
        due = loop.time()
        for step in script.steps:
            if isinstance(step, float):
                due += step
                await asyncio.sleep(due - loop.time())
            else:
                await response.write(step)
        if script.ending is Ending.CUT:
            # close(), not abort(): the bytes already written still go out, then FIN
            # with the body unfinished (no terminal chunk / short of Content-Length).
            if request.transport is not None:
                request.transport.close()
            await _hold()
        if script.ending is Ending.STALL:
            await _hold()
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.StreamResponse:
        wire = _wire_by_headers(request.headers)
        if not self._authorized(wire, request.headers):
            refusal = error_script(wire, ErrorKind.UNAUTHORIZED, Outcome.UNAUTHORIZED)
            return _json_script_response(refusal)
        with self._lock:
            now = self._clock.monotonic()
            self._listings.append(now)
            down = any(_down_until(model) > now - self._epoch for model in self._seen_models)
        if down:
            return _json_script_response(error_script(wire, ErrorKind.UNAVAILABLE, Outcome.DOWN))
        names = [behaviour.value for behaviour in Behaviour]
        return web.json_response(wire.models(names, int(self._clock.time())))

    async def _json_body(
        self, request: web.Request, wire: Wire
    ) -> tuple[Any, web.StreamResponse | None]:
        """The request's JSON (None when it is none), or the refusal of a bad key."""
        if not self._authorized(wire, request.headers):
            refusal = error_script(wire, ErrorKind.UNAUTHORIZED, Outcome.UNAUTHORIZED)
            return None, _json_script_response(refusal)
        try:
            return json.loads(await request.read()), None
        except ValueError:
            return None, None

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's token counting: one token per four characters of the body's
        ``system``, ``messages`` and ``tools`` JSON, plus one (deterministic, so a test
        can tell an upstream's count from the gateway's estimate). A model named
        ``unavailable`` answers 503."""
        wire = _WIRES["anthropic"]
        body, refused = await self._json_body(request, wire)
        if refused is not None:
            return refused
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("model"), str)
            or not isinstance(body.get("messages"), list)
        ):
            detail = "fake upstream: count_tokens needs a JSON object with model and messages"
            script = error_script(wire, ErrorKind.BAD_REQUEST, Outcome.BAD_REQUEST, detail=detail)
            return _json_script_response(script)
        if body["model"] == "unavailable":
            script = error_script(wire, ErrorKind.UNAVAILABLE, Outcome.UNAVAILABLE)
            return _json_script_response(script)
        with self._lock:
            self.count_tokens_bodies.append(body)
        counted = [body.get(key) for key in ("system", "messages", "tools")]
        return web.json_response({"input_tokens": len(json.dumps(counted)) // 4 + 1})

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's embeddings: for each input, ``dimensions`` (default 8) numbers made
        from its text, the same every time. A model named ``unavailable`` answers 503."""
        wire = _WIRES["openai"]
        body, refused = await self._json_body(request, wire)
        if refused is not None:
            return refused
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(body, dict) or not isinstance(inputs, list) or not inputs:
            detail = "fake upstream: embeddings need a JSON object with model and input"
            script = error_script(wire, ErrorKind.BAD_REQUEST, Outcome.BAD_REQUEST, detail=detail)
            return _json_script_response(script)
        if body.get("model") == "unavailable":
            script = error_script(wire, ErrorKind.UNAVAILABLE, Outcome.UNAVAILABLE)
            return _json_script_response(script)
        with self._lock:
            self.embedding_bodies.append(body)
        size = body.get("dimensions") or 8
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [((len(str(text)) + k) % 7) / 7 for k in range(size)],
            }
            for i, text in enumerate(inputs)
        ]
        tokens = sum(len(str(text).split()) for text in inputs)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        wire = _wire_by_headers(request.headers)
        detail = f"fake upstream: no route for {request.method} {request.path}; {_ROUTES_HINT}"
        script = error_script(wire, ErrorKind.NOT_FOUND, Outcome.BAD_REQUEST, detail=detail)
        return _json_script_response(script)

    def _authorized(self, wire: Wire, headers: Mapping[str, str]) -> bool:
        if self._api_key is None:
            return True
        if wire.api == "anthropic":
            given = headers.get("x-api-key", "")
        else:
            scheme, _, given = headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                return False
        return hmac.compare_digest(given.encode(), self._api_key.encode())

    def _record(self, attempt: Attempt) -> None:
        with self._changed:
            self._attempts.append(attempt)
            count = len(self._attempts)
            self._changed.notify_all()
            due = [w for w in self._async_waiters if w[0] <= count]
        for _, loop, future in due:
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _hold() -> NoReturn:
    """Wait until the connection goes (the handler is then cancelled) or the server stops."""
    await asyncio.get_running_loop().create_future()
    raise AssertionError("a held connection's future is never resolved")


def _reset_connection(transport: asyncio.Transport | None) -> None:
    """Abort with SO_LINGER 0, so the kernel answers with RST instead of FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _redacted(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name.lower(): REDACTED if name.lower() in _SECRET_HEADERS else value
        for name, value in headers.items()
    }


def _wire_by_headers(headers: Mapping[str, str]) -> Wire:
    """Anthropic clients send ``anthropic-version``/``x-api-key``; anything else is OpenAI."""
    if "anthropic-version" in headers or "x-api-key" in headers:
        return _WIRES["anthropic"]
    return _WIRES["openai"]


def _down_until(model: str) -> float:
    """Seconds after start/reset that a ``down-for`` model keeps the server down (else 0)."""
    try:
        selection = parse_model(model)
    except BehaviourError:
        return 0.0
    if selection.behaviour is Behaviour.DOWN_FOR:
        return float(selection.arg or 0.0)
    return 0.0


def _json_script_response(script: Script) -> web.Response:
    body = b"".join(step for step in script.steps if isinstance(step, bytes))
    return web.Response(status=script.status, body=body, headers=dict(script.headers))


# -- command line ------------------------------------------------------------------------


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runestone.testing.upstream",
        description="Run Runestone's fault-injecting fake OpenAI/Anthropic upstream "
        "until Ctrl-C or SIGTERM. The request's model picks the behaviour.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8099, help="port (default 8099; 0 = any free)")
    parser.add_argument(
        "--token-interval", type=_seconds, default=0.0, help="seconds between tokens"
    )
    parser.add_argument(
        "--first-token-delay", type=_seconds, default=0.0, help="seconds before the first token"
    )
    parser.add_argument("--api-key", default=None, help="refuse requests with another key (401)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: serve until Ctrl-C or SIGTERM; print the URLs on start."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        upstream = FakeUpstream(
            host=args.host,
            port=args.port,
            token_interval=args.token_interval,
            first_token_delay=args.first_token_delay,
            api_key=args.api_key,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve_until_signalled(upstream))
    except OSError as exc:
        print(f"fake upstream: could not listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve_until_signalled(upstream: FakeUpstream) -> None:
    await upstream.start_async()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        print(f"fake upstream listening on {upstream.base_url}", flush=True)
        print(f"  OpenAI base URL:    {upstream.openai_base_url}", flush=True)
        print(f"  Anthropic base URL: {upstream.anthropic_base_url}", flush=True)
        print(f"  models: {', '.join(b.value for b in Behaviour)}; others act healthy", flush=True)
        await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await upstream.stop_async()
    print("fake upstream stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
