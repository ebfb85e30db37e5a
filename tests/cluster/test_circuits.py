"""Shared circuits: the Lua script against a reference model, and replicas that agree."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runestone
from runestone.cluster import Cluster, SharedCircuits, SharedState
from runestone.cluster.circuits import CLAIM_SHARE
from runestone.config import ClusterConfig
from runestone.messages import Done
from runestone.resilience import CircuitBreakerPolicy, CircuitState
from runestone.system import System
from runestone.testing.redis_server import RedisServer
from runestone.testing.upstream import FakeUpstream
from tests.system.conftest import anthropic_provider, config, models, openai_provider, settle

USER = [{"role": "user", "content": "Tell me the known text."}]

pytestmark = pytest.mark.timeout(120)

POLICY = CircuitBreakerPolicy(
    consecutive_failures=3,
    recovery=1.0,
    recovery_max=4.0,
    recovery_multiplier=2.0,
    jitter=0,
    half_open_probes=2,
    half_open_successes=2,
    probe_timeout=5.0,
    probe_interval=0.5,
)


@dataclass
class Model:
    """The shared circuit as the design says it behaves (times in ms)."""

    policy: CircuitBreakerPolicy
    state: CircuitState = CircuitState.CLOSED
    epoch: int = 0
    consecutive: int = 0
    open_until: int = 0
    next_recovery: int = 0
    successes: int = 0
    probes: dict[str, int] = field(default_factory=dict)
    probe_lock_until: int = -1

    def __post_init__(self) -> None:
        self.next_recovery = round(self.policy.recovery * 1000)

    def _enter(self, state: CircuitState) -> None:
        self.state = state
        self.epoch += 1
        self.consecutive = 0
        self.successes = 0
        self.probes.clear()

    def _open(self, now: int) -> None:
        cap = round(self.policy.recovery_cap * 1000)
        length = min(self.next_recovery, cap)
        self.next_recovery = min(round(self.next_recovery * self.policy.recovery_multiplier), cap)
        self.open_until = now + length
        self._enter(CircuitState.OPEN)

    def fail(self, now: int) -> None:
        if self.state is CircuitState.CLOSED:
            self.consecutive += 1
            if self.consecutive >= self.policy.consecutive_failures:
                self._open(now)

    def succeed(self, now: int) -> None:
        if self.state is CircuitState.CLOSED:
            self.consecutive = 0

    def opened(self, now: int) -> None:
        if self.state is CircuitState.CLOSED:
            self._open(now)

    def acquire(self, now: int, probe_id: str, *, panic: bool) -> bool:
        if self.state is CircuitState.OPEN:
            if now >= self.open_until:
                self._enter(CircuitState.HALF_OPEN)
            elif panic and now >= self.probe_lock_until:
                self.probe_lock_until = now + round(self.policy.probe_interval * 1000)
                self._enter(CircuitState.HALF_OPEN)
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.HALF_OPEN:
            self.probes = {p: t for p, t in self.probes.items() if t > now}
            if len(self.probes) < self.policy.half_open_probes:
                self.probes[probe_id] = now + round(self.policy.probe_timeout * 1000)
                return True
        return False

    def recovery_probe(self, now: int, interval: int) -> bool:
        if self.state is CircuitState.OPEN and now >= self.probe_lock_until:
            self.probe_lock_until = now + interval
            return True
        return False

    def settle(self, now: int, probe_id: str, outcome: str) -> None:
        if self.state is not CircuitState.HALF_OPEN or self.probes.pop(probe_id, None) is None:
            return
        if outcome == "success":
            self.successes += 1
            if self.successes >= self.policy.half_open_successes:
                self.next_recovery = round(self.policy.recovery * 1000)
                self._enter(CircuitState.CLOSED)
        elif outcome == "failure":
            self._open(now)


def _config(server: RedisServer, instance: str) -> ClusterConfig:
    return ClusterConfig(redis_url=server.url, instance=instance, deadline=1.0)


async def _replicas(server: RedisServer, n: int) -> list[tuple[Cluster, SharedCircuits]]:
    out = []
    for i in range(n):
        cluster = Cluster(_config(server, f"r{i}"))
        assert await cluster.link.check()
        out.append((cluster, SharedCircuits(cluster, None)))  # type: ignore[arg-type]  # run() only
    return out


_OPS = st.one_of(
    st.tuples(st.just("fail"), st.integers(0, 2)),
    st.tuples(st.just("succeed"), st.integers(0, 2)),
    st.tuples(st.just("open"), st.integers(0, 2)),
    st.tuples(st.just("acquire"), st.integers(0, 2), st.booleans()),
    st.tuples(
        st.just("settle"), st.integers(0, 2), st.sampled_from(["success", "failure", "release"])
    ),
    st.tuples(st.just("recovery_probe"), st.integers(0, 2), st.integers(100, 2000)),
    st.tuples(st.just("wait"), st.integers(1, 3000)),
)

_provider_ids = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_OPS, min_size=1, max_size=40))
def test_the_shared_circuit_follows_the_reference_model_across_interleaved_replicas(
    redis_server: RedisServer, ops: list[tuple[Any, ...]]
) -> None:
    provider = f"p{next(_provider_ids)}"

    async def main() -> None:
        replicas = await _replicas(redis_server, 3)
        model = Model(POLICY)
        now = 1_000_000
        held: list[list[str]] = [[], [], []]  # probe ids each replica was granted
        ids = itertools.count()
        try:
            for op in ops:
                if op[0] == "wait":
                    now += op[1]
                    continue
                who = op[1]
                circuits = replicas[who][1]

                async def run(
                    name: str, circuits: SharedCircuits = circuits, at: int = now, **kw: Any
                ) -> SharedState:
                    return await circuits.run(provider, POLICY, name, epoch=None, now_ms=at, **kw)

                if op[0] == "fail":
                    model.fail(now)
                    got = await run("fail")
                elif op[0] == "succeed":
                    model.succeed(now)
                    got = await run("succeed")
                elif op[0] == "open":
                    model.opened(now)
                    got = await run("open", arg="failure_rate")
                elif op[0] == "acquire":
                    probe_id = f"r{who}:{next(ids)}"
                    expected = model.acquire(now, probe_id, panic=op[2])
                    got = await run("acquire", arg="1" if op[2] else "", probe_id=probe_id)
                    assert got.granted is expected
                    if got.granted and got.state is CircuitState.HALF_OPEN:
                        held[who].append(probe_id)
                elif op[0] == "recovery_probe":
                    expected = model.recovery_probe(now, op[2])
                    got = await run("recovery_probe", arg=str(op[2]))
                    assert got.granted is expected
                else:
                    if not held[who]:
                        continue
                    probe_id = held[who].pop(0)
                    model.settle(now, probe_id, op[2])
                    got = await run("settle", arg=op[2], probe_id=probe_id)
                assert (got.state, got.epoch) == (model.state, model.epoch)
                if got.state is CircuitState.CLOSED:
                    assert got.consecutive == model.consecutive
                if got.state is CircuitState.OPEN:
                    assert got.open_in == max(0, model.open_until - now) / 1000
                # Never more probes out at once than the policy allows, across all replicas.
                assert len(model.probes) <= POLICY.half_open_probes
        finally:
            for cluster, _ in replicas:
                await cluster.link.aclose()

    asyncio.run(main())


def test_a_change_is_published_to_the_other_replicas_by_the_script_that_made_it(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        a = Cluster(_config(redis_server, "a"))
        b = Cluster(_config(redis_server, "b"))
        await a.open()
        await b.open()
        heard: asyncio.Queue[SharedState | None] = asyncio.Queue()
        circuits_a = SharedCircuits(a, None)  # type: ignore[arg-type]
        circuits_b = SharedCircuits(b, None)  # type: ignore[arg-type]
        circuits_b.listen("p", heard.put_nowait)
        try:
            for _ in range(POLICY.consecutive_failures):
                state = await circuits_a.run("p", POLICY, "fail", epoch=None)
            assert state.state is CircuitState.OPEN
            assert state.changed
            change = await asyncio.wait_for(heard.get(), 5)
            assert change is not None
            assert (change.state, change.epoch, change.by) == (CircuitState.OPEN, 1, "a")
            assert change.reason == "consecutive_failures"
            assert change.open_in is not None
            assert 0.9 <= change.open_in <= 1.0
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(main())


# -- replicas in one process: two Systems on one Redis ------------------------------------------


def _replica_config(
    up: FakeUpstream,
    redis_server: RedisServer,
    name: str,
    primary: tuple[str, ...],
    aliases: dict[str, list[str]],
    breaker: dict[str, Any],
) -> dict[str, Any]:
    return config(
        {
            "primary": openai_provider(
                up,
                models(*primary),
                retry={"max_attempts": 1},
                circuit_breaker={"consecutive_failures": 2, "jitter": 0, **breaker},
            ),
            "backup": anthropic_provider(up, models("healthy")),
        },
        aliases=aliases,
        # A generous deadline: Redis slowed by a loaded machine is not what is tested here.
        cluster={
            "redis_url": redis_server.url,
            "instance": name,
            "heartbeat": 0.1,
            "deadline": 1.0,
        },
    )


@contextlib.contextmanager
def _two_replicas(
    up: FakeUpstream,
    redis_server: RedisServer,
    *primary: str,
    aliases: dict[str, list[str]] | None = None,
    **breaker: Any,
) -> Iterator[tuple[System, System]]:
    """Replicas ``a`` and ``b`` of one gateway, stopped after the block."""
    routes = aliases or {"m": [f"primary/{primary[0]}", "backup/healthy"]}
    systems: list[System] = []
    try:
        for name in ("a", "b"):
            cfg = _replica_config(up, redis_server, name, primary, routes, breaker)
            systems.append(runestone.start(cfg))
        yield systems[0], systems[1]
    finally:
        for system in systems:
            system.stop()


def _state(system: System, provider: str = "primary") -> str:
    entry = system.directory.entries()[provider]
    assert entry.status is not None
    return entry.status.state.value


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``predicate()`` held (fails past ``timeout``)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.002)  # polling a condition; no time is waited out
    return time.monotonic() - started


def _ask(system: System) -> Done:
    events = list(system.stream({"model": "m", "messages": USER}))
    done = events[-1]
    assert isinstance(done, Done), events[-1]
    return done


def test_an_outage_seen_by_one_replica_opens_the_circuit_for_the_other_within_a_second(
    redis_server: RedisServer,
) -> None:
    with (
        FakeUpstream() as up,
        _two_replicas(up, redis_server, "unavailable", recovery=30) as (
            a,
            b,
        ),
    ):
        assert _state(b) == "closed"
        for _ in range(2):
            assert _ask(a).provider == "backup"
            settle(a)
        assert _state(a) == "open"
        assert _until(lambda: _state(b) == "open", timeout=1.0) < 1.0
        hits = len([x for x in up.attempts if x.model == "unavailable"])
        # b never called the provider: the first request it gets goes to the backup.
        assert _ask(b).provider == "backup"
        assert len([x for x in up.attempts if x.model == "unavailable"]) == hits


def test_one_replicas_failures_and_anothers_add_up_to_the_opening(
    redis_server: RedisServer,
) -> None:
    with (
        FakeUpstream() as up,
        _two_replicas(up, redis_server, "unavailable", consecutive_failures=4) as (a, b),
    ):
        for system in (a, b, a):
            _ask(system)
            settle(system)
        assert (_state(a), _state(b)) == ("closed", "closed")  # 3 of 4, neither alone at 4
        _ask(b)
        settle(b)
        _until(lambda: _state(a) == "open" and _state(b) == "open")


def test_half_open_probes_across_replicas_never_exceed_the_configured_number(
    redis_server: RedisServer,
) -> None:
    slow = "slow-first-token:0.4"
    aliases = {
        "down": ["primary/unavailable", "backup/healthy"],
        "m": [f"primary/{slow}", "backup/healthy"],
    }
    breaker = {
        "recovery": 0.2,
        "half_open_probes": 1,
        "half_open_successes": 2,
        "probe_interval": None,
    }
    with (
        FakeUpstream() as up,
        _two_replicas(up, redis_server, "unavailable", slow, aliases=aliases, **breaker) as (
            a,
            b,
        ),
    ):
        for _ in range(2):
            list(a.stream({"model": "down", "messages": USER}))
            settle(a)
        _until(lambda: _state(b) == "open", timeout=1.0)
        time.sleep(0.25)  # the opening's recovery time passing is what is under test
        barrier = threading.Barrier(16)
        answered: list[str] = []

        def ask(system: System) -> None:
            barrier.wait()
            events = list(system.stream({"model": "m", "messages": USER}))
            last = events[-1]
            assert isinstance(last, Done)
            answered.append(last.provider)

        threads = [threading.Thread(target=ask, args=(s,)) for s in (a, b) * 8]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(answered) == 16
        probes = [x for x in up.attempts if x.model == slow]
        assert len(probes) == 1, "one probe slot across both replicas while half-open"
        assert answered.count("primary") == 1


def test_a_dead_provider_is_probed_once_per_probe_interval_across_replicas_not_once_each(
    redis_server: RedisServer,
) -> None:
    interval = 0.2
    with (
        FakeUpstream() as up,
        _two_replicas(
            up,
            redis_server,
            "down-for:60",
            consecutive_failures=1,
            recovery=30,
            probe_interval=interval,
            probe_interval_max=interval,
        ) as (a, b),
    ):
        assert _ask(a).provider == "backup"
        settle(a)
        _until(lambda: _state(b) == "open", timeout=1.0)
        # Each replica's timer comes due every interval, a few ms apart: alone, each would
        # probe; shared, one claim per interval (nine tenths of it, on Redis's clock) wins.
        _until(lambda: len(up.listings) >= 6, timeout=10)
        listings = up.listings[:6]
        gaps = [later - earlier for earlier, later in itertools.pairwise(listings)]
        assert min(gaps) >= CLAIM_SHARE * interval - 0.03, gaps
        assert (_state(a), _state(b)) == ("open", "open")
        assert [x.model for x in up.attempts].count("down-for:60") == 1, "probes are not chats"


def _cooling(system: System, provider: str = "primary") -> float | None:
    entry = system.directory.entries()[provider]
    assert entry.status is not None
    return entry.status.circuit.cooling_until


def test_a_429_met_by_one_replica_cools_the_provider_on_the_other_too(
    redis_server: RedisServer,
) -> None:
    with (
        FakeUpstream() as up,
        _two_replicas(up, redis_server, "rate-limit-once:30") as (a, b),
    ):
        assert _ask(a).provider == "backup"
        settle(a)
        assert _cooling(a) is not None
        # b hears of it (pub/sub) and holds the provider back as long, without its own 429.
        _until(lambda: _cooling(b) is not None, timeout=1.0)
        now = time.monotonic()
        cooling = _cooling(b)
        assert cooling is not None
        assert 28 < cooling - now <= 30
        assert _state(b) == "closed"  # a 429 is not a failure, here or there
        calls = len(up.attempts)
        assert _ask(b).provider == "backup"
        assert [x.model for x in up.attempts[calls:]] == ["healthy"]


def test_with_redis_down_a_replica_decides_alone_and_its_opening_reaches_the_others_on_rejoin(
    redis_server: RedisServer,
) -> None:
    with (
        FakeUpstream() as up,
        _two_replicas(up, redis_server, "unavailable", recovery=30) as (
            a,
            b,
        ),
    ):
        redis_server.stop()
        for _ in range(2):
            assert _ask(a).provider == "backup"  # no request fails for Redis
            settle(a)
        assert _state(a) == "open"  # decided alone
        assert _state(b) == "closed"
        redis_server.start()
        # Both rejoin; a pushes the opening it made alone, b adopts it.
        _until(lambda: _state(b) == "open", timeout=5.0)
        assert _state(a) == "open"


def test_a_replica_started_later_adopts_the_open_circuit(redis_server: RedisServer) -> None:
    with (
        FakeUpstream() as up,
        _two_replicas(up, redis_server, "unavailable", recovery=30) as (
            a,
            _b,
        ),
    ):
        for _ in range(2):
            _ask(a)
            settle(a)
        aliases = {"m": ["primary/unavailable", "backup/healthy"]}
        c = runestone.start(
            _replica_config(up, redis_server, "c", ("unavailable",), aliases, {"recovery": 30})
        )
        try:
            _until(lambda: _state(c) == "open")
            hits = len(up.attempts)
            assert _ask(c).provider == "backup"
            assert [x.model for x in up.attempts[hits:]] == ["healthy"]
        finally:
            c.stop()
