"""One replica's membership of the cluster: the Redis link, the heartbeat, the event channel.

:class:`Cluster` lives on the data-plane loop. Every ``heartbeat`` seconds it
stamps the registry with this replica's health report and runs the beat hooks
(leases are renewed there); while Redis is down it pings instead, and once Redis
answers it runs the rejoin hooks (circuits are reconciled, limits go back to
shared). One subscriber task reads the cluster's event channel and hands each
message to the handler of its kind; a broken subscription marks the link down
and is made again on rejoin, followed by the rejoin hooks, so no change is lost
for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis import exceptions as redis_errors

from runestone.cluster.link import Link, LinkState
from runestone.cluster.names import KeySpace
from runestone.cluster.registry import Member, Registry
from runestone.config import ClusterConfig
from runestone.exceptions import ClusterUnavailableError
from runestone.jsonio import dumps, loads

__all__ = ["Cluster", "default_instance"]

log = structlog.get_logger(__name__)

Hook = Callable[[], Awaitable[None]]
Handler = Callable[[dict[str, Any]], None]


def default_instance() -> str:
    """``host:pid``: unique per process on a host, readable in the registry."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Cluster:
    """See the module docstring. Build it, then ``await open()`` on the data-plane loop."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.instance = config.instance or default_instance()
        self.space = KeySpace(config.namespace, config.secret)
        self.link = Link(
            config.redis_url, deadline=config.deadline, name=f"runestone-{self.instance}"
        )
        self.registry = Registry(self.link, self.space, self.instance, heartbeat=config.heartbeat)
        self.channel = self.space.key("events")
        self._health = health
        self._beat_hooks: list[Hook] = []
        self._rejoin_hooks: list[Hook] = []
        self._handlers: dict[str, Handler] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._closed = False
        self.members: list[tuple[str, float]] = []
        """The live members and their heartbeat ages, as of this replica's last beat."""

    # -- wiring ------------------------------------------------------------------------------

    def on_beat(self, hook: Hook) -> None:
        """Await ``hook()`` after every heartbeat that reached Redis."""
        self._beat_hooks.append(hook)

    def on_rejoin(self, hook: Hook) -> None:
        """Await ``hook()`` each time Redis answers again after being down."""
        self._rejoin_hooks.append(hook)

    def handle(self, kind: str, handler: Handler) -> None:
        """Call ``handler(message)`` (on the loop) for each event of ``kind``."""
        self._handlers[kind] = handler

    def set_health(self, health: Callable[[], dict[str, Any]]) -> None:
        """What this replica reports of itself every heartbeat."""
        self._health = health

    async def publish(self, kind: str, message: dict[str, Any]) -> None:
        """Send an event to every replica (this one included)."""
        blob = dumps({"kind": kind, "from": self.instance, **message})

        async def run(redis: Any) -> Any:
            return await redis.publish(self.channel, blob)

        await self.link.call(run, what=f"publish {kind}")

    # -- life --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (or find Redis down: the replica then runs alone until it answers),
        subscribe, and start the heartbeat. Never raises for Redis being unreachable."""
        if await self.link.check():
            await self._subscribe_now()
            await self._beat_once()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._heartbeat(), name="cluster-heartbeat"))

    async def aclose(self) -> None:
        """Leave the registry (if Redis answers), stop the tasks, close the connections."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ClusterUnavailableError):
            await self.registry.leave()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a cancellation swallowed inside a Redis call (seen with redis-py
            # under asyncio.timeout) must not hold the replica's stop; _closed ends the loops.
            _, pending = await asyncio.wait(tasks, timeout=max(1.0, 2 * self.config.deadline))
            for task in pending:
                log.warning("cluster_task_did_not_stop", task=task.get_name())
        await self.link.aclose()

    async def wait_subscribed(self) -> None:
        """Until the event channel is subscribed (tests: a change published after this is heard)."""
        await self._subscribed.wait()

    # -- the view ----------------------------------------------------------------------------

    async def view(self) -> list[Member]:
        """Every live replica and its last health report; raises ClusterUnavailableError."""
        return await self.registry.members()

    def status(self) -> dict[str, Any]:
        """This replica's side of the cluster, as plain data for ``/health``."""
        return {
            "instance": self.instance,
            "namespace": self.space.namespace,
            "redis": self.link.state.value,
            "last_error": self.link.last_error,
            "limits": "shared" if self.link.up else "local",
            "circuits": "shared" if self.link.up else "local",
        }

    # -- internals ---------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        period = self.config.heartbeat
        while not self._closed:
            await asyncio.sleep(period)
            if self.link.state is LinkState.UP:
                await self._beat_once()
                continue
            if await self.link.check():
                await self._rejoin()

    async def _beat_once(self) -> None:
        report = self._health() if self._health is not None else {}
        try:
            self.members = await self.registry.beat(report)
        except ClusterUnavailableError:
            return
        for hook in list(self._beat_hooks):
            await self._run_hook(hook, "beat")

    async def _rejoin(self) -> None:
        try:
            await self._subscribe_now()
        except ClusterUnavailableError:
            return
        await self._beat_once()
        for hook in list(self._rejoin_hooks):
            await self._run_hook(hook, "rejoin")
        log.info("cluster_rejoined", instance=self.instance, members=len(self.members))

    async def _run_hook(self, hook: Hook, when: str) -> None:
        try:
            await hook()
        except ClusterUnavailableError:
            pass  # the link is down now; the next beat or rejoin tries again
        except Exception:  # one broken hook must not stop the heartbeat
            log.exception(
                "cluster_hook_failed", when=when, hook=getattr(hook, "__qualname__", hook)
            )

    async def _subscribe_now(self) -> None:
        """Subscribe (again) and start the reader; returns once the subscription holds."""
        for task in [t for t in self._tasks if t.get_name() == "cluster-events"]:
            task.cancel()
            self._tasks.remove(task)
        self._subscribed.clear()
        pubsub = self.link.redis.pubsub(ignore_subscribe_messages=True)

        async def run(_redis: Any) -> None:
            await pubsub.subscribe(self.channel)

        try:
            await self.link.call(run, what="subscribe")
        except ClusterUnavailableError:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._read(pubsub), name="cluster-events"))
        self._subscribed.set()

    async def _read(self, pubsub: Any) -> None:
        try:
            while not self._closed:
                message = await pubsub.get_message(timeout=None)
                if message is None or message.get("type") != "message":
                    continue
                self._dispatch(message["data"])
        except (redis_errors.RedisError, OSError) as exc:
            self._subscribed.clear()
            self.link.mark_down(f"event channel: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _dispatch(self, data: bytes | str) -> None:
        try:
            message = loads(data)
            handler = self._handlers.get(message.get("kind"))
        except (ValueError, AttributeError):
            log.warning("cluster_event_unreadable", data=str(data)[:200])
            return
        if handler is None:
            return
        try:
            handler(message)
        except Exception:  # a bad event must not end the subscription
            log.exception("cluster_event_failed", kind=message.get("kind"))

    def __repr__(self) -> str:
        return f"<Cluster {self.instance} {self.link.state.value}>"
