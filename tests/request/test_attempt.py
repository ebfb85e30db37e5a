"""One upstream attempt and how it ended: an exception of our own code inside a provider
is an internal error, never dressed up as an upstream failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

import runestone
from runestone.exceptions import ErrorClass, RateLimitedError, StreamCutError
from runestone.messages import ChatRequest, Done, StreamError, StreamEvent, TextDelta
from runestone.providers.registry import REGISTRY
from runestone.providers.simulated import SimulatedProvider
from runestone.request import (
    AttemptMode,
    AttemptOutcome,
    OutcomeKind,
    RequestContext,
    run_attempt,
)
from runestone.system import System
from tests.system.conftest import config, settle

Start = Callable[..., System]
USER = [{"role": "user", "content": "Hi"}]


class BuggyProvider(SimulatedProvider):
    """A plugin provider with a bug: model ``buggy`` raises a TypeError of its own code,
    after the first token when the model is ``buggy-late``."""

    type_name = "buggy-for-tests"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        if request.model == "buggy-late":
            yield TextDelta("Hel")
        if request.model.startswith("buggy"):
            raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")
        async for event in super().stream(request):
            yield event


@pytest.fixture
def start_system() -> Iterator[Start]:
    started: list[System] = []

    def start(cfg: dict[str, Any]) -> System:
        system = runestone.start(cfg)
        started.append(system)
        return system

    yield start
    for system in started:
        system.stop()


@pytest.fixture
def buggy_type() -> Iterator[str]:
    REGISTRY.register(BuggyProvider.type_name, BuggyProvider)
    try:
        yield BuggyProvider.type_name
    finally:
        REGISTRY.unregister(BuggyProvider.type_name)


def _system(start_system: Start, buggy_type: str, model: str) -> System:
    providers: dict[str, Any] = {
        "buggy": {
            "type": buggy_type,
            "token_rate": 0,
            "retry": {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.02},
            "circuit_breaker": {"consecutive_failures": 1},
            "models": {model: {}},
        },
        "backup": {"type": "simulated", "token_rate": 0, "models": {"healthy": {}}},
    }
    return start_system(config(providers, aliases={"m": [f"buggy/{model}", "backup/healthy"]}))


def test_a_bug_inside_a_provider_is_an_internal_error_not_retried_nor_failed_over(
    start_system: Start, buggy_type: str
) -> None:
    system = _system(start_system, buggy_type, "buggy")
    events = list(system.stream({"model": "m", "messages": USER, "stream": True}))
    final = events[-1]
    assert isinstance(final, StreamError)
    assert final.error_class is ErrorClass.INTERNAL
    assert "TypeError" in final.message
    assert "upstream" not in final.message
    # One attempt: no retry on the same provider, no failover to the healthy backup.
    assert [(a.provider, a.outcome) for a in final.attempts] == [("buggy", "internal_error")]


def test_a_bug_inside_a_provider_does_not_count_against_its_circuit(
    start_system: Start, buggy_type: str
) -> None:
    system = _system(start_system, buggy_type, "buggy")
    for _ in range(3):
        events = list(system.stream({"model": "buggy/buggy", "messages": USER, "stream": True}))
        assert isinstance(events[-1], StreamError)
    settle(system)
    entry = system.directory.get("buggy")
    assert entry is not None
    assert entry.status is not None
    circuit = entry.status.circuit
    # consecutive_failures is 1: had they counted, the first would have opened it.
    assert circuit.state.value == "closed"
    assert (circuit.consecutive_failures, circuit.window_failures) == (0, 0)


def test_a_bug_after_content_ends_the_stream_with_an_internal_error_in_band(
    start_system: Start, buggy_type: str
) -> None:
    system = _system(start_system, buggy_type, "buggy-late")
    events = list(system.stream({"model": "m", "messages": USER, "stream": True}))
    assert events[0] == TextDelta("Hel", events[0].origin)  # type: ignore[union-attr]
    final = events[-1]
    assert isinstance(final, StreamError)
    assert final.error_class is ErrorClass.INTERNAL
    assert final.content_delivered is True
    assert not any(isinstance(event, Done) for event in events)


class GatedProvider:
    """Streams "a", then waits for ``gate``, then streams "b" and ends."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.first_sent = asyncio.Event()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("a")
        self.first_sent.set()
        await self.gate.wait()
        yield TextDelta("b")
        yield Done("stop")

    def estimate_cost(self, model: str, usage: Any) -> None:
        return None


class ListSink:
    cancelled = False

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def send(self, event: Any) -> None:
        self.events.append(event)

    def finish(self, error: BaseException | None = None) -> None:
        self.events.append("finished")


def test_a_fenced_off_attempt_delivers_nothing_more_and_never_ends_the_request() -> None:
    async def scenario() -> tuple[RequestContext, ListSink]:
        sink = ListSink()
        ctx = RequestContext(
            id="r",
            request=ChatRequest.from_dict({"model": "m", "messages": USER, "stream": True}),
            sink=sink,  # type: ignore[arg-type]
            deadline=1e9,
        )
        provider = GatedProvider()
        token = object()
        ctx.own(token)
        attempt = asyncio.ensure_future(
            run_attempt(provider, ctx, "m", AttemptMode.FRESH, token)  # type: ignore[arg-type]
        )
        await provider.first_sent.wait()
        ctx.fence()  # its task crashed: a restarted one takes over from what was delivered
        provider.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        return ctx, sink

    ctx, sink = asyncio.run(scenario())
    assert ctx.delivered == ["a"]
    assert [e.text for e in sink.events if isinstance(e, TextDelta)] == ["a"]
    assert not ctx.finished.is_set(), "the fenced attempt claimed no terminal"


def test_an_attempt_that_completed_is_labelled_ok_and_reports_its_figures() -> None:
    outcome = AttemptOutcome("p", "m", OutcomeKind.OK, 0.1234567, 0.05, AttemptMode.PREFILL)
    assert (outcome.ok, outcome.outcome, outcome.error_class, outcome.detail) == (
        True,
        "ok",
        None,
        "",
    )
    assert outcome.to_dict() == {
        "provider": "p",
        "model": "m",
        "outcome": "ok",
        "latency": 0.123457,
        "first_token": 0.05,
        "mode": "prefill",
    }


def test_an_upstream_failure_is_labelled_by_its_error_class() -> None:
    error = RateLimitedError("slow down", provider="p", retry_after=2.0)
    outcome = AttemptOutcome("p", "m", OutcomeKind.FAILED, error=error)
    assert (outcome.ok, outcome.outcome, outcome.error_class) == (
        False,
        "rate_limited",
        ErrorClass.RATE_LIMITED,
    )
    assert outcome.detail == "slow down"


@pytest.mark.parametrize(
    "kind",
    [
        OutcomeKind.REPLAY_DIVERGED,
        OutcomeKind.INTERNAL_ERROR,
        OutcomeKind.UNAVAILABLE,
        OutcomeKind.CIRCUIT_OPEN,
        OutcomeKind.CANCELLED,
    ],
)
def test_every_other_ending_is_labelled_by_its_kind(kind: OutcomeKind) -> None:
    error = StreamCutError("cut") if kind is OutcomeKind.REPLAY_DIVERGED else None
    assert AttemptOutcome("p", "m", kind, error=error).outcome == kind.value


def test_the_permit_an_attempt_ran_under_is_not_part_of_what_it_reports() -> None:
    plain = AttemptOutcome("p", "m")
    assert replace(plain, permit=object()) == plain  # type: ignore[arg-type]
    assert "permit" not in repr(replace(plain, permit=object()))  # type: ignore[arg-type]
