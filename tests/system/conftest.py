"""A running system in front of the fake upstream, built from a config the test describes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import runestone
from runestone.system import System
from runestone.testing.upstream import FakeUpstream

FAST_RETRY = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05}
TIMEOUTS = {"connect": 2, "first_token": 2, "idle": 2, "total": 10}


def models(*names: str, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {name: {} for name in names}
    out.update(extra)
    return out


def openai_provider(
    up: FakeUpstream, model_specs: dict[str, dict[str, Any]], **overrides: Any
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "openai",
        "api_key": "sk-test-primary-key",
        "base_url": up.openai_base_url,
        "timeouts": TIMEOUTS,
        "retry": FAST_RETRY,
        "models": model_specs,
    }
    block.update(overrides)
    return block


def anthropic_provider(
    up: FakeUpstream, model_specs: dict[str, dict[str, Any]], **overrides: Any
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "anthropic",
        "api_key": "sk-ant-test-backup-key",
        "base_url": up.anthropic_base_url,
        "timeouts": TIMEOUTS,
        "retry": FAST_RETRY,
        "models": model_specs,
    }
    block.update(overrides)
    return block


def config(
    providers: dict[str, dict[str, Any]],
    aliases: dict[str, list[str]] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    routing: dict[str, Any] = {"policy": "priority", "aliases": aliases or {}}
    routing.update(sections.pop("routing", {}))
    out: dict[str, Any] = {"providers": providers, "routing": routing}
    out.update(sections)
    out.setdefault("logging", {"level": "WARNING"})
    return out


def settle(system: System, timeout: float = 5.0) -> None:
    """Wait until every request has been booked: the caller gets its answer first, the
    stream task then reports to its provider actor and the pool (round trips, no sleep)."""
    import time

    from runestone.actors.provider import GetStatus

    deadline = time.monotonic() + timeout
    while system.pool_stats().in_flight and time.monotonic() < deadline:
        pass
    # An outcome was told to its provider actor before the task told the pool it ended;
    # a question asked now is answered after it.
    for entry in system.directory.entries().values():
        if entry.handle is not None:
            entry.handle.ask(GetStatus())


@pytest.fixture
def start_system() -> Iterator[Callable[..., System]]:
    """Start systems from config dicts; every one is stopped after the test."""
    started: list[System] = []

    def start(cfg: dict[str, Any], **options: Any) -> System:
        system = runestone.start(cfg, **options)
        started.append(system)
        return system

    yield start
    for system in started:
        system.stop()
