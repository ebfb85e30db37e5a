"""The Pool: admits requests up to a bound and runs each as a stream task under a supervisor.

Past ``max_in_flight`` a request is refused at once with :class:`OverloadedError`,
never queued. Each admitted request gets a transient stream task under the
dynamic supervisor beside the Pool, so a crashed task is restarted (and picks its
request up again) without the Pool or any other request noticing. A restarted
Pool recounts what is in flight from that supervisor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog

from runestone.actors.attempt import RequestContext
from runestone.actors.stream_task import StreamTask, TaskEnv, end_unstarted
from runestone.exceptions import (
    ErrorClass,
    EscalationError,
    OverloadedError,
    RunestoneError,
    SupervisionError,
)
from runestone.messages import StreamError
from runestone.supervisors import ChildSpec, RestartType, Spawn, SupervisedActor, SupervisorHandle

__all__ = ["ActorSink", "GetStats", "Pool", "PoolStats", "SetLimit", "StreamRequest", "Submit"]

log = structlog.get_logger(__name__)


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
                kind="OverloadedError",
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
    """Admission and spawning (see the module docstring). Reach it through ``system.pool``."""

    expected_exceptions: ClassVar[tuple[type[Exception], ...]] = (OverloadedError,)

    def __init__(
        self,
        tasks: Callable[[], SupervisorHandle],
        env: TaskEnv,
        max_in_flight: int,
    ) -> None:
        super().__init__()
        self._tasks = tasks
        self._env = env
        self.max_in_flight = max_in_flight
        # Shared with every incarnation and every request's ender: nothing to recount.
        self._in_flight = env.in_flight

    def on_receive(self, message: Any) -> Any:
        match message:
            case Submit(ctx=ctx, reply=reply):
                error = self._admit(ctx)
                if reply is not None:
                    reply(error)
                elif error is not None:
                    raise error
            case StreamRequest():
                self._stream_request(message)
            case SetLimit(max_in_flight=limit):
                self.max_in_flight = limit
            case GetStats():
                in_flight = self._in_flight
                return PoolStats(
                    len(in_flight), self.max_in_flight, in_flight.admitted, in_flight.refused
                )
            case _:
                raise SupervisionError(f"pool got an unknown message {type(message).__name__}")
        return None

    def _stream_request(self, message: StreamRequest) -> None:
        sink = ActorSink(message.reply_to)
        try:
            ctx = self._env.new_context(message.request, sink, message.request_id)
        except RunestoneError as exc:
            sink.put(StreamError(ErrorClass.BAD_REQUEST, str(exc), kind=type(exc).__name__))
            return
        error = self._admit(ctx)
        if error is not None:
            sink.put(StreamError(ErrorClass.SERVER_ERROR, str(error), kind=type(error).__name__))

    def _admit(self, ctx: RequestContext) -> BaseException | None:
        # Counted in before its task can start (and end): a release never precedes its admit.
        if not self._in_flight.admit(ctx.id, self.max_in_flight):
            ctx.claim_terminal()  # refused: it ends here, and so does its deadline guard
            log.warning("request_refused_overloaded", request_id=ctx.id, limit=self.max_in_flight)
            return OverloadedError(
                f"overloaded: {len(self._in_flight)} requests in flight, "
                f"the limit is {self.max_in_flight}; retry shortly"
            )
        env = self._env

        def start() -> Any:
            return StreamTask.start(ctx, env)

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
        # Told, not asked: admission never waits for a task to be built, so one slow
        # spawn cannot hold up every caller behind it.
        try:
            self._tasks().tell(Spawn(spec, not_started))
        except SupervisionError as exc:
            log.error("stream_task_spawn_failed", request_id=ctx.id, error=str(exc))
            ctx.claim_terminal()
            self._in_flight.release(ctx.id)
            return OverloadedError(f"could not start the request: {exc}")
        log.info("request_started", request_id=ctx.id, model=ctx.request.model)
        return None
