"""health() is the whole tree and every provider as plain data; metrics count what happened."""

from __future__ import annotations

import json
from collections.abc import Callable

from runestone.system import System
from runestone.testing.upstream import FakeUpstream
from tests.system.conftest import anthropic_provider, config, models, openai_provider, settle

Start = Callable[..., System]
USER = [{"role": "user", "content": "Tell me the known text."}]


def test_health_is_json_ready_and_covers_every_actor_and_provider(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = config(
        {
            "primary": openai_provider(fake_upstream, models("healthy")),
            "backup": anthropic_provider(fake_upstream, models("healthy")),
        },
        aliases={"m": ["primary/healthy", "backup/healthy"]},
    )
    system = start_system(cfg)
    system.complete({"model": "m", "messages": USER})
    settle(system)
    health = json.loads(json.dumps(system.health()))
    assert health["status"] == "ok"
    root = health["tree"]
    top = [c["id"] for c in root["children"]]
    assert top == ["provider_factory", "providers", "router", "pool"]
    providers_node = root["children"][1]
    assert [c["id"] for c in providers_node["children"]] == [
        "provider:primary#1",
        "provider:backup#1",
    ]
    pool_node = root["children"][3]
    assert [c["id"] for c in pool_node["children"]] == ["tasks", "admission"]
    primary = health["providers"]["primary"]
    assert primary["circuit"]["state"] == "closed"
    assert primary["health"]["total_successes"] == 1
    assert health["pool"]["in_flight"] == 0
    assert health["pool"]["admitted"] == 1
    counts = system.supervisor.count_children()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (4, 4, 2, 2)


def test_metrics_count_requests_attempts_circuits_and_restarts(
    fake_upstream: FakeUpstream, start_system: Start
) -> None:
    cfg = config(
        {
            "primary": openai_provider(
                fake_upstream,
                models("unavailable"),
                retry={"max_attempts": 1},
                circuit_breaker={"consecutive_failures": 1, "recovery": 60},
            ),
            "backup": anthropic_provider(fake_upstream, models("healthy")),
        },
        aliases={"m": ["primary/unavailable", "backup/healthy"]},
    )
    system = start_system(cfg)
    system.complete({"model": "m", "messages": USER})
    settle(system)
    crashed = system.router.incarnation
    assert crashed is not None
    system.router.tell(object())  # crash the router once
    assert crashed.exited.wait(5)
    system.router.ref(timeout=5)  # restarted (requests plan from its snapshot, never ask it)
    system.complete({"model": "m", "messages": USER})
    settle(system)
    text = system.metrics.render().decode()
    assert 'runestone_requests_total{model="healthy",outcome="ok",provider="backup"} 2.0' in text
    primary_attempts = 'model="unavailable",outcome="server_error",provider="primary"} 1.0'
    assert f"runestone_attempts_total{{{primary_attempts}" in text, (
        "the open circuit kept the second request away from the primary"
    )
    assert 'runestone_circuit_state{provider="primary"} 2.0' in text
    assert 'runestone_actor_restarts_total{actor="root/router"} 1.0' in text
    assert "runestone_time_to_first_token_seconds_bucket" in text


def test_an_active_health_probe_runs_on_its_interval(start_system: Start) -> None:
    import time

    from runestone.testing import FakeClock

    clock = FakeClock()
    with FakeUpstream() as up:
        cfg = config(
            {"primary": openai_provider(up, models("healthy"), health_probe={"interval": 30})},
            aliases={"m": ["primary/healthy"]},
        )
        system = start_system(cfg, clock=clock)

        def probes() -> int:
            figures = system.health()["providers"]["primary"]["health"]
            return int(figures["total_successes"]) + int(figures["total_failures"])

        assert probes() == 0
        clock.advance(29)
        assert probes() == 0, "not due yet"
        clock.advance(1)
        deadline = time.monotonic() + 5
        while probes() == 0 and time.monotonic() < deadline:
            pass  # each probes() call is a round trip through the actors
        assert probes() == 1
        assert system.health()["providers"]["primary"]["health"]["total_successes"] == 1
        system.stop()
