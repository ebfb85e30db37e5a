"""Routing: from what a request needs and the live candidates to an ordered plan.

Pure logic like :mod:`runestone.resilience`: the Router actor owns a policy and
calls :func:`plan` with the candidates' current health and circuit state;
:func:`plan_routes` applies the snapshot the Router publishes to the providers' directory.
:data:`POLICIES` maps each ``routing.policy`` config name to its policy class.
"""

from __future__ import annotations

from runestone.routing.candidate import Candidate
from runestone.routing.capabilities import capable, unmet_requirement
from runestone.routing.plan import Exclusion, Plan, plan
from runestone.routing.policies import (
    POLICIES,
    CapabilityPolicy,
    CostPolicy,
    HealthPolicy,
    LatencyPolicy,
    LeastLoadedPolicy,
    PriorityPolicy,
    RoundRobinPolicy,
    RoutingPolicy,
    SortingPolicy,
    WeightedPolicy,
    make_policy,
)
from runestone.routing.requirements import Requirements, estimate_prompt_tokens
from runestone.routing.routes import Route, RoutingBoard, RoutingSnapshot, plan_routes
from runestone.routing.table import RoutingTable

__all__ = [
    "POLICIES",
    "Candidate",
    "CapabilityPolicy",
    "CostPolicy",
    "Exclusion",
    "HealthPolicy",
    "LatencyPolicy",
    "LeastLoadedPolicy",
    "Plan",
    "PriorityPolicy",
    "Requirements",
    "RoundRobinPolicy",
    "Route",
    "RoutingBoard",
    "RoutingPolicy",
    "RoutingSnapshot",
    "RoutingTable",
    "SortingPolicy",
    "WeightedPolicy",
    "capable",
    "estimate_prompt_tokens",
    "make_policy",
    "plan",
    "plan_routes",
    "unmet_requirement",
]
