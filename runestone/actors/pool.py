"""The Pool: admits requests up to a bound and runs each as a stream task under a supervisor.

Admission (:func:`submit`) is a bounded counter checked where a request arrives:
past ``max_in_flight`` a request is refused at once with :class:`OverloadedError`,
never queued. Each admitted request gets a transient stream task, a loop actor,
under the loop supervisor beside the Pool, so a crashed task is restarted (and
picks its request up again) without the Pool or any other request noticing. The
Pool actor is the actor-native door to the same admission, and owns its bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog

from runestone.actors.stream_task import StreamTask, TaskEnv, end_unstarted, expire
from runestone.exceptions import (
    ErrorClass,
    ErrorKind,
    EscalationError,
    OverloadedError,
    RunestoneError,
    SupervisionError,
)
from runestone.messages import StreamError
from runestone.request import InFlight, RequestContext
from runestone.supervisors import ChildSpec, RestartType, Spawn, SupervisedActor, SupervisorHandle

__all__ = [
    "ActorSink",
    "GetStats",
    "Pool",
    "PoolStats",
    "SetLimit",
    "StreamRequest",
    "Submit",
    "pool_stats",
    "submit",
]

log = structlog.get_logger(__name__)
_std_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Submit:
    """A request to run. With ``reply`` the answer (``None`` or the refusal) goes there;
    without it, it is the ``ask``'s answer (a refusal is raised)."""

    ctx: RequestContext
    reply: Callable[[BaseException | None], None] | None = None

    def undeliverable(self, error: BaseException) -> None:
        """The Pool will never see it: the sender hears the refusal instead of waiting."""
        self.ctx.claim_terminal()
        if self.reply is not None:
            self.reply(OverloadedError(f"the pool could not take the request: {error}"))


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """The actor-native way in: every event of the answer is told to ``reply_to``.

    ``reply_to`` is an actor ref or handle; it receives the stream's events as
    messages (text and tool-call deltas, usage, then one ``Done`` or ``StreamError``).
    A refusal (overloaded, a bad request) arrives as that one ``StreamError``.
    """

    request: Any
    reply_to: Any
    request_id: str | None = None

    def undeliverable(self, error: BaseException) -> None:
        """The Pool will never see it: ``reply_to`` gets the refusal as its one event."""
        ActorSink(self.reply_to).put(
            StreamError(
                ErrorClass.SERVER_ERROR,
                f"the pool could not take the request: {error}",
                kind=ErrorKind.OVERLOADED_ERROR,
            )
        )


class ActorSink:
    """The producer side of a sink whose consumer is an actor: each event is a ``tell``."""

    def __init__(self, reply_to: Any) -> None:
        self._reply_to = reply_to
        self._cancelled = False
        self._producer: Any = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def attach(self, producer: Any) -> None:
        self._producer = producer
        if self._cancelled:
            producer.cancel()

    async def send(self, item: Any) -> None:
        self.put(item)

    def put(self, item: Any) -> None:
        if self._cancelled:
            return
        try:
            self._reply_to.tell(item)
        except Exception:  # noqa: BLE001 - a dead or unreachable caller: stop producing
            self._cancelled = True
            if self._producer is not None:
                self._producer.cancel()

    def finish(self, error: BaseException | None = None) -> None:
        """The terminal event was already told; nothing more to send."""


@dataclass(frozen=True, slots=True)
class SetLimit:
    max_in_flight: int


@dataclass(frozen=True, slots=True)
class GetStats:
    pass


@dataclass(frozen=True, slots=True)
class PoolStats:
    in_flight: int
    max_in_flight: int
    admitted: int
    refused: int

    def to_dict(self) -> dict[str, int]:
        return {
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "admitted": self.admitted,
            "refused": self.refused,
        }


class Pool(SupervisedActor):
    """The actor-native way in (see the module docstring). Reach it through ``system.pool``.

    It admits what it is told or asked (``Submit``, ``StreamRequest``) with the same
    :func:`submit` the System calls directly, and owns the bound (``SetLimit``)."""

    expected_exceptions: ClassVar[tuple[type[Exception], ...]] = (OverloadedError,)

    def __init__(self, tasks: Callable[[], SupervisorHandle], env: TaskEnv) -> None:
        super().__init__()
        self._tasks = tasks
        self._env = env
        # Shared with every incarnation and every request's ender: nothing to recount.
        self._in_flight = env.in_flight

    @property
    def max_in_flight(self) -> int:
        return self._in_flight.limit

    def on_receive(self, message: Any) -> Any:
        match message:
            case Submit(ctx=ctx, reply=reply):
                error = submit(ctx, self._env, self._tasks)
                if reply is not None:
                    reply(error)
                elif error is not None:
                    raise error
            case StreamRequest():
                self._stream_request(message)
            case SetLimit(max_in_flight=limit):
                self._in_flight.limit = limit
            case GetStats():
                return pool_stats(self._in_flight)
            case _:
                raise SupervisionError(f"pool got an unknown message {type(message).__name__}")
        return None

    def _stream_request(self, message: StreamRequest) -> None:
        sink = ActorSink(message.reply_to)
        try:
            ctx = self._env.new_context(message.request, sink, message.request_id)
        except RunestoneError as exc:
            sink.put(StreamError.from_exception(exc, error_class=ErrorClass.BAD_REQUEST))
            return
        error = submit(ctx, self._env, self._tasks)
        if error is not None:
            sink.put(StreamError.from_exception(error))


def pool_stats(in_flight: InFlight) -> PoolStats:
    """The admission figures now (read without asking the Pool)."""
    return PoolStats(len(in_flight), in_flight.limit, in_flight.admitted, in_flight.refused)


def submit(
    ctx: RequestContext, env: TaskEnv, tasks: Callable[[], SupervisorHandle]
) -> OverloadedError | None:
    """Admit ``ctx`` where it arrives and start its stream task; the refusal, or None.

    Admission is the bounded counter, checked here (no actor asked): past the bound
    the request is refused at once. Admitted, it crosses into the data-plane loop
    once (not at all from the loop itself), where its one deadline timer is armed and
    its task is spawned under the task supervisor.
    """
    in_flight = env.in_flight
    # Counted in before its task can start (and end): a release never precedes its admit.
    if not in_flight.admit(ctx.id):
        ctx.claim_terminal()  # refused: it ends here
        log.warning("request_refused_overloaded", request_id=ctx.id, limit=in_flight.limit)
        return OverloadedError(
            f"overloaded: {len(in_flight)} requests in flight, "
            f"the limit is {in_flight.limit}; retry shortly"
        )
    data_plane = env.data_plane
    try:
        if data_plane.in_loop_thread():
            _arrive(ctx, env, tasks)
        else:
            data_plane.call_soon_threadsafe(_arrive, ctx, env, tasks)
    except RuntimeError as exc:  # the data plane is stopping
        ctx.claim_terminal()
        in_flight.release(ctx.id)
        return OverloadedError(f"could not start the request: {exc}")
    if _std_log.isEnabledFor(logging.DEBUG):
        log.debug("request_started", request_id=ctx.id, model=ctx.request.model)
    return None


def _arrive(ctx: RequestContext, env: TaskEnv, tasks: Callable[[], SupervisorHandle]) -> None:
    """On the loop: arm the request's one deadline timer and spawn its stream task."""
    clock = env.clock
    ctx.guard = clock.call_later(
        max(0.0, ctx.deadline - clock.monotonic()), lambda: expire(ctx, env)
    )
    if ctx.finished.is_set():  # ended before it got here (a caller that went away)
        ctx.guard.cancel()

    def start() -> Any:
        return StreamTask.start(ctx, env, loop=env.data_plane.loop)

    def not_started(exc: SupervisionError) -> None:
        log.error("stream_task_spawn_failed", request_id=ctx.id, error=str(exc))
        end_unstarted(ctx, env, OverloadedError(f"could not start the request: {exc}"))

    def abandoned() -> None:
        end_unstarted(
            ctx, env, EscalationError("the request could not finish: its supervisors gave up")
        )

    spec = ChildSpec(
        ctx.id, start, restart=RestartType.TRANSIENT, await_start=False, on_abandon=abandoned
    )
    try:
        tasks().tell(Spawn(spec, not_started))
    except SupervisionError as exc:
        not_started(exc)
