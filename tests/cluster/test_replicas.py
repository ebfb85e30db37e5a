"""Three real ``runestone serve`` replicas on one Redis: shared circuits and limits, a replica
lost, Redis lost or paused.

Each test starts its own three replicas (concurrently, about two seconds) through
:mod:`tests.cluster.replicas`, on a real redis-server and fake upstreams.

What is shared through Redis, seen from outside: one replica's outage opens the
circuit on all three; a key's rpm and max_streams hold exactly across them. (A killed
replica's leases expiring within their TTL is tests/cluster/test_limits.py.)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runestone.testing.redis_server import RedisServer
from runestone.testing.upstream import KNOWN_TEXT
from tests.cluster.replicas import (
    LOAD_KEY,
    SLOW,
    Answer,
    Load,
    Replicas,
    ask,
    client,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

HEARTBEAT = 0.2
DEADLINE = 0.1
# For the tests of what is shared while Redis is well: one stalled call past a production
# deadline on a loaded 2-core machine would turn a replica local (by design) and hide it.
GENEROUS = 0.5


def test_a_replica_killed_mid_stream_breaks_only_its_own_streams_and_leaves_the_registry(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # 41 tokens 40 ms apart: every stream is still going when the last one has begun.
    with Replicas(
        tmp_path, redis_server, heartbeat=HEARTBEAT, deadline=GENEROUS, token_interval=0.04
    ) as replicas:
        replicas.wait_registry(lambda live: live == {"r0", "r1", "r2"}, timeout=5)

        async def main() -> tuple[list[Answer], set[str], float, float]:
            loop = asyncio.get_running_loop()
            per_replica = 2
            async with client() as http:
                begun = [asyncio.Event() for _ in range(3 * per_replica)]
                streams = [
                    asyncio.ensure_future(
                        ask(
                            http,
                            replicas.url(n % 3),
                            model=SLOW,
                            stream=True,
                            started=begun[n].set,
                        )
                    )
                    for n in range(3 * per_replica)
                ]
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in begun)), 10)
                # Every stream has text and none has finished: kill r1 with its streams in flight.
                assert not any(s.done() for s in streams)
                assert len(_leases(replicas, "r1")) == per_replica  # each stream holds a lease
                killed_at = await loop.run_in_executor(None, replicas.kill, 1)
                killed_ms = _redis_ms(replicas)
                # Watched from the kill on, while the other streams go on.
                left = loop.run_in_executor(
                    None, lambda: replicas.wait_registry(lambda live: "r1" not in live, timeout=5)
                )
                answers = await asyncio.wait_for(asyncio.gather(*streams), 20)
                live, seen_at = await left
            return answers, live, seen_at - killed_at, killed_ms

        answers, live, gone_after, killed_ms = asyncio.run(main())
        for n, answer in enumerate(answers):
            if n % 3 == 1:
                # The killed replica's client sees the break, never a clean success.
                assert answer.error is not None, answer
                assert not answer.finished
                assert answer.text != KNOWN_TEXT
                assert KNOWN_TEXT.startswith(answer.text)
            else:
                assert answer.ok, answer
        assert live == {"r0", "r2"}
        # Its last heartbeat came at most one heartbeat before the kill, and a member ages out
        # of the view three heartbeats after its last one (the probe reads every 10 ms).
        print(f"r1 left the registry view {gone_after * 1000:.0f} ms after SIGKILL")
        assert gone_after <= 3 * HEARTBEAT + 0.05, gone_after
        print(f"r1's clients saw: {[a.error for a in answers[1::3]]}")
        # Nothing released r1's leases; they expire within their TTL (three heartbeats) of
        # its last renewal, which came before the kill.
        expiries = _leases(replicas, "r1")
        assert len(expiries) == 2
        assert all(at <= killed_ms + 3 * HEARTBEAT * 1000 for at in expiries), expiries
        assert all(at <= _redis_ms(replicas) for at in expiries), "expired by now"
        # The others released theirs as their streams ended (a release goes out just after
        # the stream's last bytes; an expired lease would stay in the set until pruned).
        wait_until(
            lambda: _leases(replicas, "r0") == _leases(replicas, "r2") == [],
            timeout=1,
            what=f"r0 and r2 release their leases; {_cluster_lines(replicas)}",
        )


ALL = {"r0", "r1", "r2"}


def _leases(replicas: Replicas, instance: str) -> list[float]:
    """The expiry (Redis ms) of every stream lease ``instance`` holds, for any key."""
    client = replicas.redis
    found: list[float] = []
    for key in client.scan_iter(match=f"{replicas.namespace}:limits:*:streams"):
        for member, score in client.zrange(key, 0, -1, withscores=True):
            if member.decode().startswith(f"{instance}:"):
                found.append(score)
    return found


def _cluster_lines(replicas: Replicas) -> list[str]:
    """What the replicas logged about the cluster (why a test's shared state went local)."""
    return [
        f"r{i}: {line}"
        for i, server in enumerate(replicas.servers)
        for line in server.full_log().splitlines()
        if "cluster" in line
    ]


def _redis_ms(replicas: Replicas) -> float:
    seconds, micros = replicas.redis.time()
    return seconds * 1000 + micros / 1000


# Answers per phase: at 4 clients on each of three replicas, well under a second each.
PHASE = 60


def _report(load: Load) -> str:
    return ", ".join(
        f"{phase}: {len(answers)} answers, median {statistics.median(answers) * 1000:.1f} ms, "
        f"max {max(answers) * 1000:.1f} ms"
        for phase in dict.fromkeys(p for p, _ in load.answers)
        if (answers := [a.seconds for a in load.of(phase)])
    )


def test_redis_stopped_under_load_fails_no_request_and_every_replica_rejoins_when_it_is_back(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with Replicas(tmp_path, redis_server, heartbeat=HEARTBEAT, deadline=DEADLINE) as replicas:
        replicas.wait_registry(lambda live: live == ALL, timeout=5)

        async def main() -> tuple[Load, float]:
            async with client() as http, Load(http, replicas.urls) as load:
                await load.more(PHASE)
                load.phase = "redis stopped"
                await asyncio.to_thread(redis_server.stop)
                # Each replica finds Redis gone (its next heartbeat) and goes on on local state.
                await asyncio.to_thread(
                    replicas.wait_logs, "cluster_redis_down", timeout=5 * HEARTBEAT + 1
                )
                await load.more(PHASE)
                load.phase = "redis back"
                await asyncio.to_thread(redis_server.start)
                back_at = time.monotonic()
                _, seen_at = await asyncio.to_thread(
                    replicas.wait_registry, lambda live: live == ALL, timeout=5
                )
                await load.more(PHASE)
                load.phase = "after"
            return load, seen_at - back_at

        load, rejoined_after = asyncio.run(main())
        print(f"\n{_report(load)}; all three rejoined {rejoined_after * 1000:.0f} ms after Redis")
        assert load.failed == []
        assert len(load.of("redis stopped")) >= PHASE
        replicas.wait_logs("cluster_redis_back", timeout=1)
        # Down, a replica pings every heartbeat; the first ping after Redis is back rejoins.
        assert rejoined_after <= 3 * HEARTBEAT, rejoined_after


def test_redis_paused_under_load_fails_no_request_and_adds_no_more_than_its_deadline(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with Replicas(tmp_path, redis_server, heartbeat=HEARTBEAT, deadline=DEADLINE) as replicas:
        replicas.wait_registry(lambda live: live == ALL, timeout=5)

        async def main() -> Load:
            async with client() as http, Load(http, replicas.urls) as load:
                await load.more(PHASE)
                load.phase = "before"
                await load.more(PHASE)
                load.phase = "redis paused"
                redis_server.pause()
                try:
                    # Its next heartbeat waits one deadline, then the replica runs on local state.
                    await asyncio.to_thread(
                        replicas.wait_logs, "cluster_redis_down", timeout=5 * HEARTBEAT + 1
                    )
                    await load.more(PHASE)
                finally:
                    redis_server.resume()
                load.phase = "redis resumed"
                await asyncio.to_thread(replicas.wait_registry, lambda live: live == ALL, timeout=5)
                await load.more(PHASE)
                load.phase = "after"
            return load

        load = asyncio.run(main())
        print(f"\n{_report(load)}")
        assert load.failed == []
        before = max(a.seconds for a in load.of("before"))
        paused = max(a.seconds for a in load.of("redis paused"))
        # A request pays at most one deadline for a Redis that stopped answering (the call that
        # finds it late); the margin is for a loaded 2-core machine.
        assert paused <= before + DEADLINE + 0.25, (paused, before)


def _with_flaky_provider(_i: int, config: dict[str, Any]) -> None:
    """A provider whose model is down, with a strict breaker, before the healthy one."""
    up = config["providers"]["up"]
    config["providers"] = {
        "flaky": {
            **up,
            "models": {"unavailable": {}},
            "retry": {"max_attempts": 1},
            "circuit_breaker": {"consecutive_failures": 2, "recovery": 30, "jitter": 0},
        },
        **config["providers"],
    }
    config["routing"] = {"aliases": {"m": ["flaky/unavailable", "up/healthy"]}}


def _circuit(url: str, provider: str) -> str:
    request = urllib.request.Request(
        url + "/health", headers={"authorization": f"Bearer {LOAD_KEY}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            report = json.loads(response.read())
    except urllib.error.HTTPError as error:  # 503 while degraded still carries the report
        report = json.loads(error.read())
    state: str = report["providers"][provider]["circuit"]["state"]
    return state


def test_an_outage_seen_by_one_replica_opens_the_circuit_for_all_three_within_a_second(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with Replicas(
        tmp_path, redis_server, heartbeat=HEARTBEAT, customise=_with_flaky_provider
    ) as replicas:
        replicas.wait_registry(lambda live: live == ALL, timeout=5)

        async def two_on_r0() -> list[Answer]:
            async with client() as http:
                return [await ask(http, replicas.url(0), model="m") for _ in range(2)]

        assert all(a.ok for a in asyncio.run(two_on_r0()))
        opened_at = time.monotonic()
        for i in (1, 2):
            wait_until(
                lambda i=i: _circuit(replicas.url(i), "flaky") == "open",
                timeout=1.0,
                every=0.005,
                what=f"r{i} sees the circuit open",
            )
        print(f"open on r1 and r2 {1000 * (time.monotonic() - opened_at):.0f} ms after r0's answer")
        down = [a for a in replicas.fast.attempts if a.model == "unavailable"]
        assert len(down) == 2, "only r0 ever called the provider that is down"

        async def one_each() -> list[Answer]:
            async with client() as http:
                return [await ask(http, replicas.url(i), model="m") for i in (1, 2)]

        assert all(a.ok for a in asyncio.run(one_each()))
        assert len([a for a in replicas.fast.attempts if a.model == "unavailable"]) == 2


RATED_KEY = "sk-rs-replicas-rated-0001"
STREAMS_KEY = "sk-rs-replicas-streams-0001"
RPM = 10
MAX_STREAMS = 2


def _with_limited_keys(_i: int, config: dict[str, Any]) -> None:
    config["auth"]["keys"] += [
        {"key": RATED_KEY, "name": "rated", "rpm": RPM},
        {"key": STREAMS_KEY, "name": "streams", "max_streams": MAX_STREAMS},
    ]


def test_a_keys_rpm_and_max_streams_hold_exactly_across_three_replicas(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with Replicas(
        tmp_path,
        redis_server,
        heartbeat=HEARTBEAT,
        deadline=GENEROUS,
        customise=_with_limited_keys,
    ) as replicas:
        replicas.wait_registry(lambda live: live == ALL, timeout=5)

        async def main() -> tuple[list[Answer], list[Answer], Answer, Answer]:
            async with client() as http:
                # Three times the rpm at once, spread over the three replicas.
                burst = await asyncio.gather(
                    *(ask(http, replicas.url(n % 3), key=RATED_KEY) for n in range(3 * RPM))
                )
                # max_streams streams held open on two replicas; the next, on the third, waits.
                begun = [asyncio.Event() for _ in range(MAX_STREAMS)]
                held = [
                    asyncio.ensure_future(
                        ask(
                            http,
                            replicas.url(n),
                            model=SLOW,
                            stream=True,
                            key=STREAMS_KEY,
                            started=begun[n].set,
                        )
                    )
                    for n in range(MAX_STREAMS)
                ]
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in begun)), 10)
                refused = await ask(http, replicas.url(2), key=STREAMS_KEY)
                finished = await asyncio.wait_for(asyncio.gather(*held), 20)
                admitted = await ask(http, replicas.url(2), key=STREAMS_KEY)
            return burst, finished, refused, admitted

        burst, finished, refused, admitted = asyncio.run(main())
        statuses = sorted(a.status or 0 for a in burst)
        assert statuses.count(200) == RPM, (statuses, _cluster_lines(replicas))
        assert statuses.count(429) == 2 * RPM, statuses
        assert all(a.ok for a in burst if a.status == 200)
        assert all(a.ok for a in finished)
        assert refused.status == 429, refused
        assert "concurrency limit" in (refused.error or "")
        assert admitted.ok, admitted
