"""The loop actor: a supervised actor whose handlers run on an asyncio event loop.

pykka's actors are threads, and a thread per short-lived child (a stream task
per request) caps concurrency and costs a wake-up per message. A
:class:`LoopActor` has no thread: its mailbox is a queue drained by a callback
on the data-plane loop, so a message told from the loop itself costs one
``call_soon`` and no thread crossing. It keeps every promise of
:class:`~runestone.supervisors.actor.SupervisedActor`:

* any exception in a handler, reached by ``tell`` or ``ask``, ends the actor
  and is reported to its :class:`Incarnation` (the asker still gets it);
  ``expected_exceptions`` are answers, not crashes;
* a ``BaseException`` is converted into :class:`ActorCrashedError` and ends
  only this actor: nothing escapes into the loop;
* failures in ``on_start``, ``on_stop`` and ``on_failure`` are exits too;
* told messages left unhandled at its death go to its incarnation (the next one
  handles them), but for its ``own_messages``; asks get ``ActorDeadError``.

A loop actor must never block: its handlers run on the loop. Its ref may be used
from any thread; ``ask`` and a blocking ``stop`` wait only off the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections import deque
from typing import Any, ClassVar

import pykka
import structlog

from runestone.exceptions import ActorCrashedError
from runestone.supervisors.actor import (
    CrashReporting,
    Incarnation,
    StopIntent,
    bound_incarnation,
)
from runestone.supervisors.delivery import Rejectable, reject
from runestone.supervisors.exits import ExitReason

__all__ = ["LoopActor", "LoopActorRef", "live_loop_actors"]

log = structlog.get_logger(__name__)

_live: set[LoopActor] = set()
_live_lock = threading.Lock()


def live_loop_actors() -> list[LoopActor]:
    """The loop actors started and not yet exited (pykka's registry, for this kind)."""
    with _live_lock:
        return list(_live)


_BATCH = 64
"""Messages handled per turn of the loop before the actor yields to other callbacks."""


class _Stop:
    """The stop request, queued behind what was told before it (as pykka's is)."""

    __slots__ = ("done",)

    def __init__(self, done: concurrent.futures.Future[None] | None) -> None:
        self.done = done


class _Envelope:
    __slots__ = ("message", "reply")

    def __init__(self, message: Any, reply: concurrent.futures.Future[Any] | None) -> None:
        self.message = message
        self.reply = reply


class LoopActorRef:
    """The handle-facing side of a :class:`LoopActor` (what a pykka ``ActorRef`` is)."""

    __slots__ = ("_actor",)

    def __init__(self, actor: LoopActor) -> None:
        self._actor = actor

    @property
    def actor_class(self) -> type[LoopActor]:
        return type(self._actor)

    def is_alive(self) -> bool:
        return not self._actor._stopped

    def tell(self, message: Any) -> None:
        """Queue ``message``; raises ``pykka.ActorDeadError`` once the actor has stopped."""
        self._actor._post(_Envelope(message, None))

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Send ``message`` and wait (off the loop) for the handler's answer."""
        reply: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._actor._post(_Envelope(message, reply))
        if not block:
            return reply
        if self._actor._on_loop():
            raise RuntimeError(f"{self}: a blocking ask from its own loop would never return")
        try:
            return reply.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            raise pykka.Timeout(f"{self} did not answer within {timeout}s") from exc

    def stop(self, block: bool = True, timeout: float | None = None) -> bool:
        """Stop the actor after what was told before; True if it was alive.

        On its own loop the stop happens at once (the loop cannot wait for itself).
        """
        actor = self._actor
        if actor._stopped:
            return False
        if actor._on_loop():
            actor._stop_now()
            return True
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            actor._post(_Envelope(_Stop(done), None))
        except pykka.ActorDeadError:
            return False
        if block:
            try:
                done.result(timeout)
            except concurrent.futures.TimeoutError as exc:
                raise pykka.Timeout(f"{self} did not stop within {timeout}s") from exc
        return True

    def __repr__(self) -> str:
        return f"<LoopActorRef {self._actor}>"


class LoopActor(CrashReporting):
    """Base class for actors that live on an event loop. See the module docstring."""

    expected_exceptions: ClassVar[tuple[type[Exception], ...]] = ()
    """Exception types a handler may raise to answer an ``ask`` without crashing."""

    own_messages: ClassVar[tuple[type, ...]] = ()
    """Types of the messages an actor tells itself: dropped when it dies."""

    _loop: asyncio.AbstractEventLoop

    def __init__(self) -> None:
        self._incarnation: Incarnation | None = bound_incarnation()
        self._exit_reason: ExitReason | None = None
        self._inbox: deque[_Envelope] = deque()
        self._inbox_lock = threading.Lock()
        self._scheduled = False
        self._started = False
        self._stopped = False
        self._stop_requested = False
        self._exited = False
        self.actor_ref = LoopActorRef(self)
        if self._incarnation is not None:
            self._incarnation._attach(self)

    @classmethod
    def start(cls, *args: Any, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> LoopActorRef:
        """Build the actor and start it on ``loop``: ``on_start`` runs there first (at once
        when called on the loop itself), before any message."""
        actor = cls(*args, **kwargs)
        actor._loop = loop
        with _live_lock:
            _live.add(actor)
        if actor._on_loop():
            actor._run_on_start()
        else:
            try:
                loop.call_soon_threadsafe(actor._run_on_start)
            except RuntimeError as exc:  # the loop is closed
                actor._die(exc, phase="on_start")
                actor._settle_start(exc)
                actor._teardown()
        return actor.actor_ref

    # -- hooks (as pykka's) -------------------------------------------------------------------

    def on_start(self) -> None:
        """Called on the loop before the first message."""

    def on_stop(self) -> None:
        """Called on the loop when the actor is stopped (not when it crashes)."""

    def on_failure(self, exc_type: Any, exc: BaseException, tb: Any) -> None:
        """Called on the loop after a handler crashed the actor."""

    def on_receive(self, message: Any) -> Any:
        """Handle one message; the return value answers an ``ask``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop this actor (``on_stop`` runs) once the current handler returns; for use
        from its own handlers."""
        self._stop_requested = True

    @property
    def stopping_for_restart(self) -> bool:
        """Stopped by its supervisor to be started again (not for good)."""
        incarnation = self._incarnation
        return incarnation is not None and incarnation.stop_intent is StopIntent.RESTART

    def __repr__(self) -> str:
        child = self._incarnation.child_id if self._incarnation is not None else hex(id(self))
        return f"{type(self).__name__} ({child})"

    # -- the mailbox --------------------------------------------------------------------------

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _post(self, envelope: _Envelope) -> None:
        with self._inbox_lock:
            if self._stopped:
                raise pykka.ActorDeadError(f"{self} is stopped")
            self._inbox.append(envelope)
            if self._scheduled or not self._started:
                return  # the running drain (or the start) picks it up
            self._scheduled = True
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        try:
            if self._on_loop():
                self._loop.call_soon(self._drain_inbox)
            else:
                self._loop.call_soon_threadsafe(self._drain_inbox)
        except RuntimeError:  # the loop is closed: nothing will ever run this actor again
            self._abandon()

    def _drain_inbox(self) -> None:
        for _ in range(_BATCH):
            envelope = self._next_envelope()
            if envelope is None:
                break
            self._handle_envelope(envelope)
            if self._stop_requested and not self._stopped:
                self._stop_now()
        else:
            if not self._stopped:
                self._loop.call_soon(self._drain_inbox)  # let other callbacks run first
                return
        if self._stopped:
            self._teardown()

    def _next_envelope(self) -> _Envelope | None:
        with self._inbox_lock:
            if self._inbox and not self._stopped:
                return self._inbox.popleft()
            self._scheduled = False
            return None

    def _handle_envelope(self, envelope: _Envelope) -> None:
        message, reply = envelope.message, envelope.reply
        if isinstance(message, _Stop):
            self._stop_now()
            if message.done is not None:
                message.done.set_result(None)
            return
        try:
            response = self.on_receive(message)
        except self.expected_exceptions as exc:
            if reply is None:
                self._crash(*sys.exc_info())
            else:
                reply.set_exception(exc)
        except BaseException as exc:  # noqa: BLE001 - converted, never escapes into the loop
            error = self._crash(type(exc), exc, exc.__traceback__)
            if reply is not None:
                reply.set_exception(error)
        else:
            if reply is not None:
                reply.set_result(response)

    # -- life and death ------------------------------------------------------------------------

    def _run_on_start(self) -> None:
        try:
            self.on_start()
        except BaseException as exc:  # noqa: BLE001 - every failure of on_start is an exit
            self._die(exc, phase="on_start")
            self._settle_start(exc)
            self._teardown()
            return
        self._settle_start(None)
        if self._stop_requested and not self._stopped:
            self._stop_now()
        with self._inbox_lock:
            self._started = True
            waiting = bool(self._inbox) and not self._scheduled
            if waiting:
                self._scheduled = True
        if self._stopped:
            self._teardown()
        elif waiting:
            # On the next turn: whoever started it (a supervisor's handler) finishes first.
            self._loop.call_soon(self._drain_inbox)

    def _settle_start(self, error: BaseException | None) -> None:
        if self._incarnation is not None:
            self._incarnation._settle(error)

    def _stop_now(self) -> None:
        """Stopped by someone else (or by itself): ``on_stop``, then the exit."""
        with self._inbox_lock:
            if self._exited:
                return
            self._stopped = True
        try:
            self.on_stop()
        except BaseException as exc:  # noqa: BLE001 - a failing on_stop is an abnormal exit
            self._die(exc, phase="on_stop")
        self._teardown()

    def _halt(self) -> None:
        """End without ``on_stop`` (a supervisor escalating): the exit follows this handler."""
        self._stopped = True

    def _abandon(self) -> None:
        """Its supervisor gave up waiting for it (or its loop is gone): end now."""
        self._stopped = True
        self._teardown()

    def _teardown(self) -> None:
        with self._inbox_lock:
            if self._exited:
                return
            self._exited = True
            self._stopped = True
        with _live_lock:
            _live.discard(self)
        tells = self._unhandled_tells()
        if self._incarnation is not None:
            self._incarnation._leftovers.extend(tells)
            self._incarnation._exit(self._exit_reason or ExitReason.normal())
        elif tells:
            reject(tells, ActorCrashedError(f"{self} stopped before handling them"))

    def _unhandled_tells(self) -> list[Any]:
        tells: list[Any] = []
        with self._inbox_lock:
            envelopes, self._inbox = list(self._inbox), deque()
        for envelope in envelopes:
            message = envelope.message
            if isinstance(message, _Stop):
                if message.done is not None:
                    message.done.set_result(None)
            elif envelope.reply is not None:
                envelope.reply.set_exception(
                    pykka.ActorDeadError(f"{self} stopped before handling it")
                )
            elif not isinstance(message, self.own_messages):
                tells.append(message)
            elif isinstance(message, Rejectable):
                # Meant for this incarnation only, but its sender waits on it: say so.
                reject([message], pykka.ActorDeadError(f"{self} stopped before handling it"))
        return tells
