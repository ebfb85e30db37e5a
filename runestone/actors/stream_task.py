"""The stream task: one short-lived actor per request, running its plan to one terminal event.

It asks the Router for a plan, takes a permit from each candidate's provider
actor, starts the attempt on the data plane and hears only how it ended. It
retries (backoff with jitter, ``Retry-After`` honoured), fails over, and past
the commit point continues a cut stream by prefill or replay where allowed
(ARCHITECTURE §3). Whatever happens the caller gets exactly one terminal event
within the request's deadline. A restarted task picks the request up again: it
starts over while nothing reached the caller, and ends it in-band otherwise.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
import structlog

from runestone.actors.admission import InFlight
from runestone.actors.attempt import (
    AttemptMode,
    AttemptRecord,
    AttemptResult,
    RequestContext,
    run_attempt,
)
from runestone.actors.directory import Directory, ProviderEntry
from runestone.actors.plans import PlanFor, Route, RoutingBoard, plan_routes
from runestone.actors.provider import Acquire, Outcome, Refused, Release
from runestone.clock import Cancellable, Clock
from runestone.exceptions import (
    ActorCrashedError,
    ErrorClass,
    NoCandidatesError,
    NoHealthyUpstreamError,
    ProviderError,
    RunestoneError,
    SupervisionError,
    UpstreamTimeoutError,
)
from runestone.messages import Event, StreamError
from runestone.resilience import Permit, RetryAction, RetryReason, decide_retry
from runestone.supervisors import ActorHandle, SupervisedActor

if TYPE_CHECKING:
    from runestone.config import ResumeConfig
    from runestone.io import DataPlane
    from runestone.metrics import Metrics

__all__ = [
    "PlanFor",
    "Route",
    "StreamTask",
    "TaskEnv",
    "emit_events",
    "end_unstarted",
]

log = structlog.get_logger(__name__)

MAX_TASK_RESTARTS = 2
"""A request whose task keeps crashing ends in-band rather than restarting forever."""


@dataclass(frozen=True, slots=True)
class _Begin:
    pass


@dataclass(frozen=True, slots=True)
class _AttemptEnded:
    token: int
    future: concurrent.futures.Future[AttemptResult]


@dataclass(frozen=True, slots=True)
class _RetryDue:
    route: Route
    attempt: int


@dataclass(frozen=True, slots=True)
class _DeadlinePassed:
    pass


@dataclass
class TaskEnv:
    """What every stream task needs from the system; shared, never copied per request."""

    directory: Directory
    router: Callable[[], ActorHandle]
    data_plane: DataPlane
    clock: Clock
    resume: ResumeConfig
    metrics: Metrics | None = None
    rng: random.Random = field(default_factory=random.Random)
    ask_timeout: float = 5.0
    new_context: Callable[[Any, Any, str | None], RequestContext] = field(default=None)  # type: ignore[assignment]
    """Builds a request's context (validation, id, deadline); set by the System."""
    executor: concurrent.futures.Executor | None = None
    """Where stream tasks run their actor loops: reused threads instead of a new one each."""
    routing: RoutingBoard | None = None
    """The Router's published snapshot: plans are made from it without asking the Router."""
    in_flight: InFlight = field(default_factory=InFlight)
    """The requests admitted and not yet ended (shared by every Pool incarnation)."""

    def task_finished(self, request_id: str) -> None:
        """``request_id`` has ended: its admission slot is free (never waits on anyone)."""
        self.in_flight.release(request_id)


@dataclass
class _Current:
    token: int
    route: Route
    entry: ProviderEntry
    attempt: int
    permit: Permit
    mode: AttemptMode
    future: concurrent.futures.Future[AttemptResult]


class StreamTask(SupervisedActor):
    """Runs one request (see the module docstring)."""

    own_messages: ClassVar[tuple[type, ...]] = (_Begin, _AttemptEnded, _RetryDue, _DeadlinePassed)

    def __init__(self, ctx: RequestContext, env: TaskEnv) -> None:
        super().__init__()
        self.ctx = ctx
        self.env = env
        self._queue: deque[Route] = deque()
        self._tried: set[Route] = set()
        self._current: _Current | None = None
        self._tokens = 0
        self._last_error: ProviderError | None = None
        self._resuming = False
        self._stopping = False
        self._timers: list[Cancellable] = []

    # -- life -------------------------------------------------------------------------------

    def _start_actor_loop(self) -> None:
        # A thread per request costs more than the rest of the control plane together;
        # a task runs its actor loop on a reused thread of the system's executor instead.
        executor = self.env.executor
        if executor is None:
            super()._start_actor_loop()
        else:
            executor.submit(self._actor_loop)

    def on_start(self) -> None:
        # The work happens in a handler: on_start runs while the supervisor waits for it.
        self.actor_ref.tell(_Begin())

    def on_failure(self, *_: Any) -> None:
        self.ctx.crashes += 1
        self._abandon_attempt()
        self._cancel_timers()

    def on_stop(self) -> None:
        if self.stopping_for_restart:
            # Its supervisor went down and starts it again: the next incarnation picks the
            # request up (from scratch, or ends it in-band past the commit point).
            self._abandon_attempt()
            self._cancel_timers()
            return
        # Stopped by its supervisor (shutdown, or the task supervisor giving up) before the
        # request ended: the caller still gets its one terminal event.
        if not self.ctx.finished.is_set():
            self._abandon_attempt()
            self._stopping = True
            self._fail(SupervisionError("the request was stopped before it finished (shutdown)"))
        # Ended already (its attempt sent Done) but not yet booked: free its slot anyway.
        self.env.task_finished(self.ctx.id)

    def on_receive(self, message: Any) -> Any:
        match message:
            case _Begin():
                self._begin()
            case _AttemptEnded():
                self._attempt_ended(message)
            case _RetryDue(route=route, attempt=attempt):
                if not self._gone() and not self._try(route, attempt, AttemptMode.FRESH):
                    self._advance()
            case _DeadlinePassed():
                self._deadline_passed()
            case _:
                raise SupervisionError(
                    f"stream task got an unknown message {type(message).__name__}"
                )
        return None

    def _begin(self) -> None:
        ctx = self.ctx
        # An attempt a crashed incarnation left running delivers nothing from here on, so
        # what the caller has seen (``committed``) is settled before it is read.
        ctx.fence()
        if ctx.finished.is_set():
            # Ended while no incarnation was listening (its attempt sent Done): book it.
            self.env.task_finished(ctx.id)
            self.stop()
            return
        ctx.restarts += 1
        if ctx.restarts > 1:
            log.warning("stream_task_restarted", request_id=ctx.id, committed=ctx.committed)
            # Past the commit point a restarted task ends the request in-band (§3); before
            # it, it starts over, unless its own crashes keep recurring (a restart with its
            # supervisor counts no crash of its own).
            if ctx.committed or ctx.crashes > MAX_TASK_RESTARTS:
                self._fail(
                    ctx.cut_error
                    or ActorCrashedError("the request's stream task crashed after it began")
                )
                return
        remaining = ctx.deadline - self.env.clock.monotonic()
        self._schedule(remaining, _DeadlinePassed())
        try:
            routes = self._plan()
        except RunestoneError as exc:
            self._fail(exc)
            return
        self._queue.extend(routes)
        log.debug("routing_decision", request_id=ctx.id, plan=[str(r) for r in routes])
        self._advance()

    def _plan(self, after_context_error: Route | None = None) -> list[Route]:
        """The Router's plan for the request, from the snapshot it published last."""
        env = self.env
        snapshot = None if env.routing is None else env.routing.snapshot
        if snapshot is None:  # nothing published yet: ask
            routes: list[Route] = env.router().ask(
                PlanFor(self.ctx.request, after_context_error), timeout=env.ask_timeout
            )
            return routes
        return plan_routes(
            snapshot,
            env.directory,
            self.ctx.request,
            now=env.clock.monotonic(),
            after_context_error=after_context_error,
        )

    # -- running the plan -------------------------------------------------------------------

    def _advance(self) -> None:
        """Start the next route that grants a permit; fail when none is left."""
        while self._queue:
            route = self._queue.popleft()
            if route in self._tried:
                continue
            self._tried.add(route)
            if self.ctx.committed:
                if not self._start_continuation(route):
                    continue
                return
            if self._try(route, 1, AttemptMode.FRESH):
                return
        self._fail(
            self.ctx.cut_error
            or self._last_error
            or NoHealthyUpstreamError(
                "no candidate could take the request: every circuit is open or its provider "
                "is restarting"
            )
        )

    def _start_continuation(self, route: Route) -> bool:
        resume = self.env.resume
        if resume.prefill and route.prefill and not self.ctx.request.uses_tools:
            return self._try(route, 1, AttemptMode.PREFILL)
        if resume.replay and not self.ctx.delivered_tools:
            return self._try(route, 1, AttemptMode.REPLAY)
        return False

    def _try(self, route: Route, attempt: int, mode: AttemptMode) -> bool:
        """Take a permit and start one attempt; False when the route cannot be used now."""
        entry = self.env.directory.get(route.provider)
        if entry is None or entry.handle is None:
            self._record(route, "unavailable", mode=mode)
            return False
        try:
            permit = entry.handle.ask(Acquire(route.panic), timeout=self.env.ask_timeout)
        except SupervisionError as exc:
            log.warning("permit_unavailable", provider=route.provider, error=str(exc))
            self._record(route, "unavailable", mode=mode)
            return False
        if isinstance(permit, Refused):
            self._record(route, "circuit_open", mode=mode)
            return self._wait_for_recovery(route, attempt, mode, permit, entry)
        self._tokens += 1
        token = self._tokens
        owner = object()
        self.ctx.own(owner)
        future = self.env.data_plane.submit(
            run_attempt(entry.provider, self.ctx, route.model, mode, owner)
        )
        self._current = _Current(token, route, entry, attempt, permit, mode, future)
        self.ctx.sink.attach(future)
        own = self.actor_ref
        future.add_done_callback(lambda f: _tell(own, _AttemptEnded(token, f)))
        if mode is not AttemptMode.FRESH and self.env.metrics is not None:
            self.env.metrics.resumes.labels(mode=mode.value).inc()
        return True

    def _wait_for_recovery(
        self,
        route: Route,
        attempt: int,
        mode: AttemptMode,
        refused: Refused,
        entry: ProviderEntry,
    ) -> bool:
        """Panic mode: the last candidate is open. Rather than fail outright, wait for its
        recovery when that comes soon enough (within the deadline and the route's
        ``max_retry_after``), then ask it again."""
        if self._queue or refused.retry_at is None or mode is not AttemptMode.FRESH:
            return False
        now = self.env.clock.monotonic()
        wait = refused.retry_at - now
        if wait > entry.config.retry.max_retry_after or now + wait >= self.ctx.deadline:
            return False
        log.info("routing_panic_wait", request_id=self.ctx.id, route=str(route), wait=wait)
        self._tried.discard(route)
        self._schedule(wait, _RetryDue(route, attempt))
        return True

    def _attempt_ended(self, message: _AttemptEnded) -> None:
        current = self._current
        if current is None or message.token != current.token:
            return
        self._current = None
        handle = current.entry.handle
        assert handle is not None
        try:
            result = message.future.result()
        except concurrent.futures.CancelledError:
            _tell(handle, Release(current.permit))
            self._record(current.route, "cancelled", mode=current.mode)
            if self._gone():
                return
            self._fail(self._deadline_error())
            return
        error = result.error
        _tell(
            handle,
            Outcome(
                current.permit,
                None if error is None else error.error_class,
                result.latency,
                result.first_token,
                None if error is None else error.retry_after,
                "" if error is None else error.message[:200],
            ),
        )
        self._record(
            current.route,
            "ok" if error is None else result.outcome,
            result.latency,
            result.first_token,
            current.mode,
        )
        if error is None:
            self._succeed(current.route, result)
            return
        self._failed(current, error)

    def _failed(self, current: _Current, error: ProviderError) -> None:
        ctx = self.ctx
        if self._gone():
            return
        if ctx.committed and ctx.cut_error is None:
            ctx.cut_error = error  # the error the caller gets if no continuation works
        if current.mode is not AttemptMode.FRESH:
            self._continuation_failed(current, error)
            return
        self._last_error = error
        entry_config = current.entry.config
        retry_after = error.retry_after
        if retry_after is None and error.error_class is ErrorClass.RATE_LIMITED:
            # The breaker cools the provider down for its default: waiting less is refused.
            retry_after = entry_config.circuit_breaker.rate_limit_cooldown
        decision = decide_retry(
            entry_config.retry,
            error.error_class,
            attempt=current.attempt,
            now=self.env.clock.monotonic(),
            rng=self.env.rng,
            deadline=ctx.deadline,
            retry_after=retry_after,
            content_delivered=ctx.committed,
        )
        log.info(
            "attempt_failed",
            request_id=ctx.id,
            route=str(current.route),
            error_class=error.error_class.value,
            decision=decision.action.value,
            reason=decision.reason.value,
            delay=round(decision.delay, 3),
        )
        if decision.action is RetryAction.RETRY_SAME:
            self._tried.discard(current.route)
            self._schedule(decision.delay, _RetryDue(current.route, current.attempt + 1))
            return
        if decision.action is RetryAction.GIVE_UP:
            self._fail(ctx.cut_error if ctx.committed and ctx.cut_error else error)
            return
        if decision.reason is RetryReason.LARGER_CONTEXT:
            self._queue.clear()
            try:
                fallbacks = self._plan(after_context_error=current.route)
            except RunestoneError:
                fallbacks = []
            self._queue.extend(fallbacks)
        elif decision.reason is RetryReason.RESUME and not self._resuming:
            self._resuming = True
            # The route that was cut may continue too, but only after the others.
            self._tried.discard(current.route)
            self._queue.append(current.route)
        self._advance()

    def _continuation_failed(self, current: _Current, error: ProviderError) -> None:
        resume = self.env.resume
        # A candidate that refused the prefill is asked for the whole answer instead.
        if (
            current.mode is AttemptMode.PREFILL
            and error.error_class is ErrorClass.BAD_REQUEST
            and resume.replay
            and not self.ctx.delivered_tools
            and self._try(current.route, 1, AttemptMode.REPLAY)
        ):
            return
        self._advance()

    # -- endings ----------------------------------------------------------------------------

    def _succeed(self, route: Route, result: AttemptResult) -> None:
        # The attempt has already sent the caller its usage and Done (run_attempt).
        self._finish([], "ok", route)

    def _fail(self, error: BaseException) -> None:
        ctx = self.ctx
        if isinstance(error, ProviderError):
            event = StreamError.from_exception(error)
        else:
            event = StreamError(
                _error_class_of(error),
                str(error),
                content_delivered=ctx.committed,
            )
        event = StreamError(
            event.error_class,
            event.message,
            event.provider,
            event.model,
            event.retry_after,
            ctx.committed,
            attempts=tuple(ctx.attempts),
            kind=type(error).__name__,
        )
        self._finish([event], "error", None)

    def _finish(self, events: list[Event], outcome: str, route: Route | None) -> None:
        """End the request: send ``events`` (the terminal one last) unless sent already."""
        ctx = self.ctx
        self._cancel_timers()
        if ctx.claim_terminal() or not events:
            metrics = self.env.metrics
            if metrics is not None:
                last = ctx.attempts[-1] if ctx.attempts else None
                metrics.requests.labels(
                    "" if last is None else last.provider,
                    "" if last is None else last.model,
                    outcome,
                ).inc()
            if events:
                with contextlib.suppress(RuntimeError):  # the data plane is stopping
                    self.env.data_plane.submit(emit_events(ctx.sink, events))
            log.info(
                "request_finished",
                request_id=ctx.id,
                outcome=outcome,
                route=None if route is None else str(route),
                attempts=len(ctx.attempts),
            )
        # Also when stopped by its supervisor: the slot it held is free again.
        self.env.task_finished(ctx.id)
        if not self._stopping:
            with contextlib.suppress(pykka.ActorDeadError):  # stopped meanwhile by its supervisor
                self.stop()

    def _gone(self) -> bool:
        """The caller went away: end quietly."""
        if not self.ctx.sink.cancelled:
            return False
        self._cancel_timers()
        self.ctx.claim_terminal()
        self.env.task_finished(self.ctx.id)
        log.info("request_cancelled", request_id=self.ctx.id)
        self.stop()
        return True

    def _deadline_passed(self) -> None:
        if self.ctx.finished.is_set():
            return
        current = self._current
        if current is not None:
            current.future.cancel()  # its end arrives as a cancelled attempt
            return
        self._fail(self._deadline_error())

    def _deadline_error(self) -> ProviderError:
        return UpstreamTimeoutError(
            "the request's deadline passed before an answer was complete",
            error_class=ErrorClass.TOTAL_TIMEOUT,
            content_delivered=self.ctx.committed,
        )

    # -- helpers ----------------------------------------------------------------------------

    def _record(
        self,
        route: Route,
        outcome: str,
        latency: float = 0.0,
        first_token: float | None = None,
        mode: AttemptMode = AttemptMode.FRESH,
    ) -> None:
        self.ctx.attempts.append(
            AttemptRecord(route.provider, route.model, str(outcome), latency, first_token, mode)
        )
        metrics = self.env.metrics
        if metrics is not None:
            metrics.observe_attempt(route.provider, route.model, str(outcome), latency, first_token)

    def _schedule(self, delay: float, message: Any) -> None:
        own = self.actor_ref
        self._timers.append(self.env.clock.call_later(max(0.0, delay), lambda: _tell(own, message)))

    def _cancel_timers(self) -> None:
        timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def _abandon_attempt(self) -> None:
        current, self._current = self._current, None
        self.ctx.fence()
        if current is not None:
            current.future.cancel()
            if current.entry.handle is not None:
                _tell(current.entry.handle, Release(current.permit))


def end_unstarted(ctx: RequestContext, env: TaskEnv, error: RunestoneError) -> None:
    """End a request whose task never started: its one terminal event, and the pool told."""
    if ctx.claim_terminal():
        event = StreamError(
            _error_class_of(error),
            str(error),
            content_delivered=ctx.committed,
            attempts=tuple(ctx.attempts),
            kind=type(error).__name__,
        )
        with contextlib.suppress(RuntimeError):  # the data plane is stopping
            env.data_plane.submit(emit_events(ctx.sink, [event]))
    env.task_finished(ctx.id)


def _tell(target: Any, message: Any) -> None:
    """Tell an actor (ref or handle) that may already be gone."""
    with contextlib.suppress(Exception):
        target.tell(message)


def _error_class_of(error: BaseException) -> ErrorClass:
    if isinstance(error, ProviderError):
        return error.error_class
    if isinstance(error, NoHealthyUpstreamError):
        return ErrorClass.SERVER_ERROR
    if isinstance(error, NoCandidatesError):
        return ErrorClass.BAD_REQUEST
    return ErrorClass.SERVER_ERROR


async def emit_events(sink: Any, events: list[Event]) -> None:
    """Send ``events`` to ``sink`` (on the data plane), then end the stream."""
    for event in events:
        await sink.send(event)
    sink.finish()
