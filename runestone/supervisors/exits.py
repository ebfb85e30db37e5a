"""Why an actor stopped, and the notice a supervisor gets when a child does."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ChildExited", "ExitKind", "ExitReason"]


class ExitKind(enum.StrEnum):
    """How an actor's life ended."""

    NORMAL = "normal"
    """It stopped when asked to, or stopped itself, and ``on_stop`` returned."""
    CRASHED = "crashed"
    """An exception escaped a handler, ``on_stop`` or ``on_failure``."""
    START_FAILED = "start_failed"
    """``on_start`` raised: the actor never handled a message."""
    ESCALATED = "escalated"
    """A supervisor reached its restart intensity and gave up."""


@dataclass(frozen=True, slots=True)
class ExitReason:
    """Plain-data account of an exit: the kind, where it happened, and the error's text."""

    kind: ExitKind
    phase: str = ""
    error: str = ""

    @property
    def abnormal(self) -> bool:
        """Every exit but a normal stop is abnormal (OTP: anything but ``normal``)."""
        return self.kind is not ExitKind.NORMAL

    @classmethod
    def normal(cls) -> ExitReason:
        return cls(ExitKind.NORMAL)

    @classmethod
    def from_exception(cls, exc: BaseException, *, phase: str) -> ExitReason:
        kind = ExitKind.START_FAILED if phase == "on_start" else ExitKind.CRASHED
        return cls(kind, phase, f"{type(exc).__name__}: {exc}")

    def __str__(self) -> str:
        where = f" in {self.phase}" if self.phase else ""
        why = f": {self.error}" if self.error else ""
        return f"{self.kind.value}{where}{why}"


@dataclass(frozen=True, slots=True)
class ChildExited:
    """Sent to a supervisor when one incarnation of its child has stopped."""

    child_id: str
    generation: int
    reason: ExitReason
