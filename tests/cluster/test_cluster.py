"""The cluster membership against a real redis-server: heartbeats, the view, outages."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from runestone.cluster import Cluster, LinkState
from runestone.config import ClusterConfig
from runestone.testing.redis_server import RedisServer

pytestmark = pytest.mark.timeout(30)


def _config(server: RedisServer, instance: str, **extra: object) -> ClusterConfig:
    settings: dict[str, object] = {"heartbeat": 0.05, "deadline": 0.2, **extra}
    return ClusterConfig(redis_url=server.url, instance=instance, **settings)  # type: ignore[arg-type]


async def _until(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def test_replicas_see_each_other_and_a_silent_one_leaves_within_three_heartbeats(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        a = Cluster(_config(redis_server, "a"), health=lambda: {"providers": {"p": 1}})
        b = Cluster(_config(redis_server, "b"))
        await a.open()
        await b.open()
        try:
            await _until(lambda: {m for m, _ in a.members} == {"a", "b"})
            view = {m.instance: m for m in await a.view()}
            assert view["a"].health == {"providers": {"p": 1}}
            # b goes silent without leaving (as a killed process would).
            for task in b._tasks:
                task.cancel()
            silent_at = asyncio.get_running_loop().time()
            await _until(lambda: {m for m, _ in a.members} == {"a"})
            gone_after = asyncio.get_running_loop().time() - silent_at
            # Three heartbeats after its last one, seen at a's next beat; slack for a busy loop.
            assert gone_after <= 3 * 0.05 + 0.05 + 0.4
            assert [m.instance for m in await a.view()] == ["a"]
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(main())


def test_a_clean_stop_leaves_the_view_at_once(redis_server: RedisServer) -> None:
    async def main() -> None:
        a = Cluster(_config(redis_server, "a", heartbeat=10.0))
        b = Cluster(_config(redis_server, "b", heartbeat=10.0))
        await a.open()
        await b.open()
        try:
            assert {m.instance for m in await a.view()} == {"a", "b"}
            await b.aclose()
            assert [m.instance for m in await a.view()] == ["a"]
        finally:
            await a.aclose()

    asyncio.run(main())


def test_events_reach_every_replica(redis_server: RedisServer) -> None:
    async def main() -> None:
        a = Cluster(_config(redis_server, "a"))
        b = Cluster(_config(redis_server, "b"))
        heard: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        b.handle("circuit", heard.put_nowait)
        await a.open()
        await b.open()
        try:
            await a.publish("circuit", {"provider": "p"})
            message = await asyncio.wait_for(heard.get(), 5)
            assert message == {"kind": "circuit", "from": "a", "provider": "p"}
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(main())


def test_redis_down_is_told_once_calls_fail_fast_and_rejoin_runs_when_it_is_back(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        a = Cluster(_config(redis_server, "a"))
        states: list[LinkState] = []
        rejoined = asyncio.Event()

        async def on_rejoin() -> None:
            rejoined.set()

        a.link.on_change(states.append)
        a.on_rejoin(on_rejoin)
        await a.open()
        try:
            redis_server.stop()
            await _until(lambda: a.link.state is LinkState.DOWN)
            assert a.status()["limits"] == "local"
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(Exception, match="Redis is down"):
                await a.publish("circuit", {})
            assert loop.time() - started < 0.05  # refused at once, not after the deadline
            redis_server.start()
            await asyncio.wait_for(rejoined.wait(), 5)
            assert a.link.up
            assert states == [LinkState.UP, LinkState.DOWN, LinkState.UP]
        finally:
            await a.aclose()

    asyncio.run(main())


def test_a_paused_redis_costs_one_deadline_then_nothing(redis_server: RedisServer) -> None:
    async def main() -> None:
        a = Cluster(_config(redis_server, "a", heartbeat=10.0, deadline=0.1))
        await a.open()
        try:
            redis_server.pause()
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(Exception, match="did not answer in time"):
                await a.publish("circuit", {})
            assert 0.09 <= loop.time() - started < 0.5
            assert a.link.state is LinkState.DOWN
        finally:
            redis_server.resume()
            await a.aclose()

    asyncio.run(main())


def test_a_single_process_never_imports_redis() -> None:
    code = (
        "import sys, runestone\n"
        "system = runestone.start(configure_logs=False)\n"
        "user = [{'role': 'user', 'content': 'hi'}]\n"
        "list(system.stream({'model': 'sim-fast', 'messages': user}))\n"
        "system.stop()\n"
        "print('redis' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
