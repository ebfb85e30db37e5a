"""Retry decisions: the deadline, Retry-After, jitter bounds, the attempt budget, the §4 table."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.exceptions import ConfigError, ErrorClass
from runestone.resilience import (
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryReason,
    decide_retry,
)
from runestone.resilience.failure_policy import FAILURE_POLICIES

RETRY, FAIL_OVER, GIVE_UP = RetryAction.RETRY_SAME, RetryAction.FAIL_OVER, RetryAction.GIVE_UP
RETRYABLE = [cls for cls, row in FAILURE_POLICIES.items() if row.retry_same]

retry_policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 6),
    base_delay=st.floats(0.0, 2.0),
    max_delay=st.floats(2.0, 20.0),
    max_retry_after=st.floats(0.0, 60.0),
)
retry_afters = st.one_of(st.none(), st.floats(-5.0, 120.0), st.just(math.nan), st.just(math.inf))


def decide(cls: ErrorClass = ErrorClass.SERVER_ERROR, **kwargs: Any) -> RetryDecision:
    args: dict[str, Any] = {"attempt": 1, "now": 100.0, "rng": random.Random(1)}
    args.update(kwargs)
    policy = args.pop("policy", RetryPolicy(max_attempts=3))
    return decide_retry(policy, cls, **args)


@settings(max_examples=250, deadline=None)
@given(
    policy=retry_policies,
    cls=st.sampled_from(list(ErrorClass)),
    attempt=st.integers(1, 8),
    now=st.floats(0.0, 1e6),
    budget=st.one_of(st.none(), st.floats(-10.0, 120.0)),
    retry_after=retry_afters,
    not_before_in=st.one_of(st.none(), st.floats(-10.0, 120.0)),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_retry_is_never_scheduled_past_the_deadline_nor_before_an_honoured_retry_after(
    policy: RetryPolicy,
    cls: ErrorClass,
    attempt: int,
    now: float,
    budget: float | None,
    retry_after: float | None,
    not_before_in: float | None,
    seed: int,
) -> None:
    deadline = None if budget is None else now + budget
    not_before = None if not_before_in is None else now + not_before_in
    decision = decide_retry(
        policy,
        cls,
        attempt=attempt,
        now=now,
        rng=random.Random(seed),
        deadline=deadline,
        retry_after=retry_after,
        not_before=not_before,
    )
    if deadline is not None and now >= deadline:
        assert decision == RetryDecision(GIVE_UP, RetryReason.DEADLINE)
    if decision.action is not RETRY:
        assert decision.delay == 0.0
        return
    assert FAILURE_POLICIES[cls].retry_same
    assert attempt < policy.max_attempts
    assert deadline is None or now + decision.delay < deadline
    honoured = retry_after if retry_after is not None and 0 <= retry_after < math.inf else 0.0
    assert honoured <= policy.max_retry_after
    assert decision.delay >= honoured
    if not_before is not None:
        assert now + decision.delay >= not_before
    # Jitter stays within [0, cap] unless a Retry-After or cooling imposes longer.
    imposed = max(honoured, 0.0 if not_before is None else not_before - now)
    assert 0.0 <= decision.delay <= max(policy.backoff_cap(attempt), imposed)


@settings(max_examples=150, deadline=None)
@given(
    policy=retry_policies,
    budget=st.floats(0.0, 60.0),
    retry_afters_seen=st.lists(retry_afters, min_size=1, max_size=10),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_whole_schedule_of_attempts_and_waits_never_outlives_the_deadline(
    policy: RetryPolicy, budget: float, retry_afters_seen: list[float | None], seed: int
) -> None:
    rng = random.Random(seed)
    now, deadline = 50.0, 50.0 + budget
    attempt = 1
    for retry_after in retry_afters_seen:
        attempt_took = rng.uniform(0.0, 3.0)
        now += attempt_took
        decision = decide_retry(
            policy,
            ErrorClass.RATE_LIMITED,
            attempt=attempt,
            now=now,
            rng=rng,
            deadline=deadline,
            retry_after=retry_after,
        )
        if decision.action is not RETRY:
            assert decision.action is GIVE_UP or now < deadline
            break
        now += decision.delay
        assert now < deadline
        attempt += 1
    assert attempt <= policy.max_attempts


def test_full_jitter_spreads_uniformly_over_zero_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=8.0)
    rng = random.Random(2024)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        assert policy.backoff_cap(attempt) == cap
        draws = [policy.backoff(attempt, rng) for _ in range(4000)]
        assert all(0.0 <= d <= cap for d in draws)
        assert min(draws) < cap * 0.01
        assert max(draws) > cap * 0.99
        # Uniform on [0, cap]: mean cap/2, std cap/sqrt(12); 4000 draws put the mean
        # within 0.02*cap of cap/2 with overwhelming probability (> 4 standard errors).
        assert abs(statistics.fmean(draws) - cap / 2) < 0.02 * cap


def test_a_huge_attempt_number_keeps_the_backoff_capped_and_finite() -> None:
    policy = RetryPolicy(max_attempts=10**9, base_delay=1.0, max_delay=5.0)
    assert policy.backoff_cap(10**8) == 5.0


def test_a_retryable_failure_is_retried_on_the_same_route_until_the_budget_is_spent() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert decide(policy=policy, attempt=1).action is RETRY
    assert decide(policy=policy, attempt=2).action is RETRY
    assert decide(policy=policy, attempt=3) == RetryDecision(
        FAIL_OVER, RetryReason.ATTEMPTS_EXHAUSTED
    )


def test_a_single_attempt_budget_never_retries() -> None:
    assert decide(policy=RetryPolicy(max_attempts=1)).action is FAIL_OVER


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (ErrorClass.CONNECT_TIMEOUT, RetryDecision(FAIL_OVER, RetryReason.NOT_RETRYABLE)),
        (ErrorClass.FIRST_TOKEN_TIMEOUT, RetryDecision(FAIL_OVER, RetryReason.NOT_RETRYABLE)),
        (ErrorClass.IDLE_TIMEOUT, RetryDecision(FAIL_OVER, RetryReason.NOT_RETRYABLE)),
        (ErrorClass.AUTHENTICATION, RetryDecision(FAIL_OVER, RetryReason.NOT_RETRYABLE)),
        (ErrorClass.CONTEXT_LENGTH, RetryDecision(FAIL_OVER, RetryReason.LARGER_CONTEXT)),
        (ErrorClass.CONTENT_POLICY, RetryDecision(GIVE_UP, RetryReason.CLIENT_ERROR)),
        (ErrorClass.BAD_REQUEST, RetryDecision(GIVE_UP, RetryReason.CLIENT_ERROR)),
    ],
)
def test_classes_that_must_not_retry_the_same_route_do_not(
    cls: ErrorClass, expected: RetryDecision
) -> None:
    assert decide(cls) == expected


@pytest.mark.parametrize("cls", RETRYABLE)
def test_retryable_classes_retry_after_a_backoff(cls: ErrorClass) -> None:
    decision = decide(cls)
    assert decision.action is RETRY
    assert decision.reason is RetryReason.RETRYABLE
    assert 0.0 <= decision.delay <= RetryPolicy().backoff_cap(1)


def test_after_the_commit_point_only_a_resumable_failure_fails_over_by_continuation() -> None:
    assert decide(ErrorClass.STREAM_CUT, content_delivered=True) == RetryDecision(
        FAIL_OVER, RetryReason.RESUME
    )
    assert decide(ErrorClass.MALFORMED, content_delivered=True).reason is RetryReason.RESUME
    assert decide(ErrorClass.IDLE_TIMEOUT, content_delivered=True).reason is RetryReason.RESUME
    for cls in (ErrorClass.SERVER_ERROR, ErrorClass.TOTAL_TIMEOUT, ErrorClass.RATE_LIMITED):
        assert decide(cls, content_delivered=True) == RetryDecision(GIVE_UP, RetryReason.COMMITTED)


def test_an_honoured_retry_after_is_waited_for_in_full() -> None:
    decision = decide(ErrorClass.RATE_LIMITED, retry_after=20.0, deadline=200.0)
    assert decision.action is RETRY
    assert decision.delay >= 20.0


def test_a_retry_after_longer_than_the_maximum_fails_over_instead_of_waiting() -> None:
    policy = RetryPolicy(max_attempts=3, max_retry_after=10.0)
    assert decide(ErrorClass.RATE_LIMITED, policy=policy, retry_after=10.5) == RetryDecision(
        FAIL_OVER, RetryReason.RETRY_AFTER_TOO_LONG
    )
    assert decide(ErrorClass.RATE_LIMITED, policy=policy, retry_after=10.0).action is RETRY


def test_a_wait_that_would_reach_the_deadline_fails_over_instead() -> None:
    assert decide(ErrorClass.RATE_LIMITED, retry_after=5.0, deadline=105.0) == RetryDecision(
        FAIL_OVER, RetryReason.WAIT_PAST_DEADLINE
    )


def test_after_the_deadline_the_answer_is_to_give_up() -> None:
    assert decide(deadline=100.0) == RetryDecision(GIVE_UP, RetryReason.DEADLINE)
    assert decide(ErrorClass.STREAM_CUT, deadline=99.0, content_delivered=True).action is GIVE_UP


def test_the_breakers_cooling_time_is_waited_for_like_a_retry_after() -> None:
    decision = decide(ErrorClass.RATE_LIMITED, not_before=107.0)
    assert decision.action is RETRY
    assert decision.delay >= 7.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"attempt": 0}, "attempt"),
        ({"attempt": 1.5}, "attempt"),
        ({"attempt": True}, "attempt"),
        ({"now": math.nan}, "now"),
        ({"now": "soon"}, "now"),
        ({"deadline": math.nan}, "deadline"),
        ({"retry_after": "5"}, "retry_after"),
        ({"not_before": math.nan}, "not_before"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_them(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        decide(**kwargs)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", 2.0),
        ("base_delay", -0.1),
        ("max_delay", 0.1),
        ("max_retry_after", -1),
        ("max_retry_after", math.inf),
    ],
)
def test_a_bad_retry_setting_raises_a_config_error_naming_the_field(
    field: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=field) as caught:
        RetryPolicy(**{field: value})  # type: ignore[arg-type]
    assert caught.value.path == field


def test_a_retry_policy_reads_a_config_mapping_and_names_the_full_key_path() -> None:
    policy = RetryPolicy.from_mapping({"max_attempts": 2, "base_delay": 0.5, "max_delay": 8})
    assert policy == RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=8.0)
    with pytest.raises(ConfigError) as caught:
        RetryPolicy.from_mapping({"max_attempts": "two"}, path="providers.x.retry")
    assert caught.value.path == "providers.x.retry.max_attempts"
    with pytest.raises(ConfigError, match="attempts"):
        RetryPolicy.from_mapping({"attempts": 2})
