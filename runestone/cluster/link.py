"""The link to Redis: one client, a deadline on every call, and whether Redis is there.

::

    CONNECTING ──ping answered──▶ UP ◀──ping answered── DOWN
        │                          │                      ▲
        └──────no answer───────────┴──call failed/late────┘      (any) ──close──▶ CLOSED

While the link is not UP a call fails at once with
:class:`~runestone.exceptions.ClusterUnavailableError`, so a replica with Redis gone
pays nothing per request: it runs on local state. The heartbeat (:mod:`runestone.cluster.
cluster`) pings while DOWN and brings the link back UP when Redis answers; listeners
hear each change once (logged once, at WARNING).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from runestone.exceptions import ClusterUnavailableError

__all__ = ["Link", "LinkState"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class LinkState(enum.StrEnum):
    """Whether this replica can reach Redis."""

    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    CLOSED = "closed"


_NEXT: dict[LinkState, frozenset[LinkState]] = {
    LinkState.CONNECTING: frozenset({LinkState.UP, LinkState.DOWN, LinkState.CLOSED}),
    LinkState.UP: frozenset({LinkState.DOWN, LinkState.CLOSED}),
    LinkState.DOWN: frozenset({LinkState.UP, LinkState.CLOSED}),
    LinkState.CLOSED: frozenset(),
}

# What "Redis is not there" looks like from redis-py and the socket under it.
_UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError, TimeoutError)


class Link:
    """One replica's connection to Redis (see the module docstring). Used on one loop only."""

    def __init__(self, url: str, *, deadline: float, name: str = "runestone") -> None:
        self.deadline = deadline
        self.url = url
        self.redis: Redis = Redis.from_url(
            url,
            socket_timeout=deadline,
            socket_connect_timeout=deadline,
            retry_on_timeout=False,
            health_check_interval=0,
            client_name=name,
        )
        self._state = LinkState.CONNECTING
        self._listeners: list[Callable[[LinkState], None]] = []
        self.last_error: str | None = None

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def up(self) -> bool:
        """Calls are made (rather than refused at once)."""
        return self._state is LinkState.UP

    def on_change(self, listener: Callable[[LinkState], None]) -> None:
        """Call ``listener`` with the new state after every change."""
        self._listeners.append(listener)

    async def call(self, work: Callable[[Redis], Awaitable[T]], *, what: str) -> T:
        """``work(redis)`` within the deadline; any failure is a ClusterUnavailableError.

        Unreachable or late, the link goes DOWN (told once); a refusal by Redis
        itself (a script error) is raised without changing the link's state.
        """
        if self._state is not LinkState.UP:
            raise ClusterUnavailableError(f"{what}: Redis is {self._state.value}")
        try:
            async with asyncio.timeout(self.deadline):
                return await work(self.redis)
        except redis_errors.MaxConnectionsError as exc:
            # Our own pool is full (a burst), not Redis gone: this call decides locally.
            raise ClusterUnavailableError(f"{what}: every Redis connection is busy") from exc
        except _UNREACHABLE as exc:
            self._set(LinkState.DOWN, f"{what}: {type(exc).__name__}: {exc}"[:300])
            raise ClusterUnavailableError(f"{what}: Redis did not answer in time") from exc
        except redis_errors.RedisError as exc:
            log.error("cluster_call_refused", what=what, error=str(exc)[:300])
            raise ClusterUnavailableError(f"{what}: Redis refused it: {exc}") from exc

    async def check(self) -> bool:
        """Ping within the deadline; the link's state follows the answer. True when UP."""
        if self._state is LinkState.CLOSED:
            return False
        try:
            async with asyncio.timeout(self.deadline):
                if self._state is LinkState.DOWN:
                    # Connections from before the outage are dead even if Redis is back.
                    await self.redis.connection_pool.disconnect()
                await self.redis.ping()
        except (*_UNREACHABLE, redis_errors.RedisError) as exc:
            self._set(LinkState.DOWN, f"ping: {type(exc).__name__}: {exc}"[:300])
            return False
        self._set(LinkState.UP, None)
        return True

    def mark_down(self, why: str) -> None:
        """Something else (the subscriber) found Redis gone."""
        if self._state is LinkState.UP:
            self._set(LinkState.DOWN, why[:300])

    async def aclose(self) -> None:
        self._set(LinkState.CLOSED, None)
        await self.redis.aclose()

    def _set(self, state: LinkState, error: str | None) -> None:
        old = self._state
        if old is state:
            return
        if state not in _NEXT[old]:
            raise RuntimeError(f"the Redis link cannot go from {old.value} to {state.value}")
        self._state = state
        if error is not None:
            self.last_error = error
        if state is LinkState.DOWN:
            log.warning("cluster_redis_down", was=old.value, error=error, fallback="local state")
        elif state is LinkState.UP and old is LinkState.DOWN:
            log.warning("cluster_redis_back", rejoining=True)
        elif state is LinkState.UP:
            log.info("cluster_redis_up")
        for listener in list(self._listeners):
            listener(state)

    def __repr__(self) -> str:
        return f"<Link {self._state.value}>"


def as_text(value: Any) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
