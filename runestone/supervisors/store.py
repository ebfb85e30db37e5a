"""A supervisor's children, kept across the supervisor's own restarts.

A restarted supervisor is a new actor, but what its children are reached by
must not change: the handles callers hold point at slots, and a slot outlives
the supervisor incarnation that made it (as a registered name outlives an
Erlang process). The store belongs to the supervisor's child spec; each
incarnation takes its children from it, and a supervisor that will never run
again closes it, so nothing held for its children waits forever.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChildStore"]


class ChildStore:
    """The ordered children of one supervisor, by id, across its incarnations."""

    def __init__(self) -> None:
        self.children: dict[str, Any] = {}

    def close(self) -> None:
        """The supervisor will not run again: abandon every child that was to restart."""
        for child in list(self.children.values()):
            child.abandon()

    def __repr__(self) -> str:
        return f"<ChildStore {list(self.children)}>"
