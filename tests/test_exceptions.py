"""The error tree's machine-readable vocabulary: every class has its kind, routing's and the
runtime's errors carry their reason, and the in-band error event keeps both."""

from __future__ import annotations

import pytest

from runestone import exceptions
from runestone.exceptions import (
    ErrorClass,
    ErrorKind,
    NoCandidatesError,
    NoCandidatesReason,
    NoHealthyUpstreamError,
    RateLimitedError,
    RunestoneError,
    SupervisionError,
    SupervisionReason,
)
from runestone.messages import StreamError


def test_every_error_class_of_the_tree_has_a_kind_naming_it() -> None:
    classes = {
        name
        for name in exceptions.__all__
        if isinstance(getattr(exceptions, name), type)
        and issubclass(getattr(exceptions, name), RunestoneError)
    }
    assert {kind.value for kind in ErrorKind} == classes
    assert all(kind.error_type.__name__ == kind.value for kind in ErrorKind)


def test_a_kind_is_the_nearest_class_of_the_tree() -> None:
    class PluginRateLimitError(RateLimitedError):
        pass

    assert ErrorKind.of(PluginRateLimitError("slow")) is ErrorKind.RATE_LIMITED_ERROR
    assert ErrorKind.of(NoHealthyUpstreamError("held")) is ErrorKind.NO_HEALTHY_UPSTREAM_ERROR
    assert ErrorKind.of(KeyError("not ours")) is ErrorKind.RUNESTONE_ERROR


def test_no_candidates_says_why_and_held_back_is_its_default_for_no_healthy_upstream() -> None:
    assert NoCandidatesError("x").reason is NoCandidatesReason.NO_CAPABLE_CANDIDATE
    assert NoHealthyUpstreamError("x").reason is NoCandidatesReason.ALL_HELD_BACK
    ready = NoHealthyUpstreamError("x", reason=NoCandidatesReason.NOT_READY)
    assert ready.reason is NoCandidatesReason.NOT_READY
    assert SupervisionError("x").reason is None
    assert RateLimitedError("x").reason is None


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (
            NoCandidatesError("unknown", reason=NoCandidatesReason.UNKNOWN_MODEL),
            ErrorKind.NO_CANDIDATES_ERROR,
            NoCandidatesReason.UNKNOWN_MODEL,
        ),
        (
            SupervisionError("stopping", reason=SupervisionReason.SHUTTING_DOWN),
            ErrorKind.SUPERVISION_ERROR,
            SupervisionReason.SHUTTING_DOWN,
        ),
    ],
    ids=["no candidates", "shutdown"],
)
def test_the_in_band_event_of_an_error_keeps_its_kind_and_reason(
    error: RunestoneError, kind: ErrorKind, reason: object
) -> None:
    event = StreamError.from_exception(error, error_class=ErrorClass.BAD_REQUEST)
    assert (event.error_class, event.message, event.kind, event.reason) == (
        ErrorClass.BAD_REQUEST,
        str(error),
        kind,
        reason,
    )


def test_an_event_given_a_kind_by_name_holds_it_as_the_enum() -> None:
    event = StreamError(ErrorClass.SERVER_ERROR, "full", kind="OverloadedError")
    assert event.kind is ErrorKind.OVERLOADED_ERROR
    assert StreamError(ErrorClass.SERVER_ERROR, "x", kind="").kind is None
    with pytest.raises(ValueError, match="NotAnError"):
        StreamError(ErrorClass.SERVER_ERROR, "x", kind="NotAnError")
