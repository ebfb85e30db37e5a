"""Supervisor behaviour: order, strategies, restart types, intensity, shutdown, introspection."""

from __future__ import annotations

import threading

import pytest

from runestone.exceptions import ActorUnavailableError, ChildStartError, SupervisionError
from runestone.supervisors import (
    ONE_FOR_ALL,
    REST_FOR_ONE,
    ChildKind,
    ChildState,
    ExitKind,
    ExitReason,
    IntensityPolicy,
    RestartType,
    start_supervisor,
    supervisor_spec,
)
from runestone.testing import FakeClock
from tests.supervisors.workers import Journal, crash_and_wait, worker_spec


def crash(handle) -> None:  # type: ignore[no-untyped-def]
    crash_and_wait(handle, lambda h: h.tell("crash"))


def test_children_start_in_order_and_stop_in_reverse_order() -> None:
    journal = Journal()
    root = start_supervisor([worker_spec(i, journal) for i in "abc"], name="root")
    assert journal.events("start") == ["a", "b", "c"]
    root.stop()
    assert journal.events("stop") == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("strategy", "failed", "restarted"),
    [
        (None, "b", ["b"]),
        (ONE_FOR_ALL, "b", ["a", "b", "c"]),
        (REST_FOR_ONE, "b", ["b", "c"]),
        (REST_FOR_ONE, "a", ["a", "b", "c"]),
        (REST_FOR_ONE, "c", ["c"]),
    ],
)
def test_a_strategy_restarts_exactly_its_children_in_order(strategy, failed, restarted) -> None:  # type: ignore[no-untyped-def]
    journal = Journal()
    kwargs = {"strategy": strategy} if strategy else {}
    root = start_supervisor([worker_spec(i, journal) for i in "abc"], name="root", **kwargs)
    try:
        journal.clear()
        crash(root.child(failed))
        root.count_children()  # the exit notice is handled before this answer
        stopped_by_supervisor = [c for c in restarted if c != failed]
        assert journal.events("stop") == list(reversed(stopped_by_supervisor))
        assert journal.events("start") == restarted
    finally:
        root.stop()


@pytest.mark.parametrize(
    ("restart", "message", "restarted"),
    [
        (RestartType.PERMANENT, "crash", True),
        (RestartType.PERMANENT, "stop", True),
        (RestartType.TRANSIENT, "crash", True),
        (RestartType.TRANSIENT, "stop", False),
        (RestartType.TEMPORARY, "crash", False),
        (RestartType.TEMPORARY, "stop", False),
    ],
)
def test_restart_types_decide_whether_an_exit_restarts(restart, message, restarted) -> None:  # type: ignore[no-untyped-def]
    root = start_supervisor([worker_spec("w", restart=restart)], name="root")
    try:
        w = root.child("w")
        crash_and_wait(w, lambda h: h.tell(message))
        counts = root.count_children()
        assert counts.active == (1 if restarted else 0)
        if restarted:
            assert w.ask("ping") == ("w", 1)
        else:
            with pytest.raises(ActorUnavailableError, match="'w' is stopped"):
                w.ask("ping", timeout=1)
        expected_specs = 0 if restart is RestartType.TEMPORARY else 1
        assert counts.specs == expected_specs, "temporary children are forgotten once they exit"
    finally:
        root.stop()


def test_a_temporary_sibling_stopped_by_one_for_all_is_not_restarted() -> None:
    journal = Journal()
    specs = [worker_spec("a", journal), worker_spec("t", journal, restart=RestartType.TEMPORARY)]
    root = start_supervisor(specs, name="root", strategy=ONE_FOR_ALL)
    try:
        journal.clear()
        crash(root.child("a"))
        assert [c.id for c in root.which_children()] == ["a"]
        assert journal.events("start") == ["a"]
    finally:
        root.stop()


class TestIntensity:
    """max_restarts within max_seconds are allowed; one more escalates; old restarts age out."""

    def test_max_restarts_within_the_period_are_allowed_and_one_more_escalates(self) -> None:
        clock = FakeClock()
        exits: list[ExitReason] = []
        root = start_supervisor(
            [worker_spec("w")],
            name="root",
            intensity=IntensityPolicy(max_restarts=3, max_seconds=5),
            clock=clock,
            on_exit=exits.append,
        )
        w = root.child("w")
        for _ in range(3):
            crash(w)
            assert w.ask("ping") == ("w", 1)  # the restart is counted by now
            clock.advance(1.6)  # 3 restarts over 4.8 s: all still inside the window
        assert not exits
        crash(w)
        incarnation = root.incarnation
        assert incarnation is None or incarnation.exited.wait(5)
        assert root.state is ChildState.STOPPED
        assert exits == [
            ExitReason(
                ExitKind.ESCALATED,
                "intensity",
                "supervisor 'root' reached its restart intensity (3 restarts in 5s) and stopped",
            )
        ]

    def test_restarts_older_than_the_period_age_out(self) -> None:
        clock = FakeClock()
        root = start_supervisor(
            [worker_spec("w")],
            name="root",
            intensity=IntensityPolicy(max_restarts=2, max_seconds=10),
            clock=clock,
        )
        try:
            w = root.child("w")
            for _ in range(10):
                crash(w)
                assert w.ask("ping") == ("w", 1)  # the restart is counted by now
                clock.advance(5.0)  # at most two restarts are ever less than 10 s old
            assert root.tree()["restarts_in_window"] <= 2
        finally:
            root.stop()

    def test_zero_max_restarts_escalates_on_the_first_restart(self) -> None:
        exits: list[ExitReason] = []
        root = start_supervisor(
            [worker_spec("w")],
            name="root",
            intensity=IntensityPolicy(max_restarts=0, max_seconds=1),
            on_exit=exits.append,
        )
        crash(root.child("w"))
        assert root.incarnation is None or root.incarnation.exited.wait(5)
        assert [e.kind for e in exits] == [ExitKind.ESCALATED]

    def test_an_escalating_nested_supervisor_is_restarted_by_its_parent(self) -> None:
        clock = FakeClock()
        journal = Journal()
        inner = supervisor_spec(
            "inner",
            [worker_spec("w", journal)],
            intensity=IntensityPolicy(max_restarts=1, max_seconds=5),
            clock=clock,
        )
        exits: list[ExitReason] = []
        root = start_supervisor(
            [worker_spec("sibling", journal), inner],
            name="root",
            intensity=IntensityPolicy(max_restarts=1, max_seconds=5),
            clock=clock,
            on_exit=exits.append,
        )
        inner_handle = root.child("inner")
        assert root.which_children()[1].kind is ChildKind.SUPERVISOR
        sibling = root.child("sibling")
        sibling.ask("ping")

        crash(inner_handle.child("w"))  # restart 1 of 1 inside inner: allowed
        old_inner = inner_handle.incarnation
        crash(inner_handle.child("w"))  # restart 2: inner escalates
        assert old_inner is not None
        assert old_inner.exited.wait(5)
        assert old_inner.exit_reason is not None
        assert old_inner.exit_reason.kind is ExitKind.ESCALATED
        # The root restarts inner (its first restart), which starts w afresh.
        assert inner_handle.child("w").ask("ping") == ("w", 1)
        assert sibling.ask("ping") == ("sibling", 2), "the sibling was not touched"
        assert not exits

        old_inner = inner_handle.incarnation
        crash(inner_handle.child("w"))
        crash(inner_handle.child("w"))  # inner escalates again: root's second restart
        assert old_inner is not None
        assert old_inner.exited.wait(5)
        assert root.incarnation is None or root.incarnation.exited.wait(5)
        assert [e.kind for e in exits] == [ExitKind.ESCALATED]
        assert journal.events("stop")[-1] == "sibling", "root stopped its children on escalation"

    def test_bad_intensity_values_are_refused_naming_the_field(self) -> None:
        with pytest.raises(ValueError, match="max_restarts: expected an integer >= 0"):
            IntensityPolicy(max_restarts=-1)
        with pytest.raises(ValueError, match=r"max_seconds: expected a (finite )?number > 0"):
            IntensityPolicy(max_seconds=0)


def test_a_child_that_ignores_stop_does_not_hold_its_supervisor_past_its_shutdown() -> None:
    gate = threading.Event()
    journal = Journal()
    root = start_supervisor(
        [worker_spec("quick", journal), worker_spec("stuck", journal, shutdown=0.2, gate=gate)],
        name="root",
    )
    stuck = root.child("stuck")
    blocked = stuck.ref().ask("block", block=False)
    try:
        root.stop(timeout=10)
        assert journal.events("stop") == ["quick"], "the stuck child never ran on_stop"
        assert root.state is ChildState.STOPPED
    finally:
        gate.set()
    assert blocked.get(timeout=5) == "unblocked"


class TestControlCalls:
    def test_which_and_count_children_describe_the_children(self) -> None:
        root = start_supervisor(
            [worker_spec("a"), supervisor_spec("sub", [worker_spec("x")])], name="root"
        )
        try:
            rows = root.which_children()
            assert [(r.id, r.kind, r.restart, r.state) for r in rows] == [
                ("a", ChildKind.WORKER, RestartType.PERMANENT, ChildState.RUNNING),
                ("sub", ChildKind.SUPERVISOR, RestartType.PERMANENT, ChildState.RUNNING),
            ]
            counts = root.count_children()
            assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (2, 2, 1, 1)
        finally:
            root.stop()

    def test_start_terminate_restart_and_delete_a_child(self) -> None:
        root = start_supervisor([], name="root")
        try:
            handle = root.start_child(worker_spec("late"))
            assert handle.ask("ping") == ("late", 1)
            root.terminate_child("late")
            assert root.which_children()[0].state is ChildState.STOPPED
            with pytest.raises(ActorUnavailableError, match="stopped"):
                handle.ask("ping", timeout=1)
            assert root.restart_child("late") == handle
            assert handle.ask("ping") == ("late", 1)
            with pytest.raises(SupervisionError, match="only a terminated child can be restarted"):
                root.restart_child("late")
            with pytest.raises(SupervisionError, match="terminate it before deleting it"):
                root.delete_child("late")
            root.terminate_child("late")
            root.delete_child("late")
            assert root.which_children() == []
        finally:
            root.stop()

    def test_bad_control_calls_get_clear_errors_and_the_supervisor_stays_up(self) -> None:
        root = start_supervisor([worker_spec("a")], name="root")
        try:
            with pytest.raises(SupervisionError, match="already has a child 'a'"):
                root.start_child(worker_spec("a"))
            with pytest.raises(SupervisionError, match="has no child 'ghost'"):
                root.terminate_child("ghost")
            with pytest.raises(ChildStartError, match="'bad' failed to start"):
                root.start_child(worker_spec("bad", fail_start=True))
            with pytest.raises(SupervisionError, match="unknown message str"):
                root.ask("hello")
            assert [c.id for c in root.which_children()] == ["a"]
            assert root.child("a").ask("ping") == ("a", 1)
        finally:
            root.stop()

    def test_the_tree_is_plain_data_for_the_whole_hierarchy(self) -> None:
        root = start_supervisor(
            [worker_spec("a"), supervisor_spec("sub", [worker_spec("x")], strategy=ONE_FOR_ALL)],
            name="root",
        )
        try:
            crash(root.child("a"))
            tree = root.tree()
            assert tree["id"] == "root"
            assert tree["strategy"] == "one_for_one"
            a, sub = tree["children"]
            assert (a["id"], a["state"], a["restarts"]) == ("a", "running", 1)
            assert a["last_exit"] == "crashed in handler: BoomError: a crashed"
            assert a["uptime"] >= 0
            assert (sub["kind"], sub["strategy"]) == ("supervisor", "one_for_all")
            assert [(c["id"], c["state"], c["restarts"]) for c in sub["children"]] == [
                ("x", "running", 0)
            ]
            import json

            json.dumps(tree)  # plain data all the way down
        finally:
            root.stop()


def test_duplicate_child_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate child ids \\['a'\\]"):
        start_supervisor([worker_spec("a"), worker_spec("a")], name="root")
    with pytest.raises(ChildStartError, match=r"'sub' failed to start: ValueError: .*duplicate"):
        start_supervisor([supervisor_spec("sub", [worker_spec("a"), worker_spec("a")])])


def test_no_thread_is_left_after_the_root_stops() -> None:
    before = set(threading.enumerate())
    root = start_supervisor(
        [worker_spec("a"), supervisor_spec("sub", [worker_spec("x"), worker_spec("y")])],
        name="root",
    )
    crash(root.child("sub").child("x"))
    root.stop()
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
    assert set(threading.enumerate()) - before == set()
