"""Stable handles reach the current incarnation across restarts, and never hang."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from runestone.exceptions import ActorUnavailableError
from runestone.supervisors import (
    ActorHandle,
    ChildSpec,
    ChildState,
    IntensityPolicy,
    start_supervisor,
)
from tests.supervisors.workers import Journal, Worker, crash_and_wait, worker_spec


class GatedRestart:
    """A start callable whose restarts wait on a gate, so a test can hold a child mid-restart."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.starts = 0

    def __call__(self) -> pykka.ActorRef[Any]:
        self.starts += 1
        if self.starts > 1:
            self.entered.set()
            self.gate.wait(10)
        return Worker.start("w", self.journal)


def test_a_handle_reaches_every_new_incarnation() -> None:
    root = start_supervisor(
        [worker_spec("w")], name="root", intensity=IntensityPolicy(max_restarts=10)
    )
    try:
        w = root.child("w")
        refs = set()
        for _ in range(5):
            refs.add(w.ref().actor_urn)
            crash_and_wait(w, lambda h: h.tell("crash"))
            assert w.ask("ping") == ("w", 1)
        assert len(refs) == 5, "each restart is a new pykka actor"
        assert root.child("w") == w
    finally:
        root.stop()


@dataclass
class MidRestart:
    """A supervised child ``w`` held in the middle of its first restart."""

    handle: ActorHandle
    start: GatedRestart
    journal: Journal


@pytest.fixture
def mid_restart() -> Iterator[MidRestart]:
    journal = Journal()
    start = GatedRestart(journal)
    root = start_supervisor([ChildSpec("w", start, start_timeout=10)], name="root")
    try:
        w = root.child("w")
        w.tell("crash")
        assert start.entered.wait(5)
        yield MidRestart(w, start, journal)
    finally:
        start.gate.set()
        root.stop()


def test_an_ask_during_a_restart_waits_for_the_new_incarnation(mid_restart: MidRestart) -> None:
    w = mid_restart.handle
    assert w.state is ChildState.RESTARTING
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(w.ask, "ping", timeout=10)
        mid_restart.start.gate.set()
        assert answer.result(timeout=10) == ("w", 1)


def test_an_ask_during_a_restart_that_takes_too_long_fails_with_a_clear_error(
    mid_restart: MidRestart,
) -> None:
    w = mid_restart.handle
    with pytest.raises(ActorUnavailableError, match=r"'w' is restarting .* in time"):
        w.ask("ping", timeout=0.2)
    mid_restart.start.gate.set()
    assert w.ask("ping") == ("w", 1), "the handle works again once the child is back"


def test_tells_during_a_restart_are_held_and_delivered_in_order(mid_restart: MidRestart) -> None:
    w = mid_restart.handle
    for i in range(5):
        w.tell(("note", str(i)))  # never blocks, though no incarnation is up
    mid_restart.start.gate.set()
    w.ask("ping")  # asked after the held tells; answered after they were handled
    assert mid_restart.journal.events("note") == ["0", "1", "2", "3", "4"]


def test_a_message_queued_behind_a_crash_goes_to_the_next_incarnation() -> None:
    gate = threading.Event()
    root = start_supervisor([worker_spec("w", gate=gate)], name="root")
    try:
        w = root.child("w")
        ref = w.ref()
        blocked = ref.ask("block", block=False)
        ref.tell("crash")  # queued behind the block, ahead of the ask below
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(w.ask, "ping", timeout=10)
            gate.set()
            assert blocked.get(timeout=5) == "unblocked"
            # The ping was never handled by the crashed incarnation: the next one answers it.
            assert answer.result(timeout=10) == ("w", 1)
    finally:
        gate.set()
        root.stop()


def test_a_handle_to_a_stopped_child_fails_at_once() -> None:
    root = start_supervisor([worker_spec("w")], name="root")
    w = root.child("w")
    root.stop()
    with pytest.raises(ActorUnavailableError, match="'w' is stopped"):
        w.ask("ping", timeout=5)
    with pytest.raises(ActorUnavailableError, match="'w' is stopped; message not sent"):
        w.tell("ping")
    with pytest.raises(ActorUnavailableError, match="'root' is stopped"):
        root.which_children()
