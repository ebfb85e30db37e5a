"""Restart intensity escalates exactly as configured: max_restarts restarts within max_seconds
are taken, the one after escalates — on an injected clock, so the window is exact."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import runestone
from runestone.exceptions import EscalationError
from runestone.messages import Done, TextDelta
from runestone.supervisors import SupervisorHandle
from runestone.system import System
from runestone.testing import FakeClock
from runestone.testing.chaos import Poison
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.system.conftest import config, models, openai_provider

MAX_RESTARTS = 3
MAX_SECONDS = 5
USER = [{"role": "user", "content": "Tell me the known text."}]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def system(clock: FakeClock) -> Iterator[System]:
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("healthy"))},
            aliases={"m": ["primary/healthy"]},
            supervision={"max_restarts": MAX_RESTARTS, "max_seconds": MAX_SECONDS},
        )
        system = runestone.start(cfg, clock=clock)
        try:
            # A first request resolves the handles the actors look up (see bug 3's test).
            assert answers(system)
            yield system
        finally:
            system.stop()


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``condition`` until it is truthy (no sleep: each poll is a round trip)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
    raise TimeoutError("condition not met in time")


def restarts_of(parent: SupervisorHandle, child_id: str) -> int:
    tree = parent.tree()
    (node,) = [c for c in tree["children"] if c["id"] == child_id]
    restarts: int = node["restarts"]
    return restarts if node["state"] == "running" else -1


def crash_and_wait(parent: SupervisorHandle, child_id: str) -> None:
    """Crash ``child_id`` once and wait until its supervisor has restarted it."""
    before = restarts_of(parent, child_id)
    parent.child(child_id).tell(Poison())
    wait_for(lambda: restarts_of(parent, child_id) == before + 1)


def answers(system: System) -> bool:
    events = list(system.stream({"model": "m", "messages": USER}))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return isinstance(events[-1], Done) and text == KNOWN_TEXT


def test_the_providers_supervisor_takes_max_restarts_and_escalates_on_the_next(
    system: System,
) -> None:
    root = system.supervisor
    providers = root.child("providers")
    assert isinstance(providers, SupervisorHandle)
    (child_id,) = [row.id for row in providers.which_children()]
    for _ in range(MAX_RESTARTS):
        crash_and_wait(providers, child_id)
    assert restarts_of(root, "providers") == 0, "within the intensity: it stays up"
    assert answers(system)

    providers.child(child_id).tell(Poison())  # one more within the window: escalate
    wait_for(lambda: restarts_of(root, "providers") == 1)
    # A new supervisor starts its children afresh; their restart history is kept with them.
    assert restarts_of(providers, child_id) == MAX_RESTARTS
    assert not system._holder.root_exit, "the root took the escalation as one restart"
    assert answers(system)


def test_the_pool_supervisor_takes_max_restarts_and_escalates_on_the_next(
    system: System,
) -> None:
    root = system.supervisor
    pool = root.child("pool")
    assert isinstance(pool, SupervisorHandle)
    for _ in range(MAX_RESTARTS):
        crash_and_wait(pool, "admission")
    assert restarts_of(root, "pool") == 0, "within the intensity: the pool itself stays up"
    assert answers(system)

    pool.child("admission").tell(Poison())  # one more within the window: escalate
    wait_for(lambda: restarts_of(root, "pool") == 1)
    assert restarts_of(pool, "admission") == MAX_RESTARTS, "restarted by a new pool supervisor"
    assert not system._holder.root_exit, "the root took the escalation as one restart"
    assert answers(system)


def test_restarts_older_than_max_seconds_no_longer_count(system: System, clock: FakeClock) -> None:
    root = system.supervisor
    providers = root.child("providers")
    assert isinstance(providers, SupervisorHandle)
    (child_id,) = [row.id for row in providers.which_children()]
    for _ in range(3 * MAX_RESTARTS):
        crash_and_wait(providers, child_id)
        clock.advance(MAX_SECONDS / MAX_RESTARTS + 0.01)
    assert restarts_of(root, "providers") == 0, "never more than max_restarts in one window"
    assert restarts_of(providers, child_id) == 3 * MAX_RESTARTS
    assert answers(system)


def test_the_root_takes_max_restarts_and_escalates_on_the_next(system: System) -> None:
    root = system.supervisor
    for _ in range(MAX_RESTARTS):
        crash_and_wait(root, "router")
    assert not system._holder.root_exit
    root.child("router").tell(Poison())
    wait_for(lambda: system._holder.root_exit)
    (reason,) = system._holder.root_exit
    assert "intensity" in str(reason)


def test_after_the_root_escalates_every_call_fails_at_once_naming_it(system: System) -> None:
    root = system.supervisor
    for _ in range(MAX_RESTARTS):
        crash_and_wait(root, "router")
    root.child("router").tell(Poison())
    wait_for(lambda: system._holder.root_exit)
    # OTP's permanent application: the system stays down, loudly (its process restarts).
    started = time.monotonic()
    with pytest.raises(EscalationError, match="root supervisor gave up"):
        answers(system)
    assert time.monotonic() - started < 1.0
    assert system.health(timeout=1)["status"] == "down"


def test_admission_restarted_before_any_request_admits_the_next_at_once(
    clock: FakeClock,
) -> None:
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("healthy"))},
            aliases={"m": ["primary/healthy"]},
        )
        system = runestone.start(cfg, clock=clock)
        try:
            pool = system.supervisor.child("pool")
            assert isinstance(pool, SupervisorHandle)
            started = time.monotonic()
            crash_and_wait(pool, "admission")
            assert answers(system)
            assert time.monotonic() - started < 2.0, "admission stalled"
        finally:
            system.stop()
