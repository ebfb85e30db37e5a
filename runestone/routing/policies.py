"""Routing policies: each orders the eligible candidates for one request.

A policy receives the candidates already filtered (capable, circuit not
refusing) and *in priority order* — the alias's order, or configuration order —
and returns them best first. Sorting policies are stable, so priority order
breaks every tie. Each policy is a small class overriding one method; pick one
by its config name with :func:`make_policy`.

=============  =========================================================================
name           best first
=============  =========================================================================
priority       priority order, unchanged
cost           lowest estimated price (prompt tokens and ``max_tokens`` at per-1M prices)
latency        lowest latency moving average; unmeasured candidates first, to measure them
health         highest health score; unmeasured candidates count as fully healthy
round_robin    the candidate picked first longest ago (never picked: first)
weighted       random, first place with probability proportional to ``weight``
least_loaded   fewest calls in flight at its provider
capability     the closest fit: fewest capabilities beyond those needed, then the
               smallest context window that fits (keeps big models for big requests)
=============  =========================================================================

``round_robin`` and ``weighted`` keep state (a turn counter, a random source);
like everything here they are not thread-safe: one Router actor owns them.
"""

from __future__ import annotations

import abc
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar

from runestone.exceptions import ConfigError
from runestone.routing.candidate import Candidate
from runestone.routing.requirements import Requirements

__all__ = [
    "POLICIES",
    "CapabilityPolicy",
    "CostPolicy",
    "HealthPolicy",
    "LatencyPolicy",
    "LeastLoadedPolicy",
    "PriorityPolicy",
    "RoundRobinPolicy",
    "RoutingPolicy",
    "SortingPolicy",
    "WeightedPolicy",
    "make_policy",
]


class RoutingPolicy(abc.ABC):
    """Orders eligible candidates, best first."""

    name: ClassVar[str]

    @abc.abstractmethod
    def order(self, candidates: Sequence[Candidate], requirements: Requirements) -> list[Candidate]:
        """The same candidates, best first; the input is in priority order."""


class SortingPolicy(RoutingPolicy):
    """A policy that sorts by a key (ascending); ties keep priority order."""

    def order(self, candidates: Sequence[Candidate], requirements: Requirements) -> list[Candidate]:
        return sorted(candidates, key=lambda candidate: self.sort_key(candidate, requirements))

    @abc.abstractmethod
    def sort_key(self, candidate: Candidate, requirements: Requirements) -> tuple[float, ...]:
        """Lower is better."""


class PriorityPolicy(RoutingPolicy):
    """Priority order, unchanged."""

    name = "priority"

    def order(self, candidates: Sequence[Candidate], requirements: Requirements) -> list[Candidate]:
        return list(candidates)


class CostPolicy(SortingPolicy):
    """Cheapest first, by :meth:`Candidate.estimated_cost`."""

    name = "cost"

    def sort_key(self, candidate: Candidate, requirements: Requirements) -> tuple[float, ...]:
        return (candidate.estimated_cost(requirements),)


class LatencyPolicy(SortingPolicy):
    """Fastest first by latency moving average; unmeasured first so they get measured."""

    name = "latency"

    def sort_key(self, candidate: Candidate, requirements: Requirements) -> tuple[float, ...]:
        health = candidate.health
        latency = None if health is None else health.latency
        return (-math.inf if latency is None else latency,)


class HealthPolicy(SortingPolicy):
    """Healthiest first by health score; unmeasured counts as fully healthy."""

    name = "health"

    def sort_key(self, candidate: Candidate, requirements: Requirements) -> tuple[float, ...]:
        return (-(1.0 if candidate.health is None else candidate.health.score),)


class LeastLoadedPolicy(SortingPolicy):
    """Fewest calls in flight first."""

    name = "least_loaded"

    def sort_key(self, candidate: Candidate, requirements: Requirements) -> tuple[float, ...]:
        return (float(candidate.in_flight),)


class CapabilityPolicy(SortingPolicy):
    """Closest fit first: fewest unneeded capabilities, then the smallest window that fits."""

    name = "capability"

    def sort_key(self, candidate: Candidate, requirements: Requirements) -> tuple[float, ...]:
        surplus = len(candidate.capabilities - requirements.capabilities)
        window = candidate.context_window
        return (float(surplus), math.inf if window is None else float(window))


class RoundRobinPolicy(RoutingPolicy):
    """Takes turns: the candidate picked first longest ago goes first.

    Turns are kept per candidate key, not per list, so requests for different
    aliases sharing candidates cannot starve one of them.
    """

    name = "round_robin"

    def __init__(self) -> None:
        self._turns = itertools.count()
        self._last_first: dict[str, int] = {}

    def order(self, candidates: Sequence[Candidate], requirements: Requirements) -> list[Candidate]:
        last = self._last_first
        ordered = sorted(candidates, key=lambda candidate: last.get(candidate.key, -1))
        if ordered:
            last[ordered[0].key] = next(self._turns)
        return ordered


class WeightedPolicy(RoutingPolicy):
    """Random order, first place with probability proportional to ``weight``.

    Weighted sampling without replacement (Efraimidis and Spirakis): each candidate
    draws ``log(u) / weight`` and the largest goes first. A zero weight only
    ever comes after every positive one.
    """

    name = "weighted"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()

    def order(self, candidates: Sequence[Candidate], requirements: Requirements) -> list[Candidate]:
        draw = self._rng.random

        def key(candidate: Candidate) -> float:
            # 1 - random() lies in (0, 1]: log never sees zero.
            u = 1.0 - draw()
            return math.log(u) / candidate.weight if candidate.weight > 0 else -math.inf

        return sorted(candidates, key=key, reverse=True)


POLICIES: Mapping[str, type[RoutingPolicy]] = MappingProxyType(
    {
        policy.name: policy
        for policy in (
            PriorityPolicy,
            CostPolicy,
            LatencyPolicy,
            HealthPolicy,
            RoundRobinPolicy,
            WeightedPolicy,
            LeastLoadedPolicy,
            CapabilityPolicy,
        )
    }
)
"""Every policy by its ``routing.policy`` config name."""


def make_policy(name: str, *, rng: random.Random | None = None) -> RoutingPolicy:
    """A fresh policy named ``name``; ``rng`` feeds the random ones.

    An unknown name raises :class:`ConfigError` at ``routing.policy`` listing the known ones.
    """
    policy = POLICIES.get(name) if isinstance(name, str) else None
    if policy is None:
        raise ConfigError(
            f"unknown routing policy {name!r}; expected one of: {', '.join(POLICIES)}",
            path="routing.policy",
        )
    if policy is WeightedPolicy:
        return WeightedPolicy(rng)
    return policy()
