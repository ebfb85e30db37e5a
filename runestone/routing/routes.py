"""Routes: the routes a request takes, made from the routing snapshot the Router publishes.

The Router owns the routing section (policy, aliases, fallbacks) and publishes it
as an immutable :class:`RoutingSnapshot` on start and on every change. Planning
is pure: :func:`plan_routes` applies a snapshot to the providers' published
status, so a stream task plans without asking an actor, and a restart of the
Router (or of the factory) is invisible to the requests arriving meanwhile:
they are planned from the last snapshot it published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from runestone.providers.settings import Capability
from runestone.routing.candidate import Candidate
from runestone.routing.plan import plan
from runestone.routing.requirements import Requirements
from runestone.routing.table import RoutingTable

if TYPE_CHECKING:
    from runestone.config import RoutingConfig
    from runestone.directory import Directory
    from runestone.messages import ChatRequest
    from runestone.routing.policies import RoutingPolicy

__all__ = ["Route", "RoutingBoard", "RoutingSnapshot", "plan_model_routes", "plan_routes"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """One candidate of a plan: a provider and the model to ask it for."""

    provider: str
    model: str
    prefill: bool = False
    panic: bool = False
    """Planned in panic mode (every candidate held back): its permit may probe an open circuit."""

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    """One published state of the Router: its routing section, table and policy."""

    routing: RoutingConfig
    table: RoutingTable
    policy: RoutingPolicy


class RoutingBoard:
    """Where the Router publishes its newest snapshot; read without a lock (one reference)."""

    __slots__ = ("_snapshot",)

    def __init__(self) -> None:
        self._snapshot: RoutingSnapshot | None = None

    @property
    def snapshot(self) -> RoutingSnapshot | None:
        return self._snapshot

    def publish(self, snapshot: RoutingSnapshot) -> None:
        self._snapshot = snapshot


def _candidates(snapshot: RoutingSnapshot, directory: Directory) -> list[Candidate]:
    candidates: list[Candidate] = []
    weight = snapshot.routing.weight
    for name, entry in directory.entries().items():
        status = entry.status
        for model in entry.config.settings.models.values():
            candidates.append(
                Candidate.from_model(
                    name,
                    model,
                    priority=len(candidates),
                    weight=weight(f"{name}/{model.name}"),
                    health=None if status is None else status.health,
                    circuit=None if status is None else status.circuit,
                    wires=entry.provider.wires,
                )
            )
    return candidates


def plan_routes(
    snapshot: RoutingSnapshot,
    directory: Directory,
    request: ChatRequest,
    *,
    now: float,
    after_context_error: Route | None = None,
) -> list[Route]:
    """The routes of ``request`` (raises :class:`NoCandidatesError` when none can serve it)."""
    return plan_model_routes(
        snapshot,
        directory,
        request.model,
        Requirements.from_request(request),
        now=now,
        after_context_error=after_context_error,
    )


def plan_model_routes(
    snapshot: RoutingSnapshot,
    directory: Directory,
    model: str,
    requirements: Requirements,
    *,
    now: float,
    after_context_error: Route | None = None,
) -> list[Route]:
    """The routes of a request for ``model`` that needs ``requirements`` (an embeddings
    request, or a chat request read already); :class:`NoCandidatesError` when none."""
    chosen = plan(
        model,
        requirements,
        _candidates(snapshot, directory),
        snapshot.table,
        snapshot.policy,
        now=now,
        context_exceeded=(
            None
            if after_context_error is None
            else f"{after_context_error.provider}/{after_context_error.model}"
        ),
    )
    if chosen.panic:
        log.warning("routing_panic", model=model, candidate=chosen.keys[0])
    return [
        Route(
            c.provider,
            c.model,
            prefill=Capability.PREFILL in c.capabilities,
            panic=chosen.panic,
        )
        for c in chosen.candidates
    ]
