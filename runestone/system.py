"""The System: Runestone embedded in a process — start, stream, complete, health, reload, stop.

::

    system = runestone.start("my-config.yaml")   # a path, a dict or a Config
    for event in system.stream({"model": "fast", "messages": [...], "stream": True}):
        ...               # TextDelta, ToolCallDelta, ReasoningDelta, Usage, then Done | StreamError
    system.complete({...})                               # a Response, or the failure raised
    system.stop()

The supervision tree (ARCHITECTURE §1)::

    root
    ├── provider_factory      builds providers from config; adds/removes them at run time
    ├── providers             one ProviderActor per provider
    ├── router                plans each request
    └── pool                  ─ admission (the Pool actor: ``system.pool``)
                              └ tasks (a DynamicSupervisor of stream tasks)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from runestone.actors.pool import GetStats, Pool, PoolStats, SetLimit, submit
from runestone.actors.provider_factory import (
    FactoryEnv,
    ProviderFactory,
    ProviderSupervisor,
    Reload,
    ReloadReport,
)
from runestone.actors.router import Router, UpdateRouting
from runestone.actors.stream_task import TaskEnv
from runestone.clock import Cancellable, Clock
from runestone.config import ClusterConfig, Config, load_config
from runestone.directory import Directory
from runestone.embeddings import run_embeddings
from runestone.exceptions import (
    ClusterUnavailableError,
    ErrorKind,
    EscalationError,
    NoCandidatesError,
    NoCandidatesReason,
    NoHealthyUpstreamError,
    OverloadedError,
    RequestValidationError,
    RunestoneError,
    SupervisionError,
    SupervisionReason,
)
from runestone.io import DataPlane
from runestone.logging import configure_logging
from runestone.messages import (
    ChatRequest,
    CompletionBuilder,
    Done,
    EmbeddingAnswer,
    EmbeddingRequest,
    Event,
    StreamError,
    ToolCall,
    Usage,
)
from runestone.metrics import CIRCUIT_STATE_VALUES, Metrics
from runestone.request import AttemptOutcome, RequestContext
from runestone.resilience import StateChange
from runestone.routing import Requirements, RoutingBoard
from runestone.routing.routes import Route, plan_model_routes
from runestone.sinks import AsyncSink, ThreadSink
from runestone.supervisors import (
    ActorHandle,
    ChildKind,
    ChildSpec,
    ChildState,
    ChildStore,
    ExitKind,
    ExitReason,
    IntensityPolicy,
    LoopSupervisor,
    SupervisorHandle,
    start_supervisor,
    supervisor_spec,
)
from runestone.token_count import TokenCount, count_tokens

if TYPE_CHECKING:
    from runestone.cluster import Cluster, Member, SharedCircuits

__all__ = ["EventStream", "LoopClock", "Response", "System", "start"]

_T = TypeVar("_T")

log = structlog.get_logger(__name__)


class _LoopTimer:
    __slots__ = ("cancelled", "data_plane", "handle")

    def __init__(self, data_plane: DataPlane) -> None:
        self.data_plane = data_plane
        self.cancelled = False
        self.handle: asyncio.TimerHandle | None = None

    def is_cancelled(self) -> bool:
        # A call, not the attribute: read after ``call_later``, the flag may have changed
        # on another thread (mypy would take the earlier check as still holding).
        return self.cancelled

    def cancel(self) -> None:
        self.cancelled = True
        handle = self.handle
        loop = self.data_plane.loop
        if handle is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                if self.data_plane.in_loop_thread():
                    handle.cancel()
                else:
                    loop.call_soon_threadsafe(handle.cancel)


class LoopClock:
    """The real clock, whose delayed calls run on the data-plane loop (no thread per timer)."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._data_plane = data_plane

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        loop = self._data_plane.loop
        timer = _LoopTimer(self._data_plane)

        def fire() -> None:
            if not timer.cancelled:
                callback()

        def arm() -> None:
            if timer.cancelled:
                return
            handle = timer.handle = loop.call_later(delay, fire)
            # A cancel on another thread between the check above and the handle being set
            # saw no handle to cancel: look again, or the timer outlives its request.
            if timer.is_cancelled():
                handle.cancel()

        if self._data_plane.in_loop_thread():
            arm()  # from the loop itself: no thread-safe hop
        else:
            with contextlib.suppress(RuntimeError):  # the data plane is stopping
                self._data_plane.call_soon_threadsafe(arm)
        return timer


class _Lookup:
    """A cached child handle, looked up again once its supervisor has retired the slot."""

    def __init__(self, resolve: Callable[[], ActorHandle]) -> None:
        self._resolve = resolve
        self._handle: ActorHandle | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        handle = self._handle
        if handle is None or handle.state is ChildState.STOPPED:
            with self._lock:
                handle = self._handle
                if handle is None or handle.state is ChildState.STOPPED:
                    handle = self._handle = self._resolve()
        return handle


@dataclass(frozen=True, slots=True)
class Response:
    """A whole answer from :meth:`System.complete`."""

    text: str
    model: str
    provider: str
    finish_reason: str
    usage: Usage | None
    tool_calls: tuple[ToolCall, ...] = ()
    attempts: tuple[AttemptOutcome, ...] = ()
    cost: float | None = None
    request_id: str = ""


class EventStream:
    """The events of one streamed request: iterate it; ``close()`` cancels the request."""

    def __init__(self, sink: ThreadSink[Event], request_id: str) -> None:
        self._sink = sink
        self.request_id = request_id

    def __iter__(self) -> Iterator[Event]:
        return iter(self._sink)

    def __next__(self) -> Event:
        return next(self._sink)

    def close(self) -> None:
        self._sink.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class _Handles:
    root: SupervisorHandle
    pool: Callable[[], ActorHandle]
    router: Callable[[], ActorHandle]
    factory: Callable[[], ActorHandle]
    providers: Callable[[], SupervisorHandle]
    tasks: Callable[[], SupervisorHandle]


@dataclass
class _Holder:
    """Handles the actors need, filled in once the tree is up."""

    handles: _Handles | None = None
    root_exit: list[ExitReason] = field(default_factory=list)
    stopping: bool = False

    def get(self) -> _Handles:
        if self.handles is None:
            raise SupervisionError("the system is still starting")
        if self.stopping:
            # Looking a handle up may ask a supervisor that is busy stopping the asker.
            raise SupervisionError("the system is stopping", reason=SupervisionReason.SHUTTING_DOWN)
        return self.handles


_request_ids = itertools.count(1)


class System:
    """A running Runestone (see the module docstring). Made by :func:`start`."""

    def __init__(
        self,
        config: Config,
        *,
        data_plane: DataPlane | None = None,
        clock: Clock | None = None,
        on_escalation: Callable[[EscalationError], None] | None = None,
    ) -> None:
        self.config = config
        self._down: EscalationError | None = None
        self._escalation_callbacks: list[Callable[[EscalationError], None]] = []
        self._escalation_lock = threading.Lock()
        if on_escalation is not None:
            self._escalation_callbacks.append(on_escalation)
        self._own_data_plane = data_plane is None
        self.data_plane = data_plane or DataPlane().start()
        self.clock: Clock = clock or LoopClock(self.data_plane)
        self.metrics = Metrics()
        self.directory = Directory()
        self._holder = _Holder()
        self._stopped = False
        self._started_at = self.clock.monotonic()
        self.cluster: Cluster | None = None
        self._circuits: SharedCircuits | None = None
        """This replica's membership of a cluster (``config.cluster``), or None: one process."""
        try:
            if config.cluster is not None:
                self._join(config.cluster)
            self._start_tree()
        except BaseException:
            if self._own_data_plane:
                self.data_plane.stop()
            raise

    # -- start and stop ---------------------------------------------------------------------

    def _join(self, settings: ClusterConfig) -> None:
        """Connect to the cluster's Redis (or find it down: then run alone until it answers)."""
        from runestone.cluster import Cluster, SharedCircuits  # only a cluster imports Redis

        cluster = Cluster(settings, health=self._replica_health)
        coro = cluster.open()
        if self.data_plane.in_loop_thread():
            raise RuntimeError("start a clustered System off its data-plane loop")
        self.data_plane.run(coro, timeout=max(5.0, 10 * settings.deadline))
        self.data_plane.register_closeable(cluster)
        self.cluster = cluster
        self._circuits = SharedCircuits(cluster, self.data_plane)

    def _replica_health(self) -> dict[str, Any]:
        """What this replica tells the cluster of itself each heartbeat (read on the loop)."""
        providers = {
            name: entry.status.to_dict()
            for name, entry in self.directory.entries().items()
            if entry.status is not None
        }
        return {
            "providers": providers,
            "uptime": round(self.clock.monotonic() - self._started_at, 3),
        }

    def _start_tree(self) -> None:
        config = self.config
        holder = self._holder
        clock = self.clock
        metrics = self.metrics

        def on_state_change(provider: str, change: StateChange) -> None:
            metrics.circuit_state.labels(provider).set(CIRCUIT_STATE_VALUES[change.new.value])

        factory_env = FactoryEnv(
            directory=self.directory,
            data_plane=self.data_plane,
            clock=clock,
            providers=lambda: holder.get().providers(),
            on_state_change=on_state_change,
            metrics=metrics,
            circuits=self._circuits,
        )
        task_env = TaskEnv(
            directory=self.directory,
            router=lambda: holder.get().router(),
            data_plane=self.data_plane,
            clock=clock,
            resume=config.routing.resume,
            metrics=metrics,
        )
        task_env.new_context = self._context
        task_env.in_flight.on_change = metrics.in_flight.set
        task_env.in_flight.limit = config.pool.max_in_flight
        routing_board = task_env.routing = RoutingBoard()
        self._task_env = task_env
        intensity = config.supervision
        max_in_flight = config.pool.max_in_flight
        # Stream tasks fail one by one; their restarts must not add up to an escalation
        # that would drop every other stream.
        task_intensity = IntensityPolicy(max(10, max_in_flight), intensity.max_seconds)
        providers_store = ChildStore()
        specs = [
            ChildSpec(
                "provider_factory",
                lambda: ProviderFactory.start(config.providers, factory_env),
            ),
            ChildSpec(
                "providers",
                lambda: ProviderSupervisor.start(
                    (),
                    name="providers",
                    env=factory_env,
                    intensity=intensity,
                    clock=clock,
                    store=providers_store,
                ),
                kind=ChildKind.SUPERVISOR,
                store=providers_store,
                shutdown=30.0,
                start_timeout=30.0,
            ),
            ChildSpec(
                "router",
                lambda: Router.start(
                    self.directory, config.routing, clock=clock, board=routing_board
                ),
            ),
            supervisor_spec(
                "pool",
                [
                    # Stream tasks are loop actors, started and supervised on the data-plane
                    # loop: a request crosses no thread to get its task.
                    supervisor_spec(
                        "tasks",
                        [],
                        actor_class=LoopSupervisor,
                        loop=self.data_plane.loop,
                        intensity=task_intensity,
                        clock=clock,
                        # The pool bounds requests; this only catches a leak. A finished task
                        # leaves the pool's count a moment before it leaves this supervisor.
                        max_children=2 * max_in_flight + 16,
                    ),
                    ChildSpec(
                        "admission",
                        lambda: Pool.start(lambda: holder.get().tasks(), task_env),
                    ),
                ],
                intensity=intensity,
                clock=clock,
            ),
        ]
        root = start_supervisor(
            specs,
            name="root",
            intensity=intensity,
            clock=clock,
            on_exit=self._root_exited,
        )
        metrics.watch_tree(lambda: None if self._stopped else root.tree(timeout=2))
        pool_sup = _Lookup(lambda: root.child("pool"))
        holder.handles = _Handles(
            root=root,
            pool=_Lookup(lambda: pool_sup().child("admission")),
            router=_Lookup(lambda: root.child("router")),
            factory=_Lookup(lambda: root.child("provider_factory")),
            providers=_Lookup(lambda: root.child("providers")),
            tasks=_Lookup(lambda: pool_sup().child("tasks")),
        )
        # Resolved now, on the starting thread: their slots outlive every restart, so no
        # request (on the server's loop, say) ever waits on a supervisor to look one up.
        handles = holder.handles
        for lookup in (
            handles.pool,
            handles.router,
            handles.factory,
            handles.providers,
            handles.tasks,
        ):
            lookup()
        log.info(
            "system_started",
            providers=list(config.providers),
            skipped=[s.name for s in config.skipped],
        )

    def _root_exited(self, reason: ExitReason) -> None:
        """The root stopped. Asked to, that is a stop; past its restart intensity it is the
        end of this system (OTP's permanent application): said once, loudly, to whoever
        registered for it, and every later call fails at once naming it."""
        if reason.kind is not ExitKind.ESCALATED:
            self._holder.root_exit.append(reason)
            return
        error = EscalationError(
            f"the system is down: its root supervisor gave up ({reason.error or reason}); "
            "restart the process (or call runestone.start again)"
        )
        log.critical("system_down", reason=str(reason))
        with self._escalation_lock:
            self._down = error
            callbacks = list(self._escalation_callbacks)
        # Recorded only now: whoever sees the exit already sees the system down.
        self._holder.root_exit.append(reason)
        for callback in callbacks:
            try:
                callback(error)
            except Exception as exc:  # noqa: BLE001 - one listener's failure must not stop the rest
                log.error("escalation_callback_failed", error=repr(exc))

    @property
    def down(self) -> EscalationError | None:
        """Why the system is down for good (its root escalated), or None while it runs."""
        return self._down

    def on_escalation(self, callback: Callable[[EscalationError], None]) -> None:
        """Call ``callback`` (on a supervisor's thread) if the root supervisor gives up;
        at once if it already has."""
        with self._escalation_lock:
            down = self._down
            if down is None:
                self._escalation_callbacks.append(callback)
        if down is not None:
            callback(down)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the actors (children before parents), then the data plane. Idempotent.

        On an attached data plane (``runestone serve``) call :meth:`astop` from its loop.
        """
        if self._stopped:
            return
        self._stop_actors(timeout)
        if self._own_data_plane or self.data_plane.is_attached:
            self.data_plane.stop()  # attached: closes the providers' sessions on its loop
        log.info("system_stopped")

    async def astop(self, timeout: float = 30.0) -> None:
        """:meth:`stop` from the data plane's own loop: the actors stop off the loop,
        then the providers' sessions close on it."""
        if self._stopped:
            return
        await asyncio.to_thread(self._stop_actors, timeout)
        await self.data_plane.aclose()
        log.info("system_stopped")

    def _stop_actors(self, timeout: float) -> None:
        self._stopped = True
        self._holder.stopping = True
        handles = self._holder.handles
        if handles is not None:
            try:
                handles.root.stop(timeout=timeout)
            except SupervisionError as exc:
                log.error("system_stop_incomplete", error=str(exc))

    def __enter__(self) -> System:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- handles ----------------------------------------------------------------------------

    @property
    def supervisor(self) -> SupervisorHandle:
        """The root supervisor (``which_children()``, ``count_children()``, ``tree()``)."""
        return self._holder.get().root

    @property
    def pool(self) -> ActorHandle:
        """The Pool actor: ``tell``/``ask`` it a :class:`Submit` of a request context."""
        if self._down is not None:
            raise self._down
        handle: ActorHandle = self._holder.get().pool()
        return handle

    @property
    def router(self) -> ActorHandle:
        handle: ActorHandle = self._holder.get().router()
        return handle

    # -- requests ---------------------------------------------------------------------------

    def _context(
        self, request: ChatRequest | Mapping[str, Any], sink: Any, request_id: str | None
    ) -> RequestContext:
        if self._down is not None:
            raise self._down
        if self._stopped:
            raise SupervisionError("the system is stopped", reason=SupervisionReason.SHUTTING_DOWN)
        chat = request if isinstance(request, ChatRequest) else ChatRequest.from_dict(request)
        timeout = self.config.pool.request_timeout
        serial = next(_request_ids)
        # Whatever becomes of its actors, a request ends by its deadline: its one timer
        # is armed when it is admitted (``submit``).
        return RequestContext(
            # A caller's own id is kept, made unique: two requests may well share one.
            id=f"{request_id}#{serial}" if request_id else f"req-{serial}-{uuid.uuid4().hex[:8]}",
            request=chat,
            sink=sink,
            deadline=self.clock.monotonic() + timeout,
        )

    def _submit(self, ctx: RequestContext) -> None:
        """Admit ``ctx`` here, on the caller's thread (no actor asked), and start it."""
        error = submit(ctx, self._task_env, self._holder.get().tasks)
        if error is not None:
            raise error

    def stream(
        self, request: ChatRequest | Mapping[str, Any], *, request_id: str | None = None
    ) -> EventStream:
        """Start ``request`` and iterate its events as they arrive.

        Raises :class:`RequestValidationError` for a bad request and
        :class:`OverloadedError` when the pool is full; every upstream failure
        arrives in-band as the terminal :class:`StreamError`.
        """
        chat = request if isinstance(request, ChatRequest) else ChatRequest.from_dict(request)
        if not chat.stream:
            chat = chat.replace(stream=True)
        front: ThreadSink[Event] = ThreadSink(self.data_plane.loop)
        ctx = self._context(chat, front.sink, request_id)
        self._submit(ctx)
        return EventStream(front, ctx.id)

    def complete(
        self, request: ChatRequest | Mapping[str, Any], *, request_id: str | None = None
    ) -> Response:
        """The whole answer of ``request`` (asked of upstreams without streaming).

        Raises the failure (a :class:`ProviderError` subclass, or
        :class:`NoCandidatesError`) when no candidate answered.
        """
        chat = request if isinstance(request, ChatRequest) else ChatRequest.from_dict(request)
        if chat.stream:
            chat = chat.replace(stream=False)
        front: ThreadSink[Event] = ThreadSink(self.data_plane.loop, whole=True)
        ctx = self._context(chat, front.sink, request_id)
        self._submit(ctx)
        with contextlib.closing(front):
            return _response(ctx.id, list(front))

    async def astream(
        self, request: ChatRequest | Mapping[str, Any], *, request_id: str | None = None
    ) -> AsyncIterator[Event]:
        """:meth:`stream` for asyncio callers: ``async for event in await system.astream(...)``.

        Never blocks the caller's loop: admission is a counter, and the request crosses
        into the data plane at most once (not at all on its own loop, under ``serve``).
        """
        chat = request if isinstance(request, ChatRequest) else ChatRequest.from_dict(request)
        front: AsyncSink[Event] = AsyncSink(self.data_plane.loop)
        ctx = self._context(chat, front.sink, request_id)
        self._submit(ctx)
        return front

    async def acomplete(
        self, request: ChatRequest | Mapping[str, Any], *, request_id: str | None = None
    ) -> Response:
        """:meth:`complete` for asyncio callers."""
        chat = request if isinstance(request, ChatRequest) else ChatRequest.from_dict(request)
        if chat.stream:
            chat = chat.replace(stream=False)
        stream = await self.astream(chat, request_id=request_id)
        events = [event async for event in stream]
        return _response(request_id or "", events)

    # -- embeddings ---------------------------------------------------------------------------

    async def aembed(self, request: EmbeddingRequest) -> EmbeddingAnswer:
        """Embed ``request.inputs`` on ``request.model`` (an alias or ``provider/model``) with
        the chat path's routing, breakers, retries and failover (:mod:`runestone.embeddings`).

        Raises :class:`NoCandidatesError` when no embedding model serves the name, and the
        last failure when every candidate failed.
        """
        routes = self._routes(request.model, Requirements(embeddings=True))
        return await self._on_data_plane(
            run_embeddings(
                request,
                routes,
                self.directory,
                clock=self.clock,
                deadline=self.clock.monotonic() + self.config.pool.request_timeout,
                rng=self._task_env.rng,
            )
        )

    def embed(self, request: EmbeddingRequest, *, timeout: float | None = None) -> EmbeddingAnswer:
        """:meth:`aembed` for threads."""
        future = asyncio.run_coroutine_threadsafe(self.aembed(request), self.data_plane.loop)
        return future.result(timeout or self.config.pool.request_timeout + 5.0)

    # -- token counting ---------------------------------------------------------------------

    async def acount_tokens(self, body: Mapping[str, Any]) -> TokenCount:
        """The input tokens of an Anthropic messages ``body`` (its ``model`` an alias or a
        ``provider/model``): counted by the first routable candidate whose upstream counts
        tokens, else estimated, and labelled so (:mod:`runestone.token_count`).

        Raises :class:`NoCandidatesError` for a model nothing serves.
        """
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestValidationError("required: a non-empty string", field="model")
        try:
            routes = self._routes(model, Requirements())
        except NoHealthyUpstreamError:
            routes = []  # nothing routable now (or not yet): the estimate answers
        return await self._on_data_plane(count_tokens(body, routes, self.directory))

    def count_tokens(self, body: Mapping[str, Any], *, timeout: float = 30.0) -> TokenCount:
        """:meth:`acount_tokens` for threads."""
        future = asyncio.run_coroutine_threadsafe(self.acount_tokens(body), self.data_plane.loop)
        return future.result(timeout)

    def _routes(self, model: str, requirements: Requirements) -> list[Route]:
        """The Router's plan for ``model``, from the snapshot it published last."""
        snapshot = self._task_env.routing.snapshot if self._task_env.routing else None
        if snapshot is None:
            raise NoHealthyUpstreamError(
                "routing is not ready yet: the Router has not started",
                reason=NoCandidatesReason.NOT_READY,
            )
        now = self.clock.monotonic()
        return plan_model_routes(snapshot, self.directory, model, requirements, now=now)

    async def _on_data_plane(self, work: Coroutine[Any, Any, _T]) -> _T:
        """``work`` run on the data-plane loop, where the providers' sessions live."""
        if self.data_plane.in_loop_thread():
            return await work
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(work, self.data_plane.loop)
        )

    # -- health and reload ------------------------------------------------------------------

    def health(self, *, timeout: float = 5.0) -> dict[str, Any]:
        """The whole tree and every provider's circuit and health figures, as plain data."""
        handles = self._holder.handles
        status = "ok"
        tree: dict[str, Any] | None
        try:
            tree = handles.root.tree(timeout=timeout) if handles else None
        except SupervisionError as exc:
            tree = None
            status = "down"
            log.warning("health_tree_unavailable", error=str(exc))
        providers: dict[str, Any] = {}
        usable = 0
        for name, entry in self.directory.entries().items():
            info: dict[str, Any] = {
                "type": entry.config.settings.type,
                "models": sorted(entry.config.settings.models),
            }
            if entry.status is not None:
                info.update(entry.status.to_dict())
                if entry.status.state.value != "open":
                    usable += 1
            providers[name] = info
        if status == "ok" and usable == 0:
            status = "degraded" if providers else "down"
        try:
            pool: dict[str, int] | None = self.pool_stats(timeout=timeout).to_dict()
        except SupervisionError:
            pool = None
            status = "down"
        report: dict[str, Any] = {
            "status": "down" if self._stopped or self._down else status,
            "down": None if self._down is None else str(self._down),
            "uptime": round(self.clock.monotonic() - self._started_at, 3),
            "tree": tree,
            "providers": providers,
            "skipped": {s.name: s.reason for s in self.config.skipped},
            "pool": pool,
        }
        if self.cluster is not None:
            # The cluster's view never changes ``status``: without Redis this replica
            # still serves, on its own figures.
            report["cluster"] = self._cluster_health(self.cluster, timeout)
        return report

    def _cluster_health(self, cluster: Cluster, timeout: float) -> dict[str, Any]:
        """``health()``'s ``cluster`` section: every live replica's last report, read from
        the registry on the data plane and merged; this replica alone (a ``"local"``
        view) when Redis cannot be read."""
        from runestone.cluster import cluster_section

        members: list[Member] | None = None
        error: str | None = None
        if self.data_plane.in_loop_thread():
            error = "health() was called on the data-plane loop, which reads the registry"
        else:
            try:
                future = self.data_plane.submit(cluster.view())
            except RuntimeError:
                error = "the data plane is stopping"
            else:
                try:
                    members = future.result(timeout)
                except (ClusterUnavailableError, ValueError) as exc:  # down, or a bad report
                    error = str(exc)
                except TimeoutError:
                    future.cancel()
                    error = f"registry view: no answer in {timeout} s"
        return cluster_section(cluster.status(), members, self._replica_health(), error=error)

    def pool_stats(self, *, timeout: float = 5.0) -> PoolStats:
        stats: PoolStats = self.pool.ask(GetStats(), timeout=timeout)
        return stats

    def reload(self, config: str | os.PathLike[str] | Mapping[str, Any] | Config) -> ReloadReport:
        """Apply a new config: providers added, removed (after their streams) or replaced;
        routing and the pool's bound updated. Streams in flight finish."""
        new = load_config(config)
        handles = self._holder.get()
        report: ReloadReport = handles.factory().ask(Reload(new.providers), timeout=60)
        handles.router().ask(UpdateRouting(new.routing))
        handles.pool().ask(SetLimit(new.pool.max_in_flight))
        self.config = new
        return report


def _response(request_id: str, events: list[Event]) -> Response:
    builder = CompletionBuilder()
    terminal: Event | None = None
    for event in events:
        if isinstance(event, StreamError):
            terminal = event
        else:
            builder.add(event)
            if isinstance(event, Done):
                terminal = event
    if isinstance(terminal, StreamError):
        raise stream_error_to_exception(terminal)
    if not isinstance(terminal, Done):
        raise SupervisionError(f"request {request_id} ended without a terminal event")
    completion = builder.build()
    return Response(
        text=completion.text,
        model=terminal.model,
        provider=terminal.provider,
        finish_reason=terminal.finish_reason,
        usage=completion.usage,
        tool_calls=completion.tool_calls,
        attempts=tuple(terminal.attempts),
        cost=terminal.cost,
        request_id=request_id,
    )


_ROUTING_KINDS: dict[ErrorKind, type[NoCandidatesError]] = {
    ErrorKind.NO_CANDIDATES_ERROR: NoCandidatesError,
    ErrorKind.NO_HEALTHY_UPSTREAM_ERROR: NoHealthyUpstreamError,
}


def stream_error_to_exception(event: StreamError) -> RunestoneError:
    """The exception a non-streaming caller gets for a terminal :class:`StreamError`:
    routing's and admission's own errors (with their reason), else the provider's."""
    kind, reason = event.kind, event.reason
    routing = None if kind is None else _ROUTING_KINDS.get(kind)
    if routing is not None:
        if isinstance(reason, NoCandidatesReason):
            return _with_attempts(routing(event.message, reason=reason), event)
        return _with_attempts(routing(event.message), event)
    if kind is ErrorKind.OVERLOADED_ERROR:
        return _with_attempts(OverloadedError(event.message), event)
    return _with_attempts(event.to_exception(), event)


def _with_attempts(error: RunestoneError, event: StreamError) -> RunestoneError:
    error.attempts = event.attempts  # type: ignore[attr-defined]
    return error


_configure_lock = threading.Lock()


def start(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    *,
    data_plane: DataPlane | None = None,
    clock: Clock | None = None,
    configure_logs: bool = True,
    on_escalation: Callable[[EscalationError], None] | None = None,
) -> System:
    """Load ``config`` (the bundled one when None), start the actor system and return it."""
    from runestone.config import BUNDLED_CONFIG

    if configure_logs and not isinstance(config, Config):
        # Loading logs too (skipped providers): render it like everything else, at INFO,
        # until the config says which level it wants.
        with _configure_lock:
            configure_logging("INFO")
    loaded = load_config(BUNDLED_CONFIG if config is None else config)
    if configure_logs:
        with _configure_lock:
            configure_logging(loaded.logging.level, json=loaded.logging.json)
    return System(loaded, data_plane=data_plane, clock=clock, on_escalation=on_escalation)
