"""The supervised actor: pykka's ThreadingActor with every way of dying reported.

pykka leaves holes a supervisor cannot see through (ARCHITECTURE §9): an
exception in an ``ask`` handler leaves the actor running with whatever state the
handler broke; a failing ``on_start`` calls no hook; a ``BaseException`` in a
handler stops every actor in the process. :class:`SupervisedActor` closes them:

* any exception in a handler, reached by ``tell`` or by ``ask``, ends the actor
  (let it crash); the asker still receives the exception;
* a ``BaseException`` is converted into :class:`ActorCrashedError` and ends only
  this actor;
* failures in ``on_start``, ``on_stop`` and ``on_failure`` are exits too;
* every exit, whatever its cause, is reported exactly once to the
  :class:`Incarnation` the supervisor bound the actor to.

Exception types listed in ``expected_exceptions`` are answers, not crashes: they
reach the asker and the actor keeps running.
"""

from __future__ import annotations

import enum
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol

import pykka
import structlog
from pykka import messages as pykka_messages
from pykka._envelope import Envelope  # pykka's inbox item; its loop is ours to extend

from runestone.exceptions import ActorCrashedError
from runestone.supervisors.delivery import reject
from runestone.supervisors.exits import ExitReason

__all__ = ["Incarnation", "LazyEvent", "StopIntent", "SupervisedActor"]

log = structlog.get_logger(__name__)

_binding = threading.local()


class StopIntent(enum.StrEnum):
    """Why an incarnation is being stopped by someone else."""

    RESTART = "restart"
    """Its supervisor starts another incarnation: what it holds is kept for that one."""
    FOR_GOOD = "for_good"
    """Retired, or a top-level stop: what it was sent is rejected to the senders."""


_event_lock = threading.Lock()


class LazyEvent:
    """A ``threading.Event`` that costs a flag until someone waits on it.

    An incarnation's ``settled`` and ``exited`` are set once per child life, and
    short-lived loop children never have a thread waiting on either: a real Event
    (a lock, a condition, a notify on every set) is made only for a waiter.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        with _event_lock:
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        # Set between the first look and the event's making, the setter saw no event.
        return self.is_set() or event.wait(timeout) or self.is_set()


class _Actor(Protocol):
    """What an incarnation needs of its actor, of either kind (thread or loop)."""

    @property
    def actor_ref(self) -> Any: ...

    def _abandon(self) -> None: ...

    def _unhandled_tells(self) -> list[Any]: ...


def bound_incarnation() -> Incarnation | None:
    """The incarnation the actor being built belongs to (see :meth:`Incarnation.binding`);
    only the first actor built in the block is the child."""
    incarnation: Incarnation | None = getattr(_binding, "incarnation", None)
    _binding.incarnation = None
    return incarnation


class _Wake:
    """Put in an abandoned actor's inbox so its loop wakes up and ends."""


class Incarnation:
    """One life of a supervised child: its ref, whether it started, how it ended.

    Made by the supervisor before the child's ``start`` callable runs; the
    actor constructed inside :meth:`binding` attaches itself to it.
    """

    def __init__(
        self,
        child_id: str,
        generation: int,
        on_exit: Callable[[Incarnation, ExitReason], None],
    ) -> None:
        self.child_id = child_id
        self.generation = generation
        self._on_exit = on_exit
        self.ref: pykka.ActorRef[Any] | None = None
        self.start_error: BaseException | None = None
        self.exit_reason: ExitReason | None = None
        self.settled = LazyEvent()
        """Set once ``on_start`` has returned or raised."""
        self.exited = LazyEvent()
        """Set once the actor has stopped and its supervisor has been told."""
        self.stop_intent: StopIntent | None = None
        """Why whoever stops this incarnation does so; None when it stops on its own (or its
        ref is stopped directly), which leaves the next step to its supervisor."""
        self._leftovers: list[Any] = []
        self._actor: _Actor | None = None

    @contextmanager
    def binding(self) -> Iterator[None]:
        """Bind the first :class:`SupervisedActor` constructed in this block to this incarnation."""
        _binding.incarnation = self
        try:
            yield
        finally:
            _binding.incarnation = None

    @property
    def bound(self) -> bool:
        return self._actor is not None

    def abandon(self) -> None:
        """Give up on a child that ignored stop: it ends after its current handler returns."""
        actor = self._actor
        if actor is not None:
            actor._abandon()

    def take_leftovers(self) -> list[Any]:
        """The told messages this incarnation never handled, in the order they were sent.

        Read once the actor has exited: what its teardown found in the inbox, then
        anything told in the moment between its last check and its death.
        """
        leftovers, self._leftovers = self._leftovers, []
        actor = self._actor
        if actor is not None:
            leftovers.extend(actor._unhandled_tells())
        return leftovers

    def _attach(self, actor: _Actor) -> None:
        self._actor = actor
        self.ref = actor.actor_ref

    def _settle(self, error: BaseException | None) -> None:
        self.start_error = error
        self.settled.set()

    def _exit(self, reason: ExitReason) -> None:
        self.exit_reason = reason
        self.settled.set()
        try:
            self._on_exit(self, reason)
        finally:
            self.exited.set()

    def __repr__(self) -> str:
        return f"<Incarnation {self.child_id}#{self.generation}>"


class CrashReporting:
    """How an actor of either kind (thread or loop) dies of an exception: its exit
    reason recorded once, the crash logged, ``on_failure`` called, the actor halted."""

    _incarnation: Incarnation | None
    _exit_reason: ExitReason | None

    # Provided by the actor class it is mixed into.
    _halt: Callable[[], None]
    on_failure: Callable[..., None]

    def _crash(self, exc_type: Any, exc: BaseException, tb: Any) -> Exception:
        """End this actor because of ``exc``; return what the asker should receive."""
        error: Exception
        if isinstance(exc, pykka.ActorDeadError) or not isinstance(exc, Exception):
            # ActorDeadError would tell a handle "never delivered, try the next
            # incarnation"; it was delivered and crashed this one, so wrap it.
            error = ActorCrashedError(f"{type(exc).__name__} in {self}: {exc}")
            error.__cause__ = exc
        else:
            error = exc
        self._die(exc, phase="handler")
        try:
            self.on_failure(exc_type, exc, tb)
        except BaseException as hook_exc:  # noqa: BLE001 - a failing hook must not escape
            log.error("actor_on_failure_failed", actor=str(self), error=repr(hook_exc))
        return error

    def _die(self, exc: BaseException, *, phase: str) -> None:
        if self._exit_reason is None:
            self._exit_reason = ExitReason.from_exception(exc, phase=phase)
        log.error(
            "actor_crashed",
            actor=str(self),
            child_id=self._incarnation.child_id if self._incarnation else None,
            phase=phase,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        self._halt()


class SupervisedActor(CrashReporting, pykka.ThreadingActor):
    """Base class for every actor a Runestone supervisor runs. See the module docstring."""

    expected_exceptions: ClassVar[tuple[type[Exception], ...]] = ()
    """Exception types a handler may raise to answer an ``ask`` without crashing."""

    own_messages: ClassVar[tuple[type, ...]] = ()
    """Types of the messages an actor tells itself (timers, its attempts' ends): they
    mean something only to the incarnation that sent them, so when it dies they are
    dropped, never handed to the next one with the rest of its unhandled inbox."""

    def __init__(self) -> None:
        super().__init__()
        incarnation = bound_incarnation()
        self._incarnation = incarnation
        self._exit_reason: ExitReason | None = None
        if incarnation is not None:
            incarnation._attach(self)

    # -- pykka's loop, with every exit accounted for ------------------------------------

    def _actor_loop(self) -> None:
        try:
            self._actor_loop_setup()
            self._actor_loop_running()
        finally:
            self._actor_loop_teardown()
            reason = self._exit_reason or ExitReason.normal()
            if self._incarnation is not None:
                self._incarnation._exit(reason)

    def _actor_loop_teardown(self) -> None:
        # pykka answers waiting askers with ActorDeadError (a handle then asks the next
        # incarnation) and drops told messages; ours keeps those for the supervisor.
        tells = self._unhandled_tells()
        if self._incarnation is not None:
            self._incarnation._leftovers.extend(tells)
        elif tells:
            reject(tells, ActorCrashedError(f"{self} stopped before handling them"))

    def _unhandled_tells(self) -> list[Any]:
        tells: list[Any] = []
        while not self.actor_inbox.empty():
            envelope = self.actor_inbox.get()
            message = envelope.message
            if envelope.reply_to is not None:
                if isinstance(message, pykka_messages._ActorStop):  # pykka's private stop message
                    envelope.reply_to.set(None)
                else:
                    dead = pykka.ActorDeadError(f"{self.actor_ref} stopped before handling it")
                    envelope.reply_to.set_exception((pykka.ActorDeadError, dead, None))
            elif not isinstance(message, (_Wake, pykka_messages._ActorStop, *self.own_messages)):
                tells.append(message)
        return tells

    @property
    def stopping_for_restart(self) -> bool:
        """Stopped by its supervisor to be started again (not for good)."""
        incarnation = self._incarnation
        return incarnation is not None and incarnation.stop_intent is StopIntent.RESTART

    def _actor_loop_setup(self) -> None:
        try:
            self.on_start()
        except BaseException as exc:  # noqa: BLE001 - every failure of on_start is an exit
            self._die(exc, phase="on_start")
            if self._incarnation is not None:
                self._incarnation._settle(exc)
        else:
            if self._incarnation is not None:
                self._incarnation._settle(None)

    def _actor_loop_running(self) -> None:
        while not self.actor_stopped.is_set():
            envelope = self.actor_inbox.get()
            if self.actor_stopped.is_set():
                # Abandoned while waiting: leave the message to the teardown, which
                # answers an asker with ActorDeadError.
                self.actor_inbox.put(envelope)
                break
            try:
                response = self._handle_receive(envelope.message)
            except self.expected_exceptions:
                if envelope.reply_to is None:
                    self._crash(*sys.exc_info())
                else:
                    envelope.reply_to.set_exception()
            except BaseException as exc:  # noqa: BLE001 - converted, never escapes the actor
                error = self._crash(type(exc), exc, exc.__traceback__)
                if envelope.reply_to is not None:
                    envelope.reply_to.set_exception((type(error), error, error.__traceback__))
            else:
                if envelope.reply_to is not None:
                    envelope.reply_to.set(response)

    def _abandon(self) -> None:
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        # An idle actor waits on its inbox: wake it so it sees it is stopped.
        self.actor_inbox.put(Envelope(_Wake()))

    def _halt(self) -> None:
        """End without ``on_stop`` (a supervisor escalating): the loop exits after this handler."""
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def _stop(self) -> None:
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        try:
            self.on_stop()
        except BaseException as exc:  # noqa: BLE001 - a failing on_stop is an abnormal exit
            self._die(exc, phase="on_stop")

    def _handle_receive(self, message: Any) -> Any:
        if isinstance(message, pykka_messages._ActorStop):  # pykka's private stop message
            return self._stop()
        return super()._handle_receive(message)
