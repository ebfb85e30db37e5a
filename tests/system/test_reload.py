"""Reload under traffic: added providers start, removed ones finish their streams then stop,
changed ones are replaced; the legacy config shape still runs."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable

from runestone.messages import Done, TextDelta
from runestone.system import System
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.system.conftest import config, models, openai_provider

Start = Callable[..., System]
USER = [{"role": "user", "content": "Tell me the known text."}]


def text_of(system: System, model: str) -> tuple[str, str]:
    events = list(system.stream({"model": model, "messages": USER}))
    done = events[-1]
    assert isinstance(done, Done), done
    return "".join(e.text for e in events if isinstance(e, TextDelta)), done.provider


def provider_children(system: System) -> list[str]:
    return [row.id for row in system.supervisor.child("providers").which_children()]


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    """Poll actor state by round trips (each call asks an actor), bounded in time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
    return True


def test_reload_under_traffic_adds_removes_and_replaces_without_dropping_streams(
    start_system: Start,
) -> None:
    with FakeUpstream(token_interval=0.01) as up:
        old = config(
            {
                "first": openai_provider(up, models("healthy")),
                "second": openai_provider(up, models("healthy")),
            },
            aliases={"m": ["first/healthy"]},
        )
        system = start_system(old)
        assert provider_children(system) == ["provider:first#1", "provider:second#1"]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            in_flight = [pool.submit(text_of, system, "m") for _ in range(8)]
            up.wait_for_attempts(8)
            new = config(
                {
                    "second": openai_provider(up, models("healthy"), max_connections=50),
                    "third": openai_provider(up, models("healthy")),
                },
                aliases={"m": ["third/healthy"]},
            )
            report = system.reload(new)
            assert (report.added, report.removed, report.replaced) == (
                ("third",),
                ("first",),
                ("second",),
            )
            # New requests go where the new config says, while the old ones still stream.
            assert text_of(system, "m") == (KNOWN_TEXT, "third")
            results = [f.result(timeout=30) for f in in_flight]
        assert results == [(KNOWN_TEXT, "first")] * 8, "streams in flight finished whole"
        assert wait_until(
            lambda: provider_children(system) == ["provider:second#2", "provider:third#1"]
        ), provider_children(system)
        assert sorted(system.directory.entries()) == ["second", "third"]
        assert not system.directory.draining()
        system.stop()


def test_the_legacy_config_shape_runs(start_system: Start, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with FakeUpstream() as up:
        monkeypatch.setenv("LEGACY_KEY", "sk-legacy-key-123456")
        legacy = {
            "providers": {
                "openai": {
                    "default_model": "healthy",
                    "api_key_env": "LEGACY_KEY",
                    "base_url": up.openai_base_url,
                }
            },
            "cost_table": [
                {
                    "provider": "openai",
                    "model": "healthy",
                    "cost_per_1k_tokens": 0.002,
                    "capabilities": ["tools"],
                }
            ],
        }
        system = start_system(legacy)
        assert text_of(system, "default") == (KNOWN_TEXT, "openai")
        response = system.complete({"model": "healthy", "messages": USER})
        assert response.cost is not None
        assert response.cost > 0
        system.stop()
