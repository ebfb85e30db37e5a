"""The stream task's terminal event: one per request, whatever the error."""

from __future__ import annotations

from runestone.actors.stream_task import terminal_error
from runestone.exceptions import ErrorClass, ErrorKind, NoCandidatesError, RateLimitedError
from runestone.messages import ChatRequest
from runestone.request import RequestContext

USER = [{"role": "user", "content": "hi"}]


def _context() -> RequestContext:
    return RequestContext(
        id="r",
        request=ChatRequest.from_dict({"model": "m", "messages": USER}),
        sink=None,  # type: ignore[arg-type]  # never reached: nothing is sent here
        deadline=1e9,
    )


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this error cannot say what it is")


def test_a_providers_error_keeps_its_class_and_names_its_provider() -> None:
    event = terminal_error(_context(), RateLimitedError("slow down", provider="p", model="m"))
    assert event.error_class is ErrorClass.RATE_LIMITED
    assert (event.provider, event.model, event.message) == ("p", "m", "slow down")


def test_a_routing_error_is_named_by_its_kind() -> None:
    event = terminal_error(_context(), NoCandidatesError("no model is called m"))
    assert event.kind is ErrorKind.NO_CANDIDATES_ERROR
    assert event.error_class is ErrorClass.BAD_REQUEST


def test_an_error_that_cannot_be_reported_still_ends_the_request() -> None:
    # A crash building the terminal event would crash every restart in turn and leave
    # the caller waiting for the deadline guard.
    event = terminal_error(_context(), _UnprintableError())
    assert event.error_class is ErrorClass.INTERNAL
    assert event.kind is ErrorKind.SUPERVISION_ERROR
    assert "_UnprintableError" in event.message
