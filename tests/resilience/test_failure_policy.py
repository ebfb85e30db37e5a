"""The §4 table as data: complete, and saying what ARCHITECTURE §4 says per class."""

from __future__ import annotations

import pytest

from runestone.exceptions import ErrorClass
from runestone.resilience import CircuitEffect, FailoverScope, failure_policy
from runestone.resilience.failure_policy import FAILURE_POLICIES

TIMEOUTS = [
    ErrorClass.CONNECT_TIMEOUT,
    ErrorClass.HEADERS_TIMEOUT,
    ErrorClass.FIRST_TOKEN_TIMEOUT,
    ErrorClass.IDLE_TIMEOUT,
    ErrorClass.TOTAL_TIMEOUT,
]


def test_every_error_class_has_exactly_one_row() -> None:
    assert set(FAILURE_POLICIES) == set(ErrorClass)


def test_a_429_is_retried_and_failed_over_and_cools_rather_than_counting() -> None:
    row = failure_policy(ErrorClass.RATE_LIMITED)
    assert (row.retry_same, row.failover, row.circuit) == (
        True,
        FailoverScope.NEXT,
        CircuitEffect.COOLING,
    )
    assert not row.counts_against_circuit


@pytest.mark.parametrize("cls", [ErrorClass.SERVER_ERROR, ErrorClass.CONNECTION_ERROR])
def test_server_and_connection_errors_are_retried_failed_over_and_counted(cls: ErrorClass) -> None:
    row = failure_policy(cls)
    assert (row.retry_same, row.failover, row.counts_against_circuit) == (
        True,
        FailoverScope.NEXT,
        True,
    )


@pytest.mark.parametrize("cls", TIMEOUTS)
def test_a_silent_route_is_not_retried_but_failed_over_and_counted(cls: ErrorClass) -> None:
    row = failure_policy(cls)
    assert (row.retry_same, row.failover, row.counts_against_circuit) == (
        False,
        FailoverScope.NEXT,
        True,
    )


@pytest.mark.parametrize("cls", [ErrorClass.STREAM_CUT, ErrorClass.MALFORMED])
def test_a_cut_or_malformed_stream_is_retryable_before_commit_and_resumable_after(
    cls: ErrorClass,
) -> None:
    row = failure_policy(cls)
    assert (row.retry_same, row.failover, row.counts_against_circuit, row.resumable) == (
        True,
        FailoverScope.NEXT,
        True,
        True,
    )


def test_context_length_goes_only_to_a_larger_context_and_does_not_count() -> None:
    row = failure_policy(ErrorClass.CONTEXT_LENGTH)
    assert (row.retry_same, row.failover, row.circuit) == (
        False,
        FailoverScope.LARGER_CONTEXT,
        CircuitEffect.NONE,
    )


@pytest.mark.parametrize("cls", [ErrorClass.CONTENT_POLICY, ErrorClass.BAD_REQUEST])
def test_client_errors_are_returned_as_they_are(cls: ErrorClass) -> None:
    row = failure_policy(cls)
    assert (row.retry_same, row.failover, row.circuit) == (
        False,
        FailoverScope.NONE,
        CircuitEffect.NONE,
    )


def test_a_bad_key_fails_over_and_counts_against_the_circuit() -> None:
    row = failure_policy(ErrorClass.AUTHENTICATION)
    assert (row.retry_same, row.failover, row.counts_against_circuit) == (
        False,
        FailoverScope.NEXT,
        True,
    )


def test_only_cut_stalled_and_malformed_streams_are_resumable() -> None:
    # A stall after content is continued like a cut (issue 5: "cut or stalls").
    resumable = {cls for cls, row in FAILURE_POLICIES.items() if row.resumable}
    assert resumable == {ErrorClass.STREAM_CUT, ErrorClass.MALFORMED, ErrorClass.IDLE_TIMEOUT}


def test_a_failure_class_is_looked_up_by_its_value_too() -> None:
    assert failure_policy("idle_timeout") is failure_policy(ErrorClass.IDLE_TIMEOUT)  # type: ignore[arg-type]


def test_an_unknown_failure_class_raises_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="teapot"):
        failure_policy("teapot")  # type: ignore[arg-type]


def test_the_table_cannot_be_changed_at_runtime() -> None:
    with pytest.raises(TypeError):
        FAILURE_POLICIES[ErrorClass.BAD_REQUEST] = failure_policy(ErrorClass.SERVER_ERROR)  # type: ignore[index]


def test_a_bug_of_ours_is_neither_retried_nor_failed_over_nor_held_against_the_circuit() -> None:
    row = failure_policy(ErrorClass.INTERNAL)
    assert (row.retry_same, row.failover, row.circuit, row.resumable) == (
        False,
        FailoverScope.NONE,
        CircuitEffect.NONE,
        False,
    )
