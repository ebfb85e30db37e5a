"""Loop actors: handlers on the data-plane loop, with every way of dying reported."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pykka
import pytest

from runestone.exceptions import ActorCrashedError, ChildStartError
from runestone.io import DataPlane
from runestone.supervisors import (
    ChildSpec,
    ChildState,
    ExitKind,
    ExitReason,
    IntensityPolicy,
    LoopActor,
    LoopSupervisor,
    RestartType,
    Spawn,
    SupervisorHandle,
    live_loop_actors,
    start_supervisor,
)
from tests.supervisors.workers import (
    BoomError,
    Journal,
    LoopWorker,
    crash_and_wait,
    loop_worker_spec,
)


@pytest.fixture
def plane() -> Iterator[DataPlane]:
    with DataPlane(name="test-loop") as data_plane:
        yield data_plane


def test_a_loop_actor_handles_its_messages_on_the_loop_thread(plane: DataPlane) -> None:
    ref = LoopWorker.start("w", loop=plane.loop)
    assert ref.ask("ping", timeout=5) == ("w", 1)
    assert ref.ask("ping", timeout=5) == ("w", 2)
    ref.stop()
    assert not ref.is_alive()
    actor: Any = ref._actor
    assert set(actor.threads) == {"test-loop"}
    assert actor not in live_loop_actors()


def test_an_ask_from_its_own_loop_is_refused_rather_than_deadlocking(plane: DataPlane) -> None:
    ref = LoopWorker.start("w", loop=plane.loop)

    async def ask_on_the_loop() -> Any:
        return ref.ask("ping", timeout=1)

    with pytest.raises(RuntimeError, match="would never return"):
        plane.run(ask_on_the_loop(), timeout=5)
    ref.stop()


def test_a_crash_in_a_tell_handler_is_reported_and_the_loop_keeps_running(
    plane: DataPlane,
) -> None:
    exits: list[ExitReason] = []
    root = start_supervisor(
        [loop_worker_spec("w", plane.loop, restart=RestartType.TEMPORARY)],
        on_exit=exits.append,
    )
    other = LoopWorker.start("other", loop=plane.loop)
    handle = root.child("w")
    crash_and_wait(handle, lambda h: h.tell("crash"))
    assert other.ask("ping", timeout=5) == ("other", 1)  # the loop was not hurt
    assert [r.id for r in root.which_children()] == []  # temporary: forgotten
    root.stop()
    other.stop()


def test_a_base_exception_in_a_handler_ends_only_that_actor(plane: DataPlane) -> None:
    ref = LoopWorker.start("w", loop=plane.loop)
    other = LoopWorker.start("other", loop=plane.loop)
    with pytest.raises(ActorCrashedError, match="KeyboardInterrupt"):
        ref.ask("interrupt", timeout=5)
    assert not ref.is_alive()
    assert other.ask("ping", timeout=5) == ("other", 1)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("ping")
    other.stop()


class _Answering(LoopActor):
    expected_exceptions: ClassVar[tuple[type[Exception], ...]] = (LookupError,)

    def on_receive(self, message: Any) -> Any:
        raise LookupError(f"no {message!r}")


def test_an_expected_exception_answers_the_asker_and_the_actor_lives_on(
    plane: DataPlane,
) -> None:
    ref = _Answering.start(loop=plane.loop)
    with pytest.raises(LookupError, match="no 'x'"):
        ref.ask("x", timeout=5)
    assert ref.is_alive()
    ref.stop()


class _FailsToStart(LoopActor):
    def on_start(self) -> None:
        raise BoomError("no start for me")


def test_a_failing_on_start_fails_the_childs_start_naming_it(plane: DataPlane) -> None:
    def start() -> Any:
        return _FailsToStart.start(loop=plane.loop)

    with pytest.raises(ChildStartError, match=r"'broken'.*no start for me"):
        start_supervisor([ChildSpec("broken", start)])
    assert not live_loop_actors()


@dataclass(frozen=True)
class _Mine:
    pass


@dataclass(frozen=True)
class _Theirs:
    text: str


@dataclass
class _Returnable:
    rejected: list[BaseException]

    def undeliverable(self, error: BaseException) -> None:
        self.rejected.append(error)


class _Holding(LoopActor):
    """Crashes on "crash" while messages wait behind it."""

    own_messages: ClassVar[tuple[type, ...]] = (_Mine, _Returnable)

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise BoomError("crashed with messages waiting")
        if isinstance(message, _Theirs):
            self.journal.add("handled", message.text)
        return None


def test_tells_left_behind_a_crash_reach_the_next_incarnation_but_its_own_messages_do_not(
    plane: DataPlane,
) -> None:
    journal = Journal()
    rejected: list[BaseException] = []

    def start() -> Any:
        return _Holding.start(journal, loop=plane.loop)

    root = start_supervisor([ChildSpec("h", start)])
    handle = root.child("h")
    incarnation = handle.incarnation
    assert incarnation is not None
    ref = incarnation.ref
    assert ref is not None
    gate = threading.Event()

    async def tell_all() -> None:
        # All queued in one turn of the loop, so they wait behind the crash.
        ref.tell("crash")
        ref.tell(_Mine())
        ref.tell(_Returnable(rejected))
        ref.tell(_Theirs("after the crash"))
        gate.set()

    plane.run(tell_all(), timeout=5)
    assert gate.is_set()
    assert incarnation.exited.wait(5)
    assert handle.ask(_Theirs("probe"), timeout=5) is None  # the new incarnation answers
    assert journal.events("handled") == ["after the crash", "probe"]
    assert len(rejected) == 1  # its own message with a way back was told, not dropped
    root.stop()


def test_a_blocking_stop_from_a_thread_waits_for_on_stop(plane: DataPlane) -> None:
    journal = Journal()
    ref = LoopWorker.start("w", journal, loop=plane.loop)
    assert ref.stop(block=True, timeout=5) is True
    assert journal.events("stop") == ["w"]
    assert ref.stop() is False  # stopped already


def test_a_thread_supervisor_restarts_a_loop_child_and_its_handle_reaches_the_new_one(
    plane: DataPlane,
) -> None:
    journal = Journal()
    root = start_supervisor([loop_worker_spec("w", plane.loop, journal)])
    handle = root.child("w")
    assert handle.ask("ping") == ("w", 1)
    crash_and_wait(handle, lambda h: h.ask("crash"))
    assert handle.ask("ping") == ("w", 1)  # a fresh incarnation
    assert journal.events("start") == ["w", "w"]
    root.stop()
    assert journal.events("stop") == ["w"]
    assert not live_loop_actors()


def _loop_supervisor(plane: DataPlane, **options: Any) -> SupervisorHandle:
    return start_supervisor(
        [],
        name="tasks",
        actor_class=LoopSupervisor,
        loop=plane.loop,
        intensity=IntensityPolicy(3, 5),
        **options,
    )


def test_a_loop_supervisor_spawns_and_restarts_loop_children_on_the_loop(
    plane: DataPlane,
) -> None:
    journal = Journal()
    tasks = _loop_supervisor(plane)
    errors: list[BaseException] = []
    spec = loop_worker_spec("t1", plane.loop, journal, restart=RestartType.TRANSIENT)
    tasks.tell(Spawn(spec, errors.append))
    handle = tasks.child("t1")
    assert handle.ask("ping") == ("t1", 1)
    crash_and_wait(handle, lambda h: h.tell("crash"))
    assert handle.ask("ping") == ("t1", 1)
    counts = tasks.count_children()
    assert (counts.specs, counts.active, counts.workers) == (1, 1, 1)
    crash_and_wait(handle, lambda h: h.tell("stop"))  # a normal exit: transient, forgotten
    tasks.count_children()
    assert tasks.which_children() == []
    assert not errors
    tasks.stop()


def test_a_loop_supervisor_past_its_intensity_escalates_and_stops_its_children(
    plane: DataPlane,
) -> None:
    exits: list[ExitReason] = []
    tasks = _loop_supervisor(plane, on_exit=exits.append)
    tasks.start_child(loop_worker_spec("a", plane.loop))
    other = tasks.start_child(loop_worker_spec("b", plane.loop))
    handle = tasks.child("a")
    incarnation = tasks.incarnation
    for _ in range(3):  # within its intensity: restarted
        crash_and_wait(handle, lambda h: h.tell("crash"))
        assert tasks.count_children().active == 2
    crash_and_wait(handle, lambda h: h.tell("crash"))  # one too many
    assert incarnation is None or incarnation.exited.wait(5)
    assert [e.kind for e in exits] == [ExitKind.ESCALATED]
    assert other.state is not ChildState.RUNNING
    assert not live_loop_actors()


def test_loop_actors_never_start_a_thread(plane: DataPlane) -> None:
    before = threading.active_count()
    refs = [LoopWorker.start(f"w{i}", loop=plane.loop) for i in range(200)]
    for ref in refs:
        ref.tell("ping")
    assert all(ref.ask("ping", timeout=5) == (ref._actor.name, 2) for ref in refs)  # type: ignore[attr-defined]
    assert threading.active_count() == before
    for ref in refs:
        ref.stop()


def test_an_actor_started_on_a_closed_loop_exits_at_once() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    ref = LoopWorker.start("w", loop=loop)
    assert not ref.is_alive()
    assert not live_loop_actors()
