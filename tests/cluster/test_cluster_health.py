"""The cluster's ``health()`` and ``/health`` against a real redis-server: two replicas see
each other and their merged providers; a Redis outage leaves each one serving alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import runestone
from runestone.system import System
from runestone.testing.redis_server import RedisServer
from tests.server.serving import RunningServer, raw

pytestmark = pytest.mark.timeout(60)

SIM = {"type": "simulated", "models": {"sim-fast": {}}, "token_rate": 0, "first_token_delay": 0}


def config(server: RedisServer, instance: str) -> dict[str, Any]:
    return {
        "providers": {"sim": SIM},
        "cluster": {"redis_url": server.url, "instance": instance, "heartbeat": 0.1},
        "logging": {"level": "WARNING"},
    }


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Until ``condition()`` holds (each call is a round trip to the system), or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"


def names(cluster: dict[str, Any]) -> list[str]:
    return [instance["instance"] for instance in cluster["instances"]]


@pytest.fixture
def replicas(redis_server: RedisServer) -> Iterator[tuple[System, System]]:
    a = runestone.start(config(redis_server, "a"), configure_logs=False)
    try:
        b = runestone.start(config(redis_server, "b"), configure_logs=False)
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()


def test_each_replica_sees_both_and_the_providers_merged_over_them(
    replicas: tuple[System, System],
) -> None:
    a, b = replicas
    for system in (a, b):
        wait_for(lambda s=system: names(s.health()["cluster"]) == ["a", "b"], "both replicas")
    a.complete({"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}]})

    def b_sees_the_call() -> bool:
        merged = b.health()["cluster"]["providers"].get("sim", {})
        return merged.get("window_calls") == 1 and merged.get("replicas") == 2

    wait_for(b_sees_the_call, "a's call in b's merged view (after a's next heartbeat)")
    cluster = b.health()["cluster"]
    assert (cluster["instance"], cluster["redis"], cluster["limits"]) == ("b", "up", "shared")
    assert cluster["view"] == "shared"
    merged = cluster["providers"]["sim"]
    assert merged["circuit"] == {"state": "closed", "rule": "unanimous", "counts": {"closed": 2}}
    assert (merged["replicas"], merged["instances"]) == (2, ["a", "b"])
    by_name = {instance["instance"]: instance for instance in cluster["instances"]}
    assert by_name["a"]["providers"]["sim"]["health"]["window_calls"] == 1  # a's own figures
    assert by_name["b"]["providers"]["sim"]["health"]["window_calls"] == 0
    assert by_name["b"]["self"]
    assert not by_name["a"]["self"]


def test_with_redis_down_a_replica_answers_alone_and_rejoins_when_it_is_back(
    redis_server: RedisServer, replicas: tuple[System, System]
) -> None:
    a, _ = replicas
    wait_for(lambda: names(a.health()["cluster"]) == ["a", "b"], "both replicas")
    redis_server.stop()
    wait_for(lambda: a.health()["cluster"]["redis"] == "down", "a to find Redis down")
    report = a.health()
    cluster = report["cluster"]
    assert report["status"] == "ok"  # a Redis outage alone: the replica keeps serving
    assert (cluster["limits"], cluster["circuits"], cluster["view"]) == ("local", "local", "local")
    assert names(cluster) == ["a"]
    assert cluster["view_error"]
    assert cluster["providers"]["sim"]["replicas"] == 1
    assert a.complete({"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}]})
    redis_server.start()

    def shared_again() -> bool:
        cluster = a.health()["cluster"]
        return cluster["view"] == "shared" and names(cluster) == ["a", "b"]

    wait_for(shared_again, "the shared view with both replicas again")
    assert a.health()["cluster"]["limits"] == "shared"


def test_two_served_replicas_answer_health_through_an_outage(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    served = []
    try:
        for instance in ("a", "b"):
            settings = {**config(redis_server, instance), "server": {"port": 0}}
            served.append(RunningServer(settings, tmp_path, name=instance))

        def health(server: RunningServer) -> tuple[int, dict[str, Any]]:
            response = raw(server, "GET", "/health")
            return response.status, response.json()

        for server in served:

            def both(s: RunningServer = server) -> bool:
                cluster = health(s)[1]["cluster"]
                return cluster["providers"].get("sim", {}).get("replicas") == 2

            wait_for(both, "both replicas' reports of sim")
            status, report = health(server)
            assert status == 200
            assert names(report["cluster"]) == ["a", "b"]
        redis_server.stop()
        for server in served:
            wait_for(lambda s=server: health(s)[1]["cluster"]["redis"] == "down", "Redis down")
            status, report = health(server)
            assert status == 200, report
            assert (report["cluster"]["limits"], report["cluster"]["view"]) == ("local", "local")
            assert names(report["cluster"]) == [report["cluster"]["instance"]]
        redis_server.start()
        for server in served:

            def shared(s: RunningServer = server) -> bool:
                cluster = health(s)[1]["cluster"]
                return cluster["view"] == "shared" and names(cluster) == ["a", "b"]

            wait_for(shared, "the shared view again")
    finally:
        for server in served:
            # Short: a replica stopped just after a rejoin may hang in Cluster.aclose (its
            # heartbeat can swallow the cancellation); then it is killed, sooner.
            server.stop(timeout=5)
