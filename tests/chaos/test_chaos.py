"""Chaos: thousands of concurrent streams through system.stream(), system.astream(), the actor
StreamRequest path and HTTP while a seeded schedule crashes and stops every kind of actor and
supervisor and the primary upstream flaps, cuts and stalls. Every invariant is counted
(runestone/testing/chaos.py); the target for every violation count is 0.

Each group of action kinds that once exposed one of issue 9's supervision bugs also runs
alone, as a regression test. ``python bench/chaos.py`` runs the same harness longer and
prints the counts."""

from __future__ import annotations

import pytest

from runestone.testing.chaos import (
    ALL_KINDS,
    SAFE_KINDS,
    ChaosReport,
    ChaosSettings,
    Kind,
    run_chaos,
)

SEED = 9
REQUESTS_PER_BUG = 240

FAULTS = frozenset({Kind.UPSTREAM_CUT, Kind.UPSTREAM_STALL})

REGRESSIONS = {
    "lost_tells": {Kind.CRASH_ADMISSION, Kind.CRASH_TASKS_SUP},
    "orphans": {Kind.CRASH_PROVIDERS_SUP, Kind.CRASH_POOL_SUP},
    "pool_restart_and_slots": {Kind.STOP_POOL_SUP, Kind.STOP_TASKS_SUP},
    "stopped_tasks": {Kind.STOP_TASK},
    "control_plane_stops": {
        Kind.STOP_ROUTER,
        Kind.STOP_PROVIDERS_SUP,
        Kind.STOP_PROVIDER,
        Kind.STOP_ADMISSION,
    },
    "crashed_tasks": {Kind.CRASH_TASK},
}
"""Issue 9's bugs, each by the kinds that exposed it: a message lost behind a crash (1),
orphans of a crashed supervisor (2), a stalled pool restart and leaked slots (3, 4), a
stopped task's slot (4), requests failing while a control-plane actor restarts (6), and a
crashed task's attempt outliving it (text repeated, slots leaked)."""


def assert_clean(report: ChaosReport, requests: int) -> None:
    print(report.render())
    assert report.requests == requests
    assert sum(report.outcomes.values()) == requests, "every request was classified"
    assert not report.violations, report.render()
    assert report.leaked_slots == 0
    assert not report.leftover_actors
    assert not report.leftover_threads


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_thousand_streams_survive_every_action_kind_with_no_violation() -> None:
    settings = ChaosSettings(
        requests=2000, concurrency=32, seed=SEED, kinds=ALL_KINDS, drain_timeout=3
    )
    report = run_chaos(settings)
    assert_clean(report, 2000)
    for kind in ALL_KINDS:
        assert report.kills[kind.value] > 0, f"{kind} was never performed"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("kinds", list(REGRESSIONS.values()), ids=list(REGRESSIONS))
def test_streams_survive_each_group_of_actions_that_once_exposed_a_bug(kinds: set[Kind]) -> None:
    settings = ChaosSettings(
        requests=REQUESTS_PER_BUG,
        concurrency=32,
        seed=SEED,
        kinds=frozenset(kinds) | FAULTS,
        action_interval=0.02,
        request_timeout=3,
        drain_timeout=3,
    )
    assert_clean(run_chaos(settings), REQUESTS_PER_BUG)


def test_the_regression_groups_cover_every_actor_action_kind() -> None:
    covered = set().union(*REGRESSIONS.values()) | SAFE_KINDS
    assert covered == set(ALL_KINDS)
