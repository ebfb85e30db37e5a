"""Retry decisions: retry the same route, fail over, or give up — a pure function.

What each failure class allows comes from the table in
:mod:`runestone.resilience.failure_policy` (ARCHITECTURE §4). On top of it:

- an attempt budget per route (``max_attempts`` counts the first attempt);
- exponential backoff with *full* jitter: after attempt ``n`` the wait is drawn
  uniformly from ``[0, min(max_delay, base_delay * 2**(n-1))]``;
- ``Retry-After`` is honoured up to ``max_retry_after`` — the wait is never
  shorter than it — and beyond that the request fails over instead of waiting;
- one overall deadline: a retry is only scheduled when its wait ends before the
  deadline, and once the deadline has passed the answer is always to give up.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runestone.exceptions import ErrorClass
from runestone.resilience.failure_policy import FailoverScope, failure_policy
from runestone.schema import Count, NonNegative, Shape, convert, not_below

__all__ = ["RetryAction", "RetryDecision", "RetryPolicy", "RetryReason", "decide_retry"]

# 2**64 times any sane base delay is past every cap; it keeps the power finite.
_MAX_EXPONENT = 64


class RetryAction(enum.StrEnum):
    """What to do after a failed attempt."""

    RETRY_SAME = "retry_same"
    FAIL_OVER = "fail_over"
    GIVE_UP = "give_up"


class RetryReason(enum.StrEnum):
    """Why that is the decision."""

    RETRYABLE = "retryable"
    """RETRY_SAME: the class allows it and budget, Retry-After and deadline permit."""
    NOT_RETRYABLE = "not_retryable"
    """FAIL_OVER: the same route would stay silent (a timeout) or unusable (a bad key)."""
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    """FAIL_OVER: this route used its ``max_attempts``."""
    RETRY_AFTER_TOO_LONG = "retry_after_too_long"
    """FAIL_OVER: the provider asked for a longer wait than ``max_retry_after``."""
    WAIT_PAST_DEADLINE = "wait_past_deadline"
    """FAIL_OVER: the wait would end at or after the deadline; another route may answer now."""
    LARGER_CONTEXT = "larger_context"
    """FAIL_OVER, to a candidate with a larger context window only."""
    RESUME = "resume"
    """FAIL_OVER after the commit point: only by continuing the stream (ARCHITECTURE §3)."""
    CLIENT_ERROR = "client_error"
    """GIVE_UP: the request is at fault; the provider's reason is the answer."""
    COMMITTED = "committed"
    """GIVE_UP: content reached the caller and this failure cannot be continued."""
    DEADLINE = "deadline"
    """GIVE_UP: the request's deadline has passed."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """The verdict on one failed attempt; ``delay`` (seconds) is non-zero only for RETRY_SAME."""

    action: RetryAction
    reason: RetryReason
    delay: float = 0.0


class RetryPolicy(Shape, frozen=True):
    """Retry settings; field names are the ``retry`` config keys. Times in seconds."""

    max_attempts: Count = 2
    """Attempts on one route, the first included, before failing over."""
    base_delay: NonNegative = 0.5
    """The first backoff's cap; each retry doubles it (full jitter)."""
    max_delay: NonNegative = 8.0
    """The largest backoff cap (at least ``base_delay``)."""
    max_retry_after: NonNegative = 30.0
    """The longest Retry-After waited out on the same route; longer fails over."""

    def __post_init__(self) -> None:
        super().__post_init__()
        not_below("max_delay", self.max_delay, self.base_delay)

    def backoff_cap(self, attempt: int) -> float:
        """The longest backoff after attempt number ``attempt`` (1-based), before jitter."""
        _check_attempt(attempt)
        return min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, _MAX_EXPONENT))

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """A full-jitter backoff after attempt ``attempt``: uniform in ``[0, backoff_cap]``."""
        return rng.uniform(0.0, self.backoff_cap(attempt))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, path: str = "retry") -> RetryPolicy:
        """Build from a config mapping; a :class:`ConfigError` names the full key path."""
        return convert(data, cls, path=path)


def _check_attempt(attempt: object) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt: expected a whole number >= 1, got {attempt!r}")


def _check_time(name: str, value: object, *, allow_none: bool, allow_nan: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected a number of seconds, got {value!r}")
    if math.isnan(value) and not allow_nan:
        raise ValueError(f"{name}: expected a number of seconds, got {value!r}")


def decide_retry(
    policy: RetryPolicy,
    error_class: ErrorClass,
    *,
    attempt: int,
    now: float,
    rng: random.Random,
    deadline: float | None = None,
    retry_after: float | None = None,
    not_before: float | None = None,
    content_delivered: bool = False,
) -> RetryDecision:
    """Decide what follows attempt number ``attempt`` (1-based) on one route failing.

    ``now``, ``deadline`` and ``not_before`` are times on the same monotonic
    clock; ``deadline`` is the whole request's, ``not_before`` the earliest time
    the route admits calls again (its breaker's ``retry_at``, e.g. a cooling
    period). ``retry_after`` is the provider's ``Retry-After`` in seconds; a
    negative or non-finite one is ignored. ``content_delivered`` says the
    commit point has passed. Bad arguments raise ``ValueError`` naming them.
    """
    _check_attempt(attempt)
    _check_time("now", now, allow_none=False)
    _check_time("deadline", deadline, allow_none=True)
    _check_time("not_before", not_before, allow_none=True)
    _check_time("retry_after", retry_after, allow_none=True, allow_nan=True)
    handling = failure_policy(error_class)

    if deadline is not None and now >= deadline:
        return RetryDecision(RetryAction.GIVE_UP, RetryReason.DEADLINE)
    if content_delivered:
        if handling.resumable:
            return RetryDecision(RetryAction.FAIL_OVER, RetryReason.RESUME)
        return RetryDecision(RetryAction.GIVE_UP, RetryReason.COMMITTED)
    if handling.failover is FailoverScope.NONE:
        return RetryDecision(RetryAction.GIVE_UP, RetryReason.CLIENT_ERROR)
    if handling.failover is FailoverScope.LARGER_CONTEXT:
        return RetryDecision(RetryAction.FAIL_OVER, RetryReason.LARGER_CONTEXT)
    if not handling.retry_same:
        return RetryDecision(RetryAction.FAIL_OVER, RetryReason.NOT_RETRYABLE)
    if attempt >= policy.max_attempts:
        return RetryDecision(RetryAction.FAIL_OVER, RetryReason.ATTEMPTS_EXHAUSTED)

    # The wait the provider (or its breaker) imposes; never retry sooner than it.
    imposed = 0.0
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        imposed = retry_after
    if not_before is not None:
        imposed = max(imposed, not_before - now)
    if imposed > policy.max_retry_after:
        return RetryDecision(RetryAction.FAIL_OVER, RetryReason.RETRY_AFTER_TOO_LONG)

    delay = max(policy.backoff(attempt, rng), imposed)
    if deadline is not None and now + delay >= deadline:
        return RetryDecision(RetryAction.FAIL_OVER, RetryReason.WAIT_PAST_DEADLINE)
    return RetryDecision(RetryAction.RETRY_SAME, RetryReason.RETRYABLE, delay)
