"""Erlang/OTP-style supervision on pykka: child specs, strategies, intensity, handles."""

from __future__ import annotations

from runestone.supervisors.actor import Incarnation, StopIntent, SupervisedActor
from runestone.supervisors.delivery import Rejectable, reject
from runestone.supervisors.dynamic import DynamicSupervisor, LoopSupervisor, RestartBackoff, Spawn
from runestone.supervisors.exits import ChildExited, ExitKind, ExitReason
from runestone.supervisors.handle import ActorHandle, SupervisorHandle
from runestone.supervisors.intensity import IntensityPolicy, RestartIntensity
from runestone.supervisors.loop_actor import LoopActor, LoopActorRef, live_loop_actors
from runestone.supervisors.requests import ChildCounts, ChildInfo, ChildState
from runestone.supervisors.spec import ChildKind, ChildSpec, RestartType
from runestone.supervisors.store import ChildStore
from runestone.supervisors.strategies import (
    ONE_FOR_ALL,
    ONE_FOR_ONE,
    REST_FOR_ONE,
    OneForAll,
    OneForOne,
    RestartStrategy,
    RestForOne,
    strategy_named,
)
from runestone.supervisors.supervisor import Supervisor, start_supervisor, supervisor_spec

__all__ = [
    "ONE_FOR_ALL",
    "ONE_FOR_ONE",
    "REST_FOR_ONE",
    "ActorHandle",
    "ChildCounts",
    "ChildExited",
    "ChildInfo",
    "ChildKind",
    "ChildSpec",
    "ChildState",
    "ChildStore",
    "DynamicSupervisor",
    "ExitKind",
    "ExitReason",
    "Incarnation",
    "IntensityPolicy",
    "LoopActor",
    "LoopActorRef",
    "LoopSupervisor",
    "OneForAll",
    "OneForOne",
    "Rejectable",
    "RestForOne",
    "RestartBackoff",
    "RestartIntensity",
    "RestartStrategy",
    "RestartType",
    "Spawn",
    "StopIntent",
    "SupervisedActor",
    "Supervisor",
    "SupervisorHandle",
    "live_loop_actors",
    "reject",
    "start_supervisor",
    "strategy_named",
    "supervisor_spec",
]
