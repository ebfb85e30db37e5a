"""The chaos schedule records what it did as the checker needs it: a subtree stop excuses the
requests caught anywhere in its window, and the schedule waits for them to move on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import runestone
from runestone.system import System
from runestone.testing.chaos import (
    ChaosReport,
    ChaosSettings,
    Excuses,
    Kind,
    Path,
    Progress,
    RequestRecord,
    Terminal,
    _Schedule,
    check_request,
)
from runestone.testing.upstream import FakeUpstream
from tests.system.conftest import config, models, openai_provider

KNOWN = "one two three"


@pytest.fixture
def system() -> Iterator[System]:
    with FakeUpstream() as up:
        cfg = config({"primary": openai_provider(up, models("healthy"))}, aliases={})
        system = runestone.start(cfg)
        try:
            yield system
        finally:
            system.stop()


def schedule(system: System, excuses: Excuses, records: list[RequestRecord]) -> _Schedule:
    settings = ChaosSettings(kinds=frozenset({Kind.STOP_POOL_SUP}), request_timeout=5)
    return _Schedule(settings, system, None, ChaosReport(settings), excuses, records, Progress())


@pytest.mark.parametrize("kind", [Kind.STOP_POOL_SUP, Kind.STOP_TASKS_SUP])
def test_a_subtree_stop_excuses_a_request_that_began_and_ended_inside_it(
    system: System, kind: Kind
) -> None:
    excuses = Excuses()
    schedule(system, excuses, []).perform(kind, 0.0)
    [window] = excuses.task_subtree_events
    assert isinstance(window, tuple)
    begin, end = window
    assert begin < end
    third = (end - begin) / 3
    inside = RequestRecord(3, Path.STREAM, "chaos-healthy", "chaos-0-3", started=begin + third)
    inside.add_text("one ")
    inside.add_terminal(Terminal(False, "ActorCrashedError", True))
    inside.ended = begin + 2 * third
    outcome = check_request(inside, excuses, known_text=KNOWN, deadline=8.0)
    assert outcome == ("ended_by_task_subtree", [])


def test_after_a_subtree_action_the_schedule_waits_for_the_requests_it_caught(
    system: System,
) -> None:
    caught = RequestRecord(1, Path.STREAM, "chaos-healthy", "chaos-0-1", started=1.0)
    progress = Progress()
    caught.progress = progress
    settings = ChaosSettings(
        kinds=frozenset({Kind.STOP_TASKS_SUP}), action_interval=0.001, request_timeout=30
    )
    paced = _Schedule(settings, system, None, ChaosReport(settings), Excuses(), [caught], progress)
    first, second = threading.Event(), threading.Event()
    original = paced.perform

    def perform(kind: Kind, pick: float) -> None:
        original(kind, pick)
        (second if first.is_set() else first).set()

    paced.perform = perform  # type: ignore[method-assign]
    paced.start()
    try:
        assert first.wait(10)
        # Caught with no text yet: no second action until it moves on.
        assert not second.wait(0.3)
        caught.add_text("one ")
        assert second.wait(10)
    finally:
        paced.stop()
