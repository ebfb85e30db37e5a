"""Child specifications: how a supervisor starts, restarts and stops one child."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Annotated, Any

import pykka
from msgspec import Meta

from runestone.schema import Positive, Shape
from runestone.supervisors.exits import ExitReason
from runestone.supervisors.store import ChildStore

__all__ = ["ChildKind", "ChildSpec", "RestartType"]


class RestartType(enum.StrEnum):
    """When a child that exited is started again (OTP's restart types)."""

    PERMANENT = "permanent"
    """Always restarted, whatever the exit."""
    TRANSIENT = "transient"
    """Restarted only after an abnormal exit."""
    TEMPORARY = "temporary"
    """Never restarted; forgotten once it exits."""

    def should_restart(self, reason: ExitReason) -> bool:
        """Whether a child of this type that exited with ``reason`` is restarted."""
        if self is RestartType.PERMANENT:
            return True
        if self is RestartType.TRANSIENT:
            return reason.abnormal
        return False


class ChildKind(enum.StrEnum):
    """Whether a child is a worker or a supervisor of its own."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


class ChildSpec(Shape, frozen=True, kw_only=False):
    """How to run one child.

    ``start`` is called with no arguments in the supervisor's thread and must
    return the :class:`pykka.ActorRef` of a newly started
    :class:`~runestone.supervisors.SupervisedActor`. ``shutdown`` bounds how
    long stopping it may take; ``start_timeout`` bounds its ``on_start``. Its
    fields are checked by their types (a :class:`~runestone.schema.FieldError`
    names the field); an enum's value is taken for its member.
    """

    id: Annotated[str, Meta(min_length=1, extra={"expected": "a non-empty string"})]
    start: Annotated[Callable[[], pykka.ActorRef[Any]], Meta(extra={"expected": "a callable"})]
    restart: RestartType = RestartType.PERMANENT
    shutdown: Positive = 5.0
    kind: ChildKind = ChildKind.WORKER
    start_timeout: Positive = 5.0
    await_start: bool = True
    """Wait for ``on_start`` before the child counts as started (OTP's ``start_link``).
    False for short-lived children whose ``on_start`` cannot fail: a failure then
    arrives as an exit, handled by the restart type."""
    store: Annotated[ChildStore | None, Meta(extra={"expected": "a ChildStore or None"})] = None
    """A supervisor child's own children, kept across its restarts (see ``store``)."""
    on_abandon: Annotated[
        Callable[[], None] | None, Meta(extra={"expected": "a callable or None"})
    ] = None
    """Called when the child was stopped to be restarted and never will be (its
    supervisor gave up): whoever waits on its work hears it here."""
