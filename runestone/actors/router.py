"""The Router actor: applies the configured policy to the live directory and returns a plan.

The plan it returns is the plan that runs: the stream task takes its routes in
order. Nothing here names a provider or a model; aliases, fallbacks and prices
all come from config, health and circuit state from the providers' published
status.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog

from runestone.actors.directory import Directory
from runestone.actors.stream_task import PlanFor, Route
from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.config import RoutingConfig
from runestone.exceptions import NoCandidatesError, RequestValidationError, SupervisionError
from runestone.messages import ChatRequest
from runestone.providers.settings import Capability
from runestone.routing import Candidate, Requirements, RoutingTable, make_policy, plan
from runestone.supervisors import SupervisedActor

__all__ = ["Router", "UpdateRouting"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class UpdateRouting:
    """Use a new routing section (policy, aliases, fallbacks) from now on."""

    routing: RoutingConfig


class Router(SupervisedActor):
    """Plans requests (see the module docstring)."""

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
    ) -> None:
        super().__init__()
        self._directory = directory
        self._clock = clock
        self._rng = rng or random.Random()
        self._configure(routing)

    def _configure(self, routing: RoutingConfig) -> None:
        self._routing = routing
        self._table = RoutingTable(
            aliases=routing.aliases,
            fallbacks=routing.fallbacks,
            context_window_fallbacks=routing.context_window_fallbacks,
        )
        self._policy = make_policy(routing.policy, rng=self._rng)

    def on_receive(self, message: Any) -> Any:
        match message:
            case PlanFor(request=request, after_context_error=failed):
                return self._plan(request, failed)
            case UpdateRouting(routing=routing):
                self._configure(routing)
                log.info("routing_updated", policy=routing.policy)
            case _:
                raise SupervisionError(f"router got an unknown message {type(message).__name__}")
        return None

    def _candidates(self) -> list[Candidate]:
        candidates: list[Candidate] = []
        for name, entry in self._directory.entries().items():
            status = entry.status
            for model in entry.config.settings.models.values():
                candidates.append(
                    Candidate.from_model(
                        name,
                        model,
                        priority=len(candidates),
                        weight=self._routing.weight(f"{name}/{model.name}"),
                        health=None if status is None else status.health,
                        circuit=None if status is None else status.circuit,
                    )
                )
        return candidates

    def _plan(self, request: ChatRequest, failed: Route | None) -> list[Route]:
        requirements = Requirements.from_request(request)
        chosen = plan(
            request.model,
            requirements,
            self._candidates(),
            self._table,
            self._policy,
            now=self._clock.monotonic(),
            context_exceeded=None if failed is None else f"{failed.provider}/{failed.model}",
        )
        if chosen.panic:
            log.warning("routing_panic", model=request.model, candidate=chosen.keys[0])
        return [
            Route(
                c.provider,
                c.model,
                prefill=Capability.PREFILL in c.capabilities,
                panic=chosen.panic,
            )
            for c in chosen.candidates
        ]
