"""Shared circuits: opening, half-open probes and closing decided atomically in Redis.

Each provider's circuit has one record in Redis (a hash), its half-open probes a
sorted set (member: probe id, score: when its slot is freed if never settled).
One Lua script makes every decision, on Redis's own clock, so:

* a failure reported by any replica counts toward the shared run of consecutive
  failures, and an opening decided on one replica's evidence holds for all;
* while half-open, at most ``half_open_probes`` probes run across all replicas;
* the circuit closes once ``half_open_successes`` of them succeeded, wherever;
* while open, one replica's out-of-band probe (or panic request) runs per probe
  interval, not one per replica;
* a 429's cooling (``Retry-After``) met by one replica is published to the others,
  which hold the provider back as long (pub/sub only: nothing to decide).

Every change is published on the cluster's event channel by the same script that
made it. Replicas hear it and their provider actors adopt it
(:meth:`~runestone.resilience.CircuitBreaker.adopt`), which sets the loop-local
permit gate: while nothing changes, no request makes a Redis round trip. Outcomes
are reported from the provider actor, off the request path; a success is only
reported when there is a run of failures to end.

Redis down or slow: every operation fails at once (or after the link's deadline)
with :class:`~runestone.exceptions.ClusterUnavailableError` and the actor decides
alone with its local breaker, as a single process does. On rejoin every actor
reads the shared record again; one that opened alone while cut off pushes its
opening (its evidence still counts).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog

from runestone.cluster.link import as_text
from runestone.resilience import CircuitBreakerPolicy, CircuitState

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from runestone.cluster.cluster import Cluster
    from runestone.io import DataPlane

__all__ = ["SharedCircuit", "SharedCircuits", "SharedState"]

log = structlog.get_logger(__name__)

CLAIM_SHARE: Final = 0.9
"""The share of a probe interval for which a replica's claim to probe holds."""
KEY_TTL_MS: Final = 86_400_000
"""A circuit nobody has touched for a day is forgotten (closed)."""

# KEYS: 1 the circuit hash, 2 its probes (sorted set).
# ARGV: 1 op, 2 now in ms ('' = Redis TIME), 3 the caller's shared epoch (probe_passed),
#   4 op argument (acquire: '1' panic; settle: success|failure|release; open: reason;
#   recovery_probe: the caller's probe interval ms),
#   5 probe id, 6 instance, 7 provider, 8 channel, 9 consecutive_failures,
#   10 half_open_probes, 11 half_open_successes, 12 recovery ms, 13 recovery cap ms,
#   14 recovery multiplier, 15 jitter spread, 16 probe timeout ms ('' none),
#   17 probe interval ms ('' none), 18 key ttl ms.
# Returns: state, epoch, open_in ms (-1 unless open), consecutive, granted, changed,
#   reason, by.
_SCRIPT: Final = """
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local h = KEYS[1]
local r = redis.call('HMGET', h, 'state', 'epoch', 'consecutive', 'open_until',
                     'next_recovery', 'successes', 'reason', 'by', 'probe_lock')
local state = r[1] or 'closed'
local epoch = tonumber(r[2] or '0')
local consecutive = tonumber(r[3] or '0')
local open_until = tonumber(r[4] or '0')
local next_recovery = tonumber(r[5] or ARGV[12])
local successes = tonumber(r[6] or '0')
local reason = r[7] or ''
local by = r[8] or ''
-- Until when no replica may probe the open circuit (out of band, or a panic request).
local probe_lock = tonumber(r[9] or '0')
local op = ARGV[1]
local known = -1
if ARGV[3] ~= '' then known = tonumber(ARGV[3]) end
local instance = ARGV[6]
local changed = 0
local dirty = false
local granted = 0

local function enter(new_state, why)
  state = new_state
  epoch = epoch + 1
  consecutive = 0
  successes = 0
  reason = why
  by = instance
  changed = 1
  dirty = true
  redis.call('DEL', KEYS[2])
end
local function open(why)
  local cap = tonumber(ARGV[13])
  local length = math.min(math.floor(next_recovery * tonumber(ARGV[15])), cap)
  next_recovery = math.min(next_recovery * tonumber(ARGV[14]), cap)
  open_until = now + length
  enter('open', why)
end

if op == 'fail' then
  if state == 'closed' then
    consecutive = consecutive + 1
    dirty = true
    if consecutive >= tonumber(ARGV[9]) then open('consecutive_failures') end
  end
elseif op == 'succeed' then
  if state == 'closed' and consecutive > 0 then
    consecutive = 0
    dirty = true
  end
elseif op == 'open' then
  if state == 'closed' then open(ARGV[4]) end
elseif op == 'probe_passed' then
  if state == 'open' and epoch == known then enter('half_open', 'health_probe_passed') end
elseif op == 'acquire' then
  if state == 'open' then
    if now >= open_until then
      enter('half_open', 'recovery_due')
    elseif ARGV[4] == '1' and ARGV[17] ~= '' and now >= probe_lock then
      probe_lock = now + tonumber(ARGV[17])
      enter('half_open', 'panic_probe')
    end
  end
  if state == 'closed' then
    granted = 1
  elseif state == 'half_open' then
    local expiry = 9007199254740991
    if ARGV[16] ~= '' then
      redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
      expiry = now + tonumber(ARGV[16])
    end
    if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[10]) then
      redis.call('ZADD', KEYS[2], expiry, ARGV[5])
      redis.call('PEXPIRE', KEYS[2], ARGV[18])
      granted = 1
    end
  end
elseif op == 'recovery_probe' then
  -- One out-of-band probe of an open circuit per probe interval, across all replicas.
  if state == 'open' and now >= probe_lock then
    probe_lock = now + tonumber(ARGV[4])
    dirty = true
    granted = 1
  end
elseif op == 'settle' then
  -- A probe id is only in the set during the half-open period that granted it.
  if state == 'half_open' and redis.call('ZREM', KEYS[2], ARGV[5]) == 1 then
    if ARGV[4] == 'success' then
      successes = successes + 1
      dirty = true
      if successes >= tonumber(ARGV[11]) then
        next_recovery = tonumber(ARGV[12])
        enter('closed', 'probes_succeeded')
      end
    elseif ARGV[4] == 'failure' then
      open('probe_failed')
    end
  end
end

if dirty then
  redis.call('HSET', h, 'state', state, 'epoch', epoch, 'consecutive', consecutive,
             'open_until', open_until, 'next_recovery', next_recovery,
             'successes', successes, 'reason', reason, 'by', by, 'probe_lock', probe_lock)
  redis.call('PEXPIRE', h, ARGV[18])
end
local open_in = -1
if state == 'open' then open_in = math.max(0, open_until - now) end
if changed == 1 then
  redis.call('PUBLISH', ARGV[8], cjson.encode({kind = 'circuit', provider = ARGV[7],
    state = state, epoch = epoch, open_in = open_in, reason = reason, from = instance}))
end
return {state, epoch, open_in, consecutive, granted, changed, reason, by}
"""


@dataclass(frozen=True, slots=True)
class SharedState:
    """A provider's shared circuit as Redis answered (or published) it."""

    state: CircuitState
    epoch: int
    open_in: float | None
    """Seconds the opening still lasts (only while open)."""
    consecutive: int = 0
    granted: bool = False
    changed: bool = False
    reason: str = ""
    by: str = ""
    """The replica whose report made the last change."""

    @classmethod
    def from_reply(cls, reply: list[Any]) -> SharedState:
        open_in = int(reply[2])
        return cls(
            state=CircuitState(as_text(reply[0])),
            epoch=int(reply[1]),
            open_in=None if open_in < 0 else open_in / 1000,
            consecutive=int(reply[3]),
            granted=bool(int(reply[4])),
            changed=bool(int(reply[5])),
            reason=as_text(reply[6]),
            by=as_text(reply[7]),
        )

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> SharedState:
        open_in = float(event.get("open_in", -1))
        return cls(
            state=CircuitState(event["state"]),
            epoch=int(event["epoch"]),
            open_in=None if open_in < 0 else open_in / 1000,
            changed=True,
            reason=str(event.get("reason", "")),
            by=str(event.get("from", "")),
        )


Listener = Callable[[SharedState | None], None]
CoolingListener = Callable[[float], None]
"""Told the seconds another replica's 429 cools the provider for (its rate limit is the
account's, the same for every replica)."""
"""Told every change heard for its provider; ``None``: read the record again (a rejoin)."""


class SharedCircuits:
    """Every shared circuit of one replica: the script, and who listens for which provider."""

    def __init__(self, cluster: Cluster, data_plane: DataPlane) -> None:
        self._cluster = cluster
        self._data_plane = data_plane
        self._script = cluster.link.redis.register_script(_SCRIPT)
        self._listeners: dict[str, Listener] = {}
        self._cooling_listeners: dict[str, CoolingListener] = {}
        self._ids = itertools.count(1)
        cluster.handle("circuit", self._heard)
        cluster.handle("cooling", self._heard_cooling)
        cluster.on_rejoin(self._rejoined)

    @property
    def up(self) -> bool:
        return self._cluster.link.up

    @property
    def instance(self) -> str:
        return self._cluster.instance

    def circuit(
        self, provider: str, policy: CircuitBreakerPolicy, *, rng: random.Random | None = None
    ) -> SharedCircuit:
        """The shared circuit of ``provider``, for its actor."""
        return SharedCircuit(self, provider, policy, rng or random.Random())

    def listen(
        self, provider: str, listener: Listener, cooling: CoolingListener | None = None
    ) -> None:
        """Tell ``listener`` (on the loop) of each change to ``provider``'s circuit, and
        ``cooling`` of each 429 cooling another replica met."""
        self._listeners[provider] = listener
        if cooling is not None:
            self._cooling_listeners[provider] = cooling

    def unlisten(self, provider: str, listener: Listener) -> None:
        if self._listeners.get(provider) == listener:  # bound methods: equal, never identical
            del self._listeners[provider]
            self._cooling_listeners.pop(provider, None)

    def probe_id(self) -> str:
        return f"{self.instance}:{next(self._ids)}"

    def submit(
        self, work: Coroutine[Any, Any, SharedState]
    ) -> concurrent.futures.Future[SharedState]:
        return self._data_plane.submit(work)

    async def run(
        self,
        provider: str,
        policy: CircuitBreakerPolicy,
        op: str,
        *,
        epoch: int | None,
        arg: str = "",
        probe_id: str = "",
        spread: float = 1.0,
        now_ms: int | None = None,
    ) -> SharedState:
        """One decision by the script; raises ClusterUnavailableError."""
        space = self._cluster.space
        keys = [space.key("circuit", provider), space.key("circuit", provider, "probes")]
        args: list[str | int | float] = [
            op,
            "" if now_ms is None else str(now_ms),
            "" if epoch is None else str(epoch),
            arg,
            probe_id,
            self.instance,
            provider,
            self._cluster.channel,
            policy.consecutive_failures,
            policy.half_open_probes,
            policy.half_open_successes,
            _ms(policy.recovery),
            _ms(policy.recovery_cap),
            policy.recovery_multiplier,
            spread,
            "" if policy.probe_timeout is None else _ms(policy.probe_timeout),
            "" if policy.probe_interval is None else _ms(policy.probe_interval),
            KEY_TTL_MS,
        ]

        async def call(_redis: Redis) -> Any:
            return await self._script(keys=keys, args=args)

        reply = await self._cluster.link.call(call, what=f"circuit {op} {provider}")
        return SharedState.from_reply(reply)

    def _heard(self, event: dict[str, Any]) -> None:
        listener = self._listeners.get(str(event.get("provider")))
        if listener is not None and event.get("from") != self.instance:
            listener(SharedState.from_event(event))

    def _heard_cooling(self, event: dict[str, Any]) -> None:
        listener = self._cooling_listeners.get(str(event.get("provider")))
        if listener is not None and event.get("from") != self.instance:
            listener(float(event.get("seconds", 0)))

    def cooled(self, provider: str, seconds: float) -> None:
        """Tell the other replicas ``provider`` is cooling for ``seconds`` (no reply: a
        cooling that does not reach them costs each one 429 of its own)."""
        if not self.up:
            return
        work = self._cluster.publish("cooling", {"provider": provider, "seconds": seconds})
        try:
            future = self._data_plane.submit(work)
        except RuntimeError:  # the data plane is stopping
            return
        future.add_done_callback(_quietly)

    async def _rejoined(self) -> None:
        for listener in list(self._listeners.values()):
            listener(None)


def _quietly(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("cluster_cooling_not_published", error=repr(future.exception()))


def _ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))


class SharedCircuit:
    """One provider's shared circuit, for its actor: every call returns a future (the
    actor never waits on the loop); a failed future carries ClusterUnavailableError."""

    def __init__(
        self,
        circuits: SharedCircuits,
        provider: str,
        policy: CircuitBreakerPolicy,
        rng: random.Random,
    ) -> None:
        self._circuits = circuits
        self.provider = provider
        self.policy = policy
        self._rng = rng

    @property
    def up(self) -> bool:
        """Redis is reachable: decisions are shared (else the actor decides alone)."""
        return self._circuits.up

    def listen(self, listener: Listener, cooling: CoolingListener | None = None) -> None:
        self._circuits.listen(self.provider, listener, cooling)

    def unlisten(self, listener: Listener) -> None:
        self._circuits.unlisten(self.provider, listener)

    def _run(
        self, op: str, epoch: int | None, **extra: Any
    ) -> concurrent.futures.Future[SharedState]:
        return self._circuits.submit(
            self._circuits.run(self.provider, self.policy, op, epoch=epoch, **extra)
        )

    def _spread(self) -> float:
        jitter = self.policy.jitter
        return self._rng.uniform(1.0 - jitter, 1.0 + jitter) if jitter else 1.0

    def read(self) -> concurrent.futures.Future[SharedState]:
        return self._run("read", None)

    def fail(self) -> concurrent.futures.Future[SharedState]:
        """A failure that counts against the circuit, seen while closed (a current permit)."""
        return self._run("fail", None, spread=self._spread())

    def succeed(self) -> concurrent.futures.Future[SharedState]:
        """A success while closed: ends the shared run of failures."""
        return self._run("succeed", None)

    def opened(self, reason: str) -> concurrent.futures.Future[SharedState]:
        """This replica's own evidence opened its circuit: open for all (if still closed)."""
        return self._run("open", None, arg=reason, spread=self._spread())

    def probe_passed(self, epoch: int) -> concurrent.futures.Future[SharedState]:
        """An out-of-band probe passed while open at ``epoch``: half-open for all."""
        return self._run("probe_passed", epoch)

    def cooled(self, seconds: float) -> None:
        """This replica met a 429: the others cool the provider for ``seconds`` too."""
        self._circuits.cooled(self.provider, seconds)

    def claim_recovery_probe(self, interval: float) -> concurrent.futures.Future[SharedState]:
        """Ask to run the open circuit's out-of-band probe (``granted``): one replica's in
        each ``interval`` (seconds), whichever asks first.

        The claim holds for nine tenths of ``interval``: the holder's own next probe,
        due an interval on by its timer, is not refused for firing a little early."""
        return self._run("recovery_probe", None, arg=str(_ms(interval * CLAIM_SHARE)))

    def acquire(self, *, panic: bool) -> tuple[str, concurrent.futures.Future[SharedState]]:
        """Ask for a call while not closed: the probe id, and the answer (``granted``)."""
        probe_id = self._circuits.probe_id()
        future = self._run("acquire", None, arg="1" if panic else "", probe_id=probe_id)
        return probe_id, future

    def settle(self, probe_id: str, outcome: str) -> concurrent.futures.Future[SharedState]:
        """Settle a shared probe: ``success``, ``failure`` or ``release``."""
        return self._run("settle", None, arg=outcome, probe_id=probe_id, spread=self._spread())
