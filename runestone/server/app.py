"""The starlette application: routes, checks in their order, and the system's life.

::

    app = create_app(config)              # builds the System at startup, on the server's loop
    uvicorn.run(app)                      # or runestone.server.serve(config)

Routes::

    POST /v1/chat/completions    OpenAI chat completions, streamed or whole
    POST /v1/completions         OpenAI legacy completions, streamed or whole: passed through
                                 as written to a model with the ``completions`` capability
    POST /v1/responses           OpenAI Responses, stateless, streamed or whole (answered
                                 through chat completions: runestone.wire.openai_responses)
    *    /v1/responses/{id}...   404 saying so: no response is ever stored
    POST /v1/messages            Anthropic messages, streamed or whole
    POST /v1/embeddings          OpenAI embeddings, routed to embedding models only
    POST /v1/messages/count_tokens  a prompt's tokens: an Anthropic upstream's count, or
                                 the gateway's estimate (``x-runestone-token-count``)
    GET  /v1/models              every alias, provider/model and model name
    GET  /v1/models/{id}
    GET  /health                 the supervision tree and every provider: 200 when it can serve
    GET  /health/live            200 while the process runs
    GET  /health/ready           200 when requests would be taken now
    GET  /metrics                Prometheus text format
    POST /admin/reload           read the config file again and apply it (admin key only)

Who may reach which route (client keys, admin keys, ``server.admin_port``) is the
table in :mod:`runestone.server.auth`; a request that may not is refused before
routing, unknown routes included, so a caller without a key learns nothing.

A chat request is checked in this order, so the cheap refusals come first and a
bad key is refused before its body is read: key (401) → the key's requests and
tokens per minute (429) → body size (413) → JSON and fields (400) → model (404) → the key's
requests in flight (429) → the system (whatever the upstreams did). Every
response carries ``x-request-id`` (the client's own when it sent one); every
error has the dialect's JSON shape, unknown routes included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import structlog
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

import runestone
from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.config import ApiKey, Config
from runestone.exceptions import (
    ConfigError,
    EscalationError,
    RunestoneError,
)
from runestone.io import DataPlane
from runestone.server.anthropic_schema import AnthropicDialect
from runestone.server.auth import Access, access_for, authenticate, authorize, served_on
from runestone.server.body import ClientGoneError, decode_body, read_body
from runestone.server.catalog import ModelCatalog
from runestone.server.completions_schema import CompletionsDialect
from runestone.server.dialect import Dialect
from runestone.server.errors import ApiError, from_exception, model_not_found, shutting_down
from runestone.server.exchange import Exchange
from runestone.server.limits import KeyLimits, Releasable
from runestone.server.openai_schema import OpenAIDialect, embeddings_body
from runestone.server.reload import ConfigReloader, ReloadFailedError
from runestone.server.responses_schema import ResponsesDialect
from runestone.system import System
from runestone.wire.anthropic_messages import decode_count_tokens_body
from runestone.wire.openai_embeddings import EmbeddingsBody, decode_embeddings_body

if TYPE_CHECKING:
    from runestone.cluster import SharedLimits

__all__ = ["REQUEST_ID_HEADER", "Gateway", "GatewayApp", "create_app"]

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER: Final = "x-request-id"
_MAX_REQUEST_ID = 128
_Body = TypeVar("_Body")
_OPENAI: Final = OpenAIDialect()
_ANTHROPIC: Final = AnthropicDialect()
_RESPONSES: Final = ResponsesDialect()
_COMPLETIONS: Final = CompletionsDialect()
_METRICS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_ROUTE_LABELS: Final = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/messages",
        "/v1/models",
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
    }
)


def _request_id(headers: Mapping[str, str]) -> str:
    given = headers.get(REQUEST_ID_HEADER)
    if given and len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
        return given
    return "req_" + uuid.uuid4().hex[:24]


_CHAT_ROUTES: Final[dict[str, Dialect]] = {
    "/v1/chat/completions": _OPENAI,
    "/v1/completions": _COMPLETIONS,
    "/v1/responses": _RESPONSES,
    "/v1/messages": _ANTHROPIC,
}


def _dialect_for(path: str) -> Dialect:
    return _ANTHROPIC if path.startswith("/v1/messages") else _OPENAI


def _error_response(error: ApiError, dialect: Dialect) -> Response:
    return JSONResponse(
        dialect.error_body(error), status_code=error.status, headers=error.headers()
    )


class Gateway:
    """The state behind the routes: the system, the key limits, the model catalog.

    ``system`` may be given (already running, not stopped by the gateway);
    otherwise one is started from ``config`` at startup, on the server's loop as
    its data plane, and stopped at shutdown. ``on_started`` is called once the
    system is up. With ``watch`` (seconds), the config file is reloaded whenever it
    changes, checked that often (:mod:`runestone.server.reload`).
    """

    def __init__(
        self,
        config: Config,
        *,
        system: System | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_started: Callable[[Gateway], None] | None = None,
        watch: float | None = None,
    ) -> None:
        self.config = config
        self._system = system
        self._owns_system = system is None
        self._on_started = on_started
        self.limits = KeyLimits(config.auth.keys, clock=clock)
        self.shared_limits: SharedLimits | None = None
        """The key limits across replicas, when the system is in a cluster (else the
        single-process path stays on :attr:`limits` alone: no Redis, no extra await)."""
        self.catalog = ModelCatalog(config, created=int(time.time()))
        self.reloader = ConfigReloader(self, wall_clock=clock.time)
        self._watch = watch
        self._watcher: asyncio.Task[None] | None = None
        self.draining = False
        self.in_flight = 0
        self._ids: dict[str, int] = {}
        self._stopped = False
        self._responses: Counter | None = None
        self.down: EscalationError | None = None
        self.on_down: Callable[[EscalationError], None] | None = None
        """Called on the server's loop when the system goes down for good (its root
        supervisor gave up): the runner exits non-zero so a process manager restarts it."""

    @property
    def system(self) -> System:
        system = self._system
        if system is None:
            raise ApiError(503, "the server is starting", code="starting", retry_after=1)
        return system

    # -- life ---------------------------------------------------------------------------------

    async def startup(self) -> None:
        if self._system is None:
            loop = asyncio.get_running_loop()
            # Off the loop: the supervision tree starts its loop actors on this very loop,
            # which must keep running meanwhile.
            self._system = await asyncio.to_thread(
                runestone.start, self.config, data_plane=DataPlane.attached(loop)
            )
        loop = asyncio.get_running_loop()

        def went_down(error: EscalationError) -> None:  # on a supervisor's thread
            with contextlib.suppress(RuntimeError):  # the loop is closing anyway
                loop.call_soon_threadsafe(self._went_down, error)

        self._system.on_escalation(went_down)
        await self._share_limits(self._system)
        self._responses = Counter(
            "runestone_http_responses",
            "HTTP responses by route and status code.",
            ["route", "status"],
            registry=self._system.metrics.registry,
        )
        if self._watch is not None:
            self._watcher = loop.create_task(self.reloader.watch(self._watch))
        if self._on_started is not None:
            self._on_started(self)

    async def _share_limits(self, system: System) -> None:
        """In a cluster, count the keys' limits across replicas (leases renewed each beat).

        The server answers once the limits' connections are open and their scripts loaded
        (each call within the deadline): a first burst of requests on cold connections
        would miss the deadline and count locally."""
        cluster = system.cluster
        if cluster is None:
            return
        from runestone.cluster import SharedLimits  # only a cluster imports Redis

        shared = SharedLimits(self.limits, cluster)
        cluster.on_beat(shared.renew)
        cluster.on_rejoin(shared.prepare)
        self.shared_limits = shared
        if cluster.link.up:
            with contextlib.suppress(RunestoneError):  # Redis gone: prepared on rejoin
                await shared.prepare()

    def _went_down(self, error: EscalationError) -> None:
        self.down = error
        self.draining = True
        if self.on_down is not None:
            self.on_down(error)

    async def shutdown(self) -> None:
        """Stop the system (when the gateway started it). Idempotent."""
        self.draining = True
        if self._stopped:
            return
        self._stopped = True
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self.reloader.aclose()
        if self.shared_limits is not None:
            await self.shared_limits.aclose()
        system = self._system
        if system is not None and self._owns_system:
            await system.astop()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    def apply_config(self, config: Config) -> None:
        """Serve ``config`` from now on (the system has already been reloaded with it): keys
        and their limits, the model catalog. Counts held under a key carry over."""
        self.config = config
        if self.shared_limits is not None:
            self.shared_limits.update(config.auth.keys)  # the local counts with it
        else:
            self.limits.update(config.auth.keys)
        self.catalog = ModelCatalog(config, created=self.catalog.created)

    async def admin_reload(self, _request: Request) -> Response:
        if not self.config.auth.admin_keys:
            error = ApiError(
                403,
                "POST /admin/reload needs an admin key, and auth.admin_keys is empty: configure "
                "one, or reload with SIGHUP or `runestone serve --watch`",
                code="admin_keys_required",
            )
            return _error_response(error, _OPENAI)
        try:
            outcome = await self.reloader.reload("POST /admin/reload")
        except ConfigError as exc:
            error = ApiError(400, self.reloader.refusal(exc), code="invalid_config")
            return _error_response(error, _OPENAI)
        except ReloadFailedError as exc:
            error = ApiError(409, self.reloader.refusal(exc), code="reload_failed")
            return _error_response(error, _OPENAI)
        return JSONResponse({"status": "reloaded", **outcome.to_dict()})

    # -- chat ---------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response | Exchange:
        return await self.chat(request, _OPENAI)

    async def completions(self, request: Request) -> Response | Exchange:
        return await self.chat(request, _COMPLETIONS)

    async def responses(self, request: Request) -> Response | Exchange:
        return await self.chat(request, _RESPONSES)

    async def messages(self, request: Request) -> Response | Exchange:
        return await self.chat(request, _ANTHROPIC)

    async def embeddings(self, request: Request) -> Response:
        """``POST /v1/embeddings``: routed like chat, to embedding models only."""

        async def answer(body: EmbeddingsBody) -> Response:
            embedded = await self.system.aembed(body.to_request())
            encoding = body.encoding_format
            content = embeddings_body(embedded, embedded.model, encoding_format=encoding)
            return JSONResponse(content, headers={"x-runestone-provider": embedded.provider})

        return await self._whole(
            request, _OPENAI, decode_embeddings_body, lambda body: body.model, answer
        )

    async def count_tokens(self, request: Request) -> Response:
        """``POST /v1/messages/count_tokens``: counted by an upstream that counts them,
        else estimated; ``x-runestone-token-count`` says which (``upstream``/``estimate``)."""

        async def answer(body: dict[str, Any]) -> Response:
            counted = await self.system.acount_tokens(body)
            headers = {"x-runestone-token-count": "estimate" if counted.estimated else "upstream"}
            if not counted.estimated:
                headers["x-runestone-provider"] = counted.provider
            return JSONResponse({"input_tokens": counted.input_tokens}, headers=headers)

        return await self._whole(
            request, _ANTHROPIC, decode_count_tokens_body, lambda body: body["model"], answer
        )

    async def _read(
        self, request: Request, decode: Callable[[bytes], _Body], *, lease: bool = False
    ) -> tuple[Any, _Body, Releasable | None]:
        """What every API route checks first, in this order: draining, the key, the key's
        requests per minute, the body's size, the body. Returns the key, the body and,
        asked for a ``lease`` in a cluster, the key's stream slot: taken with the count in
        one Redis call (a single process takes it after the body, at no cost)."""
        if self.draining:
            raise shutting_down(retry_after=None)
        key = authenticate(self.config.auth, request.headers)
        shared = self.shared_limits
        held: Releasable | None = None
        if shared is None:
            self.limits.count(key)
        elif lease:
            held = await shared.admit(key)
        else:
            await shared.count(key)
        try:
            raw = await read_body(request, self.config.server.max_body_bytes)
            return key, decode_body(raw, decode), held
        except BaseException:
            if held is not None:
                held.release()
            raise

    async def _whole(
        self,
        request: Request,
        dialect: Dialect,
        decode: Callable[[bytes], _Body],
        model_of: Callable[[_Body], str],
        answer: Callable[[_Body], Awaitable[Response]],
    ) -> Response:
        """A route answered whole (no stream): its checks, then ``answer``; every error
        in ``dialect``'s shape."""
        try:
            _, body, _ = await self._read(request, decode)
            model = model_of(body)
            if model not in self.catalog:
                raise model_not_found(model)
            return await answer(body)
        except ApiError as error:
            return _error_response(error, dialect)
        except ClientGoneError:
            return Response(status_code=400)  # nobody is listening any more
        except RunestoneError as exc:
            return _error_response(from_exception(exc), dialect)

    async def chat(self, request: Request, dialect: Dialect) -> Response | Exchange:
        """The response to a chat request in ``dialect``: an error, or the exchange."""
        lease: Releasable | None = None
        try:
            headers = request.headers
            key, call, lease = await self._read(
                request, lambda raw: dialect.decode(raw, headers), lease=True
            )
            if self.config.server.include_usage and not call.include_usage:
                call = call.with_usage()
            if call.request.model not in self.catalog:
                raise model_not_found(call.request.model)
            system = self.system
            if lease is None:
                lease = self.limits.acquire(key)
        except ApiError as error:
            if lease is not None:
                lease.release()
            return _error_response(error, dialect)
        except ClientGoneError:
            if lease is not None:
                lease.release()
            return Response(status_code=400)  # nobody is listening any more
        request_id = request.scope["runestone.request_id"]
        # Two requests in flight must not share an id inside the system.
        seen = self._ids.get(request_id, 0)
        self._ids[request_id] = seen + 1
        system_id = request_id if seen == 0 else f"{request_id}#{seen + 1}"
        self.in_flight += 1

        def on_end() -> None:
            self.in_flight -= 1
            left = self._ids[request_id] - 1
            if left:
                self._ids[request_id] = left
            else:
                del self._ids[request_id]

        return Exchange(
            system,
            call,
            dialect,
            lease=lease,
            request_id=system_id,
            on_end=on_end,
            draining=lambda: self.draining,
            book=None if key is None or key.tpm is None else functools.partial(self.book, key),
        )

    def book(self, key: ApiKey, tokens: int) -> None:
        """Book an answer's tokens against ``key``'s tpm."""
        shared = self.shared_limits
        if shared is None:
            self.limits.book(key, tokens)
        else:
            shared.book(key, tokens)

    async def stored_response(self, request: Request) -> Response:
        """Retrieving, deleting or cancelling a response: none is ever stored."""
        error = ApiError(
            404,
            f"no response {request.path_params['response_id'].split('/')[0]!r} is stored: "
            "this gateway is stateless and keeps no responses",
            code="response_not_found",
        )
        return _error_response(error, _RESPONSES)

    # -- models -------------------------------------------------------------------------------

    async def list_models(self, _request: Request) -> Response:
        return JSONResponse(self.catalog.listing())

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model_id"]
        entry = self.catalog.entry(name)
        if entry is None:
            return _error_response(model_not_found(name), _OPENAI)
        return JSONResponse(entry)

    # -- health and metrics -------------------------------------------------------------------

    async def health(self, _request: Request) -> Response:
        try:
            system = self.system
        except ApiError as error:
            return _error_response(error, _OPENAI)
        report = await asyncio.to_thread(system.health)
        report["draining"] = self.draining
        report["http_in_flight"] = self.in_flight
        report["config"] = self.reloader.revision.to_dict()
        ok = report.get("status") == "ok" and not self.draining
        return JSONResponse(report, status_code=200 if ok else 503)

    async def live(self, _request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def ready(self, _request: Request) -> Response:
        system = self._system
        if system is None or self.draining:
            state = "starting" if system is None else "draining"
            return JSONResponse({"status": state}, status_code=503)
        try:
            stats = await asyncio.to_thread(system.pool_stats)
        except RunestoneError as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        usable = [
            name
            for name, entry in system.directory.entries().items()
            if entry.status is None or entry.status.state.value != "open"
        ]
        body = {"status": "ready" if usable else "no_usable_provider", "pool": stats.to_dict()}
        full = stats.in_flight >= stats.max_in_flight
        if full:
            body["status"] = "full"
        return JSONResponse(body, status_code=200 if usable and not full else 503)

    async def metrics(self, _request: Request) -> Response:
        try:
            system = self.system
        except ApiError as error:
            return _error_response(error, _OPENAI)
        text = await asyncio.to_thread(system.metrics.render)
        return Response(text, media_type=_METRICS_TYPE)

    # -- every response -----------------------------------------------------------------------

    def count(self, path: str, status: int) -> None:
        counter = self._responses
        if counter is not None:
            route = (
                path
                if path in _ROUTE_LABELS
                else "/v1/models/{id}"
                if path.startswith("/v1/models/")
                else "/v1/responses/{id}"
                if path.startswith("/v1/responses/")
                else "unmatched"
            )
            counter.labels(route, str(status)).inc()


def _not_on_this_port(method: str, path: str, access: Access) -> ApiError:
    where = "the admin port only" if access is Access.ADMIN else "the main port, not the admin port"
    return ApiError(
        404, f"unknown route here: {method} {path} is served on {where}", code="unknown_route"
    )


class GatewayApp:
    """The ASGI app :func:`create_app` returns: the starlette app, with an
    ``x-request-id`` on every response (errors of the framework's own included),
    every route's key checked first, and a count of each status. ``gateway`` is
    its :class:`Gateway`; ``admin_port``, when set, is the only port serving the
    admin routes (the port really bound: ``runestone serve`` sets it)."""

    def __init__(self, app: Starlette, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway
        self.admin_port: int | None = gateway.config.server.admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        request_id = _request_id({REQUEST_ID_HEADER: request_id} if request_id else {})
        scope["runestone.request_id"] = request_id
        header = (b"x-request-id", request_id.encode("latin-1"))
        gateway = self.gateway
        path = scope["path"]
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
                gateway.count(path, message["status"])
            await send(message)

        dialect = _CHAT_ROUTES.get(path) if scope["method"] == "POST" else None
        access = access_for(path)
        refusal: ApiError | None = None
        try:
            if dialect is None:
                # (The chat routes check their key themselves, in their order of checks.)
                authorize(gateway.config.auth, access, Headers(scope=scope))
            admin_port = self.admin_port
            if admin_port is not None:
                server = scope.get("server")
                on_admin = server is not None and server[1] == admin_port
                if not served_on(access, admin_port_set=True, on_admin_port=on_admin):
                    raise _not_on_this_port(scope["method"], path, access)
        except ApiError as refused:
            refusal = refused
        if refusal is not None:
            await _error_response(refusal, _dialect_for(path))(scope, receive, send_with_id)
            return
        if dialect is None:
            await self.app(scope, receive, send_with_id)
            return
        # The chat routes skip starlette's routing and middleware: they are the hot path.
        try:
            response = await gateway.chat(Request(scope, receive), dialect)
            await response(scope, receive, send_with_id)
        except Exception as exc:  # a bug of ours: an honest 500, no traceback to the client
            log.error("unhandled_error", path=path, exc_info=exc)
            if not started:
                error = ApiError(
                    500,
                    f"the gateway failed internally ({type(exc).__name__}); "
                    "the request was not answered",
                    code="internal_error",
                )
                await _error_response(error, dialect)(scope, receive, send_with_id)


def create_app(
    config: Config,
    *,
    system: System | None = None,
    clock: Clock = SYSTEM_CLOCK,
    on_started: Callable[[Gateway], None] | None = None,
    watch: float | None = None,
) -> GatewayApp:
    """The gateway as an ASGI app (see :class:`Gateway` for ``system``, ``on_started`` and
    ``watch``)."""
    gateway = Gateway(config, system=system, clock=clock, on_started=on_started, watch=watch)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            error = ApiError(
                405,
                f"method {request.method} is not allowed on {request.url.path}",
                code="method_not_allowed",
            )
        elif exc.status_code == 404:
            error = ApiError(
                404,
                f"unknown route: {request.method} {request.url.path} (the OpenAI API is under "
                "/v1: POST /v1/chat/completions, POST /v1/completions, POST /v1/responses, "
                "GET /v1/models; Anthropic's: POST /v1/messages)",
                code="unknown_route",
            )
        else:
            error = ApiError(exc.status_code, str(exc.detail), code="http_error")
        response = _error_response(error, _dialect_for(request.url.path))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", path=request.url.path, exc_info=exc)
        error = ApiError(
            500,
            f"the gateway failed internally ({type(exc).__name__}); the request was not answered",
            code="internal_error",
        )
        return _error_response(error, _dialect_for(request.url.path))

    routes = [
        Route("/v1/chat/completions", gateway.chat_completions, methods=["POST"]),
        Route("/v1/completions", gateway.completions, methods=["POST"]),
        Route("/v1/responses", gateway.responses, methods=["POST"]),
        Route(
            "/v1/responses/{response_id:path}",
            gateway.stored_response,
            methods=["GET", "DELETE", "POST"],
        ),
        Route("/v1/messages", gateway.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", gateway.count_tokens, methods=["POST"]),
        Route("/v1/embeddings", gateway.embeddings, methods=["POST"]),
        Route("/v1/models", gateway.list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", gateway.get_model, methods=["GET"]),
        Route("/health", gateway.health, methods=["GET"]),
        Route("/health/live", gateway.live, methods=["GET"]),
        Route("/health/ready", gateway.ready, methods=["GET"]),
        Route("/metrics", gateway.metrics, methods=["GET"]),
        Route("/admin/reload", gateway.admin_reload, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=gateway.lifespan,
    )
    return GatewayApp(app, gateway)
