"""A provider's recovery through the whole system: out-of-band probes of an open circuit
bring traffic back within the probe cap, a dead provider is probed at most once per probe
interval, and an error event in the middle of an answer is continued like a cut stream.

Real clock, real fake upstream, times scaled down (a 0.1-0.2 s probe cap standing in for
the default 0.5-1 s); every wait is a poll with a deadline."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from structlog.testing import capture_logs

from runestone.exceptions import ErrorClass
from runestone.messages import Done, StreamError
from runestone.system import System
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.system.conftest import anthropic_provider, config, models, openai_provider
from tests.system.test_failover import run, terminal

Start = Callable[..., System]
PROBE_INTERVAL, PROBE_CAP = 0.1, 0.2
SLACK = 0.3  # a loaded machine's timer and loop lag, on top of the probe cap


def outage(up: FakeUpstream, primary_model: str) -> dict[str, Any]:
    breaker = {
        "consecutive_failures": 1,
        "recovery": 30,  # the recovery time alone would bring it back far too late
        "jitter": 0,
        "probe_interval": PROBE_INTERVAL,
        "probe_interval_max": PROBE_CAP,
    }
    return config(
        {
            "primary": openai_provider(
                up, models(primary_model), retry={"max_attempts": 1}, circuit_breaker=breaker
            ),
            "backup": anthropic_provider(up, models("healthy")),
        },
        aliases={"m": [f"primary/{primary_model}", "backup/healthy"]},
    )


def circuit(system: System) -> str:
    return str(system.health()["providers"]["primary"]["circuit"]["state"])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
    return time.monotonic()


def test_traffic_returns_to_a_recovered_provider_within_the_probe_cap(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        system = start_system(outage(up, "down-for:1"))
        with capture_logs() as logs:  # after start: the system sets its logging up
            up.reset()  # the outage starts now
            recovered_at = time.monotonic() + 1.0
            _, events = run(system, "m")
            done = terminal(events)
            assert isinstance(done, Done)
            assert done.provider == "backup"
            assert circuit(system) == "open"
            back_at = wait_until(lambda: circuit(system) != "open", 5.0, "the circuit to reopen")
            assert back_at >= recovered_at - 0.05, "a probe during the outage failed, as it should"
            assert back_at - recovered_at <= PROBE_CAP + SLACK
            _, events = run(system, "m")
            done = terminal(events)
            assert isinstance(done, Done)
            assert done.provider == "primary", "the first request after the probe is served there"
            assert circuit(system) == "closed"
        metrics = system.metrics.render().decode()
        assert 'runestone_recovery_probes_total{provider="primary",result="pass"} 1.0' in metrics
        assert 'reason="health_probe_passed"' in metrics
    changes = [e for e in logs if e["event"] == "circuit_state_changed"]
    assert [(e["log_level"], e["new"], e["reason"]) for e in changes] == [
        ("warning", "open", "consecutive_failures"),
        ("warning", "half_open", "health_probe_passed"),
        ("warning", "closed", "probes_succeeded"),
    ]
    # The evidence: what failed, and the probe that brought it back.
    assert changes[0]["error_class"] == ErrorClass.SERVER_ERROR.value
    assert "503" in changes[0]["last_error_detail"]
    assert changes[1]["probe"] == "passed"


def test_a_provider_that_stays_dead_sees_at_most_one_probe_per_probe_interval(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        system = start_system(outage(up, "down-for:60"))
        _, events = run(system, "m")
        assert isinstance(terminal(events), Done)
        wait_until(lambda: len(up.listings) >= 8, 5.0, "eight probes")
        listings = up.listings
        gaps = [later - earlier for earlier, later in itertools.pairwise(listings)]
        assert min(gaps) >= PROBE_INTERVAL - 0.02, gaps
        # Each failed probe lengthens the interval up to its cap, and no further.
        assert gaps[-1] >= PROBE_CAP - 0.02, gaps
        assert circuit(system) == "open"
        assert [a.model for a in up.attempts].count("down-for:60") == 1, "probes are not chats"


def test_an_overloaded_error_event_mid_answer_is_continued_on_the_next_candidate(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        cfg = config(
            {
                "primary": anthropic_provider(up, models("error-event-after:3")),
                "backup": openai_provider(up, models("healthy")),
            },
            aliases={"m": ["primary/error-event-after:3", "backup/healthy"]},
        )
        system = start_system(cfg)
        text, events = run(system, "m")
        done = terminal(events)
        assert text == KNOWN_TEXT, "one whole answer, no word repeated or lost"
        assert isinstance(done, Done)
        assert done.provider == "backup"
        assert [(a.mode.value, a.outcome) for a in done.attempts] == [
            ("fresh", ErrorClass.STREAM_CUT.value),
            ("replay", "ok"),
        ]


def test_an_invalid_request_error_event_mid_answer_ends_it_with_the_providers_reason(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        cfg = config(
            {
                "primary": openai_provider(up, models("invalid-event-after:2")),
                "backup": anthropic_provider(up, models("healthy")),
            },
            aliases={"m": ["primary/invalid-event-after:2", "backup/healthy"]},
        )
        system = start_system(cfg)
        text, events = run(system, "m")
        error = terminal(events)
        assert isinstance(error, StreamError)
        assert error.error_class is ErrorClass.BAD_REQUEST
        assert error.content_delivered
        assert "refused mid-answer" in error.message
        assert text
        assert text != KNOWN_TEXT
        assert [a.model for a in up.attempts] == ["invalid-event-after:2"]


def test_when_every_circuit_is_open_traffic_returns_within_the_probe_cap_of_recovery(
    start_system: Start,
) -> None:
    breaker = {
        "consecutive_failures": 1,
        "recovery": 30,
        "jitter": 0,
        "probe_interval": PROBE_INTERVAL,
        "probe_interval_max": PROBE_CAP,
    }
    with FakeUpstream() as up:
        cfg = config(
            {
                name: block(
                    up,
                    models("down-for:1"),
                    retry={"max_attempts": 1, "max_retry_after": 2},
                    circuit_breaker=breaker,
                )
                for name, block in (("primary", openai_provider), ("backup", anthropic_provider))
            },
            aliases={"m": ["primary/down-for:1", "backup/down-for:1"]},
        )
        system = start_system(cfg)
        up.reset()  # both are down from now, for one second
        recovered_at = time.monotonic() + 1.0
        outcomes: list[tuple[float, bool]] = []
        while time.monotonic() < recovered_at + 1.0:
            started = time.monotonic()
            _, events = run(system, "m")
            outcomes.append((started, isinstance(terminal(events), Done)))
        assert not all(ok for _, ok in outcomes), "the outage was seen (panic mode)"
        late = [ok for started, ok in outcomes if started >= recovered_at + PROBE_CAP + SLACK]
        assert late, "requests ran after the recovery"
        assert all(late), "no 503 once a probe could have seen the recovery"
        # Panic mode probed rather than refused: nobody waited the 30 s recovery time.
        metrics = system.metrics.render().decode()
        assert "runestone_recovery_probes_total" in metrics
