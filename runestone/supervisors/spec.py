"""Child specifications: how a supervisor starts, restarts and stops one child."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

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


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run one child.

    ``start`` is called with no arguments in the supervisor's thread and must
    return the :class:`pykka.ActorRef` of a newly started
    :class:`~runestone.supervisors.SupervisedActor`. ``shutdown`` bounds how
    long stopping it may take; ``start_timeout`` bounds its ``on_start``.
    """

    id: str
    start: Callable[[], pykka.ActorRef[Any]]
    restart: RestartType = RestartType.PERMANENT
    shutdown: float = 5.0
    kind: ChildKind = ChildKind.WORKER
    start_timeout: float = 5.0
    await_start: bool = True
    """Wait for ``on_start`` before the child counts as started (OTP's ``start_link``).
    False for short-lived children whose ``on_start`` cannot fail: a failure then
    arrives as an exit, handled by the restart type."""
    store: ChildStore | None = None
    """A supervisor child's own children, kept across its restarts (see ``store``)."""
    on_abandon: Callable[[], None] | None = None
    """Called when the child was stopped to be restarted and never will be (its
    supervisor gave up): whoever waits on its work hears it here."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ChildSpec.id must be a non-empty string, got {self.id!r}")
        if not callable(self.start):
            raise TypeError(f"ChildSpec.start of {self.id!r} must be callable, got {self.start!r}")
        for name in ("shutdown", "start_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0 or math.isnan(value):
                raise ValueError(f"ChildSpec.{name} of {self.id!r} must be > 0, got {value!r}")
        if type(self.restart) is not RestartType:  # one spec per request: skip the enum call
            object.__setattr__(self, "restart", RestartType(self.restart))
        if type(self.kind) is not ChildKind:
            object.__setattr__(self, "kind", ChildKind(self.kind))
