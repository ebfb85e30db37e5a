"""The supervisor: starts children in order, restarts them by strategy, escalates past intensity.

OTP semantics (``supervisor`` behaviour), on pykka:

* children start in order and stop in reverse order; a child that fails to
  start at boot stops the ones already started and fails the supervisor's start
  with :class:`ChildStartError` naming it;
* a child's exit is judged by its restart type (permanent, transient,
  temporary); when it must restart, the strategy picks who restarts with it;
* each restart counts against one intensity shared by all children; past it
  the supervisor stops its children and itself with an escalated exit, which
  its own supervisor handles by its spec;
* a notice from an incarnation that is no longer current is ignored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
import structlog

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import (
    ActorUnavailableError,
    ChildStartError,
    EscalationError,
    SupervisionError,
)
from runestone.supervisors.actor import Incarnation, StopIntent, SupervisedActor
from runestone.supervisors.exits import ChildExited, ExitKind, ExitReason
from runestone.supervisors.handle import ActorHandle, Slot, SupervisorHandle
from runestone.supervisors.intensity import IntensityPolicy, RestartIntensity
from runestone.supervisors.requests import (
    ChildCounts,
    ChildInfo,
    ChildState,
    CountChildren,
    DeleteChild,
    GetHandle,
    RestartChild,
    StartChild,
    TerminateChild,
    Tree,
    TreeNode,
    WhichChildren,
)
from runestone.supervisors.spec import ChildKind, ChildSpec, RestartType
from runestone.supervisors.store import ChildStore
from runestone.supervisors.strategies import ONE_FOR_ONE, RestartStrategy

__all__ = ["Supervisor", "SupervisorBase", "start_supervisor", "supervisor_spec"]

log = structlog.get_logger(__name__)
_std_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryRestart:
    """Try again to start children whose restart failed or was delayed."""

    child_ids: tuple[str, ...]
    counts: bool = True


class _Child:
    """What a supervisor knows of one child."""

    __slots__ = ("generation", "incarnation", "last_exit", "restarts", "slot", "spec", "started_at")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.slot = Slot(spec.id)
        self.incarnation: Incarnation | None = None
        self.generation = 0
        self.restarts = 0
        self.last_exit: ExitReason | None = None
        self.started_at: float | None = None

    def handle(self) -> ActorHandle:
        if self.spec.kind is ChildKind.SUPERVISOR:
            return SupervisorHandle(self.slot)
        return ActorHandle(self.slot)

    def retire(self, leftovers: Sequence[Any] = ()) -> None:
        """Stopped for good: reject what was held for it, and close a supervisor's store."""
        self.slot.mark(ChildState.STOPPED)
        self.slot.reject(list(leftovers))
        if self.spec.store is not None:
            self.spec.store.close()

    def abandon(self) -> None:
        """Its supervisor will never run again: a child that was to restart never will."""
        if self.slot.state is ChildState.RESTARTING:
            self.give_up()

    def give_up(self) -> None:
        """It will never run again though its work was unfinished: retire it, and tell
        whoever waits on that work (``on_abandon``)."""
        self.retire()
        if self.spec.on_abandon is not None:
            self.spec.on_abandon()


class SupervisorBase:
    """What a supervisor does, whichever kind of actor runs it: mixed into
    :class:`Supervisor` (a pykka thread actor) and the loop supervisors."""

    # Provided by the actor class it is mixed with (SupervisedActor or LoopActor).
    actor_ref: Any
    _incarnation: Incarnation | None
    _exit_reason: ExitReason | None
    _halt: Callable[[], None]

    if TYPE_CHECKING:

        @classmethod
        def start(cls, *args: Any, **kwargs: Any) -> Any: ...

    expected_exceptions: ClassVar[tuple[type[Exception], ...]] = (SupervisionError,)
    own_messages: ClassVar[tuple[type, ...]] = (RetryRestart,)

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        name: str = "supervisor",
        strategy: RestartStrategy = ONE_FOR_ONE,
        intensity: IntensityPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        store: ChildStore | None = None,
    ) -> None:
        super().__init__()
        ids = [spec.id for spec in children]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"supervisor {name!r}: duplicate child ids {duplicates}")
        self.name = name
        self.strategy = strategy
        self.intensity_policy = intensity or IntensityPolicy()
        self._clock = clock
        self._intensity = RestartIntensity(self.intensity_policy, clock)
        # The children live in the store, which outlives this incarnation: handles to them
        # stay valid across a restart of the supervisor itself.
        self._store = store or ChildStore()
        self._children: dict[str, _Child] = self._store.children
        for spec in children:
            kept = self._children.get(spec.id)
            if kept is None:
                self._children[spec.id] = _Child(spec)
            else:
                kept.spec = spec
        for child in list(self._children.values()):
            if (
                child.spec.restart is RestartType.TEMPORARY
                and child.slot.state is ChildState.RESTARTING
            ):
                # Stopped with the last incarnation of this supervisor: never restarted.
                self._children.pop(child.spec.id)
                child.abandon()
        self._started_at = clock.monotonic()

    child_events_at_debug: ClassVar[bool] = False
    """Log child starts, exits and restarts at debug (for many short-lived children)."""

    def _log_child(self, event: str, **fields: Any) -> None:
        if self.child_events_at_debug:
            if _std_log.isEnabledFor(logging.DEBUG):  # many short-lived children: no cost off
                log.debug(event, **fields)
        else:
            log.info(event, **fields)

    # -- life -------------------------------------------------------------------------------

    def on_start(self) -> None:
        started: list[_Child] = []
        for child in list(self._children.values()):
            try:
                self._start(child)
            except BaseException:
                for earlier in reversed(started):
                    self._shutdown(earlier, ChildState.STOPPED)
                raise
            started.append(child)
        log.info("supervisor_started", supervisor=self.name, children=list(self._children))

    def on_stop(self) -> None:
        # Unless stopped for good, its own supervisor decides what comes next: kept for a
        # restart, its children (and what they were sent) go to the next incarnation; the
        # store is closed if none comes.
        incarnation = self._incarnation
        for_good = incarnation is None or incarnation.stop_intent is StopIntent.FOR_GOOD
        self._shutdown_all(ChildState.STOPPED if for_good else ChildState.RESTARTING)
        log.info("supervisor_stopped", supervisor=self.name)

    def on_failure(self, *_: Any) -> None:
        # OTP: a supervisor's exit takes its children with it. Its next incarnation
        # starts them again from the store; nothing keeps running unsupervised.
        log.error("supervisor_crashed", supervisor=self.name, children=list(self._children))
        self._shutdown_all(ChildState.RESTARTING)

    def on_receive(self, message: Any) -> Any:
        match message:
            case ChildExited():
                self._on_child_exited(message)
            case RetryRestart():
                self._retry(message)
            case WhichChildren():
                return [self._info(child) for child in self._children.values()]
            case CountChildren():
                return self._counts()
            case StartChild(spec=spec):
                return self._start_new(spec)
            case TerminateChild(child_id=child_id):
                self._terminate(child_id)
            case RestartChild(child_id=child_id):
                return self._restart_terminated(child_id)
            case DeleteChild(child_id=child_id):
                self._delete(child_id)
            case GetHandle(child_id=child_id):
                return self._get(child_id).handle()
            case Tree(timeout=timeout):
                return self._tree(timeout)
            case _:
                raise SupervisionError(
                    f"supervisor {self.name!r} got an unknown message {type(message).__name__}"
                )
        return None

    # -- starting and stopping one child ---------------------------------------------------

    def _start(self, child: _Child) -> None:
        """Start one incarnation and wait for its ``on_start``; raise ChildStartError on failure."""
        spec = child.spec
        child.generation += 1
        incarnation = Incarnation(spec.id, child.generation, self._notifier())
        try:
            with incarnation.binding():
                ref = spec.start()
        except Exception as exc:
            raise ChildStartError(spec.id, exc) from exc
        if not incarnation.bound:
            stop = getattr(ref, "stop", None)
            if callable(stop):
                stop(block=False)
            raise ChildStartError(
                spec.id, f"start must start a SupervisedActor, it returned {ref!r}"
            )
        if not spec.await_start:
            pass
        elif not incarnation.settled.wait(spec.start_timeout):
            incarnation.abandon()
            raise ChildStartError(spec.id, f"on_start did not finish within {spec.start_timeout}s")
        if incarnation.start_error is not None:
            cause = incarnation.start_error
            raise ChildStartError(spec.id, cause) from cause
        child.incarnation = incarnation
        child.started_at = self._clock.monotonic()
        child.slot.install(incarnation)
        self._log_child(
            "child_started",
            supervisor=self.name,
            child_id=spec.id,
            generation=child.generation,
            kind=spec.kind.value,
        )

    def _shutdown(self, child: _Child, then: ChildState) -> None:
        """Stop the current incarnation within its shutdown timeout; its exit notice is ignored.

        ``then`` RESTARTING keeps what it was sent (and never handled) for the next
        incarnation; STOPPED rejects it to the senders.
        """
        incarnation, child.incarnation = child.incarnation, None
        child.slot.mark(then)
        if incarnation is None or incarnation.ref is None:
            if then is ChildState.STOPPED:
                child.retire()
            return
        incarnation.stop_intent = (
            StopIntent.RESTART if then is ChildState.RESTARTING else StopIntent.FOR_GOOD
        )
        try:
            incarnation.ref.stop(block=True, timeout=child.spec.shutdown)
        except pykka.Timeout:
            log.warning(
                "child_shutdown_timeout",
                supervisor=self.name,
                child_id=child.spec.id,
                timeout=child.spec.shutdown,
            )
            incarnation.abandon()
            if then is ChildState.STOPPED:
                child.retire()
            return
        incarnation.exited.wait(child.spec.shutdown)
        leftovers = incarnation.take_leftovers()
        if then is ChildState.STOPPED:
            child.retire(leftovers)
        else:
            child.slot.requeue(leftovers)

    def _shutdown_all(self, then: ChildState = ChildState.STOPPED) -> None:
        for child in reversed(list(self._children.values())):
            self._shutdown(child, then)

    # -- exits and restarts ----------------------------------------------------------------

    def _notifier(self) -> Callable[[Incarnation, ExitReason], None]:
        own_ref = self.actor_ref

        def notify(incarnation: Incarnation, reason: ExitReason) -> None:
            # When the supervisor itself is gone, nobody is left to restart anything.
            with contextlib.suppress(pykka.ActorDeadError):
                own_ref.tell(ChildExited(incarnation.child_id, incarnation.generation, reason))

        return notify

    def _on_child_exited(self, notice: ChildExited) -> None:
        child = self._children.get(notice.child_id)
        if (
            child is None
            or child.incarnation is None
            or child.incarnation.generation != notice.generation
        ):
            log.debug("late_exit_ignored", supervisor=self.name, child_id=notice.child_id)
            return
        leftovers = child.incarnation.take_leftovers()
        child.incarnation = None
        child.last_exit = notice.reason
        self._log_child(
            "child_exited",
            supervisor=self.name,
            child_id=notice.child_id,
            reason=str(notice.reason),
        )
        if not child.spec.restart.should_restart(notice.reason):
            self._retire(child)
            child.slot.reject(leftovers)
            return
        child.slot.mark(ChildState.RESTARTING)
        child.slot.requeue(leftovers)  # told before it died: the next incarnation handles them
        if not self._intensity.record():
            self._escalate()
            return
        self._restart_after_exit(child)

    def _restart_after_exit(self, child: _Child) -> None:
        """Restart ``child`` and whoever the strategy says goes with it."""
        affected = self.strategy.affected(list(self._children), child.spec.id)
        for other_id in reversed(affected):
            other = self._children[other_id]
            if other is not child and other.incarnation is not None:
                self._shutdown(other, ChildState.RESTARTING)
        for other_id in affected:
            other = self._children[other_id]
            if other is not child and other.spec.restart is RestartType.TEMPORARY:
                self._retire(other)  # stopped with its siblings, and never restarted
        restart = tuple(i for i in affected if i in self._children)
        self._restart(restart)

    def _restart(self, child_ids: tuple[str, ...]) -> None:
        """Start ``child_ids`` in order; on a failed start try again (it counts as a restart)."""
        for index, child_id in enumerate(child_ids):
            child = self._children.get(child_id)
            if child is None:
                continue
            child.restarts += 1
            try:
                self._start(child)
            except ChildStartError as exc:
                log.error(
                    "child_restart_failed",
                    supervisor=self.name,
                    child_id=child_id,
                    error=str(exc),
                )
                child.last_exit = ExitReason(ExitKind.START_FAILED, "on_start", str(exc))
                child.slot.mark(ChildState.RESTARTING)
                self.actor_ref.tell(RetryRestart(child_ids[index:]))
                return
            self._log_child(
                "child_restarted",
                supervisor=self.name,
                child_id=child_id,
                restarts=child.restarts,
            )

    def _retry(self, message: RetryRestart) -> None:
        if message.counts and not self._intensity.record():
            self._escalate()
            return
        self._restart(message.child_ids)

    def _retire(self, child: _Child) -> None:
        """A child that will not restart: temporary ones are forgotten, others kept as stopped."""
        child.retire()
        if child.spec.restart is RestartType.TEMPORARY:
            self._children.pop(child.spec.id, None)

    def _escalate(self) -> None:
        policy = self.intensity_policy
        error = EscalationError(
            f"supervisor {self.name!r} reached its restart intensity "
            f"({policy.max_restarts} restarts in {policy.max_seconds}s) and stopped"
        )
        log.error(
            "supervisor_escalated",
            supervisor=self.name,
            max_restarts=policy.max_restarts,
            max_seconds=policy.max_seconds,
        )
        # Kept for a restart: its own supervisor decides, and closes the store if it gives up.
        self._shutdown_all(ChildState.RESTARTING)
        self._exit_reason = ExitReason(ExitKind.ESCALATED, "intensity", str(error))
        self._halt()

    # -- the OTP control calls -------------------------------------------------------------

    def _get(self, child_id: str) -> _Child:
        try:
            return self._children[child_id]
        except KeyError:
            raise SupervisionError(f"supervisor {self.name!r} has no child {child_id!r}") from None

    def _start_new(self, spec: ChildSpec) -> ActorHandle:
        if spec.id in self._children:
            raise SupervisionError(f"supervisor {self.name!r} already has a child {spec.id!r}")
        child = _Child(spec)
        self._children[spec.id] = child
        try:
            self._start(child)
        except ChildStartError:
            del self._children[spec.id]
            raise
        return child.handle()

    def _terminate(self, child_id: str) -> None:
        child = self._get(child_id)
        self._shutdown(child, ChildState.STOPPED)
        if child.spec.restart is RestartType.TEMPORARY:
            del self._children[child_id]

    def _restart_terminated(self, child_id: str) -> ActorHandle:
        child = self._get(child_id)
        if child.incarnation is not None or child.slot.state is not ChildState.STOPPED:
            raise SupervisionError(
                f"child {child_id!r} of {self.name!r} is {child.slot.state.value}; "
                "only a terminated child can be restarted"
            )
        self._start(child)
        return child.handle()

    def _delete(self, child_id: str) -> None:
        child = self._get(child_id)
        if child.incarnation is not None or child.slot.state is not ChildState.STOPPED:
            raise SupervisionError(
                f"child {child_id!r} of {self.name!r} is {child.slot.state.value}; "
                "terminate it before deleting it"
            )
        del self._children[child_id]

    def _info(self, child: _Child) -> ChildInfo:
        spec = child.spec
        return ChildInfo(spec.id, child.handle(), spec.kind, spec.restart, child.slot.state)

    def _counts(self) -> ChildCounts:
        children = list(self._children.values())
        return ChildCounts(
            specs=len(children),
            active=sum(1 for c in children if c.incarnation is not None),
            supervisors=sum(1 for c in children if c.spec.kind is ChildKind.SUPERVISOR),
            workers=sum(1 for c in children if c.spec.kind is ChildKind.WORKER),
        )

    def _tree(self, timeout: float) -> TreeNode:
        now = self._clock.monotonic()
        children: list[TreeNode] = []
        for child in self._children.values():
            node: TreeNode = {
                "id": child.spec.id,
                "kind": child.spec.kind.value,
                "restart": child.spec.restart.value,
                "state": child.slot.state.value,
                "restarts": child.restarts,
                "last_exit": str(child.last_exit) if child.last_exit else None,
                "uptime": (
                    round(now - child.started_at, 3)
                    if child.started_at is not None and child.incarnation is not None
                    else None
                ),
            }
            if child.spec.kind is ChildKind.SUPERVISOR and child.incarnation is not None:
                try:
                    sub = SupervisorHandle(child.slot).ask(Tree(timeout / 2), timeout=timeout)
                    node["strategy"] = sub["strategy"]
                    node["children"] = sub["children"]
                except (ActorUnavailableError, SupervisionError) as exc:
                    node["children"] = None
                    node["error"] = str(exc)
            children.append(node)
        return {
            "id": self.name,
            "kind": ChildKind.SUPERVISOR.value,
            "state": ChildState.RUNNING.value,
            "strategy": self.strategy.name,
            "uptime": round(now - self._started_at, 3),
            "restarts_in_window": self._intensity.recent,
            "children": children,
        }


class Supervisor(SupervisorBase, SupervisedActor):
    """A pykka actor that supervises its children. Reach it through a :class:`SupervisorHandle`."""


def supervisor_spec(
    child_id: str,
    children: Sequence[ChildSpec],
    *,
    strategy: RestartStrategy = ONE_FOR_ONE,
    intensity: IntensityPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
    restart: RestartType = RestartType.PERMANENT,
    shutdown: float = 30.0,
    start_timeout: float = 30.0,
    actor_class: type[SupervisorBase] = Supervisor,
    **options: Any,
) -> ChildSpec:
    """A child spec for a nested supervisor named ``child_id`` (``actor_class`` picks the kind,
    e.g. :class:`DynamicSupervisor` with its ``max_children`` and ``backoff`` in ``options``)."""
    specs = tuple(children)
    store = ChildStore()

    def start() -> pykka.ActorRef[Any]:
        ref: pykka.ActorRef[Any] = actor_class.start(
            specs,
            name=child_id,
            strategy=strategy,
            intensity=intensity,
            clock=clock,
            store=store,
            **options,
        )
        return ref

    return ChildSpec(
        child_id,
        start,
        restart=restart,
        shutdown=shutdown,
        kind=ChildKind.SUPERVISOR,
        start_timeout=start_timeout,
        store=store,
    )


def start_supervisor(
    children: Sequence[ChildSpec] = (),
    *,
    name: str = "root",
    strategy: RestartStrategy = ONE_FOR_ONE,
    intensity: IntensityPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
    on_exit: Callable[[ExitReason], None] | None = None,
    start_timeout: float = 30.0,
    actor_class: type[SupervisorBase] = Supervisor,
    **kwargs: Any,
) -> SupervisorHandle:
    """Start a top-level supervisor and return its handle.

    Raises :class:`ChildStartError` (naming the child) when a child fails to
    start; the children already started are stopped first. ``on_exit`` hears
    how the supervisor ended (for a root: an escalation nobody above handles).
    """
    slot = Slot(name)
    store = ChildStore()

    def exited(incarnation: Incarnation, reason: ExitReason) -> None:
        slot.mark(ChildState.STOPPED)
        store.close()  # nobody restarts a top-level supervisor
        if on_exit is not None:
            on_exit(reason)

    incarnation = Incarnation(name, 1, exited)
    with incarnation.binding():
        actor_class.start(
            children,
            name=name,
            strategy=strategy,
            intensity=intensity,
            clock=clock,
            store=store,
            **kwargs,
        )
    if not incarnation.settled.wait(start_timeout):
        incarnation.abandon()
        raise ChildStartError(name, f"did not start within {start_timeout}s")
    if incarnation.start_error is not None:
        incarnation.exited.wait(start_timeout)
        error = incarnation.start_error
        if isinstance(error, ChildStartError):
            raise ChildStartError(error.child_id, error.cause) from error
        raise ChildStartError(name, error) from error
    slot.install(incarnation)
    return SupervisorHandle(slot)
