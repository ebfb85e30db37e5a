"""Stable handles: a caller's way to reach a supervised child across its restarts.

A restarted actor is a new :class:`pykka.ActorRef`; whoever kept the old one
would be talking to the dead. A handle points at the child's *slot*, which the
supervisor updates with each incarnation. ``ask`` waits (bounded) while the
child restarts; ``tell`` never blocks: during a restart messages are held and
delivered, in order, to the next incarnation.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import structlog

from runestone.exceptions import ActorUnavailableError
from runestone.supervisors.actor import Incarnation, StopIntent
from runestone.supervisors.delivery import reject as reject_messages
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
from runestone.supervisors.spec import ChildSpec, RestartType

__all__ = ["DEFAULT_CALL_TIMEOUT", "ActorHandle", "Slot", "SupervisorHandle"]

log = structlog.get_logger(__name__)

DEFAULT_CALL_TIMEOUT = 5.0
MAX_HELD_MESSAGES = 10_000
_spawned = itertools.count(1)


class Slot:
    """The supervisor-owned place a child's current incarnation lives; handles read it."""

    def __init__(self, child_id: str) -> None:
        self.child_id = child_id
        self._cond = threading.Condition()
        self._state = ChildState.STARTING
        self._incarnation: Incarnation | None = None
        self._held: collections.deque[Any] = collections.deque()
        self._waiters = 0

    @property
    def state(self) -> ChildState:
        return self._state

    @property
    def incarnation(self) -> Incarnation | None:
        return self._incarnation

    def install(self, incarnation: Incarnation) -> None:
        """A new incarnation is up: deliver what was held for it, wake the waiters."""
        with self._cond:
            self._incarnation = incarnation
            self._state = ChildState.RUNNING
            assert incarnation.ref is not None
            self._deliver_held(incarnation.ref)
            if self._waiters:  # most slots (a request's task) never have one
                self._cond.notify_all()

    def _deliver_held(self, ref: pykka.ActorRef[Any]) -> None:
        while self._held:
            message = self._held.popleft()
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                # Died already: keep the rest for the incarnation after it.
                self._held.appendleft(message)
                break

    def mark(self, state: ChildState) -> None:
        """Record that the child is restarting or stopped; wake the waiters.

        Stopped for good, the messages held for it are rejected to their senders.
        """
        with self._cond:
            self._state = state
            if state is not ChildState.RUNNING:
                self._incarnation = None
            held: list[Any] = []
            if state is ChildState.STOPPED:
                held = list(self._held)
                self._held.clear()
            if self._waiters:  # most slots (a request's task) never have one
                self._cond.notify_all()
        if held:
            self.reject(held)

    def requeue(self, messages: list[Any]) -> None:
        """Hold ``messages`` (left unhandled by an incarnation that died) ahead of the rest:
        they were sent before anything held since."""
        if not messages:
            return
        with self._cond:
            if self._state is not ChildState.STOPPED:
                self._held.extendleft(reversed(messages))
                incarnation = self._incarnation
                if incarnation is not None and incarnation.ref is not None:
                    # Already running again: hand them over now, ahead of nothing newer.
                    self._deliver_held(incarnation.ref)
                return
        self.reject(messages)

    def reject(self, messages: list[Any]) -> None:
        """Tell the senders of ``messages`` that no incarnation will handle them."""
        reject_messages(messages, ActorUnavailableError(f"{self.child_id!r} stopped for good"))

    def current(self, deadline: float, waited_for: str) -> Incarnation:
        """The live incarnation, waiting until ``deadline`` while the child restarts."""
        with self._cond:
            while True:
                incarnation = self._incarnation
                if (
                    self._state is ChildState.RUNNING
                    and incarnation is not None
                    and incarnation.ref is not None
                    and incarnation.ref.is_alive()
                ):
                    return incarnation
                if self._state is ChildState.STOPPED:
                    raise ActorUnavailableError(f"{self.child_id!r} is stopped ({waited_for})")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ActorUnavailableError(
                        f"{self.child_id!r} is {self._state.value} and no live incarnation "
                        f"appeared in time ({waited_for})"
                    )
                self._waiters += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiters -= 1

    def tell(self, message: Any) -> None:
        with self._cond:
            incarnation = self._incarnation
            if self._state is ChildState.STOPPED:
                raise ActorUnavailableError(f"{self.child_id!r} is stopped; message not sent")
            if (
                self._state is ChildState.RUNNING
                and incarnation is not None
                and incarnation.ref is not None
                and not self._held
            ):
                try:
                    incarnation.ref.tell(message)
                    return
                except pykka.ActorDeadError:
                    pass  # died, its supervisor has not heard yet: hold for the next one
            if len(self._held) >= MAX_HELD_MESSAGES:
                raise ActorUnavailableError(
                    f"{self.child_id!r} is restarting and already holds "
                    f"{MAX_HELD_MESSAGES} messages; message not sent"
                )
            self._held.append(message)


class ActorHandle:
    """A stable way to reach one supervised child, whichever incarnation is current."""

    __slots__ = ("_slot",)

    def __init__(self, slot: Slot) -> None:
        self._slot = slot

    @property
    def id(self) -> str:
        return self._slot.child_id

    @property
    def state(self) -> ChildState:
        return self._slot.state

    @property
    def incarnation(self) -> Incarnation | None:
        """The current incarnation, or ``None`` while restarting or stopped."""
        return self._slot.incarnation

    def ref(self, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> pykka.ActorRef[Any]:
        """The current incarnation's ref (waits while the child restarts)."""
        ref = self._slot.current(time.monotonic() + timeout, "ref").ref
        assert ref is not None
        return ref

    def is_alive(self) -> bool:
        incarnation = self._slot.incarnation
        return (
            incarnation is not None and incarnation.ref is not None and (incarnation.ref.is_alive())
        )

    def tell(self, message: Any) -> None:
        """Send without waiting; held for the next incarnation during a restart."""
        self._slot.tell(message)

    def ask(self, message: Any, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> Any:
        """Send and wait for the answer.

        A message the current incarnation never handled (it died first) goes to
        the next one; a message that crashed it raises here. Raises
        :class:`ActorUnavailableError` when no answer comes within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            incarnation = self._slot.current(deadline, f"ask {type(message).__name__}")
            assert incarnation.ref is not None
            try:
                return incarnation.ref.ask(message, timeout=max(0.0, deadline - time.monotonic()))
            except pykka.ActorDeadError:
                continue  # never handled: the next incarnation will get it
            except pykka.Timeout as exc:
                raise ActorUnavailableError(
                    f"{self.id!r} did not answer {type(message).__name__} within {timeout}s"
                ) from exc

    def __repr__(self) -> str:
        return f"<ActorHandle {self.id} {self.state.value}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._slot is self._slot

    def __hash__(self) -> int:
        return id(self._slot)


class SupervisorHandle(ActorHandle):
    """A handle to a supervisor, with the OTP introspection and control calls."""

    __slots__ = ()

    def child(self, child_id: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ActorHandle:
        """The stable handle of child ``child_id`` (a :class:`SupervisorHandle` for supervisors)."""
        result: ActorHandle = self.ask(GetHandle(child_id), timeout=timeout)
        return result

    def which_children(self, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> list[ChildInfo]:
        result: list[ChildInfo] = self.ask(WhichChildren(), timeout=timeout)
        return result

    def count_children(self, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ChildCounts:
        result: ChildCounts = self.ask(CountChildren(), timeout=timeout)
        return result

    def start_child(self, spec: ChildSpec, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ActorHandle:
        """Add and start a child; raises :class:`ChildStartError` when it fails to start."""
        result: ActorHandle = self.ask(StartChild(spec), timeout=timeout + spec.start_timeout)
        return result

    def spawn(
        self,
        start: Callable[[], pykka.ActorRef[Any]],
        *,
        child_id: str | None = None,
        restart: RestartType = RestartType.TRANSIENT,
        shutdown: float = 5.0,
        start_timeout: float = 5.0,
        timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> ActorHandle:
        """Start a worker (transient by default) under a generated id unless one is given."""
        spec = ChildSpec(
            child_id or f"{self.id}-{next(_spawned)}",
            start,
            restart=restart,
            shutdown=shutdown,
            start_timeout=start_timeout,
        )
        return self.start_child(spec, timeout=timeout)

    def terminate_child(self, child_id: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> None:
        self.ask(TerminateChild(child_id), timeout=timeout)

    def restart_child(self, child_id: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> ActorHandle:
        result: ActorHandle = self.ask(RestartChild(child_id), timeout=timeout)
        return result

    def delete_child(self, child_id: str, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> None:
        self.ask(DeleteChild(child_id), timeout=timeout)

    def tree(self, *, timeout: float = DEFAULT_CALL_TIMEOUT) -> TreeNode:
        """The whole hierarchy below (and including) this supervisor, as plain data."""
        result: TreeNode = self.ask(Tree(timeout=timeout / 2), timeout=timeout)
        return result

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop this supervisor: its children in reverse start order, then itself."""
        incarnation = self._slot.incarnation
        if incarnation is None or incarnation.ref is None:
            return
        incarnation.stop_intent = StopIntent.FOR_GOOD
        try:
            incarnation.ref.stop(block=True, timeout=timeout)
        except pykka.Timeout as exc:
            raise ActorUnavailableError(f"{self.id!r} did not stop within {timeout}s") from exc
        incarnation.exited.wait(timeout)
