"""The invariant checker fires: each kind of broken outcome is counted as its own violation,
and only the legitimate errors pass (a harness that cannot fail is a defect)."""

from __future__ import annotations

import collections

import pytest

from runestone.actors.stream_task import MAX_TASK_RESTARTS
from runestone.testing.chaos import (
    ChaosReport,
    ChaosSettings,
    Excuses,
    Path,
    RequestRecord,
    Terminal,
    _plans,
    check_request,
)

KNOWN = "one two three four five"
DEADLINE = 8.0


def record(text: str = KNOWN, *terminals: Terminal, took: float = 1.0) -> RequestRecord:
    rec = RequestRecord(7, Path.STREAM, "chaos-healthy", "chaos-0-7", started=100.0)
    if text:
        rec.add_text(text)
    for terminal in terminals:
        rec.add_terminal(terminal)
    rec.ended = 100.0 + took if terminals else None
    return rec


def check(rec: RequestRecord, excuses: Excuses | None = None) -> tuple[str, list[str]]:
    return check_request(rec, excuses or Excuses(), known_text=KNOWN, deadline=DEADLINE)


DONE = Terminal(True)


def error(kind: str = "NoCandidatesError", *, delivered: bool | None = False) -> Terminal:
    return Terminal(False, kind, delivered, "it failed")


def test_a_whole_answer_with_one_done_in_time_breaks_nothing() -> None:
    assert check(record(KNOWN, DONE)) == ("done", [])


def test_duplicated_text_before_done_is_a_repeat() -> None:
    assert check(record("one two one two three four five", DONE))[1] == ["text_repeated"]


def test_a_replay_that_forwards_the_delivered_text_again_is_a_repeat() -> None:
    assert check(record("one two three one two three four five", DONE))[1] == ["text_repeated"]


def test_a_short_answer_passed_off_as_done_is_lost_text() -> None:
    assert check(record("one two three", DONE))[1] == ["text_lost"]


def test_different_text_before_done_is_garbled() -> None:
    assert check(record("one two thirty-three four five", DONE))[1] == ["text_garbled"]


def test_two_terminals_are_counted() -> None:
    assert "two_terminals" in check(record(KNOWN, DONE, DONE))[1]
    assert "two_terminals" in check(record(KNOWN, DONE, error()))[1]


def test_events_after_the_terminal_are_counted() -> None:
    rec = record(KNOWN, DONE)
    rec.add_text(" six")
    assert "events_after_terminal" in check(rec)[1]


def test_a_missing_terminal_is_counted_whether_it_hung_or_just_ended() -> None:
    hung = record("one two")
    hung.hung = True
    assert check(hung) == ("hung", ["no_terminal"])
    assert check(record("one two")) == ("no_terminal", ["no_terminal"])


def test_a_terminal_after_the_deadline_is_late() -> None:
    assert check(record(KNOWN, DONE, took=DEADLINE + 0.1))[1] == ["late_terminal"]


def test_an_entry_call_that_raises_is_a_refused_valid_request() -> None:
    rec = record("")
    rec.raised = "ActorUnavailableError"
    assert check(rec) == ("raised", ["submit_raised:ActorUnavailableError"])


def test_a_valid_request_that_fails_is_a_violation_named_by_its_error() -> None:
    assert check(record("", error("NoCandidatesError"))) == (
        "failed",
        ["valid_request_failed:NoCandidatesError"],
    )


def test_a_failure_while_a_control_plane_actor_was_stopped_names_that_actor() -> None:
    excuses = Excuses(stop_windows=[(100.5, 100.6, "router")])
    assert check(record("", error()), excuses)[1] == ["failed_during_stop:router"]


def test_an_error_whose_content_flag_lies_is_counted() -> None:
    rec = record("one two", error("ActorCrashedError", delivered=False))
    excuses = Excuses(crashed_tasks={"chaos-0-7"})
    assert "content_flag_wrong" in check(rec, excuses)[1]


def test_text_before_an_error_must_be_a_prefix_of_the_answer() -> None:
    excuses = Excuses(stopped_tasks={"chaos-0-7"})
    rec = record("one two one two", error("SupervisionError", delivered=True))
    assert check(rec, excuses) == ("ended_after_task_stop", ["text_repeated"])


def test_a_task_crashed_after_its_content_reached_the_caller_may_end_in_band() -> None:
    excuses = Excuses(crashed_tasks={"chaos-0-7"})
    rec = record("one two", error("ActorCrashedError", delivered=True))
    assert check(rec, excuses) == ("ended_after_task_crash", [])


def test_a_task_crashed_before_its_first_content_must_still_answer_whole() -> None:
    excuses = Excuses(crashed_tasks={"chaos-0-7"})
    rec = record("", error("ActorCrashedError", delivered=False))
    assert check(rec, excuses) == ("failed", ["valid_request_failed:ActorCrashedError"])


def test_a_task_crashed_more_often_than_a_request_restarts_it_may_end_before_content() -> None:
    crashes = collections.Counter({"chaos-0-7": MAX_TASK_RESTARTS + 1})
    excuses = Excuses(crashed_tasks={"chaos-0-7"}, task_crashes=crashes)
    rec = record("", error("ActorCrashedError", delivered=False))
    assert check(rec, excuses) == ("ended_after_repeated_task_crashes", [])
    crashes["chaos-0-7"] = MAX_TASK_RESTARTS  # as often as it restarts: it must answer
    assert check(rec, excuses)[0] == "failed"


def test_a_task_crashed_more_often_than_it_restarts_is_recognised_over_http_too() -> None:
    crashes = collections.Counter({"chaos-0-7": MAX_TASK_RESTARTS + 1})
    excuses = Excuses(crashed_tasks={"chaos-0-7"}, task_crashes=crashes)
    message = "the gateway failed internally (ActorCrashedError): the request's stream task"
    rec = record("", Terminal(False, "internal_error", False, message))
    assert check(rec, excuses) == ("ended_after_repeated_task_crashes", [])
    other = record("", Terminal(False, "internal_error", False, "the gateway failed (KeyError)"))
    assert check(other, excuses) == ("failed", ["valid_request_failed:internal_error"])


def test_a_task_stopped_by_the_schedule_may_end_with_an_error() -> None:
    excuses = Excuses(stopped_tasks={"chaos-0-7"})
    assert check(record("", error("SupervisionError")), excuses) == ("ended_after_task_stop", [])


@pytest.mark.parametrize("kind", ["SupervisionError", "ActorCrashedError", "StreamCutError"])
def test_an_error_after_content_while_the_task_subtree_went_down_is_legitimate(kind: str) -> None:
    excuses = Excuses(task_subtree_events=[100.5])
    rec = record("one two", error(kind, delivered=True))
    assert check(rec, excuses) == ("ended_by_task_subtree", [])


def test_an_error_before_content_while_the_task_subtree_went_down_is_a_violation() -> None:
    # The restarted task had nothing delivered: it must have answered whole.
    excuses = Excuses(task_subtree_events=[100.5])
    assert check(record("", error("SupervisionError")), excuses)[0] == "failed"


def test_a_subtree_event_outside_the_request_excuses_nothing() -> None:
    excuses = Excuses(task_subtree_events=[90.0, (80.0, 99.9), 200.0, (101.1, 300.0)])
    rec = record("one two", error("ActorCrashedError", delivered=True))
    assert check(rec, excuses)[0] == "failed"


def test_a_request_that_began_and_ended_inside_a_subtree_stop_window_is_excused() -> None:
    # The stop began before it, the supervisor was back after it: caught in between.
    excuses = Excuses(task_subtree_events=[(99.0, 102.0)])
    rec = record("one two", error("ActorCrashedError", delivered=True))
    assert check(rec, excuses) == ("ended_by_task_subtree", [])


def test_the_report_counts_violations_by_kind_and_renders_every_count() -> None:
    report = ChaosReport(ChaosSettings(requests=3))
    report.violation("text_repeated", "example")
    report.violation("text_repeated")
    report.violation("valid_request_failed:X")
    report.kills["crash_router"] = 4
    assert report.violations == {"text_repeated": 2, "valid_request_failed:X": 1}
    assert report.violation_families == {"text_repeated", "valid_request_failed"}
    text = report.render()
    assert "crash_router=4" in text
    assert "text_repeated=2" in text
    assert "leaked admission slots: 0" in text


def test_the_same_seed_draws_the_same_requests_and_another_seed_others() -> None:
    def drawn(seed: int) -> list[tuple[str, str]]:
        return [(r.path.value, r.model) for r in _plans(ChaosSettings(requests=200, seed=seed))]

    assert drawn(3) == drawn(3)
    assert drawn(3) != drawn(4)
    assert {path for path, _ in drawn(3)} == {p.value for p in Path}
