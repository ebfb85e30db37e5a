"""Holes a crash or a stop used to open in the running system (issue 9), each closed:
a request is never lost behind a crash, never leaks its admission slot, never waits on
a stalled admission, and never leaves its deadline guard armed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from runestone.actors.pool import StreamRequest
from runestone.exceptions import EscalationError, OverloadedError
from runestone.io import DataPlane
from runestone.messages import Done, Event, StreamError, TextDelta
from runestone.supervisors import SupervisedActor
from runestone.system import LoopClock, System
from runestone.testing import FakeClock
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.system.conftest import config, models, openai_provider

Start = Callable[..., System]
USER = [{"role": "user", "content": "Tell me the known text."}]


class BlockingPoison:
    """Crashes the actor that handles it, but only once ``gate`` opens: whatever is told
    meanwhile waits in that actor's inbox, behind the crash."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # a handler's first isinstance check blocks here
        self.entered.set()
        self.gate.wait(10)
        return BlockingPoison


def healthy_system(start_system: Start, up: FakeUpstream, **sections: Any) -> System:
    cfg = config(
        {"primary": openai_provider(up, models("healthy"))},
        aliases={"m": ["primary/healthy"]},
        supervision={"max_restarts": 10, "max_seconds": 5},
        **sections,
    )
    return start_system(cfg)


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_an_astream_told_to_admission_just_before_it_crashes_is_answered(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        system = healthy_system(start_system, up)
        poison = BlockingPoison()
        system.pool.tell(poison)
        assert poison.entered.wait(5)

        async def ask() -> list[Event]:
            stream = await system.astream({"model": "m", "messages": USER})
            return [event async for event in stream]

        result: list[list[Event]] = []
        caller = threading.Thread(target=lambda: result.append(asyncio.run(ask())))
        caller.start()
        deadline = time.monotonic() + 5
        while system.pool.incarnation is not None and time.monotonic() < deadline:
            inbox = system.pool.incarnation.ref
            if inbox is not None and inbox.actor_inbox.qsize() >= 1:
                break
        poison.gate.set()
        caller.join(15)
        assert not caller.is_alive(), "the caller was left hanging"
        assert isinstance(result[0][-1], Done)
        assert text_of(result[0]) == KNOWN_TEXT


class Collector(SupervisedActor):
    """An actor caller of the StreamRequest path: collects what it is told."""

    def __init__(self, done: threading.Event, events: list[Any]) -> None:
        super().__init__()
        self.done = done
        self.events = events

    def on_receive(self, message: Any) -> Any:
        self.events.append(message)
        if isinstance(message, Done | StreamError):
            self.done.set()
        return None


def test_a_stream_request_told_just_before_admission_crashes_is_answered(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        system = healthy_system(start_system, up)
        done, events = threading.Event(), []
        collector = Collector.start(done, events)
        try:
            poison = BlockingPoison()
            system.pool.tell(poison)
            assert poison.entered.wait(5)
            system.pool.tell(StreamRequest({"model": "m", "messages": USER}, collector))
            poison.gate.set()
            assert done.wait(15), "the actor caller was left hanging"
            assert isinstance(events[-1], Done)
            assert text_of(events) == KNOWN_TEXT
        finally:
            collector.stop()


def test_restarting_admission_does_not_stall_admission(start_system: Start) -> None:
    with FakeUpstream() as up:
        system = healthy_system(start_system, up)
        old = system.pool.incarnation
        assert old is not None
        system.pool.tell("no such message")
        assert old.exited.wait(5)
        started = time.monotonic()
        assert system.complete({"model": "m", "messages": USER}).text == KNOWN_TEXT
        assert time.monotonic() - started < 1.0, "admission waited on its own supervisor"


def test_stopping_stream_tasks_frees_their_admission_slots(start_system: Start) -> None:
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("stall-after:1", "healthy"))},
            aliases={"stall": ["primary/stall-after:1"], "m": ["primary/healthy"]},
            pool={"max_in_flight": 2},
        )
        system = start_system(cfg)
        tasks = system.supervisor.child("pool").child("tasks")
        for _ in range(3):  # more stops than the pool has slots
            stream = iter(system.stream({"model": "stall", "messages": USER}))
            assert isinstance(next(stream), TextDelta)
            (row,) = tasks.which_children()
            tasks.terminate_child(row.id)
            rest = list(stream)
            assert isinstance(rest[-1], StreamError)
            assert "stopped before it finished" in rest[-1].message
        deadline = time.monotonic() + 5
        while system.pool_stats().in_flight and time.monotonic() < deadline:
            pass
        assert system.pool_stats().in_flight == 0
        assert system.complete({"model": "m", "messages": USER}).text == KNOWN_TEXT


def test_a_refused_request_leaves_no_timer_armed(start_system: Start) -> None:
    clock = FakeClock()
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("stall-after:1"))},
            aliases={"m": ["primary/stall-after:1"]},
            pool={"max_in_flight": 1},
        )
        system = start_system(cfg, clock=clock)
        first = iter(system.stream({"model": "m", "messages": USER}))
        assert isinstance(next(first), TextDelta)
        armed = clock.pending
        with pytest.raises(OverloadedError):
            system.stream({"model": "m", "messages": USER})
        assert clock.pending == armed, "the refused request's guard is still armed"


class RacingLoop:
    """A loop whose ``call_later`` lets a cancel from another thread in first: the moment
    between the timer's check and its handle being set."""

    def __init__(self, loop: asyncio.AbstractEventLoop, race: Callable[[], None]) -> None:
        self._loop = loop
        self._race = race

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        done = threading.Event()
        threading.Thread(target=lambda: (self._race(), done.set())).start()
        done.wait(5)
        return self._loop.call_later(delay, callback)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


class RacingPlane:
    def __init__(self, plane: DataPlane, race: Callable[[], None]) -> None:
        self.loop = RacingLoop(plane.loop, race)
        self._plane = plane

    def in_loop_thread(self) -> bool:
        return self._plane.in_loop_thread()

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        self._plane.call_soon_threadsafe(callback)


def test_a_timer_cancelled_while_it_is_being_armed_stays_cancelled() -> None:
    timers: list[Any] = []
    with DataPlane() as plane:
        clock = LoopClock(RacingPlane(plane, lambda: timers[0].cancel()))  # type: ignore[arg-type]
        fired = threading.Event()
        timers.append(clock.call_later(0.05, fired.set))
        plane.run(asyncio.sleep(0))  # the arming has run
        handle = timers[0].handle
        assert handle is not None
        plane.run(asyncio.sleep(0.01))
        assert handle.cancelled(), "the timer stayed armed after its cancel"
        assert not fired.is_set()


def test_a_root_past_its_restart_intensity_brings_the_system_down_loudly(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("stall-after:1", "healthy"))},
            aliases={"stall": ["primary/stall-after:1"], "m": ["primary/healthy"]},
            supervision={"max_restarts": 1, "max_seconds": 30},
        )
        heard: list[EscalationError] = []
        system = start_system(cfg, on_escalation=heard.append)
        stream = iter(system.stream({"model": "stall", "messages": USER}))
        assert isinstance(next(stream), TextDelta)
        root = system.supervisor.incarnation
        assert root is not None
        for _ in range(2):  # the second restart is one more than the root allows
            router = system.router
            router.ref(timeout=5)  # the restarted one is up
            incarnation = router.incarnation
            assert incarnation is not None
            router.tell("no such message")
            assert incarnation.exited.wait(5)
        assert root.exited.wait(10), "the root gave up"
        assert len(heard) == 1
        assert "root supervisor gave up" in str(heard[0])
        rest = list(stream)
        assert isinstance(rest[-1], StreamError), "the stream in flight was told"
        assert sum(isinstance(e, StreamError | Done) for e in rest) == 1
        started = time.monotonic()
        with pytest.raises(EscalationError, match="the system is down"):
            system.stream({"model": "m", "messages": USER})
        with pytest.raises(EscalationError):
            system.complete({"model": "m", "messages": USER})
        assert time.monotonic() - started < 1.0, "later calls fail at once"
        health = system.health(timeout=1)
        assert health["status"] == "down"
        assert "root supervisor gave up" in health["down"]
        late: list[EscalationError] = []
        system.on_escalation(late.append)
        assert late == heard, "a listener registered afterwards hears it at once"


def test_requests_are_planned_from_the_last_published_routing_while_the_router_is_down(
    start_system: Start,
) -> None:
    with FakeUpstream() as up:
        system = healthy_system(start_system, up)
        poison = BlockingPoison()
        system.router.tell(poison)
        assert poison.entered.wait(5)  # the Router is stuck, then crashes
        try:
            started = time.monotonic()
            for _ in range(3):
                assert system.complete({"model": "m", "messages": USER}).text == KNOWN_TEXT
            assert time.monotonic() - started < 2.0, "requests waited for the Router"
        finally:
            poison.gate.set()


def test_a_restarted_router_keeps_the_routing_of_the_last_reload(start_system: Start) -> None:
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("healthy"))},
            aliases={"m": ["primary/healthy"]},
        )
        system = start_system(cfg)
        reloaded = dict(cfg, routing={"policy": "priority", "aliases": {"n": ["primary/healthy"]}})
        system.reload(reloaded)
        router = system.router
        incarnation = router.incarnation
        assert incarnation is not None
        router.tell("no such message")
        assert incarnation.exited.wait(5)
        router.ref(timeout=5)
        assert system.complete({"model": "n", "messages": USER}).text == KNOWN_TEXT
