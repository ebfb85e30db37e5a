"""Per-key limits exact across replicas, on Redis; the replica's own counts when it is not there.

Per client key (its name hashed, :meth:`KeySpace.client`), under ``limits:<hash>:``:

- ``rpm``: a sorted set of the requests admitted, scored by Redis's clock (ms). The
  count script prunes what left the minute, refuses at ``rpm`` (retry when the oldest
  leaves), else adds this request: exactly ``rpm`` admitted in any 60 s, whichever
  replica took them.
- ``tpm`` and ``tpm:sum``: the answers' token bookings (sorted set, member
  ``<tokens>:<id>``) and their running total. The count script checks them in the
  same call, before the rpm: refused while the total reaches ``tpm`` (retry when
  enough of the oldest have left the minute), and a refused request is not counted.
- ``streams``: the leases of requests in flight, member ``<instance>:<n>``, scored by
  their expiry (Redis ms). Acquiring prunes the expired and refuses at
  ``max_streams``; every heartbeat this replica pushes the expiry of the leases it
  holds a lease TTL ahead, so a long stream keeps its slot and a killed replica's
  slots come free within the TTL.

Every one of these keys expires (PEXPIRE) when nothing has touched it for as long as
its content is meaningful, so a removed key leaves nothing behind.

While Redis is down or late (the link is not up, or a call fails), each call falls
back to the local :class:`~runestone.server.limits.KeyLimits`: the limits then hold
**per replica**, not across them, and no request ever fails for Redis. Once the
link is up again, calls are shared again, and what the replica admitted alone is
pushed to Redis (:meth:`SharedLimits.sync`, on rejoin and after any beat that finds
some): the requests of the last minute, the tokens booked, and each stream still in
flight as a lease of its own, so that the shared counts say what was really admitted
(a call that failed late may have been counted in Redis already: then it counts
twice, never zero times).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from redis.asyncio import Redis

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.cluster.cluster import Cluster
from runestone.config import ApiKey
from runestone.exceptions import ClusterUnavailableError
from runestone.server.limits import (
    KeyLimits,
    Lease,
    Releasable,
    concurrency_refusal,
    rate_refusal,
    token_refusal,
)

__all__ = ["OfflineLease", "SharedLease", "SharedLimits"]

log = structlog.get_logger(__name__)

# Calls to Redis in flight at once from the limits of one replica. The link's pool has
# 100 connections, and running out of them reads as "Redis is down" (the whole replica
# would count locally), and a burst of cold connections misses the deadline: a burst of
# requests waits its turn here instead, off the deadline.
MAX_CALLS = 8


def _now(given: int | None) -> str:
    """Lua setting ``now``: Redis's clock in ms, or ``ARGV[given]`` when a test passes one
    (the production path passes ``""`` there, and never a time of its own)."""
    clock = """
local t = redis.call('TIME')
now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
    if given is None:
        return "local now\n" + clock
    return f"""local now
if ARGV[{given}] ~= nil and ARGV[{given}] ~= '' then
  now = tonumber(ARGV[{given}])
else{clock}end
"""


# Drops the bookings that left the minute from KEYS[2] and their tokens from KEYS[3]'s
# total; leaves the total in `used`.
_PRUNE_TOKENS = """
local cutoff = now - 60000
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff)
local used
if #old > 0 then
  local gone = 0
  for i = 1, #old do
    gone = gone + tonumber(string.match(old[i], '^(%d+):'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
  used = redis.call('DECRBY', KEYS[3], gone)
else
  used = tonumber(redis.call('GET', KEYS[3]) or '0')
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- nothing booked (or the set was evicted): the total cannot be more
  if used ~= 0 then redis.call('DEL', KEYS[3]) end
  used = 0
end
"""

# The checks of a count: tpm (refused with {2, wait ms}), then rpm (refused with
# {1, wait ms}); ARGV[1] rpm (0: none), ARGV[2] tpm (0: none). Admits nothing yet.
_CHECKS = (
    """
local tpm = tonumber(ARGV[2])
if tpm > 0 then
"""
    + _PRUNE_TOKENS
    + """
  if used >= tpm then
    local excess = used - tpm
    local booked = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = 1, #booked, 2 do
      excess = excess - tonumber(string.match(booked[i], '^(%d+):'))
      if excess < 0 then
        return {2, tonumber(booked[i + 1]) + 60000 - now}
      end
    end
    return {2, 60000}
  end
end
local rpm = tonumber(ARGV[1])
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {1, tonumber(oldest[2]) + 60000 - now}
  end
end
"""
)

# Admit the request a count checked: ARGV[3] its member in the rpm set.
_COUNT_IT = """
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 60000)
end
"""

# KEYS: rpm set, tpm bookings, tpm total. ARGV: rpm (0: none), tpm (0: none), this
# request's member, [now ms]. Returns {0} admitted, {1, wait ms} rpm, {2, wait ms} tpm.
_COUNT = _now(4) + _CHECKS + _COUNT_IT + "return {0}\n"

# A count and a lease in one call (a chat request of a key with both kinds of limit):
# KEYS as _COUNT's, then the lease set; ARGV as _COUNT's, then max_streams, the lease
# member, the lease ttl ms. {3} when the streams are all taken; a refused request is
# neither counted nor leased.
_ADMIT = (
    _now(4)
    + _CHECKS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then
  return {3}
end
"""
    + _COUNT_IT
    + """
local ttl = tonumber(ARGV[7])
redis.call('ZADD', KEYS[4], now + ttl, ARGV[6])
if redis.call('PTTL', KEYS[4]) < ttl then
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return {0}
"""
)

# KEYS: (unused), tpm bookings, tpm total. ARGV: tokens, a unique id, [now ms].
_BOOK = (
    _now(3)
    + _PRUNE_TOKENS
    + """
redis.call('ZADD', KEYS[2], now, ARGV[1] .. ':' .. ARGV[2])
redis.call('INCRBY', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[2], 60000)
redis.call('PEXPIRE', KEYS[3], 60000)
return 1
"""
)

# KEYS: leases. ARGV: max_streams, member, ttl ms. Returns 1 taken, 0 refused.
_ACQUIRE = (
    _now(4)
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"""
)

# KEYS: lease sets. ARGV: ttl ms, then per key its lease count and its members.
# Pushes each lease still live a ttl ahead; an expired one is not brought back (its
# slot may be another's by now). Returns the leases renewed.
_RENEW = (
    _now(None)
    + """
local ttl = tonumber(ARGV[1])
local at = 2
local renewed = 0
for i = 1, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  for j = 1, n do
    local score = redis.call('ZSCORE', KEYS[i], ARGV[at])
    if score and tonumber(score) > now then
      redis.call('ZADD', KEYS[i], now + ttl, ARGV[at])
      renewed = renewed + 1
    end
    at = at + 1
  end
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return renewed
"""
)


# What a replica admitted while it counted alone, pushed on rejoin. KEYS: rpm set, tpm
# bookings, tpm total, lease set. ARGV: lease ttl ms; the requests: their count, then
# (member, age ms) each; the bookings: their count, then (id, age ms, tokens) each; the
# leases: their count, then their members.
_SYNC = (
    _now(None)
    + """
local ttl = tonumber(ARGV[1])
local at = 2
local n = tonumber(ARGV[at])
at = at + 1
for i = 1, n do
  redis.call('ZADD', KEYS[1], now - tonumber(ARGV[at + 1]), ARGV[at])
  at = at + 2
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], 60000) end
n = tonumber(ARGV[at])
at = at + 1
for i = 1, n do
  redis.call('ZADD', KEYS[2], now - tonumber(ARGV[at + 1]), ARGV[at + 2] .. ':' .. ARGV[at])
  redis.call('INCRBY', KEYS[3], ARGV[at + 2])
  at = at + 3
end
if n > 0 then
  redis.call('PEXPIRE', KEYS[2], 60000)
  redis.call('PEXPIRE', KEYS[3], 60000)
end
n = tonumber(ARGV[at])
at = at + 1
for i = 1, n do
  redis.call('ZADD', KEYS[4], now + ttl, ARGV[at])
  at = at + 1
end
if n > 0 and redis.call('PTTL', KEYS[4]) < ttl then
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return 1
"""
)


@dataclass
class _Alone:
    """What one key was admitted while this replica counted alone (times: its clock)."""

    requests: list[tuple[str, float]] = field(default_factory=list)
    tokens: list[tuple[str, float, int]] = field(default_factory=list)
    leases: dict[OfflineLease, str] = field(default_factory=dict)
    """Streams in flight, each with the member it will hold in Redis."""

    def __bool__(self) -> bool:
        return bool(self.requests or self.tokens or self.leases)


class OfflineLease:
    """A slot taken while the replica counted alone: the local slot, and once pushed to
    Redis on rejoin (:meth:`SharedLimits.sync`), a shared one too; :meth:`release`
    gives back both (once)."""

    __slots__ = ("_limits", "_local", "_name", "shared")

    def __init__(self, limits: SharedLimits, name: str, local: Lease) -> None:
        self._limits: SharedLimits | None = limits
        self._name = name
        self._local = local
        self.shared: tuple[str, str] | None = None
        """The lease set and member it holds in Redis, once pushed."""

    def release(self) -> None:
        limits, self._limits = self._limits, None
        if limits is not None:
            self._local.release()
            limits._offline_released(self._name, self)


class SharedLease:
    """A slot held in Redis; :meth:`release` gives it back (once, without waiting)."""

    __slots__ = ("_limits", "_member", "_set")

    def __init__(self, limits: SharedLimits, set_key: str, member: str) -> None:
        self._limits: SharedLimits | None = limits
        self._set = set_key
        self._member = member

    def release(self) -> None:
        limits, self._limits = self._limits, None
        if limits is not None:
            limits._release(self._set, self._member)


class SharedLimits:
    """Per-key rpm, tpm and max_streams across every replica (see the module docstring).

    ``local`` is the replica's own :class:`KeyLimits`, used whenever Redis is not
    (its counts then hold per replica). Build it on the data-plane loop, and have
    ``cluster.on_beat(limits.renew)`` called (the gateway does).
    """

    def __init__(self, local: KeyLimits, cluster: Cluster, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.local = local
        self._clock = clock
        self._cluster = cluster
        self._link = cluster.link
        self._space = cluster.space
        self._ttl_ms = max(1, round(cluster.config.lease_seconds * 1000))
        self._instance = cluster.instance
        # Unique members across restarts under the same instance name: an old life's
        # members may still be in the window.
        self._boot = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._names: dict[str, str] = {}
        self._held: dict[str, set[str]] = {}
        """This replica's live shared leases: lease set → members (what renew pushes)."""
        self._pending: set[asyncio.Task[None]] = set()
        self._alone: dict[str, _Alone] = {}
        """By key name: what was admitted locally and is not in Redis yet."""
        self._calls = asyncio.Semaphore(MAX_CALLS)
        redis = self._link.redis
        self._count = redis.register_script(_COUNT)
        self._book = redis.register_script(_BOOK)
        self._acquire = redis.register_script(_ACQUIRE)
        self._admit = redis.register_script(_ADMIT)
        self._renew = redis.register_script(_RENEW)
        self._sync = redis.register_script(_SYNC)

    @property
    def mode(self) -> Literal["shared", "local"]:
        """``shared`` while Redis is used, ``local`` while the replica counts alone."""
        return "shared" if self._link.up else "local"

    def update(self, keys: Iterable[ApiKey]) -> None:
        """A reload: the local counts keep what each key holds (:meth:`KeyLimits.update`);
        the shared ones are by key name already."""
        keys = list(keys)
        self.local.update(keys)
        self._names = {}

    # -- the calls -------------------------------------------------------------------------

    async def count(self, key: ApiKey | None, *, at_ms: int | None = None) -> None:
        """Count one request against ``key``'s rpm (and check its tpm); a 429 past either.

        ``at_ms`` stands in for Redis's clock (tests only).
        """
        if key is None or (key.rpm is None and key.tpm is None):
            return
        if not self._link.up:
            self._count_alone(key)
            return
        keys = self._keys(key.name)
        args: list[str | int] = [
            key.rpm or 0,
            key.tpm or 0,
            self._id(),
            "" if at_ms is None else at_ms,
        ]

        async def run(_redis: Redis) -> Any:
            return await self._count(keys=keys, args=args)

        try:
            reply = await self._call(run, what="count")
        except ClusterUnavailableError:
            self._count_alone(key)
            return
        verdict = int(reply[0])
        if verdict == 1:
            raise rate_refusal(key, int(reply[1]) / 1000)
        if verdict == 2:
            raise token_refusal(key, int(reply[1]) / 1000)

    def book(self, key: ApiKey | None, tokens: int, *, at_ms: int | None = None) -> None:
        """Book an answer's ``tokens`` against ``key``'s tpm, without waiting (booked
        locally if Redis is not there). ``at_ms``: as in :meth:`count`."""
        if key is None or key.tpm is None or tokens <= 0:
            return
        if not self._link.up:
            self._book_alone(key, tokens)
            return
        self._spawn(self._book_shared(key, tokens, at_ms), "book")

    async def acquire(self, key: ApiKey | None) -> Releasable:
        """Take one of ``key``'s in-flight slots; a 429 when all are taken."""
        if key is None or key.max_streams is None:
            return self.local.acquire(key)
        if not self._link.up:
            return self._acquire_alone(key)
        set_key = self._space.key("limits", self._client(key.name), "streams")
        member = f"{self._instance}:{self._boot}.{next(self._ids)}"
        args: list[str | int] = [key.max_streams, member, self._ttl_ms, ""]

        async def run(_redis: Redis) -> Any:
            return await self._acquire(keys=[set_key], args=args)

        try:
            taken = await self._call(run, what="acquire")
        except ClusterUnavailableError:
            return self._acquire_alone(key)
        if not int(taken):
            raise concurrency_refusal(key)
        self._held.setdefault(set_key, set()).add(member)
        return SharedLease(self, set_key, member)

    async def admit(self, key: ApiKey | None, *, at_ms: int | None = None) -> Releasable:
        """:meth:`count` and :meth:`acquire` at once: one Redis call for a key that has both
        kinds of limit (a refused request is then neither counted nor leased)."""
        if key is None or key.max_streams is None:
            await self.count(key, at_ms=at_ms)
            return self.local.acquire(key)
        if key.rpm is None and key.tpm is None:
            return await self.acquire(key)
        if not self._link.up:
            return self._admit_locally(key)
        client = self._client(key.name)
        set_key = self._space.key("limits", client, "streams")
        keys = [*self._keys(key.name), set_key]
        member = f"{self._instance}:{self._boot}.{next(self._ids)}"
        args: list[str | int] = [
            key.rpm or 0,
            key.tpm or 0,
            self._id(),
            "" if at_ms is None else at_ms,
            key.max_streams,
            member,
            self._ttl_ms,
        ]

        async def run(_redis: Redis) -> Any:
            return await self._admit(keys=keys, args=args)

        try:
            reply = await self._call(run, what="admit")
        except ClusterUnavailableError:
            return self._admit_locally(key)
        verdict = int(reply[0])
        if verdict == 1:
            raise rate_refusal(key, int(reply[1]) / 1000)
        if verdict == 2:
            raise token_refusal(key, int(reply[1]) / 1000)
        if verdict == 3:
            raise concurrency_refusal(key)
        self._held.setdefault(set_key, set()).add(member)
        return SharedLease(self, set_key, member)

    def _admit_locally(self, key: ApiKey) -> Releasable:
        """As the shared script does: a request refused either way is neither counted nor
        leased."""
        lease = self._acquire_alone(key)
        try:
            self._count_alone(key)
        except BaseException:
            lease.release()
            raise
        return lease

    # -- alone, and back -------------------------------------------------------------------

    def _of(self, name: str) -> _Alone:
        alone = self._alone.get(name)
        if alone is None:
            alone = self._alone[name] = _Alone()
        return alone

    def _count_alone(self, key: ApiKey) -> None:
        self.local.count(key)  # a refusal is not counted
        if key.rpm is not None:
            requests = self._of(key.name).requests
            now = self._clock.monotonic()
            while requests and requests[0][1] <= now - 60:
                del requests[0]  # out of the window already: nothing to push
            requests.append((self._id(), now))

    def _book_alone(self, key: ApiKey, tokens: int) -> None:
        self.local.book(key, tokens)
        self._of(key.name).tokens.append((self._id(), self._clock.monotonic(), tokens))

    def _acquire_alone(self, key: ApiKey) -> Releasable:
        lease = self.local.acquire(key)
        if key.max_streams is None:
            return lease
        offline = OfflineLease(self, key.name, lease)
        self._of(key.name).leases[offline] = f"{self._instance}:{self._boot}.{next(self._ids)}"
        return offline

    def _offline_released(self, name: str, lease: OfflineLease) -> None:
        alone = self._alone.get(name)
        if alone is not None:
            alone.leases.pop(lease, None)
        if lease.shared is not None:
            self._release(*lease.shared)

    async def sync(self) -> None:
        """Push to Redis what this replica admitted alone (see the module docstring): one
        call per key; what a failed call would have pushed waits for the next try."""
        if not self._alone:
            return
        now = self._clock.monotonic()
        for name in list(self._alone):
            alone = self._alone.get(name)
            if alone is None:
                continue
            requests = [(m, at) for m, at in alone.requests if at > now - 60]
            tokens = [(i, at, n) for i, at, n in alone.tokens if at > now - 60]
            leases = dict(alone.leases)
            set_key = self._space.key("limits", self._client(name), "streams")
            args: list[str | int] = [self._ttl_ms, len(requests)]
            for member, at in requests:
                args += [member, round((now - at) * 1000)]
            args.append(len(tokens))
            for booking, at, count in tokens:
                args += [booking, round((now - at) * 1000), count]
            args.append(len(leases))
            args += list(leases.values())
            keys = [*self._keys(name), set_key]

            async def run(_redis: Redis, keys: list[str] = keys, args: list[Any] = args) -> Any:
                return await self._sync(keys=keys, args=args)

            await self._call(run, what="push what was admitted alone")
            # Pushed: from here on these are shared (what came meanwhile waits its turn).
            pushed = {m for m, _ in requests} | {i for i, _, _ in tokens}
            alone.requests = [r for r in alone.requests if r[0] not in pushed and r[1] > now - 60]
            alone.tokens = [t for t in alone.tokens if t[0] not in pushed and t[1] > now - 60]
            for lease, member in leases.items():
                if alone.leases.pop(lease, None) is not None:
                    lease.shared = (set_key, member)
                    self._held.setdefault(set_key, set()).add(member)
                else:  # its stream ended meanwhile
                    self._release(set_key, member)
            if not alone and self._alone.get(name) is alone:
                del self._alone[name]

    async def prepare(self) -> None:
        """Load the scripts and open the connections the limits use, so that a first burst
        of requests finds them warm: a cold connection costs several ms, and a burst of
        them at once would miss the deadline. At startup and on every rejoin; then
        :meth:`sync`."""
        scripts = [self._count, self._book, self._acquire, self._admit, self._renew, self._sync]

        async def load(redis: Redis) -> None:
            for script in scripts:
                await redis.script_load(script.script)

        await self._call(load, what="load limit scripts")
        pool = self._link.redis.connection_pool
        held: list[Any] = []

        async def connect(_redis: Redis) -> None:
            held.append(await pool.get_connection())  # type: ignore[no-untyped-call]

        try:
            for _ in range(MAX_CALLS):  # one at a time, each within the deadline
                await self._link.call(connect, what="open a limits connection")
        finally:
            for connection in held:
                await pool.release(connection)
        await self.sync()

    async def renew(self) -> None:
        """Push every lease this replica holds a lease TTL ahead (one call; a beat hook),
        and what it admitted alone if any is left to push."""
        if self._alone:
            await self.sync()
        held = {set_key: list(members) for set_key, members in self._held.items() if members}
        if not held:
            return
        keys = list(held)
        args: list[str | int] = [self._ttl_ms]
        for set_key in keys:
            args.append(len(held[set_key]))
            args.extend(held[set_key])

        async def run(_redis: Redis) -> Any:
            return await self._renew(keys=keys, args=args)

        await self._call(run, what="renew leases")

    async def flush(self) -> None:
        """Until the releases and bookings sent so far have been answered (or failed)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def held(self) -> int:
        """How many shared leases this replica holds."""
        return sum(len(members) for members in self._held.values())

    # -- internals -------------------------------------------------------------------------

    def _client(self, name: str) -> str:
        hashed = self._names.get(name)
        if hashed is None:
            hashed = self._names[name] = self._space.client(name)
        return hashed

    def _keys(self, name: str) -> list[str]:
        client = self._client(name)
        space = self._space
        return [
            space.key("limits", client, "rpm"),
            space.key("limits", client, "tpm"),
            space.key("limits", client, "tpm", "sum"),
        ]

    def _id(self) -> str:
        return f"{self._boot}.{next(self._ids)}"

    def _release(self, set_key: str, member: str) -> None:
        members = self._held.get(set_key)
        if members is not None:
            members.discard(member)
            if not members:
                del self._held[set_key]
        if not self._link.up:
            return  # no longer renewed: it expires within the lease TTL

        async def run(redis: Redis) -> Any:
            return await redis.zrem(set_key, member)

        self._spawn(self._call(run, what="release"), "release")

    async def _call(self, work: Callable[[Redis], Awaitable[Any]], *, what: str) -> Any:
        async with self._calls:
            return await self._link.call(work, what=what)

    async def _book_shared(self, key: ApiKey, tokens: int, at_ms: int | None) -> None:
        keys = self._keys(key.name)
        args: list[str | int] = [tokens, self._id(), "" if at_ms is None else at_ms]

        async def run(_redis: Redis) -> Any:
            return await self._book(keys=keys, args=args)

        try:
            await self._call(run, what="book tokens")
        except ClusterUnavailableError:
            self._book_alone(key, tokens)  # counted here at least

    def _spawn(self, work: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(work, what))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _quietly(work: Any, what: str) -> None:
        try:
            await work
        except ClusterUnavailableError:
            pass  # a lease left to expire; a booking is booked locally by its caller
        except Exception:  # fire-and-forget: nobody else would hear of it
            log.exception("shared_limits_call_failed", what=what)

    async def aclose(self) -> None:
        """Let the releases and bookings under way finish."""
        with contextlib.suppress(Exception):
            await self.flush()

    def __repr__(self) -> str:
        return f"<SharedLimits {self.mode} held={self.held()}>"
