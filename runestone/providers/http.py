"""What every HTTP provider shares: one aiohttp session, the SSE read loop, timeouts, endings.

A subclass says how to encode a request (:meth:`HttpProvider.encode_request`),
how to decode one SSE event (a :class:`StreamDecoder`) and a whole answer
(:meth:`HttpProvider.decode_completion`). This module owns the rest, the same
for every wire format:

- one ``ClientSession`` per provider, created on the data-plane loop on first
  use, its connector sized from ``max_connections`` (no per-host cap below it);
- the per-attempt :class:`StreamWatchdog` (connect via aiohttp's
  ``sock_connect``; headers, first token, idle and total by the watchdog);
- stream endings: the terminal sentinel, or a stream that stops after its
  finish reason, is a ``Done``; a stream that stops before it is a
  ``StreamCutError`` (``MalformedResponseError`` if chunks had to be skipped);
  a malformed chunk is skipped with a log line when the rest completes.

The per-chunk path is: one ``readany``, one ``SSEParser.feed``, one JSON
decode per event, one event object per delta. Nothing else.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import structlog

from runestone import jsonio
from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import (
    ErrorClass,
    MalformedResponseError,
    ProviderError,
    StreamCutError,
    UpstreamTimeoutError,
)
from runestone.messages import (
    ChatRequest,
    Completion,
    Done,
    Message,
    NativeBody,
    Passthrough,
    Role,
    StreamEvent,
    TextDelta,
)
from runestone.messages import Usage as UsageEvent
from runestone.providers.base import HealthCheck, ProbeMethod, Provider
from runestone.providers.errors import (
    AttemptState,
    Phase,
    after_content,
    classify_response,
    redact,
    translate_exception,
    transport_errors,
)
from runestone.providers.settings import ProviderSettings
from runestone.providers.sse import SSEEvent, SSEParser
from runestone.providers.watchdog import StreamWatchdog, WatchPhase
from runestone.resilience.failure_policy import CircuitEffect, failure_policy

if TYPE_CHECKING:
    import aiohttp

_T = TypeVar("_T")

dumps = jsonio.dumps
loads = jsonio.loads

__all__ = ["HttpProvider", "StreamDecoder", "dumps", "loads"]

log = structlog.get_logger(__name__)


def _rare_log() -> Any:
    # A fresh proxy for the rare paths (skipped chunks, odd endings): it follows the current
    # structlog configuration even where loggers are cached on first use (and so can be
    # captured in tests).
    return structlog.get_logger(__name__)


_ERROR_BODY_LIMIT: Final = 64 * 1024
_DRAIN_SECONDS: Final = 2.0
# Transport failures after the finish reason do not spoil a finished answer.
_ENDS_AFTER_FINISH: Final = frozenset(
    {
        ErrorClass.STREAM_CUT,
        ErrorClass.CONNECTION_ERROR,
        ErrorClass.IDLE_TIMEOUT,
        ErrorClass.TOTAL_TIMEOUT,
    }
)


class StreamDecoder(abc.ABC):
    """Turns one attempt's SSE events into stream events. One instance per attempt.

    ``decode`` appends to ``out`` and never raises: an in-stream error event is
    stored in ``failure`` (raised by the read loop once the events before it are
    out), a chunk that cannot be read is counted in ``malformed`` and skipped.
    """

    __slots__ = (
        "_held",
        "_scratch",
        "blocks",
        "failure",
        "finish_reason",
        "finished",
        "has_content",
        "malformed",
        "native",
        "open_text",
        "request",
        "state",
        "usage",
    )

    def __init__(
        self, request: ChatRequest, state: AttemptState, native: NativeBody | None = None
    ) -> None:
        self.request = request
        self.state = state
        self.native = native
        """Set: the client speaks the upstream's format, and gets its frames as they are."""
        self.finished = False  # the terminal sentinel ([DONE], message_stop) arrived
        self.finish_reason: str | None = None
        self.usage: UsageEvent | None = None
        self.has_content = False
        self.malformed = 0
        self.failure: ProviderError | None = None
        self._held = b""
        self._scratch: list[StreamEvent] = []
        self.blocks = 0
        """Content blocks opened so far (a format with blocks counts them)."""
        self.open_text = False
        """The last block opened is a text block, not closed yet."""

    terminal_frame: ClassVar[bytes] = b""
    """The frame that ends a stream in this format (``data: [DONE]`` …), for a
    pass-through whose upstream finished without sending it."""

    @abc.abstractmethod
    def decode(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        """Decode one SSE event, appending what it carries to ``out``."""

    def native_content(self, event: SSEEvent, produced: bool) -> bool:
        """Whether ``event`` is content the client sees (the commit point), on a
        pass-through; ``produced``: :meth:`decode` made content events of it."""
        return produced

    def native_opaque(self, event: SSEEvent, produced: bool) -> bool:
        """Whether ``event`` is content other than text (beyond the tool calls :meth:`decode`
        made of it), on a pass-through: no continuation can extend the answer past it."""
        return False

    def passes(self, event: SSEEvent, produced: bool) -> bool:
        """Whether ``event``'s frame goes to the client on a pass-through."""
        return True

    def pass_on(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        """A pass-through's :meth:`decode`: the event is read for the books (usage, the
        finish reason, an error) and its frame passed on as it came, as
        :class:`Passthrough`. Frames before the first content are held and go with it,
        so nothing reaches the client before the commit point."""
        scratch = self._scratch
        self.decode(event, scratch)
        produced = bool(scratch)
        text = ""
        opaque = False
        for made in scratch:
            if type(made) is TextDelta:
                text += made.text
            else:
                opaque = True
        scratch.clear()
        if self.failure is not None or not self.passes(event, produced):
            return  # an error event is said by the gateway, in the client's format
        frame = event.frame()
        content = self.native_content(event, produced)
        if self.has_content or content:
            self.has_content = True
            if self._held:
                frame, self._held = self._held + frame, b""
            out.append(
                Passthrough(
                    frame,
                    text,
                    opaque or self.native_opaque(event, produced),
                    self.blocks,
                    self.open_text,
                )
            )
        else:
            self._held += frame
        if self.finished and self._held:
            out.append(Passthrough(self._held))  # an answer with no content at all
            self._held = b""

    def skip(self, event: SSEEvent, exc: Exception) -> None:
        """Count and log a chunk that cannot be read; the stream carries on without it."""
        self.malformed += 1
        _rare_log().warning(
            "malformed_chunk_skipped",
            provider=self.state.provider,
            model=self.state.model,
            sse_event=event.event,
            error=redact(f"{type(exc).__name__}: {exc}", self.state.secrets)[:200],
            chunk=redact(event.raw[:120].decode("utf-8", "replace"), self.state.secrets),
        )


class HttpProvider(Provider):
    """Base of the providers that speak HTTP + SSE through aiohttp."""

    default_base_url: ClassVar[str | None] = None
    chat_path: ClassVar[str] = ""
    models_path: ClassVar[str] = "/models"
    has_health_probe = True

    def __init__(self, settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(settings, clock=clock)
        base = settings.base_url or self.default_base_url
        if not base:
            raise ValueError(f"{type(self).__name__} needs a base_url")
        self.base_url = base.rstrip("/")
        self._chat_url = self.base_url + self.chat_path
        self._secrets = settings.secrets()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drains: set[asyncio.Task[None]] = set()
        self._closed = False

    # ---- what a wire format supplies

    def request_headers(self) -> dict[str, str]:
        """Headers sent with every request: content type, auth, then configured headers."""
        headers = {"Content-Type": "application/json"}
        headers.update(self.auth_headers())
        headers.update(self.settings.headers)
        return headers

    def auth_headers(self) -> dict[str, str]:
        """The credential headers (``Authorization: Bearer …`` by default)."""
        key = self.settings.api_key
        return {"Authorization": f"Bearer {key.reveal()}"} if key else {}

    def native_body(self, request: ChatRequest) -> NativeBody | None:
        """The client's own body, when it is in one of this provider's wire formats: then
        it is passed through (see :class:`NativeBody`)."""
        native = request.native
        return native if native is not None and native.wire in self.wires else None

    def endpoint(self, native: NativeBody | None) -> str:
        """The URL a request is posted to: the chat endpoint (``native``: the client's body,
        when passed through; a format with an endpoint of its own says so here)."""
        return self._chat_url

    def native_headers(self, native: NativeBody | None) -> Mapping[str, str] | None:
        """Headers a pass-through adds to the session's (the client's beta flags …)."""
        return None

    @abc.abstractmethod
    def encode_request(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request`` in this provider's wire format."""

    def encode_native(self, native: NativeBody, model: str, *, stream: bool) -> bytes:
        """The client's own body for ``model`` (a pass-through): every field as it was
        written, but the model and ``stream``."""
        return native.encode({"model": model, "stream": stream})

    def encode_payload(self, request: ChatRequest, *, stream: bool) -> bytes:
        """The bytes sent for ``request``: the client's own body when it speaks this
        provider's format (:meth:`encode_native`), else :meth:`encode_request`'s."""
        native = self.native_body(request)
        if native is not None:
            return self.encode_native(native, request.model, stream=stream)
        return dumps(self.encode_request(request, stream=stream))

    @abc.abstractmethod
    def new_decoder(self, request: ChatRequest, state: AttemptState) -> StreamDecoder:
        """A fresh stream decoder for one attempt."""

    @abc.abstractmethod
    def decode_completion(self, data: Any, request: ChatRequest, state: AttemptState) -> Completion:
        """A whole (non-streaming) answer; may raise KeyError/TypeError on a bad shape."""

    # ---- session

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The provider's session, once created (on the data-plane loop, at first use)."""
        return self._session

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        loop = asyncio.get_running_loop()
        if session is None:
            if self._closed:
                raise RuntimeError(f"provider {self.name!r} is closed")
            import aiohttp  # deferred to the first call (see transport_errors)

            connector = aiohttp.TCPConnector(
                limit=self.settings.max_connections,
                limit_per_host=0,  # the pool is per provider; no hidden per-host cap below it
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                headers=self.request_headers(),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.settings.timeouts.connect
                ),
                trust_env=False,
            )
            self._session = session
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                f"provider {self.name!r} belongs to another event loop (the data plane's)"
            )
        return session

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._drains):
            task.cancel()
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ---- streaming

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        session = self._get_session()
        state = AttemptState(self.name, request.model, self._secrets)
        payload = self.encode_payload(request, stream=True)
        native = self.native_body(request)
        watchdog = StreamWatchdog(self.settings.timeouts)
        decoder = self.new_decoder(request, state)
        response: aiohttp.ClientResponse | None = None
        failure: ProviderError | None = None
        cause: BaseException | None = None
        try:
            try:
                response = await session.post(
                    self.endpoint(native), data=payload, headers=self.native_headers(native)
                )
                state.phase = Phase.BODY
                if not 200 <= response.status < 300:
                    raise await self._error_from(response, state)
                if response.content_type != "text/event-stream":
                    if native is not None:
                        # Its frames cannot be passed on: there are none.
                        raise state.error(
                            MalformedResponseError,
                            f"a stream was asked for, the answer is {response.content_type!r}",
                        )
                    # Some compatible servers answer a stream request with one JSON body.
                    whole = await self._read_completion(response, request, state, watchdog)
                    watchdog.cancel()
                    response.release()
                    response = None
                    for event in whole.events():
                        yield event
                    return
                watchdog.enter(WatchPhase.FIRST_TOKEN)
                parser = SSEParser()
                feed = parser.feed
                decode = decoder.decode if native is None else decoder.pass_on
                read = response.content.readany
                clock = asyncio.get_running_loop().time
                out: list[StreamEvent] = []
                streaming = False
                while True:
                    watchdog.since = clock()
                    watchdog.reading = True
                    chunk = await read()
                    watchdog.reading = False
                    if chunk:
                        for sse in feed(chunk):
                            decode(sse, out)
                    else:
                        for sse in parser.finish():
                            decode(sse, out)
                    if out:
                        if not streaming and decoder.has_content:
                            streaming = True
                            state.content_delivered = True
                            watchdog.enter(WatchPhase.STREAMING)
                        for event in out:
                            yield event
                        out.clear()
                    if decoder.failure is not None:
                        decoder.failure.content_delivered = state.content_delivered
                        raise after_content(decoder.failure)
                    if decoder.finished or not chunk:
                        break
                    if watchdog.phase is WatchPhase.STREAMING:
                        expired = watchdog.check()
                        if expired is not None:
                            raise self._timeout(state, expired)
            except asyncio.CancelledError as exc:
                expired = watchdog.claim()
                if expired is None:
                    raise
                failure, cause = self._timeout(state, expired), exc
            except ProviderError:
                raise
            except transport_errors() as exc:
                failure, cause = translate_exception(exc, state), exc
            watchdog.cancel()
            if failure is not None:
                if decoder.finish_reason is None or failure.error_class not in _ENDS_AFTER_FINISH:
                    raise failure from cause
                _rare_log().warning(
                    "stream_finalized_after_finish_reason",
                    provider=self.name,
                    model=request.model,
                    ending=failure.error_class.value,
                )
            elif not decoder.finished:
                if decoder.finish_reason is None:
                    raise self._cut(state, decoder)
                _rare_log().info(
                    "stream_finalized_without_sentinel", provider=self.name, model=request.model
                )
                if native is not None:
                    yield Passthrough(decoder.terminal_frame)  # the client's stream ends whole
            if response is not None and failure is None:
                self._finish_response(response)
                response = None
            usage = decoder.usage
            if usage is not None:
                yield usage
            yield Done(decoder.finish_reason or "stop", self.name, request.model, usage)
        finally:
            watchdog.cancel()
            if response is not None:
                response.close()

    def _cut(self, state: AttemptState, decoder: StreamDecoder) -> ProviderError:
        if decoder.malformed:
            return state.error(
                MalformedResponseError,
                f"the stream ended without a finish reason after {decoder.malformed} "
                "unreadable chunk(s)",
            )
        return state.error(StreamCutError, "the stream ended before its finish reason")

    def _timeout(self, state: AttemptState, expired: ErrorClass) -> ProviderError:
        timeouts = self.settings.timeouts
        limits = {
            ErrorClass.HEADERS_TIMEOUT: ("no response headers", timeouts.headers_limit),
            ErrorClass.FIRST_TOKEN_TIMEOUT: ("no first token", timeouts.first_token),
            ErrorClass.IDLE_TIMEOUT: ("the stream stalled: nothing", timeouts.idle),
            ErrorClass.TOTAL_TIMEOUT: ("the attempt did not finish", timeouts.total),
        }
        what, seconds = limits.get(expired, ("timed out", timeouts.total))
        return state.error(
            UpstreamTimeoutError, f"{what} within {seconds:g} s", error_class=expired
        )

    async def _error_from(
        self, response: aiohttp.ClientResponse, state: AttemptState
    ) -> ProviderError:
        body = b""
        try:
            body = await _read_capped(response, _ERROR_BODY_LIMIT)
        except transport_errors() as exc:
            log.debug("error_body_unreadable", provider=self.name, error=type(exc).__name__)
        return classify_response(
            response.status,
            body,
            response.headers,
            provider=self.name,
            model=state.model,
            secrets=self._secrets,
            now=self.clock.time(),
        )

    async def _read_completion(
        self,
        response: aiohttp.ClientResponse,
        request: ChatRequest,
        state: AttemptState,
        watchdog: StreamWatchdog,
        *,
        native: bool = False,
    ) -> Completion:
        """The whole answer in ``response``; ``native``: kept as it came too, for a
        pass-through (:attr:`Completion.native`)."""
        body = await _read_body(response, watchdog)
        try:
            data = loads(body)
        except ValueError as exc:
            raise state.error(MalformedResponseError, f"the answer is not JSON ({exc})") from exc
        if isinstance(data, Mapping) and "error" in data and data["error"]:
            raise classify_response(
                response.status,
                body,
                response.headers,
                provider=self.name,
                model=state.model,
                secrets=self._secrets,
                now=self.clock.time(),
            )
        try:
            completion = self.decode_completion(data, request, state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise state.error(
                MalformedResponseError, f"the answer has an unexpected shape ({exc!r})"
            ) from exc
        if native:
            return dataclasses.replace(completion, native=body)
        return completion

    def _finish_response(self, response: aiohttp.ClientResponse) -> None:
        """Give the connection back to the pool once the body's end has been read."""
        if response.content.is_eof():
            response.release()
            return
        # The terminal sentinel came before the end of the HTTP body; read that end in the
        # background so the connection can be reused, without delaying the Done event.
        task = asyncio.get_running_loop().create_task(_drain(response))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    # ---- non-streaming

    async def complete(self, request: ChatRequest) -> Completion:
        state = AttemptState(self.name, request.model, self._secrets)
        payload = self.encode_payload(request, stream=False)
        native = self.native_body(request)

        async def read(response: aiohttp.ClientResponse, watchdog: StreamWatchdog) -> Completion:
            return await self._read_completion(
                response, request, state, watchdog, native=native is not None
            )

        return await self._post_whole(
            self.endpoint(native), payload, state, read, headers=self.native_headers(native)
        )

    async def post_json(self, path: str, payload: Mapping[str, Any], model: str) -> Any:
        """POST ``payload`` to ``base_url + path`` and return the decoded JSON answer, within
        the whole-answer timeouts; any failure raises a classified ``ProviderError``."""
        state = AttemptState(self.name, model, self._secrets)

        async def read(response: aiohttp.ClientResponse, watchdog: StreamWatchdog) -> Any:
            body = await _read_body(response, watchdog)
            try:
                return loads(body)
            except ValueError as exc:
                problem = f"the answer is not JSON ({exc})"
                raise state.error(MalformedResponseError, problem) from exc

        return await self._post_whole(self.base_url + path, dumps(payload), state, read)

    async def _post_whole(
        self,
        url: str,
        payload: bytes,
        state: AttemptState,
        read: Callable[[aiohttp.ClientResponse, StreamWatchdog], Awaitable[_T]],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> _T:
        """One whole (unstreamed) POST: an error status classified, the body read by
        ``read`` within the whole-answer timeouts, transport failures translated."""
        session = self._get_session()
        watchdog = StreamWatchdog(self.settings.timeouts, phase=WatchPhase.WHOLE)
        response: aiohttp.ClientResponse | None = None
        try:
            try:
                response = await session.post(url, data=payload, headers=headers)
                state.phase = Phase.BODY
                if not 200 <= response.status < 300:
                    raise await self._error_from(response, state)
                return await read(response, watchdog)
            except asyncio.CancelledError as exc:
                expired = watchdog.claim()
                if expired is None:
                    raise
                raise self._timeout(state, expired) from exc
            except ProviderError:
                raise
            except transport_errors() as exc:
                raise translate_exception(exc, state) from exc
        finally:
            watchdog.cancel()
            if response is not None:
                response.release()

    # ---- health

    async def check_health(
        self, method: ProbeMethod | None = None, model: str | None = None
    ) -> HealthCheck:
        """Ask the upstream once, within the headers time limit.

        ``models``: GET the models endpoint; healthy on 2xx, and on 404/405 (reachable,
        no such route). ``request``: a one-token chat request; healthy when it is
        answered, even by a refusal that is the request's fault (a 400), since the
        server is up.
        """
        session = self._get_session()
        method = method or self.default_probe_method
        state = AttemptState(self.name, "", self._secrets)
        loop = asyncio.get_running_loop()
        start = loop.time()
        limit = min(self.settings.timeouts.headers_limit, self.settings.timeouts.total)
        try:
            async with asyncio.timeout(limit):
                if method is ProbeMethod.REQUEST:
                    error = await self._probe_request(session, state, model)
                else:
                    error = await self._probe_models(session, state)
                if error is None:
                    return HealthCheck(healthy=True, latency=loop.time() - start)
        except transport_errors() as exc:
            import aiohttp  # loaded by now (see transport_errors)

            if isinstance(exc, aiohttp.ClientError):
                error = translate_exception(exc, state)
            else:  # our asyncio.timeout
                error = self._timeout(state, ErrorClass.HEADERS_TIMEOUT)
        return HealthCheck(
            healthy=False,
            latency=loop.time() - start,
            error_class=error.error_class,
            message=str(error),
        )

    async def _probe_models(
        self, session: aiohttp.ClientSession, state: AttemptState
    ) -> ProviderError | None:
        async with session.get(self.base_url + self.models_path) as response:
            state.phase = Phase.BODY
            if 200 <= response.status < 300 or response.status in (404, 405):
                return None
            return await self._error_from(response, state)

    async def _probe_request(
        self, session: aiohttp.ClientSession, state: AttemptState, model: str | None
    ) -> ProviderError | None:
        name = model or min(self.settings.models)
        state.model = name
        probe = ChatRequest(name, (Message(Role.USER, "ping"),), max_tokens=1)
        payload = dumps(self.encode_request(probe, stream=False))
        async with session.post(self._chat_url, data=payload) as response:
            state.phase = Phase.BODY
            if 200 <= response.status < 300:
                return None
            error = await self._error_from(response, state)
            # The server answered; a refusal that is the request's fault says it is up.
            reachable = failure_policy(error.error_class).circuit is CircuitEffect.NONE
            return None if reachable else error


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.readany()
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit]


async def _drain(response: aiohttp.ClientResponse) -> None:
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while await response.content.readany():
                pass
    except transport_errors():
        response.close()  # not reusable; nothing else to do: the answer was already complete
        return
    except asyncio.CancelledError:
        response.close()
        raise
    response.release()


async def _read_body(response: aiohttp.ClientResponse, watchdog: StreamWatchdog) -> bytes:
    """A whole body, under the idle limit between its reads: the headers are in, so a body
    that stops coming is a stall, however long the answer took to start."""
    clock = asyncio.get_running_loop().time
    watchdog.since = clock()
    watchdog.reading = True
    watchdog.enter(WatchPhase.STREAMING)
    chunks = []
    async for chunk in response.content.iter_any():
        watchdog.since = clock()
        chunks.append(chunk)
    return b"".join(chunks)
