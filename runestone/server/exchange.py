"""One chat exchange over HTTP: from admission to the last byte, cancelled if the client leaves.

The exchange is the ASGI response of a validated chat request. It runs the
request through the system with ``await system.astream(...)`` — the loop never
waits on an actor — and answers in its dialect:

- **Before the commit point** (no content sent yet) nothing is on the wire, so a
  failure is an ordinary HTTP error: the right status, ``Retry-After`` when
  waiting helps, the error body of the dialect. Streamed answers send their
  headers only with the first content, so an SDK sees a typed exception, not a
  200 followed by an error.
- **After it**, a failure is an in-band error frame and the stream ends without
  its terminal frame (``[DONE]`` / ``message_stop``): never a short answer that
  looks whole.
- A task watches ``receive()`` for ``http.disconnect``; when the client goes, the
  event sink is closed, which cancels the upstream request at once.
- If the server stops the exchange (the shutdown grace ran out), a streamed
  answer gets an error frame saying so before the connection closes.
- Once the answer is complete, its usage (prompt + completion tokens), if the
  upstream told it, is handed to ``book`` (the key's tokens per minute), before its
  last bytes are sent: the client's next request already counts it.

Headers name the provider and model that answered and the attempts made
(``x-runestone-provider``, ``x-runestone-model``, ``x-runestone-attempts``); for a
stream they describe the attempt whose content passed the commit point.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

import structlog
from starlette.types import Receive, Scope, Send

from runestone import jsonio
from runestone.messages import (
    CompletionBuilder,
    Done,
    Event,
    Passthrough,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from runestone.server.dialect import ChatCall, Dialect, StreamEncoder
from runestone.server.errors import ApiError, from_exception, from_stream_error, shutting_down
from runestone.server.limits import Releasable

if TYPE_CHECKING:
    from runestone.system import System

__all__ = [
    "HEADER_ATTEMPTS",
    "HEADER_MODEL",
    "HEADER_PROVIDER",
    "Exchange",
    "json_bytes_response",
    "json_response",
]

log = structlog.get_logger(__name__)

HEADER_PROVIDER: Final = "x-runestone-provider"
HEADER_MODEL: Final = "x-runestone-model"
HEADER_ATTEMPTS: Final = "x-runestone-attempts"

_ENCODED: Final = frozenset({TextDelta, ToolCallDelta, ReasoningDelta})
"""The content events the dialect's encoder writes (the rest are passed or terminal)."""

_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _header(name: str, value: str) -> tuple[bytes, bytes]:
    return name.encode(), value.encode("latin-1", "replace")


async def json_response(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a whole JSON response."""
    await json_bytes_response(send, status, jsonio.dumps(body), headers)


async def json_bytes_response(
    send: Send,
    status: int,
    payload: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a whole JSON response whose body is ``payload``, encoded already."""
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class Exchange:
    """The ASGI response of one validated chat request (see the module docstring)."""

    def __init__(
        self,
        system: System,
        call: ChatCall,
        dialect: Dialect,
        *,
        lease: Releasable,
        request_id: str,
        on_end: Callable[[], None] = lambda: None,
        draining: Callable[[], bool] = lambda: False,
        book: Callable[[int], None] | None = None,
    ) -> None:
        self._system = system
        self._call = call
        self._dialect = dialect
        self._lease = lease
        self._request_id = request_id
        self._on_end = on_end
        self._draining = draining
        self._book = book
        self._events: AsyncIterator[Event] | None = None
        self._gone = False
        self._finished = False
        self._send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send = send
        watcher = asyncio.get_running_loop().create_task(self._watch(receive))
        try:
            await self._run()
        finally:
            watcher.cancel()
            self._lease.release()
            self._on_end()
            events = self._events
            if events is not None and not self._finished:
                await _close(events)

    async def _watch(self, receive: Receive) -> None:
        """Wait for the client to go away; then cancel the upstream request."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        self._gone = True
        events = self._events
        if events is not None and not self._finished:
            log.info("client_disconnected", request_id=self._request_id)
            await _close(events)

    async def _error(self, error: ApiError) -> None:
        if self._gone:
            return
        headers = [_header(name, value) for name, value in error.headers().items()]
        assert self._send is not None
        await json_response(self._send, error.status, self._dialect.error_body(error), headers)

    async def _run(self) -> None:
        request = self._call.request
        try:
            events = await self._system.astream(request, request_id=self._request_id)
        except Exception as exc:  # noqa: BLE001 - every refusal becomes an HTTP error
            await self._error(self._translate(exc))
            return
        self._events = events
        if self._gone:
            await _close(events)
            return
        try:
            if request.stream:
                await self._stream(events)
            else:
                await self._whole(events)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the sink ended with an error: say so
            log.warning("exchange_failed", request_id=self._request_id, error=repr(exc))
            await self._error(self._translate(exc))

    def _translate(self, exc: BaseException) -> ApiError:
        if self._draining() and not isinstance(exc, ApiError):
            return shutting_down()
        return from_exception(exc, model=self._call.request.model)

    # -- a whole answer -----------------------------------------------------------------------

    async def _whole(self, events: AsyncIterator[Event]) -> None:
        builder = CompletionBuilder()
        terminal: Done | StreamError | None = None
        async for event in events:
            if type(event) is StreamError:
                terminal = event
                break
            builder.add(event)  # type: ignore[arg-type]
            if type(event) is Done:
                terminal = event
                break
        self._finished = True
        if terminal is None:
            if not self._gone:
                await self._error(self._ended_early())
            return
        if isinstance(terminal, StreamError):
            await self._error(from_stream_error(terminal, model=self._call.request.model))
            return
        completion = builder.build()
        self._spent(completion.usage)
        headers = [
            _header(HEADER_PROVIDER, terminal.provider),
            _header(HEADER_MODEL, terminal.model),
            _header(HEADER_ATTEMPTS, str(max(1, len(terminal.attempts)))),
        ]
        assert self._send is not None
        if completion.native is not None:
            # Passed through: the upstream's answer, as it came.
            await json_bytes_response(self._send, 200, completion.native, headers)
            return
        await json_response(self._send, 200, self._dialect.whole(completion, self._call), headers)

    def _spent(self, usage: Usage | None) -> None:
        if usage is not None and self._book is not None:
            self._book(usage.total_tokens)

    def _ended_early(self) -> ApiError:
        if self._draining():
            return shutting_down()
        return ApiError(
            500, "the request ended without an answer or an error", code="internal_error"
        )

    # -- a streamed answer --------------------------------------------------------------------

    async def _stream(self, events: AsyncIterator[Event]) -> None:
        try:
            first = await anext(events)
        except StopAsyncIteration:
            self._finished = True
            if not self._gone:
                await self._error(self._ended_early())
            return
        if type(first) is StreamError:
            self._finished = True
            await self._error(from_stream_error(first, model=self._call.request.model))
            return
        encoder = self._dialect.stream_encoder(self._call)
        await self._start_stream(first, encoder)
        try:
            await self._pump(first, events, encoder)
        except asyncio.CancelledError:
            # The server is stopping past its grace period: say so before the connection goes.
            if not self._finished and not self._gone:
                error = shutting_down(
                    "the server shut down before the answer was complete", retry_after=None
                )
                with contextlib.suppress(Exception):
                    await self._body(encoder.error(error), more=False)
            raise

    async def _start_stream(self, first: Event, encoder: StreamEncoder) -> None:
        headers = list(_SSE_HEADERS)
        if (
            isinstance(first, TextDelta | ToolCallDelta | ReasoningDelta | Passthrough)
            and first.origin is not None
        ):
            origin = first.origin
            encoder.set_model(origin.model)
            headers += [
                _header(HEADER_PROVIDER, origin.provider),
                _header(HEADER_MODEL, origin.model),
                _header(HEADER_ATTEMPTS, str(origin.attempt)),
            ]
        elif isinstance(first, Done):
            encoder.set_model(first.model)
            headers += [
                _header(HEADER_PROVIDER, first.provider),
                _header(HEADER_MODEL, first.model),
                _header(HEADER_ATTEMPTS, str(max(1, len(first.attempts)))),
            ]
        assert self._send is not None
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    async def _body(self, data: bytes, *, more: bool = True) -> None:
        assert self._send is not None
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def _pump(
        self, first: Event, events: AsyncIterator[Event], encoder: StreamEncoder
    ) -> None:
        usage: Usage | None = None
        # Passed-through frames are the stream as the upstream wrote it, its opening and
        # (when it completes) its ending too; a continuation's content after them is
        # encoded here, going on from where they left off.
        passed = first if type(first) is Passthrough else None
        pending = b"" if passed is not None else encoder.opening()
        event: Event | None = first
        while True:
            if event is None:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
            kind = type(event)
            if passed is not None and kind in _ENCODED:
                encoder.follow(passed)  # a continuation's content, after passed frames
                passed = None
            if kind is Passthrough:
                passed = event  # type: ignore[assignment]
                frame = event.data  # type: ignore[union-attr]
            elif kind is TextDelta:
                frame = encoder.text(event.text)  # type: ignore[union-attr]
            elif kind is ToolCallDelta:
                frame = encoder.tool_call(event)  # type: ignore[arg-type]
            elif kind is ReasoningDelta:
                frame = encoder.reasoning(event)  # type: ignore[arg-type]
            elif kind is Usage:
                usage = event  # type: ignore[assignment]
                event = None
                continue
            elif kind is Done:
                done: Done = event  # type: ignore[assignment]
                self._finished = True
                self._spent(done.usage or usage)
                if passed is not None:
                    await self._body(pending, more=False)  # its frames ended the stream
                    return
                if done.model:
                    encoder.set_model(done.model)
                closing = encoder.closing(done.finish_reason, done.usage or usage)
                await self._body(pending + closing, more=False)
                return
            else:
                failure: StreamError = event  # type: ignore[assignment]
                self._finished = True
                error = from_stream_error(failure, model=self._call.request.model)
                if passed is not None:
                    encoder.follow(passed)  # its error goes on from the upstream's frames
                log.info(
                    "stream_failed_after_commit",
                    request_id=self._request_id,
                    error_class=failure.error_class.value,
                )
                await self._body(pending + encoder.error(error), more=False)
                return
            if pending:
                frame = pending + frame
                pending = b""
            await self._body(frame)
            event = None
        # The events ended with no terminal event: the client went away (nothing to
        # send) or the system is stopping under us.
        self._finished = True
        if not self._gone:
            await self._body(pending + encoder.error(self._ended_early()), more=False)


async def _close(events: AsyncIterator[Event]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
