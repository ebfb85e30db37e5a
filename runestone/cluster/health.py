"""The cluster's health, merged on read from every live replica's last report.

Each replica reports its own providers every heartbeat; no merged figure is ever
stored. ``/health`` reads the registry and merges, per provider:

- ``circuit``: the state every replica reports (``"rule": "unanimous"``) or, when
  they differ, the worst of them (``"rule": "worst"``: open > half_open > closed),
  with how many replicas report each state;
- window calls and failures, requests in flight, total successes and failures,
  circuit openings: sums over the replicas;
- ``success_rate``: of the summed window (None without calls);
- ``last_error``: the latest any replica saw, and which replica saw it.

Pure functions of plain data. Reports come from other replicas (other versions,
perhaps), so a malformed figure counts as absent; it never fails the merge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from runestone.cluster.registry import Member

__all__ = ["SUMMED", "cluster_section", "merge_providers"]

_RANK: Final = {"closed": 0, "half_open": 1, "open": 2}

SUMMED: Final = (
    "window_calls",
    "window_failures",
    "in_flight",
    "total_successes",
    "total_failures",
)
"""The health figures (``ProviderStatus.to_dict()["health"]``) summed over the replicas."""


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _state(status: Mapping[str, Any]) -> str | None:
    state = _mapping(status.get("circuit")).get(
        "state", _mapping(status.get("health")).get("circuit")
    )
    return state if isinstance(state, str) and state in _RANK else None


def merge_providers(reports: Mapping[str, object]) -> dict[str, dict[str, Any]]:
    """Per provider, the cluster's figures (see the module docstring).

    ``reports`` maps each replica to the ``providers`` it reported
    (``{name: ProviderStatus.to_dict()}``); the result does not depend on their order.
    """
    merged: dict[str, dict[str, Any]] = {}
    for instance in sorted(reports):
        for name, status in _mapping(reports[instance]).items():
            if not isinstance(name, str) or not isinstance(status, Mapping):
                continue
            into = merged.setdefault(
                name,
                {
                    "states": {},
                    "instances": [],
                    "openings": 0,
                    **dict.fromkeys(SUMMED, 0),
                    "last_error": None,
                },
            )
            into["instances"].append(instance)
            state = _state(status)
            if state is not None:
                into["states"][state] = into["states"].get(state, 0) + 1
            health = _mapping(status.get("health"))
            for figure in SUMMED:
                into[figure] += _count(health.get(figure))
            into["openings"] += _count(_mapping(status.get("circuit")).get("openings"))
            into["last_error"] = _later(into["last_error"], health, instance)
    return {name: _finish(merged[name]) for name in sorted(merged)}


def _later(
    seen: dict[str, Any] | None, health: Mapping[str, Any], instance: str
) -> dict[str, Any] | None:
    """The later of ``seen`` and ``health``'s last error (ties: the greater instance name)."""
    error = health.get("last_error")
    if not isinstance(error, str):
        return seen
    at = health.get("last_error_at")
    at = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None
    detail = health.get("last_error_detail")
    candidate = {
        "error": error,
        "detail": detail if isinstance(detail, str) else "",
        "at": at,
        "instance": instance,
    }
    if seen is None or _when(candidate) > _when(seen):
        return candidate
    return seen


def _when(error: Mapping[str, Any]) -> tuple[float, str]:
    at = error["at"]
    return (float("-inf") if at is None else at, error["instance"])


def _finish(into: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, int] = into.pop("states")
    worst = max(states, key=_RANK.__getitem__) if states else None
    calls, failures = into["window_calls"], into["window_failures"]
    return {
        "circuit": {
            "state": worst,
            "rule": "unanimous" if len(states) <= 1 else "worst",
            "counts": {state: states[state] for state in sorted(states, key=_RANK.__getitem__)},
        },
        "replicas": len(into["instances"]),
        **into,
        "success_rate": None if calls == 0 else round(max(0, calls - failures) / calls, 6),
    }


def cluster_section(
    status: Mapping[str, Any],
    members: Sequence[Member] | None,
    local: Mapping[str, Any],
    *,
    error: str | None = None,
) -> dict[str, Any]:
    """``/health``'s ``cluster``: this replica's ``status`` (``Cluster.status()``), every
    live replica, and the providers merged over them.

    ``members`` is the registry's view; None when Redis could not be read (``error``
    says why): then the view is ``"local"``, this replica alone, from ``local`` (its
    own report, as it would send it).
    """
    me = str(status.get("instance"))
    if members is None:
        instances = [_instance(me, None, local, me)]
    else:
        instances = [
            _instance(m.instance, m.age, m.health, me)
            for m in sorted(members, key=lambda m: m.instance)
        ]
    section = {
        **status,
        "view": "local" if members is None else "shared",
        "view_error": error,
        "instances": instances,
        "providers": merge_providers({i["instance"]: i["providers"] for i in instances}),
    }
    return section


def _instance(
    name: str, age: float | None, report: Mapping[str, Any] | None, me: str
) -> dict[str, Any]:
    report = report or {}
    uptime = report.get("uptime")
    return {
        "instance": name,
        "self": name == me,
        "heartbeat_ago": None if age is None else round(age, 3),
        "uptime": uptime if isinstance(uptime, int | float) else None,
        "reported": bool(report),
        "providers": dict(_mapping(report.get("providers"))),
    }
