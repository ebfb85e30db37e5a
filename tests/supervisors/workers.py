"""Small supervised actors the supervision tests drive; each records its life in a journal."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from runestone.supervisors import ActorHandle, ChildSpec, LoopActor, RestartType, SupervisedActor


@dataclass
class Journal:
    """A thread-safe record of (event, child id) pairs, in the order they happened."""

    entries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, event: str, child_id: str) -> None:
        with self.lock:
            self.entries.append((event, child_id))

    def events(self, event: str) -> list[str]:
        with self.lock:
            return [child for kind, child in self.entries if kind == event]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


class BoomError(Exception):
    """The error the test workers crash with."""


class Worker(SupervisedActor):
    """Answers ``ping`` with its name and a per-incarnation counter; crashes on command."""

    def __init__(
        self,
        name: str,
        journal: Journal | None = None,
        *,
        fail_start: bool = False,
        fail_stop: bool = False,
        gate: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.journal = journal or Journal()
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.gate = gate
        self.count = 0

    def on_start(self) -> None:
        if self.fail_start:
            raise BoomError(f"{self.name} refuses to start")
        self.journal.add("start", self.name)

    def on_stop(self) -> None:
        self.journal.add("stop", self.name)
        if self.fail_stop:
            raise BoomError(f"{self.name} fails in on_stop")

    def on_receive(self, message: Any) -> Any:
        match message:
            case "ping":
                self.count += 1
                return (self.name, self.count)
            case "crash":
                raise BoomError(f"{self.name} crashed")
            case "interrupt":
                raise KeyboardInterrupt(f"{self.name} interrupted")
            case "exit":
                raise SystemExit(3)
            case "stop":
                self.stop()  # stop itself, normally
                return None
            case ("note", text):
                self.journal.add("note", text)
                return None
            case "block":
                assert self.gate is not None
                self.gate.wait(30)
                return "unblocked"
        raise ValueError(f"unknown message {message!r}")


def worker_spec(
    child_id: str,
    journal: Journal | None = None,
    *,
    restart: RestartType = RestartType.PERMANENT,
    shutdown: float = 5.0,
    **options: Any,
) -> ChildSpec:
    def start() -> pykka.ActorRef[Any]:
        return Worker.start(child_id, journal, **options)

    return ChildSpec(child_id, start, restart=restart, shutdown=shutdown)


def crash_and_wait(
    handle: ActorHandle, how: Callable[[ActorHandle], Any], timeout: float = 5
) -> None:
    """Make the current incarnation exit and wait until its supervisor has been told."""
    incarnation = handle.incarnation
    assert incarnation is not None, f"{handle} has no live incarnation"
    # The crash itself is the point; the error it raises is checked by other tests.
    with contextlib.suppress(Exception):
        how(handle)
    assert incarnation.exited.wait(timeout), f"{incarnation} did not exit"


class LoopWorker(LoopActor):
    """:class:`Worker` as a loop actor: the same messages, handled on the data-plane loop."""

    def __init__(self, name: str, journal: Journal | None = None) -> None:
        super().__init__()
        self.name = name
        self.journal = journal or Journal()
        self.count = 0
        self.threads: list[str] = []

    def on_start(self) -> None:
        self.journal.add("start", self.name)

    def on_stop(self) -> None:
        self.journal.add("stop", self.name)

    def on_receive(self, message: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        match message:
            case "ping":
                self.count += 1
                return (self.name, self.count)
            case "crash":
                raise BoomError(f"{self.name} crashed")
            case "interrupt":
                raise KeyboardInterrupt(f"{self.name} interrupted")
            case "stop":
                self.stop()
                return None
            case ("note", text):
                self.journal.add("note", text)
                return None
        raise ValueError(f"unknown message {message!r}")


def loop_worker_spec(
    child_id: str,
    loop: asyncio.AbstractEventLoop,
    journal: Journal | None = None,
    *,
    restart: RestartType = RestartType.PERMANENT,
) -> ChildSpec:
    def start() -> Any:
        return LoopWorker.start(child_id, journal, loop=loop)

    return ChildSpec(child_id, start, restart=restart, shutdown=5.0)
