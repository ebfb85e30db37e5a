"""Every fault of the fake upstream through the whole system: what the caller got, what the
upstream saw (ARCHITECTURE §3, §4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from runestone.exceptions import (
    ContentPolicyError,
    ErrorClass,
    NoCandidatesError,
    OverloadedError,
)
from runestone.messages import Done, Event, StreamError, TextDelta
from runestone.system import System
from runestone.testing import FakeClock
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.system.conftest import anthropic_provider, config, models, openai_provider, settle

Start = Callable[..., System]
USER = [{"role": "user", "content": "Tell me the known text."}]


def run(system: System, model: str, **extra: Any) -> tuple[str, list[Event]]:
    events = list(system.stream({"model": model, "messages": USER, **extra}))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return text, events


def terminal(events: list[Event]) -> Event:
    assert events, "no events at all"
    last = events[-1]
    assert isinstance(last, Done | StreamError)
    assert sum(isinstance(e, Done | StreamError) for e in events) == 1, "one terminal event"
    return last


def seen(up: FakeUpstream) -> list[tuple[str, str]]:
    return [(a.model, a.outcome) for a in up.attempts]


def two_providers(up: FakeUpstream, primary_model: str, backup: str = "healthy") -> dict[str, Any]:
    return config(
        {
            "primary": openai_provider(up, models(primary_model)),
            "backup": anthropic_provider(up, models(backup)),
        },
        aliases={"m": [f"primary/{primary_model}", f"backup/{backup}"]},
    )


def test_a_healthy_stream_is_the_known_text_with_one_attempt(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "healthy"))
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert isinstance(done, Done)
    assert (done.provider, done.model) == ("primary", "healthy")
    assert [a.outcome for a in done.attempts] == ["ok"]
    assert done.usage is not None
    assert done.usage.completion_tokens > 0
    assert seen(fake_upstream) == [("healthy", "ok")]


def test_a_429_is_retried_on_the_same_provider_after_its_retry_after(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "rate-limit-once:0.3"))
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert isinstance(done, Done)
    assert done.provider == "primary"
    first, second = fake_upstream.attempts
    assert (first.outcome, second.outcome) == ("rate_limited", "ok")
    assert second.time - first.time >= 0.3, "Retry-After was honoured"


def test_a_500_once_is_retried_and_answered(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "error-once"))
    text, _events = run(system, "m")
    assert text == KNOWN_TEXT
    assert seen(fake_upstream) == [("error-once", "server_error"), ("error-once", "ok")]


def test_a_persistent_503_fails_over_and_the_answer_says_who_answered(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "unavailable"))
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert isinstance(done, Done)
    assert (done.provider, done.model) == ("backup", "healthy")
    assert [(a.provider, a.outcome) for a in done.attempts] == [
        ("primary", "server_error"),
        ("primary", "server_error"),
        ("backup", "ok"),
    ]
    assert seen(fake_upstream) == [
        ("unavailable", "unavailable"),
        ("unavailable", "unavailable"),
        ("healthy", "ok"),
    ]


def test_a_silent_provider_is_not_retried_on_the_same_route(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = two_providers(fake_upstream, "blackhole")
    cfg["providers"]["primary"]["timeouts"] = {"connect": 1, "first_token": 0.3, "total": 5}
    system = start_system(cfg)
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert [(a.provider, a.outcome) for a in done.attempts] == [  # type: ignore[union-attr]
        ("primary", ErrorClass.HEADERS_TIMEOUT.value),
        ("backup", "ok"),
    ]
    assert [a.model for a in fake_upstream.attempts] == ["blackhole", "healthy"]


def test_an_open_circuit_is_not_hammered_and_traffic_returns_after_recovery(
    start_system: Start,
) -> None:
    clock = FakeClock()
    with FakeUpstream(clock=clock) as up:
        cfg = two_providers(up, "down-for:0.6")
        cfg["providers"]["primary"]["retry"] = {"max_attempts": 1}
        cfg["providers"]["primary"]["circuit_breaker"] = {
            "consecutive_failures": 2,
            "recovery": 0.8,
            "jitter": 0,
        }
        system = start_system(cfg, clock=clock)
        answered_by = []
        for _ in range(5):
            _, events = run(system, "m")
            done = terminal(events)
            assert isinstance(done, Done)
            answered_by.append(done.provider)
            # Outcomes are told to the provider actor, not awaited: the next request sees
            # this one's once it is booked (a caller racing the booking may try it again).
            settle(system)
        assert answered_by == ["backup"] * 5
        primary_hits = [a for a in up.attempts if a.model.startswith("down-for")]
        assert len(primary_hits) == 2, "after two failures the open circuit keeps requests away"
        assert system.health()["providers"]["primary"]["circuit"]["state"] == "open"
        clock.advance(0.9)  # past the upstream's outage and the breaker's recovery time
        _, events = run(system, "m")
        done = terminal(events)
        assert isinstance(done, Done)
        assert done.provider == "primary", "traffic returns to the primary once it recovered"
        assert up.attempts[-1].outcome == "ok"
        system.stop()


def test_a_stream_cut_after_content_is_continued_by_prefill(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = two_providers(fake_upstream, "cut-after:5", backup="prefill")
    cfg["providers"]["backup"]["models"]["prefill"] = {"capabilities": ["prefill"]}
    system = start_system(cfg)
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT, "one whole answer, no word repeated or lost"
    assert isinstance(done, Done)
    assert done.provider == "backup"
    assert [a.mode.value for a in done.attempts] == ["fresh", "prefill"]
    continuation = fake_upstream.attempts[-1]
    last_message = continuation.body["messages"][-1]
    assert last_message["role"] == "assistant"
    assert KNOWN_TEXT.startswith(str(last_message["content"]).strip() or "x")


def test_a_stream_cut_after_content_is_continued_by_replay_without_prefill(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "cut-after:5", backup="healthy"))
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert isinstance(done, Done)
    assert [a.mode.value for a in done.attempts] == ["fresh", "replay"]


def test_a_refused_prefill_falls_back_to_replay(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = two_providers(fake_upstream, "cut-after:4", backup="reject-prefill")
    cfg["providers"]["backup"]["models"]["reject-prefill"] = {"capabilities": ["prefill"]}
    system = start_system(cfg)
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert isinstance(done, Done)
    assert [(a.mode.value, a.outcome) for a in done.attempts] == [
        ("fresh", ErrorClass.STREAM_CUT.value),
        ("prefill", ErrorClass.BAD_REQUEST.value),
        ("replay", "ok"),
    ]


def test_a_cut_stream_that_cannot_be_continued_is_an_in_band_error_never_a_short_success(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = two_providers(fake_upstream, "cut-after:5", backup="prefill")
    cfg["routing"]["resume"] = {"prefill": False, "replay": False}
    system = start_system(cfg)
    text, events = run(system, "m")
    error = terminal(events)
    assert isinstance(error, StreamError)
    assert error.error_class is ErrorClass.STREAM_CUT
    assert error.content_delivered
    assert text
    assert KNOWN_TEXT.startswith(text)
    assert text != KNOWN_TEXT
    assert not any(isinstance(e, Done) for e in events)


def test_a_continuation_that_fails_reports_the_original_cut_not_the_prefill_rejection(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = two_providers(fake_upstream, "cut-after:3", backup="reject-prefill")
    cfg["providers"]["backup"]["models"]["reject-prefill"] = {"capabilities": ["prefill"]}
    cfg["routing"]["resume"] = {"prefill": True, "replay": False}
    system = start_system(cfg)
    _, events = run(system, "m")
    error = terminal(events)
    assert isinstance(error, StreamError)
    assert error.error_class is ErrorClass.STREAM_CUT
    assert error.provider == "primary"


def test_a_stall_after_content_is_continued_elsewhere(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = two_providers(fake_upstream, "stall-after:3", backup="healthy")
    cfg["providers"]["primary"]["timeouts"] = {"first_token": 2, "idle": 0.3, "total": 5}
    system = start_system(cfg)
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert [a.outcome for a in done.attempts] == [  # type: ignore[union-attr]
        ErrorClass.IDLE_TIMEOUT.value,
        "ok",
    ]


def test_context_length_exceeded_fails_over_to_a_larger_context_model(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = config(
        {
            "primary": openai_provider(
                fake_upstream,
                models(**{"context-length": {"context_window": 1000}, "healthy": {}}),
            ),
            "backup": anthropic_provider(fake_upstream, models(big={"context_window": 200000})),
        },
        aliases={"m": ["primary/context-length", "primary/healthy"]},
        routing={"context_window_fallbacks": {"primary/context-length": ["backup/big"]}},
    )
    system = start_system(cfg)
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert isinstance(done, Done)
    assert (done.provider, done.model) == ("backup", "big")
    assert [a.model for a in fake_upstream.attempts] == ["context-length", "big"]


def test_a_content_policy_refusal_is_returned_with_the_providers_reason_and_no_failover(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "content-policy"))
    _, events = run(system, "m")
    error = terminal(events)
    assert isinstance(error, StreamError)
    assert error.error_class is ErrorClass.CONTENT_POLICY
    assert "policy" in error.message.lower()
    assert seen(fake_upstream) == [("content-policy", "content_policy")]
    with pytest.raises(ContentPolicyError):
        system.complete({"model": "m", "messages": USER})


def test_a_bad_key_fails_over(fake_upstream: FakeUpstream, start_system: Start) -> None:
    system = start_system(two_providers(fake_upstream, "unauthorized"))
    text, _events = run(system, "m")
    assert text == KNOWN_TEXT
    assert seen(fake_upstream) == [("unauthorized", "unauthorized"), ("healthy", "ok")]


def test_complete_fails_over_whole_and_reports_the_attempts(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "cut-after:5", backup="healthy"))
    response = system.complete({"model": "m", "messages": USER})
    assert response.text == KNOWN_TEXT
    assert response.provider == "backup"
    assert [a.outcome for a in response.attempts][-1] == "ok"
    assert all(not a.stream for a in fake_upstream.attempts)


def test_an_unknown_model_is_a_clear_error(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "healthy"))
    _, events = run(system, "no-such-model")
    error = terminal(events)
    assert isinstance(error, StreamError)
    assert error.kind == "NoCandidatesError"
    assert "no-such-model" in error.message
    with pytest.raises(NoCandidatesError, match="no-such-model"):
        system.complete({"model": "no-such-model", "messages": USER})
    assert fake_upstream.attempts == []


def test_past_max_in_flight_a_request_is_refused_at_once(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = two_providers(fake_upstream, "stall-after:1")
    cfg["pool"] = {"max_in_flight": 1}
    system = start_system(cfg)
    held = system.stream({"model": "m", "messages": USER})
    assert isinstance(next(iter(held)), TextDelta)
    with pytest.raises(OverloadedError, match="the limit is 1"):
        system.stream({"model": "m", "messages": USER})
    held.close()


def test_a_caller_that_goes_away_cancels_the_request(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "stall-after:2"))
    stream = system.stream({"model": "m", "messages": USER})
    events = iter(stream)
    next(events)
    stream.close()
    # The pool hears of it: its in-flight count drops back to zero.
    import time

    deadline = time.monotonic() + 5
    while system.pool_stats().in_flight and time.monotonic() < deadline:
        system.pool_stats()  # each call is a round trip to the Pool actor
    assert system.pool_stats().in_flight == 0


def test_an_actor_can_tell_a_stream_request_and_receive_the_events(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    import pykka

    from runestone.actors.pool import StreamRequest

    received: list[Event] = []
    ended = threading.Event()

    class Caller(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> None:
            received.append(message)
            if isinstance(message, Done | StreamError):
                ended.set()

    system = start_system(two_providers(fake_upstream, "healthy"))
    caller = Caller.start()
    try:
        system.pool.tell(StreamRequest({"model": "m", "messages": USER}, caller))
        assert ended.wait(10)
        assert "".join(e.text for e in received if isinstance(e, TextDelta)) == KNOWN_TEXT
        assert isinstance(received[-1], Done)
        ended.clear()
        received.clear()
        system.pool.tell(StreamRequest({"model": "m", "messages": []}, caller))
        assert ended.wait(10)
        assert isinstance(received[-1], StreamError)
        assert received[-1].kind == "RequestValidationError"
    finally:
        caller.stop()


def test_asyncio_callers_stream_without_blocking_their_loop(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    import asyncio

    system = start_system(two_providers(fake_upstream, "healthy"))

    async def main() -> tuple[str, str]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        tick_task = asyncio.create_task(ticker())
        stream = await system.astream({"model": "m", "messages": USER, "stream": True})
        text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
        response = await system.acomplete({"model": "m", "messages": USER})
        tick_task.cancel()
        assert ticks > 0, "the caller's loop kept running while it waited"
        return text, response.text

    text, whole = asyncio.run(main())
    assert text == KNOWN_TEXT
    assert whole == KNOWN_TEXT


def test_a_429_without_retry_after_waits_out_the_breakers_cooldown_then_fails_over(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = two_providers(fake_upstream, "rate-limit")
    cfg["providers"]["primary"]["circuit_breaker"] = {"rate_limit_cooldown": 0.2}
    system = start_system(cfg)
    text, events = run(system, "m")
    done = terminal(events)
    assert text == KNOWN_TEXT
    assert isinstance(done, Done)
    assert [(a.provider, a.outcome) for a in done.attempts] == [
        ("primary", ErrorClass.RATE_LIMITED.value),
        ("primary", ErrorClass.RATE_LIMITED.value),
        ("backup", "ok"),
    ]
    first, second, _ = fake_upstream.attempts
    assert second.time - first.time >= 0.2, "the retry waited for the cooldown"


def test_when_every_circuit_is_open_the_soonest_to_recover_is_waited_for(
    start_system: Start,
) -> None:
    clock = FakeClock()
    with FakeUpstream(clock=clock) as up:
        cfg = config(
            {
                "only": openai_provider(
                    up,
                    models("down-for:1"),
                    retry={"max_attempts": 1, "max_retry_after": 30},
                    circuit_breaker={"consecutive_failures": 1, "recovery": 5, "jitter": 0},
                )
            },
            aliases={"m": ["only/down-for:1"]},
        )
        system = start_system(cfg, clock=clock)
        _, events = run(system, "m")
        assert isinstance(terminal(events), StreamError), "the outage itself is reported"
        # The outage is booked (the circuit open, its probe timer armed) before counting.
        settle(system)
        before = clock.pending
        stream = iter(system.stream({"model": "m", "messages": USER}))
        # The circuit is open and nothing else can serve: the request waits for recovery,
        # on a timer of the injected clock (besides its deadline's and its guard's).
        until = time.monotonic() + 5
        while clock.pending < before + 3 and time.monotonic() < until:
            system.pool_stats()  # a round trip to the actors, not a sleep
        assert clock.pending == before + 3
        clock.advance(5)
        events = list(stream)
        text = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert text == KNOWN_TEXT
        done = terminal(events)
        assert isinstance(done, Done)
        assert [a.outcome for a in done.attempts] == ["circuit_open", "ok"]
        system.stop()


def test_two_requests_may_share_a_callers_request_id(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    system = start_system(two_providers(fake_upstream, "healthy"))
    first = system.stream({"model": "m", "messages": USER}, request_id="same")
    second = system.stream({"model": "m", "messages": USER}, request_id="same")
    assert first.request_id != second.request_id
    assert first.request_id.startswith("same")
    for stream in (first, second):
        events = list(stream)
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == KNOWN_TEXT
