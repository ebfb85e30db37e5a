"""Every way a supervised actor can die is seen by its supervisor (ARCHITECTURE §9)."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest

from runestone.exceptions import ActorCrashedError, ChildStartError
from runestone.supervisors import (
    ChildSpec,
    ExitKind,
    SupervisedActor,
    SupervisorHandle,
    start_supervisor,
)
from tests.supervisors.workers import BoomError, Journal, Worker, crash_and_wait, worker_spec


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def root(journal: Journal) -> Iterator[SupervisorHandle]:
    handle = start_supervisor([worker_spec("a", journal), worker_spec("b", journal)], name="root")
    yield handle
    handle.stop()


def test_an_exception_in_a_tell_handler_restarts_the_actor(root: SupervisorHandle) -> None:
    a = root.child("a")
    assert a.ask("ping") == ("a", 1)
    old = a.incarnation
    crash_and_wait(a, lambda h: h.tell("crash"))
    assert old is not None
    assert old.exit_reason is not None
    assert old.exit_reason.kind is ExitKind.CRASHED
    assert "BoomError: a crashed" in old.exit_reason.error
    assert a.ask("ping") == ("a", 1), "a fresh instance counts from the start"


def test_an_exception_in_an_ask_handler_reaches_the_asker_and_restarts_the_actor(
    root: SupervisorHandle,
) -> None:
    a = root.child("a")
    a.ask("ping")
    a.ask("ping")
    with pytest.raises(BoomError, match="a crashed"):
        a.ask("crash")
    assert a.ask("ping") == ("a", 1), "the crashed instance's state is gone"
    assert a.incarnation is not None
    assert a.incarnation.generation == 2


def test_a_base_exception_in_a_handler_ends_only_that_actor(root: SupervisorHandle) -> None:
    a, b = root.child("a"), root.child("b")
    b.ask("ping")
    with pytest.raises(ActorCrashedError, match="KeyboardInterrupt") as caught:
        a.ask("interrupt")
    assert isinstance(caught.value.__cause__, KeyboardInterrupt)
    assert b.ask("ping") == ("b", 2), "the sibling kept running with its state"
    assert a.ask("ping") == ("a", 1)
    with pytest.raises(ActorCrashedError, match="SystemExit"):
        a.ask("exit")
    assert b.ask("ping") == ("b", 3)
    assert a.ask("ping") == ("a", 1)


def test_a_failing_on_stop_is_an_abnormal_exit(journal: Journal) -> None:
    root = start_supervisor([worker_spec("a", journal, fail_stop=True)], name="root")
    try:
        a = root.child("a")
        old = a.incarnation
        crash_and_wait(a, lambda h: h.tell("stop"))
        assert old is not None
        assert old.exit_reason is not None
        assert old.exit_reason.kind is ExitKind.CRASHED
        assert old.exit_reason.phase == "on_stop"
        assert a.ask("ping") == ("a", 1)
        assert journal.events("start") == ["a", "a"]
    finally:
        root.stop()


def test_a_failing_on_start_at_boot_fails_the_supervisor_start_naming_the_child(
    journal: Journal,
) -> None:
    specs = [
        worker_spec("first", journal),
        worker_spec("second", journal),
        worker_spec("broken", journal, fail_start=True),
        worker_spec("never", journal),
    ]
    with pytest.raises(ChildStartError, match="'broken' failed to start: BoomError") as caught:
        start_supervisor(specs, name="root")
    assert caught.value.child_id == "broken"
    assert journal.events("start") == ["first", "second"]
    assert journal.events("stop") == ["second", "first"], "already started ones stop in reverse"


def test_a_failing_on_start_during_a_restart_is_retried_and_counts_against_intensity(
    journal: Journal,
) -> None:
    attempts: list[int] = []

    def start() -> pykka.ActorRef[Worker]:
        attempts.append(1)
        # The first incarnation starts; every later one refuses.
        return Worker.start("a", journal, fail_start=len(attempts) > 1)

    exits = []
    root = start_supervisor([ChildSpec("a", start)], name="root", on_exit=exits.append)
    a = root.child("a")
    crash_and_wait(a, lambda h: h.tell("crash"))
    root_incarnation = root.incarnation
    assert root_incarnation is not None
    assert root_incarnation.exited.wait(5)
    assert len(attempts) == 1 + 3, "three restarts are tried; needing a fourth escalates"
    assert exits
    assert exits[0].kind is ExitKind.ESCALATED


def test_an_expected_exception_answers_the_asker_without_a_crash() -> None:
    class Answering(SupervisedActor):
        expected_exceptions = (LookupError,)

        def on_receive(self, message: object) -> object:
            if message == "missing":
                raise KeyError("no such thing")
            return "ok"

    root = start_supervisor([ChildSpec("x", Answering.start)], name="root")
    try:
        x = root.child("x")
        generation = x.incarnation.generation if x.incarnation else None
        with pytest.raises(KeyError, match="no such thing"):
            x.ask("missing")
        assert x.ask("other") == "ok"
        assert x.incarnation is not None
        assert x.incarnation.generation == generation
    finally:
        root.stop()


def test_a_start_callable_that_returns_a_plain_pykka_actor_is_refused() -> None:
    class Plain(pykka.ThreadingActor):
        pass

    with pytest.raises(ChildStartError, match="must start a SupervisedActor"):
        start_supervisor([ChildSpec("plain", Plain.start)], name="root")


def test_a_start_callable_that_raises_names_the_child() -> None:
    def start() -> pykka.ActorRef[Worker]:
        raise BoomError("cannot build it")

    with pytest.raises(ChildStartError, match="'c' failed to start: BoomError: cannot build it"):
        start_supervisor([worker_spec("ok"), ChildSpec("c", start)], name="root")


def test_a_late_exit_notice_from_an_old_incarnation_is_ignored(root: SupervisorHandle) -> None:
    from runestone.supervisors import ChildExited, ExitReason

    a = root.child("a")
    crash_and_wait(a, lambda h: h.tell("crash"))
    assert a.ask("ping") == ("a", 1)
    current = a.incarnation
    assert current is not None
    assert current.generation == 2
    stale = ChildExited("a", 1, ExitReason(ExitKind.CRASHED, "handler", "old news"))
    root.tell(stale)
    assert root.count_children().active == 2
    assert a.incarnation is current, "no restart happened"
    assert a.ask("ping") == ("a", 2)
