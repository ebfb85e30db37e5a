"""Messages a supervisor answers, and the plain data it answers with."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runestone.supervisors.spec import ChildKind, ChildSpec, RestartType

if TYPE_CHECKING:
    from runestone.supervisors.handle import ActorHandle

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildState",
    "CountChildren",
    "DeleteChild",
    "GetHandle",
    "RestartChild",
    "StartChild",
    "TerminateChild",
    "Tree",
    "WhichChildren",
]


class ChildState(enum.StrEnum):
    """Where a child is in its life, as its supervisor sees it."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of ``which_children()``."""

    id: str
    handle: ActorHandle
    kind: ChildKind
    restart: RestartType
    state: ChildState


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children()``: specs known, children alive, and how many of each kind."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(frozen=True, slots=True)
class WhichChildren:
    pass


@dataclass(frozen=True, slots=True)
class CountChildren:
    pass


@dataclass(frozen=True, slots=True)
class StartChild:
    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class TerminateChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class RestartChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class DeleteChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class GetHandle:
    child_id: str


@dataclass(frozen=True, slots=True)
class Tree:
    timeout: float = 2.0


TreeNode = dict[str, Any]
