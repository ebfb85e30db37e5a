"""Crash injection while traffic flows: every request ends with exactly one terminal event,
no text is duplicated, and nothing is left running after stop."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

from runestone.exceptions import SupervisionReason
from runestone.messages import Done, Event, StreamError, TextDelta
from runestone.supervisors import ChildState
from runestone.system import System
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.system.conftest import anthropic_provider, config, models, openai_provider, settle

Start = Callable[..., System]
USER = [{"role": "user", "content": "Tell me the known text."}]


class Poison:
    """A message no actor understands: handling it crashes the actor (let it crash)."""


def consume(system: System, started: threading.Barrier) -> tuple[str, list[Event]]:
    stream = system.stream({"model": "m", "messages": USER})
    events: list[Event] = []
    first = True
    for event in stream:
        events.append(event)
        if first:
            first = False
            started.wait(10)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events


def test_killing_router_provider_pool_and_tasks_under_traffic_loses_and_duplicates_nothing(
    start_system: Start,
) -> None:
    with FakeUpstream(token_interval=0.01) as up:
        cfg = config(
            {
                "primary": openai_provider(up, models("healthy")),
                "backup": anthropic_provider(up, models("healthy")),
            },
            aliases={"m": ["primary/healthy", "backup/healthy"]},
            supervision={"max_restarts": 20, "max_seconds": 5},
        )
        system = start_system(cfg)
        n = 16
        started = threading.Barrier(n + 1)
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(consume, system, started) for _ in range(n)]
            started.wait(10)  # every stream has delivered content: all are in flight
            system.router.tell(Poison())
            system.directory.entries()["primary"].handle.tell(Poison())  # type: ignore[union-attr]
            system.pool.tell(Poison())
            tasks = system.supervisor.child("pool").child("tasks")
            victims = [row for row in tasks.which_children()][:3]
            for row in victims:
                row.handle.tell(Poison())
            results = [f.result(timeout=30) for f in futures]

        crashed = 0
        for text, events in results:
            terminals = [e for e in events if isinstance(e, Done | StreamError)]
            assert len(terminals) == 1, events[-3:]
            assert events[-1] is terminals[0]
            assert KNOWN_TEXT.startswith(text), "no text duplicated or garbled"
            if isinstance(terminals[0], Done):
                assert text == KNOWN_TEXT
            else:
                crashed += 1
                assert terminals[0].content_delivered
        assert crashed <= len(victims), "only the killed tasks lost their streams"

        # Everything was restarted and still serves.
        for _ in range(3):
            text = "".join(
                e.text
                for e in system.stream({"model": "m", "messages": USER})
                if isinstance(e, TextDelta)
            )
            assert text == KNOWN_TEXT
        settle(system)
        tree = system.health()["tree"]
        assert tree is not None
        by_id = {c["id"]: c for c in tree["children"]}
        assert by_id["router"]["restarts"] == 1
        assert by_id["pool"]["children"][1]["restarts"] == 1
        assert all(c["state"] == ChildState.RUNNING.value for c in tree["children"])
        assert system.pool_stats().in_flight == 0
        system.stop()


def test_a_task_killed_before_its_first_content_is_restarted_and_answers_whole(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("slow-first-token:0.5"))},
            aliases={"m": ["primary/slow-first-token:0.5"]},
        )
        system = start_system(cfg)
        stream = system.stream({"model": "m", "messages": USER})
        up.wait_for_attempts(1)
        tasks = system.supervisor.child("pool").child("tasks")
        (row,) = tasks.which_children()
        row.handle.tell(Poison())
        events = list(stream)
        text = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert text == KNOWN_TEXT
        assert isinstance(events[-1], Done)
        assert len(up.attempts) == 2, "the restarted task asked again"
        system.stop()


def test_a_request_whose_task_vanishes_is_ended_by_its_deadline_guard(
    start_system: Start,
) -> None:
    from runestone.testing import FakeClock

    clock = FakeClock()
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("stall-after:1"))},
            aliases={"m": ["primary/stall-after:1"]},
            pool={"max_in_flight": 10, "request_timeout": 30},
        )
        system = start_system(cfg, clock=clock)
        stream = iter(system.stream({"model": "m", "messages": USER}))
        assert isinstance(next(stream), TextDelta)
        tasks = system.supervisor.child("pool").child("tasks")
        (row,) = tasks.which_children()
        incarnation = row.handle.incarnation
        assert incarnation is not None
        incarnation.abandon()  # gone without a word: no on_stop, no terminal event
        assert incarnation.exited.wait(5)
        clock.advance(30 + 5)
        rest = list(stream)
        assert len(rest) == 1
        assert isinstance(rest[0], StreamError)
        assert rest[0].content_delivered
        assert rest[0].kind == "SupervisionError"
        system.stop()


def test_stopping_the_system_ends_streams_in_flight_with_an_error(start_system: Start) -> None:
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("stall-after:2"))},
            aliases={"m": ["primary/stall-after:2"]},
        )
        system = start_system(cfg)
        stream = iter(system.stream({"model": "m", "messages": USER}))
        assert isinstance(next(stream), TextDelta)
        system.stop()
        rest = list(stream)
        assert isinstance(rest[-1], StreamError)
        assert sum(isinstance(e, StreamError) for e in rest) == 1
        assert "stopped before it finished" in rest[-1].message
        assert rest[-1].reason is SupervisionReason.SHUTTING_DOWN
