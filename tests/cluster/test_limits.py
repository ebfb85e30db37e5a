"""Key limits across replicas against a real redis-server: exact rpm, tpm and max_streams,
leases that outlive no crash, the fall back to local counts and back, no key name in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runestone.cluster import Cluster, LinkState, SharedLease, SharedLimits
from runestone.config import ApiKey, ClusterConfig
from runestone.providers.settings import Secret
from runestone.server.errors import ApiError
from runestone.server.limits import KeyLimits
from runestone.testing.redis_server import RedisServer
from runestone.testing.upstream import FakeUpstream
from tests.server.serving import RunningServer

pytestmark = pytest.mark.timeout(30)


def key(
    name: str, *, rpm: int | None = None, max_streams: int | None = None, tpm: int | None = None
) -> ApiKey:
    return ApiKey(
        key=Secret(f"sk-{name}-0000"), name=name, rpm=rpm, max_streams=max_streams, tpm=tpm
    )


def _config(server: RedisServer, instance: str, **extra: Any) -> ClusterConfig:
    # A generous deadline: these tests are about exact counts, and a cold connection on a
    # loaded test machine can take longer than a production deadline (the paused-Redis
    # test sets its own).
    settings: dict[str, Any] = {"heartbeat": 0.05, "deadline": 1.0, **extra}
    return ClusterConfig(redis_url=server.url, instance=instance, secret="s3cret", **settings)


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def replicas(
    server: RedisServer, keys: list[ApiKey], n: int = 3, **extra: Any
) -> AsyncIterator[list[tuple[Cluster, SharedLimits]]]:
    """``n`` replicas on one Redis, each with its heartbeat renewing its leases."""
    made: list[tuple[Cluster, SharedLimits]] = []
    try:
        for i in range(n):
            cluster = Cluster(_config(server, f"r{i}", **extra))
            await cluster.open()
            limits = SharedLimits(KeyLimits(keys), cluster)
            cluster.on_beat(limits.renew)
            cluster.on_rejoin(limits.prepare)
            await limits.prepare()
            made.append((cluster, limits))
        yield made
    finally:
        for cluster, limits in made:
            await limits.aclose()
            await cluster.aclose()


async def _stop_heartbeat(cluster: Cluster) -> None:
    """Silence a replica as a SIGKILL would: cancel its tasks until they end (a cancel
    that lands during a heartbeat's Redis call can be swallowed by it)."""
    for task in cluster._tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.05)


async def _outcome(call: Any) -> ApiError | Any:
    try:
        return await call
    except ApiError as error:
        return error


def test_an_rpm_admits_exactly_its_limit_across_three_replicas_under_concurrent_load(
    redis_server: RedisServer,
) -> None:
    team = key("team", rpm=25)

    async def main() -> None:
        async with replicas(redis_server, [team]) as made:
            assert [limits.mode for _, limits in made] == ["shared"] * 3
            calls = [limits.count(team) for _ in range(40) for _, limits in made]
            outcomes = await asyncio.gather(*(_outcome(call) for call in calls))
            refused = [o for o in outcomes if isinstance(o, ApiError)]
            assert len(outcomes) - len(refused) == 25
            assert {error.code for error in refused} == {"rate_limit_exceeded"}
            for error in refused:
                assert error.retry_after is not None
                assert 55 < error.retry_after <= 60
                assert "'team'" in error.message
                assert "25 requests per minute" in error.message

    asyncio.run(main())


def test_max_streams_hold_exactly_across_three_replicas_and_a_release_frees_a_slot(
    redis_server: RedisServer,
) -> None:
    narrow = key("narrow", max_streams=5)

    async def main() -> None:
        async with replicas(redis_server, [narrow]) as made:
            calls = [limits.acquire(narrow) for _ in range(10) for _, limits in made]
            outcomes = await asyncio.gather(*(_outcome(call) for call in calls))
            leases = [o for o in outcomes if not isinstance(o, ApiError)]
            refused = [o for o in outcomes if isinstance(o, ApiError)]
            assert len(leases) == 5
            assert {error.code for error in refused} == {"concurrency_limit_exceeded"}
            assert sum(limits.held() for _, limits in made) == 5
            leases[0].release()
            leases[0].release()  # once only
            for _, limits in made:
                await limits.flush()
            other = await made[2][1].acquire(narrow)  # the freed slot, from any replica
            with pytest.raises(ApiError, match="5 requests in flight"):
                await made[1][1].acquire(narrow)
            for lease in [*leases[1:], other]:
                lease.release()
            for _, limits in made:
                await limits.flush()
            assert sum(limits.held() for _, limits in made) == 0
            await made[0][1].acquire(narrow)

    asyncio.run(main())


def test_admitting_counts_and_leases_in_one_call_exactly_across_three_replicas(
    redis_server: RedisServer,
) -> None:
    both = key("both", rpm=8, max_streams=3)

    async def main() -> None:
        async with replicas(redis_server, [both]) as made:
            calls = [limits.admit(both) for _ in range(6) for _, limits in made]
            outcomes = await asyncio.gather(*(_outcome(call) for call in calls))
            leases = [o for o in outcomes if not isinstance(o, ApiError)]
            refused = [o for o in outcomes if isinstance(o, ApiError)]
            # Three streams at most, whichever replica; a refusal for streams is not counted.
            assert len(leases) == 3
            assert {error.code for error in refused} == {"concurrency_limit_exceeded"}
            assert sum(limits.held() for _, limits in made) == 3
            for lease in leases:
                lease.release()
            for _, limits in made:
                await limits.flush()
            # Three counted so far: five more admitted (one at a time, each released), then the rpm.
            for n in range(5):
                lease = await made[n % 3][1].admit(both)
                lease.release()
                await made[n % 3][1].flush()
            with pytest.raises(ApiError, match="8 requests per minute") as refusal:
                await made[1][1].admit(both)
            assert refusal.value.code == "rate_limit_exceeded"
            assert sum(limits.held() for _, limits in made) == 0  # a refused one holds nothing
            streams = [k async for k in made[0][0].link.redis.scan_iter(match="*:limits:*:streams")]
            for set_key in streams:
                assert await made[0][0].link.redis.zcard(set_key) == 0

    asyncio.run(main())


def test_admitting_without_redis_counts_and_leases_locally(redis_server: RedisServer) -> None:
    both = key("both", rpm=2, max_streams=1)

    async def main() -> None:
        async with replicas(redis_server, [both], n=1) as made:
            cluster, limits = made[0]
            await asyncio.to_thread(redis_server.stop)
            await _until(lambda: cluster.link.state is LinkState.DOWN)
            lease = await limits.admit(both)
            assert not isinstance(lease, SharedLease)  # the replica's own slot
            assert limits.local.in_flight("both") == 1
            with pytest.raises(ApiError, match="1 requests in flight"):
                await limits.admit(both)
            lease.release()
            (await limits.admit(both)).release()
            with pytest.raises(ApiError, match="2 requests per minute"):
                await limits.admit(both)

    asyncio.run(main())


def test_a_replica_that_stops_renewing_has_its_leases_expire_within_the_ttl(
    redis_server: RedisServer,
) -> None:
    narrow = key("narrow", max_streams=2)
    ttl = 0.3

    async def main() -> None:
        async with replicas(redis_server, [narrow], n=2, lease_ttl=ttl) as made:
            (crashed, on_crashed), (_, survivor) = made
            await on_crashed.acquire(narrow)
            await on_crashed.acquire(narrow)
            # Renewed every beat, the leases outlive their TTL many times over.
            await asyncio.sleep(3 * ttl)
            with pytest.raises(ApiError, match="concurrency limit"):
                await survivor.acquire(narrow)
            # The replica stops beating, as a SIGKILLed one would; nothing is released.
            await _stop_heartbeat(crashed)
            loop = asyncio.get_running_loop()
            silent_at = loop.time()
            taken: list[Any] = []

            async def take() -> bool:
                with contextlib.suppress(ApiError):
                    taken.append(await survivor.acquire(narrow))
                return bool(taken)

            async with asyncio.timeout(5):
                while not await take():
                    await asyncio.sleep(0.01)
            # At most a TTL after its last renewal (a heartbeat before it went silent).
            assert loop.time() - silent_at <= ttl + 0.1
            await survivor.acquire(narrow)  # both slots are free

    asyncio.run(main())


def test_a_tpm_counts_the_tokens_every_replica_booked(redis_server: RedisServer) -> None:
    team = key("team", tpm=100)

    async def main() -> None:
        async with replicas(redis_server, [team]) as made:
            (_, a), (_, b), (_, c) = made
            a.book(team, 60)
            await a.flush()
            await c.count(team)  # 60 < 100
            b.book(team, 50)
            await b.flush()
            with pytest.raises(ApiError) as caught:
                await c.count(team)
            assert caught.value.code == "token_limit_exceeded"
            assert "100 tokens per minute" in caught.value.message
            # Under the limit again once the 60 booked first have left the minute.
            assert caught.value.retry_after is not None
            assert 58 < caught.value.retry_after <= 60

    asyncio.run(main())


def test_with_redis_stopped_counts_are_local_and_with_it_back_they_are_shared_again(
    redis_server: RedisServer,
) -> None:
    team = key("team", rpm=2, max_streams=1)

    async def main() -> None:
        async with replicas(redis_server, [team], n=2) as made:
            (a_cluster, a), (b_cluster, b) = made
            rejoined = {a_cluster.instance: asyncio.Event(), b_cluster.instance: asyncio.Event()}
            for cluster, _ in made:

                async def on_rejoin(name: str = cluster.instance) -> None:
                    rejoined[name].set()

                cluster.on_rejoin(on_rejoin)
            held = await a.acquire(team)  # shared, before the outage
            redis_server.stop()
            await _until(lambda: not a_cluster.link.up and not b_cluster.link.up)
            assert (a.mode, b.mode) == ("local", "local")
            # Each replica counts alone now: two a minute each, and only local 429s.
            for limits in (a, b):
                await limits.count(team)
                await limits.count(team)
                with pytest.raises(ApiError, match="rate limit"):
                    await limits.count(team)
                lease = await limits.acquire(team)
                assert not isinstance(lease, SharedLease)
                assert limits.local.in_flight("team") == 1
                with pytest.raises(ApiError, match="concurrency limit"):
                    await limits.acquire(team)
                lease.release()
                assert limits.local.in_flight("team") == 0
            held.release()  # Redis is gone: left to expire, no error
            a.book(team, 10)  # booked locally
            redis_server.start()
            async with asyncio.timeout(5):
                for event in rejoined.values():
                    await event.wait()
            assert (a.mode, b.mode) == ("shared", "shared")
            # The restarted Redis was empty; each replica pushed what it admitted alone on
            # rejoining: four requests this minute for a limit of two, so neither admits more.
            with pytest.raises(ApiError, match="rate limit"):
                await a.count(team)
            with pytest.raises(ApiError, match="rate limit"):
                await b.count(team)
            assert (a.held(), b.held()) == (0, 0)  # the leases taken alone were released

    asyncio.run(main())


def test_a_stream_admitted_alone_holds_a_shared_slot_once_redis_is_back_until_it_ends(
    redis_server: RedisServer,
) -> None:
    narrow = key("narrow", max_streams=2, rpm=100)

    async def main() -> None:
        async with replicas(redis_server, [narrow], n=2) as made:
            (a_cluster, a), (b_cluster, b) = made
            rejoined = asyncio.Event()

            async def on_rejoin() -> None:
                rejoined.set()

            a_cluster.on_rejoin(on_rejoin)  # after a's own hooks: a has pushed by then
            await asyncio.to_thread(redis_server.stop)
            await _until(lambda: not a_cluster.link.up)
            alone = await a.admit(narrow)  # a stream that begins while Redis is gone
            assert a.mode == "local"
            await asyncio.to_thread(redis_server.start)
            async with asyncio.timeout(5):
                await rejoined.wait()
            await _until(lambda: b_cluster.link.up)
            assert a.held() == 1  # now a shared lease too, renewed with a's others
            # Two streams across both replicas: a's, begun alone, and one more.
            other = await b.admit(narrow)
            with pytest.raises(ApiError, match="2 requests in flight"):
                await b.admit(narrow)
            alone.release()
            alone.release()  # once only
            await a.flush()
            assert (a.held(), a.local.in_flight("narrow")) == (0, 0)
            (await b.admit(narrow)).release()  # its slot is free, across the cluster
            other.release()
            await b.flush()
            # Its request was pushed too: three of the hundred this minute, a's and b's two.
            rpm_key = a_cluster.space.key("limits", a_cluster.space.client("narrow"), "rpm")
            assert await a_cluster.link.redis.zcard(rpm_key) == 3

    asyncio.run(main())


def test_a_paused_redis_costs_one_deadline_then_counts_are_local(
    redis_server: RedisServer,
) -> None:
    team = key("team", rpm=1)

    async def main() -> None:
        async with replicas(redis_server, [team], n=1, heartbeat=10.0, deadline=0.1) as made:
            ((cluster, limits),) = made
            redis_server.pause()
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                await limits.count(team)  # late: counted locally
                assert loop.time() - started < 0.5
                assert cluster.link.state is LinkState.DOWN
                assert limits.mode == "local"
                with pytest.raises(ApiError, match="rate limit"):
                    await limits.count(team)
            finally:
                redis_server.resume()

    asyncio.run(main())


def test_no_client_key_name_reaches_redis_and_every_limit_key_expires(
    redis_server: RedisServer,
) -> None:
    name = "alice-private-team-7f3a"
    alice = key(name, rpm=10, tpm=1000, max_streams=3)

    async def main() -> None:
        async with replicas(redis_server, [alice], n=1) as made:
            ((cluster, limits),) = made
            await limits.count(alice)
            limits.book(alice, 123)
            lease = await limits.acquire(alice)
            await limits.acquire(alice)
            lease.release()
            await limits.flush()
            await limits.renew()
            redis = cluster.link.redis
            seen: list[str] = []
            limit_keys = []
            async for raw in redis.scan_iter(match="*"):
                name_of = raw.decode()
                seen.append(name_of)
                kind = (await redis.type(raw)).decode()
                if kind == "string":
                    seen.append(repr(await redis.get(raw)))
                elif kind == "zset":
                    seen.append(repr(await redis.zrange(raw, 0, -1, withscores=True)))
                elif kind == "hash":
                    seen.append(repr(await redis.hgetall(raw)))
                elif kind == "set":
                    seen.append(repr(await redis.smembers(raw)))
                elif kind == "list":
                    seen.append(repr(await redis.lrange(raw, 0, -1)))
                if ":limits:" in name_of:
                    limit_keys.append(raw)
            assert len(limit_keys) == 4  # rpm, tpm, tpm:sum, streams
            everything = "\n".join(seen)
            assert name not in everything
            assert "alice" not in everything
            for raw in limit_keys:
                assert 0 < await redis.pttl(raw) <= 60_000

    asyncio.run(main())


def test_a_reload_keeps_the_shared_counts_under_the_keys_name(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with replicas(redis_server, [key("team", rpm=2)], n=2) as made:
            (_, a), (_, b) = made
            await a.count(key("team", rpm=2))
            await b.count(key("team", rpm=2))
            for _, limits in made:
                limits.update([key("team", rpm=3)])
            await a.count(key("team", rpm=3))  # the third of three
            with pytest.raises(ApiError, match="3 requests per minute"):
                await b.count(key("team", rpm=3))
            for _, limits in made:
                limits.update([key("team")])  # no rpm any more: never refused
            await a.count(key("team"))

    asyncio.run(main())


# -- the scripts against a reference model, on a clock of the test's own -----------------------

RPM = 3
TPM = 500

_steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=30_000),  # ms since the step before
        st.one_of(st.none(), st.integers(min_value=1, max_value=300)),  # count, or book tokens
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=_steps)
def test_the_count_script_matches_a_reference_model(
    redis_server: RedisServer, steps: list[tuple[int, int | None]]
) -> None:
    team = key(f"team-{uuid.uuid4().hex}", rpm=RPM, tpm=TPM)

    async def main() -> None:
        cluster = Cluster(_config(redis_server, "model"))
        assert await cluster.link.check()
        limits = SharedLimits(KeyLimits([team]), cluster)
        admitted: list[int] = []
        booked: list[tuple[int, int]] = []
        now = 1_700_000_000_000
        try:
            for gap, tokens in steps:
                now += gap
                if tokens is not None:
                    limits.book(team, tokens, at_ms=now)
                    await limits.flush()
                    booked.append((now, tokens))
                    continue
                recent_tokens = [(t, n) for t, n in booked if t > now - 60_000]
                recent = [t for t in admitted if t > now - 60_000]
                used = sum(n for _, n in recent_tokens)
                expected: tuple[str, float] | None = None
                if used >= TPM:
                    left = used
                    for at, n in recent_tokens:
                        left -= n
                        if left < TPM:
                            expected = ("token_limit_exceeded", (at + 60_000 - now) / 1000)
                            break
                elif len(recent) >= RPM:
                    expected = ("rate_limit_exceeded", (recent[0] + 60_000 - now) / 1000)
                outcome = await _outcome(limits.count(team, at_ms=now))
                if isinstance(outcome, ApiError):
                    assert (outcome.code, outcome.retry_after) == expected
                else:
                    assert expected is None
                    admitted.append(now)
        finally:
            await cluster.link.aclose()

    asyncio.run(main())


# -- through the HTTP server ------------------------------------------------------------------


def test_two_gateways_on_one_redis_share_a_keys_rpm(
    redis_server: RedisServer, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    config: dict[str, Any] = {
        "providers": {
            "main": {
                "type": "openai",
                "api_key": "sk-test-upstream",
                "base_url": fake_upstream.openai_base_url,
                "models": {"healthy": {}},
            },
        },
        "routing": {"aliases": {"fast": ["main/healthy"]}},
        "server": {"host": "127.0.0.1", "port": 0},
        "auth": {"keys": [{"key": "sk-rs-shared-key-0001", "name": "team", "rpm": 3}]},
        "logging": {"level": "WARNING"},
    }
    cluster = {"redis_url": redis_server.url, "secret": "s3cret", "deadline": 1.0}
    user = [{"role": "user", "content": "Tell me the known text."}]
    with (
        RunningServer({**config, "cluster": {**cluster, "instance": "a"}}, tmp_path, name="a") as a,
        RunningServer({**config, "cluster": {**cluster, "instance": "b"}}, tmp_path, name="b") as b,
    ):
        sdks = [
            openai.OpenAI(base_url=server.base_url, api_key="sk-rs-shared-key-0001", max_retries=0)
            for server in (a, b)
        ]
        for sdk in (sdks[0], sdks[1], sdks[0]):
            assert sdk.chat.completions.create(model="fast", messages=user).choices
        for sdk in sdks:
            with pytest.raises(openai.RateLimitError) as caught:
                sdk.chat.completions.create(model="fast", messages=user)
            assert caught.value.code == "rate_limit_exceeded"
            assert 50 <= int(caught.value.response.headers["retry-after"]) <= 60
        for sdk in sdks:
            sdk.close()
