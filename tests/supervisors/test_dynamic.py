"""The dynamic supervisor: bounded, transient by default, optional restart backoff."""

from __future__ import annotations

import random
from typing import Any

import pykka
import pytest

from runestone.exceptions import ActorUnavailableError, SupervisionError
from runestone.supervisors import (
    ChildState,
    DynamicSupervisor,
    RestartBackoff,
    RestartType,
    start_supervisor,
    supervisor_spec,
)
from runestone.testing import FakeClock
from tests.supervisors.workers import Journal, Worker, crash_and_wait


def starter(name: str, journal: Journal | None = None) -> Any:
    def start() -> pykka.ActorRef[Any]:
        return Worker.start(name, journal)

    return start


def test_spawned_children_are_transient_and_forgotten_after_a_normal_exit() -> None:
    dyn = start_supervisor(name="tasks", actor_class=DynamicSupervisor)
    try:
        task = dyn.spawn(starter("t"))
        assert task.ask("ping") == ("t", 1)
        crash_and_wait(task, lambda h: h.tell("crash"))
        assert task.ask("ping") == ("t", 1), "an abnormal exit restarts a transient child"
        crash_and_wait(task, lambda h: h.tell("stop"))
        assert dyn.count_children().specs == 0, "a finished child is forgotten"
        with pytest.raises(ActorUnavailableError):
            task.ask("ping", timeout=1)
    finally:
        dyn.stop()


def test_max_children_bounds_the_supervisor_with_a_clear_error() -> None:
    dyn = start_supervisor(name="tasks", actor_class=DynamicSupervisor, max_children=2)
    try:
        first = dyn.spawn(starter("a"))
        dyn.spawn(starter("b"))
        with pytest.raises(SupervisionError, match="at max_children=2"):
            dyn.spawn(starter("c"))
        dyn.terminate_child(first.id)
        third = dyn.spawn(starter("c"))
        assert third.ask("ping") == ("c", 1)
        assert dyn.count_children().active == 2
    finally:
        dyn.stop()


def test_a_restart_waits_for_its_backoff_on_the_injected_clock() -> None:
    clock = FakeClock()
    backoff = RestartBackoff(min=1.0, max=4.0, multiplier=2.0, jitter=0.0)
    dyn = start_supervisor(
        name="tasks",
        actor_class=DynamicSupervisor,
        backoff=backoff,
        clock=clock,
        rng=random.Random(1),
    )
    try:
        task = dyn.spawn(starter("t"))
        for expected_delay in (1.0, 2.0, 4.0):
            crash_and_wait(task, lambda h: h.tell("crash"))
            dyn.count_children()  # the exit notice has been handled
            assert task.state is ChildState.RESTARTING
            assert clock.pending == 1
            clock.advance(expected_delay - 0.01)
            assert clock.pending == 1, "not due yet"
            assert task.state is ChildState.RESTARTING
            clock.advance(0.01)
            assert task.ask("ping") == ("t", 1)
    finally:
        dyn.stop()


def test_stopping_cancels_a_pending_restart() -> None:
    clock = FakeClock()
    dyn = start_supervisor(
        name="tasks",
        actor_class=DynamicSupervisor,
        backoff=RestartBackoff(min=5, max=5, jitter=0),
        clock=clock,
    )
    task = dyn.spawn(starter("t"))
    crash_and_wait(task, lambda h: h.tell("crash"))
    dyn.count_children()
    dyn.stop()
    assert clock.pending == 0
    clock.advance(10)  # nothing fires into a stopped supervisor


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min": -1}, "^min: expected a number >= 0, got -1$"),
        ({"min": 2, "max": 1}, "^max: expected a number >= 2, got 1$"),
        ({"multiplier": 0.5}, "^multiplier: expected a number >= 1, got 0.5$"),
        ({"jitter": 2}, "^jitter: expected a fraction <= 1, got 2$"),
    ],
)
def test_bad_backoff_values_are_refused_naming_the_field(kwargs: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RestartBackoff(**kwargs)


def test_backoff_jitter_stays_within_its_bounds() -> None:
    backoff = RestartBackoff(min=1, max=8, multiplier=2, jitter=0.25)
    rng = random.Random(7)
    for n in range(1, 8):
        base = min(8, 2 ** (n - 1))
        for _ in range(50):
            assert base * 0.75 <= backoff.delay(n, rng) <= base * 1.25


def test_a_dynamic_supervisor_nests_under_a_static_one() -> None:
    journal = Journal()
    root = start_supervisor(
        [supervisor_spec("tasks", [], actor_class=DynamicSupervisor, max_children=4)],
        name="root",
    )
    try:
        tasks = root.child("tasks")
        task = tasks.spawn(starter("t", journal), restart=RestartType.TEMPORARY)
        assert task.ask("ping") == ("t", 1)
        assert root.tree()["children"][0]["children"][0]["id"] == task.id
    finally:
        root.stop()
    assert journal.events("stop") == ["t"]


def test_bad_max_children_is_refused() -> None:
    from runestone.exceptions import ChildStartError

    with pytest.raises(ValueError, match=r"^max_children: expected an integer >= 1, got 0$"):
        start_supervisor(name="tasks", actor_class=DynamicSupervisor, max_children=0)
    with pytest.raises(ChildStartError, match="max_children: expected an integer >= 1, got -3"):
        start_supervisor(
            [supervisor_spec("tasks", [], actor_class=DynamicSupervisor, max_children=-3)]
        )


def test_a_told_spawn_reports_a_failure_to_its_callback_not_to_anyone_waiting() -> None:
    import threading

    from runestone.supervisors import ChildSpec, Spawn

    dyn = start_supervisor(name="tasks", actor_class=DynamicSupervisor, max_children=1)
    try:
        errors: list[Exception] = []
        failed = threading.Event()

        def on_error(exc: Exception) -> None:
            errors.append(exc)
            failed.set()

        dyn.tell(Spawn(ChildSpec("first", starter("a"), await_start=False), on_error))
        dyn.tell(Spawn(ChildSpec("second", starter("b"), await_start=False), on_error))
        assert failed.wait(5)
        assert [str(e) for e in errors] == [
            "dynamic supervisor 'tasks' is at max_children=1; child 'second' not started"
        ]
        assert dyn.child("first").ask("ping") == ("a", 1)
    finally:
        dyn.stop()
