"""Merging the replicas' health reports into the cluster's view (pure: no Redis)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.cluster import Member, cluster_section, merge_providers
from runestone.cluster.health import SUMMED


def status(
    state: str = "closed",
    *,
    calls: int = 0,
    failures: int = 0,
    in_flight: int = 0,
    error: str | None = None,
    error_at: float | None = None,
) -> dict[str, Any]:
    """A provider's report as ``ProviderStatus.to_dict()`` gives it (the figures merged)."""
    return {
        "circuit": {"state": state, "openings": 1 if state == "open" else 0},
        "health": {
            "window_calls": calls,
            "window_failures": failures,
            "in_flight": in_flight,
            "total_successes": calls - failures,
            "total_failures": failures,
            "last_error": error,
            "last_error_detail": "" if error is None else f"{error} detail",
            "last_error_at": error_at,
            "circuit": state,
        },
    }


def test_the_circuit_is_the_worst_any_replica_reports_and_says_so() -> None:
    merged = merge_providers(
        {"a": {"p": status("closed")}, "b": {"p": status("open")}, "c": {"p": status("closed")}}
    )
    assert merged["p"]["circuit"] == {
        "state": "open",
        "rule": "worst",
        "counts": {"closed": 2, "open": 1},
    }
    assert merged["p"]["openings"] == 1


def test_a_circuit_every_replica_agrees_on_is_unanimous() -> None:
    merged = merge_providers({"a": {"p": status("half_open")}, "b": {"p": status("half_open")}})
    assert merged["p"]["circuit"] == {
        "state": "half_open",
        "rule": "unanimous",
        "counts": {"half_open": 2},
    }


def test_window_figures_are_summed_and_the_success_rate_is_of_the_sum() -> None:
    merged = merge_providers(
        {
            "a": {"p": status(calls=10, failures=5, in_flight=2)},
            "b": {"p": status(calls=30, failures=5, in_flight=3), "q": status()},
        }
    )
    p = merged["p"]
    assert (p["window_calls"], p["window_failures"], p["in_flight"]) == (40, 10, 5)
    assert p["success_rate"] == 0.75
    assert (p["instances"], p["replicas"]) == (["a", "b"], 2)
    assert merged["q"]["instances"] == ["b"]
    assert merged["q"]["success_rate"] is None  # no calls: no rate, rather than a made-up one


def test_the_last_error_is_the_latest_any_replica_saw_and_where() -> None:
    merged = merge_providers(
        {
            "a": {"p": status(error="timeout", error_at=100.0)},
            "b": {"p": status(error="rate_limited", error_at=200.0)},
            "c": {"p": status()},
        }
    )
    assert merged["p"]["last_error"] == {
        "error": "rate_limited",
        "detail": "rate_limited detail",
        "at": 200.0,
        "instance": "b",
    }


def test_a_malformed_report_counts_as_absent_rather_than_failing_the_merge() -> None:
    merged = merge_providers(
        {
            "a": {"p": status("open", calls=2)},
            "b": {"p": {"circuit": "??", "health": {"window_calls": "many", "in_flight": -1}}},
            "c": None,
            "d": {"p": 7, "q": {}},
        }
    )
    assert merged["p"]["circuit"]["state"] == "open"
    assert merged["p"]["window_calls"] == 2
    assert merged["p"]["in_flight"] == 0
    assert merged["p"]["instances"] == ["a", "b"]
    assert merged["q"]["circuit"] == {"state": None, "rule": "unanimous", "counts": {}}


_figures = st.integers(min_value=0, max_value=10_000)
_window = st.tuples(_figures, _figures).map(sorted)  # (failures, calls): never more failures


@st.composite
def _status(draw: st.DrawFn) -> dict[str, Any]:
    failures, calls = draw(_window)
    return status(
        draw(st.sampled_from(["closed", "half_open", "open"])),
        calls=calls,
        failures=failures,
        in_flight=draw(_figures),
        error=draw(st.none() | st.sampled_from(["timeout", "server_error"])),
        error_at=draw(st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False)),
    )


_reports = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.dictionaries(st.sampled_from(["p", "q", "r"]), _status(), max_size=3),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(reports=_reports, seed=st.integers())
def test_merging_does_not_depend_on_the_order_of_replicas_and_sums_are_sums(
    reports: dict[str, dict[str, dict[str, Any]]], seed: int
) -> None:
    shuffled = list(reports.items())
    random.Random(seed).shuffle(shuffled)
    merged = merge_providers(reports)
    assert merged == merge_providers(dict(shuffled))
    for name, figures in merged.items():
        reporting = [providers[name] for providers in reports.values() if name in providers]
        assert figures["replicas"] == len(reporting)
        for figure in SUMMED:
            assert figures[figure] == sum(s["health"][figure] for s in reporting)
        assert sum(figures["circuit"]["counts"].values()) == len(reporting)
        states = {s["circuit"]["state"] for s in reporting}
        assert figures["circuit"]["state"] in states
        assert ("open" in states) == (figures["circuit"]["state"] == "open")


def test_the_section_lists_every_live_replica_and_marks_this_one() -> None:
    members = [
        Member("b", 0.05, {"providers": {"p": status("open")}, "uptime": 3.0}),
        Member("a", 0.01, {"providers": {"p": status()}, "uptime": 9.0}),
        Member("c", 0.2, None),  # its report has expired: listed, without figures
    ]
    me = {"instance": "a", "redis": "up", "limits": "shared", "circuits": "shared"}
    section = cluster_section(me, members, {"providers": {}})
    assert section["view"] == "shared"
    assert section["limits"] == "shared"
    assert [(i["instance"], i["self"], i["reported"]) for i in section["instances"]] == [
        ("a", True, True),
        ("b", False, True),
        ("c", False, False),
    ]
    assert section["instances"][1]["heartbeat_ago"] == 0.05
    assert section["instances"][1]["providers"]["p"]["circuit"]["state"] == "open"
    assert section["providers"]["p"]["circuit"]["state"] == "open"
    assert section["providers"]["p"]["instances"] == ["a", "b"]


def test_without_redis_the_section_is_this_replica_alone_and_says_it_is_local() -> None:
    me = {"instance": "a", "redis": "down", "limits": "local", "circuits": "local"}
    local = {"providers": {"p": status(calls=3)}, "uptime": 1.0}
    section = cluster_section(me, None, local, error="registry view: Redis is down")
    assert (section["view"], section["redis"], section["limits"]) == ("local", "down", "local")
    assert section["view_error"] == "registry view: Redis is down"
    assert [i["instance"] for i in section["instances"]] == ["a"]
    assert section["instances"][0]["heartbeat_ago"] is None
    assert section["providers"]["p"]["window_calls"] == 3
