"""The stream task: one short-lived loop actor per request, running its plan to one terminal event.

It lives on the data-plane loop (a :class:`~runestone.supervisors.LoopActor`
under the Pool's task supervisor), so the happy path crosses no thread: it plans
from the Router's published snapshot, takes a permit from each candidate's gate
(asking the provider actor, without waiting, only when the gate says so), runs
the attempt as a task on the same loop and tells the provider actor the outcome.
It retries (backoff with jitter, ``Retry-After`` honoured), fails over, and past
the commit point continues a cut stream by prefill or replay where allowed
(ARCHITECTURE §3). Whatever happens the caller gets exactly one terminal event
within the request's deadline. A restarted task picks the request up again: it
starts over while nothing reached the caller, and ends it in-band otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import structlog

from runestone.actors.provider import Acquire, Refused, Release
from runestone.clock import Cancellable, Clock
from runestone.directory import Directory, ProviderEntry
from runestone.exceptions import (
    ActorCrashedError,
    ErrorClass,
    ErrorKind,
    NoCandidatesError,
    NoCandidatesReason,
    NoHealthyUpstreamError,
    ProviderError,
    RunestoneError,
    SupervisionError,
    SupervisionReason,
    UpstreamTimeoutError,
)
from runestone.messages import Event, StreamError
from runestone.request import (
    AttemptMode,
    AttemptOutcome,
    InFlight,
    OutcomeKind,
    RequestContext,
    RequestOutcome,
    run_attempt,
)
from runestone.resilience import Permit, RetryAction, RetryReason, decide_retry
from runestone.routing import Route, RoutingBoard, plan_routes
from runestone.supervisors import ActorHandle, LoopActor

if TYPE_CHECKING:
    from runestone.config import ResumeConfig
    from runestone.io import DataPlane
    from runestone.metrics import Metrics

__all__ = [
    "StreamTask",
    "TaskEnv",
    "emit_events",
    "end_unstarted",
    "expire",
    "terminal_error",
]

log = structlog.get_logger(__name__)
_std_log = logging.getLogger(__name__)

MAX_TASK_RESTARTS = 2
"""A request whose task keeps crashing ends in-band rather than restarting forever."""

GUARD_GRACE = 5.0
"""Seconds past a request's deadline before it is ended without its task (which should have)."""


@dataclass(frozen=True, slots=True)
class _Begin:
    pass


@dataclass(frozen=True, slots=True)
class _AttemptEnded:
    token: int
    task: asyncio.Task[AttemptOutcome]


@dataclass(frozen=True, slots=True)
class _RetryDue:
    route: Route
    attempt: int


@dataclass(frozen=True, slots=True)
class _DeadlinePassed:
    pass


@dataclass(frozen=True, slots=True)
class _PermitAnswer:
    """The provider actor's answer to a task's ``Acquire``."""

    ask: int
    answer: Permit | Refused | BaseException
    entry: ProviderEntry

    def undeliverable(self, error: BaseException) -> None:
        """The task died with it unread: a permit it carries is given back."""
        if isinstance(self.answer, Permit) and self.entry.handle is not None:
            _tell(self.entry.handle, Release(self.answer))


@dataclass(frozen=True, slots=True)
class _PermitTimeout:
    ask: int


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
    task: asyncio.Task[AttemptOutcome]


@dataclass
class _Asking:
    """A permit asked of a provider actor, whose answer has not come back yet."""

    ask: int
    route: Route
    entry: ProviderEntry
    attempt: int
    mode: AttemptMode


class StreamTask(LoopActor):
    """Runs one request (see the module docstring)."""

    own_messages: ClassVar[tuple[type, ...]] = (
        _Begin,
        _AttemptEnded,
        _RetryDue,
        _DeadlinePassed,
        _PermitAnswer,
        _PermitTimeout,
    )

    def __init__(self, ctx: RequestContext, env: TaskEnv) -> None:
        super().__init__()
        self.ctx = ctx
        self.env = env
        self._queue: deque[Route] = deque()
        self._tried: set[Route] = set()
        self._rewaited: set[tuple[Route, int]] = set()
        self._current: _Current | None = None
        self._asking: _Asking | None = None
        self._tokens = 0
        self._last_error: ProviderError | None = None
        self._resuming = False
        self._stopping = False
        self._timers: list[Cancellable] = []

    # -- life -------------------------------------------------------------------------------

    def on_start(self) -> None:
        # The work happens in a handler, where a crash is a restart, not a failed start.
        self.actor_ref.tell(_Begin())

    def on_failure(self, *_: Any) -> None:
        self.ctx.crashes += 1
        self._let_go()

    def on_stop(self) -> None:
        if self.stopping_for_restart:
            # Its supervisor went down and starts it again: the next incarnation picks the
            # request up (from scratch, or ends it in-band past the commit point).
            self._let_go()
            return
        # Stopped by its supervisor (shutdown, or the task supervisor giving up) before the
        # request ended: the caller still gets its one terminal event.
        if not self.ctx.finished.is_set():
            self._let_go()
            self._stopping = True
            self._fail(
                SupervisionError(
                    "the request was stopped before it finished (shutdown)",
                    reason=SupervisionReason.SHUTTING_DOWN,
                )
            )
        # Ended already (its attempt sent Done) but not yet booked: free its slot anyway.
        self.env.task_finished(self.ctx.id)

    def _let_go(self) -> None:
        """This incarnation is done with the request: its attempt, permit and timers go."""
        self._abandon_attempt()
        self._cancel_timers()
        if self.ctx.on_deadline == self._deadline_hook:
            self.ctx.on_deadline = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case _AttemptEnded():
                self._attempt_ended(message)
            case _PermitAnswer():
                self._permit_answered(message)
            case _Begin():
                self._begin()
            case _RetryDue(route=route, attempt=attempt):
                if not self._gone() and not self._try(route, attempt, AttemptMode.FRESH):
                    self._advance()
            case _DeadlinePassed():
                self._deadline_passed()
            case _PermitTimeout(ask=ask):
                self._permit_timed_out(ask)
            case _:
                raise SupervisionError(
                    f"stream task got an unknown message {type(message).__name__}"
                )
        return None

    def _deadline_hook(self) -> bool:
        """Called by the request's one deadline timer (on the loop): tell this incarnation."""
        return _tell(self.actor_ref, _DeadlinePassed())

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
        if ctx.deadline <= self.env.clock.monotonic():
            self._fail(self._deadline_error())
            return
        # The request's one deadline timer (armed at admission) reaches this incarnation.
        ctx.on_deadline = self._deadline_hook
        try:
            routes = self._plan()
        except RunestoneError as exc:
            self._fail(exc)
            return
        self._queue.extend(routes)
        if _std_log.isEnabledFor(logging.DEBUG):
            log.debug("routing_decision", request_id=ctx.id, plan=[str(r) for r in routes])
        self._advance()

    def _plan(self, after_context_error: Route | None = None) -> list[Route]:
        """The Router's plan for the request, from the snapshot it published last."""
        env = self.env
        snapshot = None if env.routing is None else env.routing.snapshot
        if snapshot is None:
            raise NoHealthyUpstreamError(
                "routing is not ready yet: the Router has not started",
                reason=NoCandidatesReason.NOT_READY,
            )
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
        native = self.ctx.request.native
        if native is not None and native.only_native:
            return False  # only a pass-through can carry the request: none can continue it
        resume = self.env.resume
        if (
            resume.prefill
            and route.prefill
            and not self.ctx.request.uses_tools
            and not self.ctx.delivered_tools
        ):
            return self._try(route, 1, AttemptMode.PREFILL)
        if resume.replay and not self.ctx.delivered_tools:
            return self._try(route, 1, AttemptMode.REPLAY)
        return False

    def _try(self, route: Route, attempt: int, mode: AttemptMode) -> bool:
        """Take a permit and start one attempt, or ask for one; False when the route cannot
        be used now."""
        entry = self.env.directory.get(route.provider)
        if entry is None or entry.handle is None:
            self._record(route, OutcomeKind.UNAVAILABLE, mode=mode)
            return False
        permit = None if route.panic else entry.gate.grant(self.env.clock.monotonic())
        if permit is not None:
            self._start_attempt(route, entry, attempt, mode, permit)
            return True
        # The gate wants the actor's word (open, half-open, cooling, forced, draining):
        # asked without waiting, its answer comes back into this mailbox.
        self._tokens += 1
        ask = self._tokens
        own = self.actor_ref

        def reply(answer: Permit | Refused | BaseException) -> None:
            message = _PermitAnswer(ask, answer, entry)
            if not _tell(own, message):
                message.undeliverable(SupervisionError("the stream task is gone"))

        try:
            entry.handle.tell(Acquire(route.panic, reply))
        except SupervisionError as exc:
            log.warning("permit_unavailable", provider=route.provider, error=str(exc))
            self._record(route, OutcomeKind.UNAVAILABLE, mode=mode)
            return False
        self._asking = _Asking(ask, route, entry, attempt, mode)
        self._schedule(self.env.ask_timeout, _PermitTimeout(ask))
        return True

    def _permit_answered(self, message: _PermitAnswer) -> None:
        asking = self._asking
        answer = message.answer
        if asking is None or asking.ask != message.ask:
            message.undeliverable(SupervisionError("asked too late"))  # a permit is given back
            return
        self._asking = None
        if self._gone():
            message.undeliverable(SupervisionError("the caller went away"))
            return
        route, mode = asking.route, asking.mode
        if isinstance(answer, Permit):
            self._start_attempt(route, asking.entry, asking.attempt, mode, answer)
            return
        if isinstance(answer, Refused):
            if self._wait_out_cooldown(asking, answer):
                return
            self._record(route, OutcomeKind.CIRCUIT_OPEN, mode=mode)
            if self._wait_for_recovery(route, asking.attempt, mode, answer, asking.entry):
                return
        else:
            log.warning("permit_unavailable", provider=route.provider, error=str(answer))
            self._record(route, OutcomeKind.UNAVAILABLE, mode=mode)
        if not self._gone():
            self._advance()

    def _permit_timed_out(self, ask: int) -> None:
        asking = self._asking
        if asking is None or asking.ask != ask:
            return
        self._asking = None
        log.warning(
            "permit_unavailable",
            provider=asking.route.provider,
            error=f"no answer within {self.env.ask_timeout}s",
        )
        self._record(asking.route, OutcomeKind.UNAVAILABLE, mode=asking.mode)
        if not self._gone():
            self._advance()

    def _start_attempt(
        self, route: Route, entry: ProviderEntry, attempt: int, mode: AttemptMode, permit: Permit
    ) -> None:
        self._tokens += 1
        token = self._tokens
        owner = object()
        ctx = self.ctx
        ctx.own(owner)
        gate = entry.gate
        gate.in_flight += 1
        task = self._loop.create_task(run_attempt(entry.provider, ctx, route.model, mode, owner))
        self._current = _Current(token, route, entry, attempt, permit, mode, task)
        ctx.sink.attach(task)
        own = self.actor_ref

        def ended(done: asyncio.Task[AttemptOutcome]) -> None:
            gate.in_flight -= 1  # at once, whatever became of this task
            _tell(own, _AttemptEnded(token, done))

        task.add_done_callback(ended)
        if mode is not AttemptMode.FRESH and self.env.metrics is not None:
            self.env.metrics.resumes.labels(mode=mode.value).inc()

    def _wait_out_cooldown(self, asking: _Asking, refused: Refused) -> bool:
        """A retry that waited out its route's cooldown is refused for a cooldown that is
        still running: the provider actor booked it a moment after the retry was timed (an
        outcome is told, not asked). Wait the rest once, rather than fail over a request
        the route was about to take."""
        key = (asking.route, asking.attempt)
        if asking.attempt < 2 or asking.mode is not AttemptMode.FRESH or key in self._rewaited:
            return False
        wait = self._recovery_wait(refused, asking.entry)
        if wait is None:
            return False
        self._rewaited.add(key)
        self._tried.discard(asking.route)
        self._schedule(max(0.0, wait), _RetryDue(asking.route, asking.attempt))
        return True

    def _recovery_wait(self, refused: Refused, entry: ProviderEntry) -> float | None:
        """How long until ``refused``'s breaker admits again, when that is worth waiting
        for: known, within the route's ``max_retry_after``, and before the deadline."""
        if refused.retry_at is None:
            return None
        now = self.env.clock.monotonic()
        wait = refused.retry_at - now
        if wait > entry.config.retry.max_retry_after or now + wait >= self.ctx.deadline:
            return None
        return wait

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
        if self._queue or mode is not AttemptMode.FRESH:
            return False
        wait = self._recovery_wait(refused, entry)
        if wait is None:
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
        if message.task.cancelled():
            _tell(handle, Release(current.permit))
            self._record(current.route, OutcomeKind.CANCELLED, mode=current.mode)
            if self._gone():
                return
            self._fail(self._deadline_error())
            return
        outcome = replace(
            message.task.result(),
            provider=current.route.provider,
            model=current.route.model,
            mode=current.mode,
            permit=current.permit,
        )
        # Booked by the provider actor, off the loop: its breaker, health and metrics.
        _tell(handle, outcome)
        self.ctx.attempts.append(outcome)
        if outcome.error is None:
            self._succeed(current.route)
            return
        self._failed(current, outcome.error)

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

    def _succeed(self, route: Route) -> None:
        # The attempt has already sent the caller its usage and Done (run_attempt).
        self._finish([], RequestOutcome.OK, route)

    def _fail(self, error: BaseException) -> None:
        self._finish([terminal_error(self.ctx, error)], RequestOutcome.ERROR, None)

    def _finish(self, events: list[Event], outcome: RequestOutcome, route: Route | None) -> None:
        """End the request: send ``events`` (the terminal one last) unless sent already."""
        ctx = self.ctx
        self._cancel_timers()
        ctx.on_deadline = None
        if ctx.claim_terminal() or not events:
            metrics = self.env.metrics
            if metrics is not None:
                last = ctx.attempts[-1] if ctx.attempts else None
                metrics.count_request(
                    "" if last is None else last.provider,
                    "" if last is None else last.model,
                    outcome,
                )
            if events:
                emit_events(ctx.sink, events)
            if _std_log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "request_finished",
                    request_id=ctx.id,
                    outcome=outcome,
                    route=None if route is None else str(route),
                    attempts=len(ctx.attempts),
                )
        # Also when stopped by its supervisor: the slot it held is free again.
        self.env.task_finished(ctx.id)
        if not self._stopping:
            self.stop()

    def _gone(self) -> bool:
        """The caller went away: end quietly."""
        if not self.ctx.sink.cancelled:
            return False
        self._cancel_timers()
        self.ctx.on_deadline = None
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
            current.task.cancel()  # its end arrives as a cancelled attempt
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
        self, route: Route, kind: OutcomeKind, mode: AttemptMode = AttemptMode.FRESH
    ) -> None:
        """An attempt that never reached its provider actor (unavailable, refused, cancelled)."""
        outcome = AttemptOutcome(route.provider, route.model, kind, mode=mode)
        self.ctx.attempts.append(outcome)
        metrics = self.env.metrics
        if metrics is not None:
            metrics.observe_attempt(outcome)

    def _schedule(self, delay: float, message: Any) -> None:
        own = self.actor_ref

        def due() -> None:
            _tell(own, message)

        self._timers.append(self.env.clock.call_later(max(0.0, delay), due))

    def _cancel_timers(self) -> None:
        timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def _abandon_attempt(self) -> None:
        current, self._current = self._current, None
        self._asking = None  # its answer, should it come, gives its permit back
        self.ctx.fence()
        if current is not None:
            current.task.cancel()
            if current.entry.handle is not None:
                _tell(current.entry.handle, Release(current.permit))


def end_unstarted(ctx: RequestContext, env: TaskEnv, error: RunestoneError) -> None:
    """End a request whose task never started: its one terminal event, and its slot freed."""
    if ctx.claim_terminal():
        emit_events(ctx.sink, [terminal_error(ctx, error)])
    env.task_finished(ctx.id)


def expire(ctx: RequestContext, env: TaskEnv) -> None:
    """The request's one deadline timer fired: its task ends it (cancelling its attempt);
    with no task to tell, or one that still has not ended it ``GUARD_GRACE`` later, it is
    ended here."""
    if ctx.finished.is_set():
        return
    hook, ctx.on_deadline = ctx.on_deadline, None
    if hook is not None and hook():
        ctx.guard = env.clock.call_later(GUARD_GRACE, lambda: expire(ctx, env))
        return
    if not ctx.claim_terminal():
        return
    log.error("request_ended_by_guard", request_id=ctx.id)
    event = StreamError(
        ErrorClass.TOTAL_TIMEOUT,
        "the request's deadline passed and its stream task never ended it",
        content_delivered=ctx.committed,
        attempts=tuple(ctx.attempts),
        kind=ErrorKind.SUPERVISION_ERROR,
    )
    emit_events(ctx.sink, [event])
    env.task_finished(ctx.id)


def _tell(target: Any, message: Any) -> bool:
    """Tell an actor (ref or handle) that may already be gone; False if it is."""
    try:
        target.tell(message)
    except Exception:  # noqa: BLE001 - gone, stopped or unreachable: the caller decides
        return False
    return True


def terminal_error(ctx: RequestContext, error: BaseException) -> StreamError:
    """The request's one terminal event for ``error``: its class, kind and reason, whether
    content reached the caller, and every attempt made.

    It never raises: it is the last thing a failing request does, and a crash here would
    leave its caller waiting for the deadline guard (each restart would crash again).
    """
    try:
        event = StreamError.from_exception(error, error_class=_error_class_of(error))
        return msgspec.structs.replace(
            event,
            content_delivered=ctx.committed,
            attempts=tuple(ctx.attempts),
            kind=ErrorKind.of(error),
        )
    except Exception:  # the caller gets an answer whatever failed here (logged)
        log.exception("terminal_error_unreportable", request_id=ctx.id)
        return StreamError(
            ErrorClass.INTERNAL,
            f"the request failed with a {type(error).__name__} that could not be reported",
            content_delivered=ctx.committed,
            attempts=tuple(ctx.attempts),
            kind=ErrorKind.SUPERVISION_ERROR,
        )


def _error_class_of(error: BaseException) -> ErrorClass:
    if isinstance(error, ProviderError):
        return error.error_class
    if isinstance(error, NoHealthyUpstreamError):
        return ErrorClass.SERVER_ERROR
    if isinstance(error, NoCandidatesError):
        return ErrorClass.BAD_REQUEST
    return ErrorClass.SERVER_ERROR


def emit_events(sink: Any, events: list[Event]) -> None:
    """Send ``events`` to ``sink`` without waiting (from any thread), then end the stream."""
    with contextlib.suppress(RuntimeError):  # the consumer's loop is closed
        for event in events:
            sink.put(event)
        sink.finish()
