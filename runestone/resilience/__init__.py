"""Resilience core: the failure-class table, circuit breaker, retry decisions and health figures.

All of it is pure logic on an injected clock and random source — no threads,
locks, timers or I/O — so one actor per provider can own it and hypothesis can
prove it without sleeping.
"""

from __future__ import annotations

from runestone.resilience.circuit_breaker import (
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitSnapshot,
    CircuitState,
    Permit,
    ProbeTicket,
    StateChange,
    StateListener,
    TransitionReason,
)
from runestone.resilience.failure_policy import (
    FAILURE_POLICIES,
    CircuitEffect,
    FailoverScope,
    FailurePolicy,
    failure_policy,
)
from runestone.resilience.health import CIRCUIT_SCORE_FACTORS, HealthSnapshot, HealthTracker
from runestone.resilience.retry import (
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryReason,
    decide_retry,
)

__all__ = [
    "CIRCUIT_SCORE_FACTORS",
    "FAILURE_POLICIES",
    "CircuitBreaker",
    "CircuitBreakerPolicy",
    "CircuitEffect",
    "CircuitSnapshot",
    "CircuitState",
    "FailoverScope",
    "FailurePolicy",
    "HealthSnapshot",
    "HealthTracker",
    "Permit",
    "ProbeTicket",
    "RetryAction",
    "RetryDecision",
    "RetryPolicy",
    "RetryReason",
    "StateChange",
    "StateListener",
    "TransitionReason",
    "decide_retry",
    "failure_policy",
]
