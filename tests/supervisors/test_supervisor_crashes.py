"""A crash never loses what was sent: tells queued behind a crash, children of a crashed
supervisor, messages held for a child that stops for good (issue 9)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest

from runestone.supervisors import (
    ChildSpec,
    ChildState,
    DynamicSupervisor,
    ExitKind,
    IntensityPolicy,
    RestartType,
    start_supervisor,
    supervisor_spec,
)
from tests.supervisors.workers import BoomError, Journal, Worker, crash_and_wait, worker_spec


@dataclass(frozen=True)
class Rejectable:
    """A told message that carries its own way back: told when it can never be delivered."""

    text: str
    rejected: list[BaseException] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)

    def undeliverable(self, error: BaseException) -> None:
        self.rejected.append(error)
        self.event.set()


def test_a_message_told_just_before_a_crash_reaches_the_next_incarnation() -> None:
    journal = Journal()
    gate = threading.Event()
    root = start_supervisor([worker_spec("w", journal, gate=gate)], name="root")
    try:
        w = root.child("w")
        first = w.incarnation
        assert first is not None
        w.tell("block")  # busy: what follows waits in its inbox
        w.tell("crash")
        w.tell(("note", "after the crash"))
        gate.set()
        assert first.exited.wait(5)
        assert w.ask("ping") == ("w", 1), "a new incarnation answers"
        assert journal.events("note") == ["after the crash"]
    finally:
        root.stop()


def test_a_crashed_supervisor_stops_its_children_and_its_handles_reach_the_new_ones() -> None:
    journal = Journal()
    root = start_supervisor(
        [supervisor_spec("sub", [worker_spec("w", journal)])],
        name="root",
        intensity=IntensityPolicy(5, 5),
    )
    try:
        sub = root.child("sub")
        w = sub.child("w")
        old_sub, old_w = sub.incarnation, w.incarnation
        assert old_sub is not None
        assert old_w is not None
        crash_and_wait(sub, lambda h: h.tell("no such message"))
        assert old_w.exited.wait(5), "the child died with its supervisor"
        assert old_w.ref is not None
        assert not old_w.ref.is_alive()
        assert w.ask("ping") == ("w", 1), "the handle kept from before reaches the new child"
        assert w.incarnation is not old_w
        assert journal.events("start") == ["w", "w"]
        assert len(pykka.ActorRegistry.get_by_class_name("Worker")) == 1
    finally:
        root.stop()
    assert pykka.ActorRegistry.get_all() == []


def test_a_message_told_while_a_supervisor_restarts_reaches_its_child() -> None:
    journal = Journal()
    gate = threading.Event()
    root = start_supervisor(
        [supervisor_spec("sub", [worker_spec("w", journal, gate=gate)])], name="root"
    )
    try:
        sub = root.child("sub")
        w = sub.child("w")
        w.tell("block")
        w.tell(("note", "queued"))  # behind the block, in the old child's inbox
        old = sub.incarnation
        assert old is not None
        sub.tell("no such message")  # the supervisor crashes while its child is busy
        gate.set()
        assert old.exited.wait(10)
        assert w.ask("ping", timeout=5)[0] == "w"
        assert journal.events("note") == ["queued"]
    finally:
        root.stop()


def test_a_message_held_for_a_child_that_stops_for_good_is_told_it_was_undeliverable() -> None:
    gate = threading.Event()
    root = start_supervisor(
        [worker_spec("w", gate=gate, restart=RestartType.TEMPORARY)], name="root"
    )
    try:
        w = root.child("w")
        w.tell("block")
        w.tell("crash")
        message = Rejectable("never handled")
        w.tell(message)
        gate.set()
        assert message.event.wait(5), "the sender heard its message could not be delivered"
        assert "'w'" in str(message.rejected[0])
    finally:
        root.stop()


def test_children_of_a_crashed_dynamic_supervisor_are_started_again_by_its_next_one() -> None:
    journal = Journal()
    root = start_supervisor(
        [supervisor_spec("tasks", [], actor_class=DynamicSupervisor)], name="root"
    )
    try:
        tasks = root.child("tasks")
        handle = tasks.start_child(worker_spec("t1", journal, restart=RestartType.TRANSIENT))
        old = tasks.incarnation
        assert old is not None
        crash_and_wait(tasks, lambda h: h.tell("no such message"))
        assert handle.ask("ping", timeout=5) == ("t1", 1)
        assert journal.events("start") == ["t1", "t1"]
        assert [row.id for row in tasks.which_children()] == ["t1"]
    finally:
        root.stop()


def test_a_supervisor_that_gives_up_rejects_what_its_children_held() -> None:
    gate = threading.Event()
    root = start_supervisor(
        [supervisor_spec("sub", [worker_spec("w", gate=gate)], intensity=IntensityPolicy(0, 5))],
        name="root",
        intensity=IntensityPolicy(0, 5),
    )
    exited = root.incarnation
    assert exited is not None
    w = root.child("sub").child("w")
    w.tell("block")
    w.tell("crash")  # the sub-supervisor escalates, then the root does: nobody restarts
    message = Rejectable("held")
    w.tell(message)
    gate.set()
    assert exited.exited.wait(10)
    assert exited.exit_reason is not None
    assert exited.exit_reason.kind is ExitKind.ESCALATED
    assert message.event.wait(5)
    assert w.state is ChildState.STOPPED


@pytest.mark.parametrize("then", ["crash", "stop"])
def test_no_worker_outlives_a_stopped_tree_after_a_supervisor_crash(then: str) -> None:
    root = start_supervisor(
        [supervisor_spec("sub", [worker_spec("a"), worker_spec("b")])], name="root"
    )
    sub = root.child("sub")
    crash_and_wait(sub, lambda h: h.tell("no such message"))
    if then == "crash":
        crash_and_wait(sub.child("a"), lambda h: h.tell("crash"))
    assert sub.child("a").ask("ping", timeout=5)[0] == "a"
    root.stop()
    leftover: list[Any] = pykka.ActorRegistry.get_all()
    assert leftover == []


@dataclass(frozen=True)
class Tick:
    """A message an actor tells itself."""


class SelfTelling(Worker):
    own_messages = (Tick,)

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick():
                self.journal.add("tick", self.name)
                return None
            case "tick then crash":
                assert self.gate is not None
                self.actor_ref.tell(Tick())  # queued behind what follows
                self.gate.wait(5)
                raise BoomError("crashed with its own tick still queued")
        return super().on_receive(message)


def test_what_an_actor_told_itself_dies_with_it_and_the_rest_goes_on() -> None:
    journal = Journal()
    gate = threading.Event()

    def start() -> pykka.ActorRef[Any]:
        return SelfTelling.start("w", journal, gate=gate)

    root = start_supervisor([ChildSpec("w", start)], name="root")
    try:
        w = root.child("w")
        first = w.incarnation
        assert first is not None
        w.tell("tick then crash")
        w.tell(("note", "from outside"))
        gate.set()
        assert first.exited.wait(5)
        assert w.ask("ping")[0] == "w"
        assert journal.events("note") == ["from outside"], "a told message is handed over"
        assert journal.events("tick") == [], "its own timer message is not"
    finally:
        root.stop()
