"""The Router actor: owns the routing section and publishes the snapshot plans are made from.

The plan that runs is the Router's plan: stream tasks apply the snapshot it
published (:func:`~runestone.routing.plan_routes`) to the providers'
published status, without asking it, so a restart of the Router never reaches
a caller. ``PlanFor`` still answers with the same plan for whoever asks.
Nothing here names a provider or a model; aliases, fallbacks and prices all
come from config, health and circuit state from the providers' published status.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.config import RoutingConfig
from runestone.directory import Directory
from runestone.exceptions import NoCandidatesError, RequestValidationError, SupervisionError
from runestone.routing import (
    Route,
    RoutingBoard,
    RoutingSnapshot,
    RoutingTable,
    make_policy,
    plan_routes,
)
from runestone.supervisors import SupervisedActor

if TYPE_CHECKING:
    from runestone.messages import ChatRequest

__all__ = ["PlanFor", "Router", "UpdateRouting"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PlanFor:
    """Ask the Router for the routes of ``request``; ``after_context_error`` asks for the
    larger-context fallbacks of that route instead."""

    request: ChatRequest
    after_context_error: Route | None = None


@dataclass(frozen=True, slots=True)
class UpdateRouting:
    """Use a new routing section (policy, aliases, fallbacks) from now on."""

    routing: RoutingConfig


class Router(SupervisedActor):
    """Owns and publishes routing (see the module docstring)."""

    expected_exceptions: ClassVar[tuple[type[Exception], ...]] = (
        NoCandidatesError,
        RequestValidationError,
    )

    def __init__(
        self,
        directory: Directory,
        routing: RoutingConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        board: RoutingBoard | None = None,
    ) -> None:
        super().__init__()
        self._directory = directory
        self._clock = clock
        self._rng = rng or random.Random()
        self.board = board or RoutingBoard()
        published = self.board.snapshot
        # A restarted Router goes on with what was published last (a reload included),
        # not with the routing it was first started with.
        self._configure(routing if published is None else published.routing)

    def _configure(self, routing: RoutingConfig) -> None:
        table = RoutingTable(
            aliases=routing.aliases,
            fallbacks=routing.fallbacks,
            context_window_fallbacks=routing.context_window_fallbacks,
        )
        self._snapshot = RoutingSnapshot(routing, table, make_policy(routing.policy, rng=self._rng))
        self.board.publish(self._snapshot)

    def on_receive(self, message: Any) -> Any:
        match message:
            case PlanFor(request=request, after_context_error=failed):
                return plan_routes(
                    self._snapshot,
                    self._directory,
                    request,
                    now=self._clock.monotonic(),
                    after_context_error=failed,
                )
            case UpdateRouting(routing=routing):
                self._configure(routing)
                log.info("routing_updated", policy=routing.policy)
            case _:
                raise SupervisionError(f"router got an unknown message {type(message).__name__}")
        return None
