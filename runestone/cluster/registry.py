"""The instance registry: who is in the cluster, and what each one last said of its health.

Every heartbeat a replica stamps itself into one sorted set (score: Redis's own
clock, in ms) and stores its health report under a key that expires after three
heartbeats. A replica that stops heartbeating — crashed, cut off, paused — leaves
the view within three heartbeats: readers drop members older than that, and the
beat prunes them from the set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from runestone.cluster.link import Link, as_text
from runestone.cluster.names import KeySpace
from runestone.jsonio import dumps, loads

__all__ = ["Member", "Registry"]

# The members read into `members` (with scores), returned with their ages (ms).
_AGES = """
local out = {}
for i = 1, #members, 2 do
  out[#out + 1] = members[i]
  out[#out + 1] = now - tonumber(members[i + 1])
end
return out
"""

# KEYS: instances set, this instance's health key. ARGV: instance, health JSON, ttl ms.
# Returns the live members and their age (ms) as a flat list.
_BEAT = (
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
"""
    + _AGES
)

# KEYS: instances set. ARGV: ttl ms. Returns live members and ages, as _BEAT.
_VIEW = (
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
"""
    + _AGES
)


@dataclass(frozen=True, slots=True)
class Member:
    """One live replica: its name, how long since its last heartbeat, its last health report."""

    instance: str
    age: float
    health: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "heartbeat_ago": round(self.age, 3),
            **(self.health or {}),
        }


class Registry:
    """This replica's entry in the registry, and the view of all of them."""

    def __init__(self, link: Link, space: KeySpace, instance: str, *, heartbeat: float) -> None:
        self._link = link
        self._space = space
        self.instance = instance
        self.heartbeat = heartbeat
        self._members_key = space.key("instances")
        self._beat = link.redis.register_script(_BEAT)
        self._view = link.redis.register_script(_VIEW)

    @property
    def ttl_ms(self) -> int:
        """Three heartbeats: how long a silent replica stays in the view."""
        return max(1, round(3 * self.heartbeat * 1000))

    def _health_key(self, instance: str) -> str:
        return self._space.key("health", instance)

    async def beat(self, health: dict[str, Any]) -> list[tuple[str, float]]:
        """Stamp this replica and store ``health``; returns the live members and ages (s)."""
        blob = dumps(health)
        keys = [self._members_key, self._health_key(self.instance)]

        async def run(_redis: Redis) -> Any:
            return await self._beat(keys=keys, args=[self.instance, blob, self.ttl_ms])

        return _pairs(await self._link.call(run, what="heartbeat"))

    async def members(self) -> list[Member]:
        """Every live replica, with its last health report (None if it has expired)."""

        async def run(redis: Redis) -> tuple[Any, list[Any]]:
            live = _pairs(await self._view(keys=[self._members_key], args=[self.ttl_ms]))
            if not live:
                return live, []
            blobs = await redis.mget([self._health_key(name) for name, _ in live])
            return live, blobs

        live, blobs = await self._link.call(run, what="registry view")
        return [
            Member(name, age, None if blob is None else loads(blob))
            for (name, age), blob in zip(live, blobs, strict=True)
        ]

    async def leave(self) -> None:
        """Take this replica out of the view at once (a clean stop)."""

        async def run(redis: Redis) -> Any:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._members_key, self.instance)
                pipe.delete(self._health_key(self.instance))
                return await pipe.execute()

        await self._link.call(run, what="leave")


def _pairs(flat: list[Any]) -> list[tuple[str, float]]:
    return [(as_text(flat[i]), float(flat[i + 1]) / 1000) for i in range(0, len(flat), 2)]
