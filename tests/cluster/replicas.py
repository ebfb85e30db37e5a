"""Test harness: N ``runestone serve`` replicas on one Redis, in front of fake upstreams.

>>> with Replicas(tmp_path, redis_server) as replicas:      # doctest: +SKIP
...     async with client() as http:
...         answer = await ask(http, replicas.url(1), stream=True)
...     assert answer.ok

Every replica is a real process (:class:`~tests.server.serving.RunningServer`) with
``cluster: {redis_url, instance: r<i>, heartbeat, deadline}`` (0.2 s and 0.1 s by
default) and the same providers: ``up``, an ``openai_compatible`` provider on an
unpaced :class:`~runestone.testing.upstream.FakeUpstream` (model :data:`FAST`), and
``paced`` on a second one whose tokens come every ``token_interval`` (model
:data:`SLOW`: 41 tokens, about 0.8 s at the default 20 ms), so a stream can be
caught in flight. Requests carry :data:`LOAD_KEY`, a client key with generous ``rpm``
and ``max_streams`` limits: where the limits are shared through Redis, every request
pays its round trips.

The replicas start (and stop) concurrently; the context manager always stops all of
them, and the upstreams, whatever happened. :meth:`Replicas.registry` reads the
instance registry straight from Redis with redis-py, as :mod:`runestone.cluster.
registry` defines it (``{namespace}:instances``, scores in Redis's own ms clock, a
member live while its last heartbeat is at most three heartbeats old).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import redis

from runestone import jsonio
from runestone.testing.redis_server import RedisServer
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.server.serving import RunningServer

__all__ = [
    "FAST",
    "LOAD_KEY",
    "SLOW",
    "Answer",
    "Load",
    "Replicas",
    "ask",
    "client",
    "replica_config",
    "wait_until",
]

FAST = "healthy"
"""The unpaced upstream's model: the known text at once."""
SLOW = "slowly"
"""The paced upstream's model: the known text a token every ``token_interval``."""
LOAD_KEY = "sk-rs-replicas-load-0001"
SECRET = "replicas-test-secret"
USER = [{"role": "user", "content": "Tell me the known text."}]

T = TypeVar("T")

_TIMEOUTS = {"connect": 2, "first_token": 10, "idle": 10, "total": 30}
# Nothing here fails upstream on purpose; a breaker opening would hide what a test checks.
_LENIENT = {"consecutive_failures": 1000, "min_calls": 1000, "failure_rate": 1.0}


def _provider(base_url: str, model: str) -> dict[str, Any]:
    return {
        "type": "openai_compatible",
        "base_url": base_url,
        "timeouts": _TIMEOUTS,
        "circuit_breaker": _LENIENT,
        "models": {model: {}},
    }


def replica_config(
    *,
    fast_url: str,
    paced_url: str,
    redis_url: str | None,
    instance: str,
    heartbeat: float = 0.2,
    deadline: float = 0.1,
    namespace: str = "runestone",
) -> dict[str, Any]:
    """One replica's config; ``redis_url=None`` is the same gateway without a cluster."""
    config: dict[str, Any] = {
        "providers": {"up": _provider(fast_url, FAST), "paced": _provider(paced_url, SLOW)},
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": 2},
        "auth": {
            "keys": [{"key": LOAD_KEY, "name": "load", "rpm": 1_000_000, "max_streams": 10_000}]
        },
        "logging": {"level": "WARNING"},
    }
    if redis_url is not None:
        config["cluster"] = {
            "redis_url": redis_url,
            "namespace": namespace,
            "instance": instance,
            "secret": SECRET,
            "heartbeat": heartbeat,
            "deadline": deadline,
        }
    return config


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, every: float = 0.01, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy (returned), or TimeoutError.

    For conditions nothing announces (a registry entry ageing out, a log line): a
    probe every ``every`` seconds within a deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {timeout} s: {what or probe}")
        time.sleep(every)


class Replicas:
    """``count`` replicas ``r0``… of one gateway (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        redis_server: RedisServer,
        *,
        count: int = 3,
        heartbeat: float = 0.2,
        deadline: float = 0.1,
        token_interval: float = 0.02,
        namespace: str = "runestone",
        customise: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.directory = directory
        self._customise = customise
        self.redis_server = redis_server
        self.count = count
        self.heartbeat = heartbeat
        self.deadline = deadline
        self.token_interval = token_interval
        self.namespace = namespace
        self.instances = [f"r{i}" for i in range(count)]
        self.fast = FakeUpstream()
        self.paced = FakeUpstream(token_interval=token_interval)
        self.servers: list[RunningServer] = []
        self._redis: redis.Redis | None = None

    # -- life --------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the upstreams and every replica, the replicas concurrently."""
        try:
            self.fast.start()
            self.paced.start()
            started: list[RunningServer | BaseException] = []
            with ThreadPoolExecutor(self.count, thread_name_prefix="replicas-start") as pool:
                futures = [pool.submit(self._start_one, i) for i in range(self.count)]
                for future in futures:
                    error = future.exception()
                    started.append(future.result() if error is None else error)
            self.servers = [s for s in started if isinstance(s, RunningServer)]
            for outcome in started:
                if isinstance(outcome, BaseException):
                    raise outcome
        except BaseException:
            self.stop()
            raise
        return self

    def _start_one(self, i: int) -> RunningServer:
        return RunningServer(self.config(i), self.directory, name=self.instances[i])

    def config(self, i: int) -> dict[str, Any]:
        config = self._base_config(i)
        if self._customise is not None:
            self._customise(i, config)
        return config

    def _base_config(self, i: int) -> dict[str, Any]:
        return replica_config(
            fast_url=self.fast.openai_base_url,
            paced_url=self.paced.openai_base_url,
            redis_url=self.redis_server.url,
            instance=self.instances[i],
            heartbeat=self.heartbeat,
            deadline=self.deadline,
            namespace=self.namespace,
        )

    def stop(self) -> None:
        """Stop every replica (concurrently), then the upstreams; never raises for one."""
        servers, self.servers = self.servers, []
        try:
            if servers:
                with ThreadPoolExecutor(len(servers), thread_name_prefix="replicas-stop") as pool:
                    for future in [pool.submit(server.stop) for server in servers]:
                        future.exception()
        finally:
            if self._redis is not None:
                self._redis.close()
                self._redis = None
            self.paced.stop()
            self.fast.stop()

    def kill(self, i: int) -> float:
        """SIGKILL replica ``i`` and wait for it; when it was killed (``time.monotonic``)."""
        server = self.servers[i]
        server.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        server.wait()
        return killed_at

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what to call ------------------------------------------------------------------------

    def url(self, i: int) -> str:
        """Replica ``i``'s root URL (``http://127.0.0.1:PORT``)."""
        return self.servers[i].url

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    # -- what to look at ---------------------------------------------------------------------

    @property
    def redis(self) -> redis.Redis:
        """A redis-py client on the cluster's Redis (short timeouts: Redis may be down)."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.redis_server.url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
        return self._redis

    def registry(self) -> dict[str, float]:
        """The live members and their heartbeat ages (s), read from Redis directly.

        As the registry's own view: ``{namespace}:instances`` scored in Redis's clock
        (ms), a member live while ``now - score <= 3 * heartbeat``.
        """
        pipe = self.redis.pipeline(transaction=True)
        pipe.time()
        pipe.zrange(f"{self.namespace}:instances", 0, -1, withscores=True)
        (seconds, micros), members = pipe.execute()
        now_ms = seconds * 1000 + micros // 1000
        ttl_ms = max(1, round(3 * self.heartbeat * 1000))
        ages = {name.decode(): (now_ms - score) / 1000 for name, score in members}
        return {name: age for name, age in ages.items() if age * 1000 <= ttl_ms}

    def wait_registry(
        self, predicate: Callable[[set[str]], bool], *, timeout: float
    ) -> tuple[set[str], float]:
        """Until ``predicate(live names)``; those names and when they were read
        (``time.monotonic()``, just after the read)."""

        def probe() -> tuple[set[str]] | None:
            with contextlib.suppress(redis.RedisError):
                live = set(self.registry())
                if predicate(live):
                    return (live,)
            return None

        (live,) = wait_until(probe, timeout=timeout, what="the registry view")
        return live, time.monotonic()

    def log_marks(self) -> list[int]:
        """How much each replica has logged so far: ``since`` for :meth:`wait_logs`."""
        return [len(server.full_log()) for server in self.servers]

    def wait_log(self, i: int, pattern: str, *, timeout: float, since: int = 0) -> str:
        """Until replica ``i``'s log (stderr) from offset ``since`` on has a line matching
        ``pattern``; that line."""
        regex = re.compile(pattern)

        def probe() -> str | None:
            for line in self.servers[i].full_log()[since:].splitlines():
                if regex.search(line):
                    return line
            return None

        return wait_until(probe, timeout=timeout, every=0.02, what=f"r{i} logging {pattern!r}")

    def wait_logs(self, pattern: str, *, timeout: float, since: Sequence[int] = ()) -> None:
        """:meth:`wait_log` for every replica, each from its mark in ``since`` (if given)."""
        for i in range(len(self.servers)):
            self.wait_log(i, pattern, timeout=timeout, since=since[i] if since else 0)


# --------------------------------------------------------------------------- requests


@dataclass
class Answer:
    """One chat request as the client saw it."""

    status: int | None
    """The HTTP status, or None when no response came."""
    text: str
    """The answer's text (a stream's deltas joined)."""
    finished: bool
    """A finish reason arrived (and, for a stream, ``data: [DONE]``)."""
    error: str | None
    """What broke the exchange (a connection reset, a cut body …), or None."""
    seconds: float

    @property
    def ok(self) -> bool:
        """A clean, complete and correct answer."""
        return (
            self.status == 200 and self.finished and self.error is None and self.text == KNOWN_TEXT
        )


def client(limit: int = 0, total: float = 30.0) -> aiohttp.ClientSession:
    """An aiohttp session for :func:`ask` (no connection cap unless given one)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=total),
    )


async def ask(
    http: aiohttp.ClientSession,
    url: str,
    *,
    model: str = FAST,
    stream: bool = False,
    key: str = LOAD_KEY,
    started: Callable[[], None] | None = None,
) -> Answer:
    """``POST url/v1/chat/completions``; the answer, never an exception for a broken one.

    ``started`` is called once, when a stream's first text arrives.
    """
    body = {"model": model, "messages": USER, "stream": stream}
    headers = {"authorization": f"Bearer {key}"}
    begun = time.perf_counter()
    status: int | None = None
    text: list[str] = []
    finished = False
    try:
        async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as response:
            status = response.status
            if not stream:
                payload = await response.json(loads=jsonio.loads)
                if status == 200:
                    choice = payload["choices"][0]
                    text.append(choice["message"]["content"] or "")
                    finished = choice.get("finish_reason") is not None
                    return Answer(status, "".join(text), finished, None, _since(begun))
                return Answer(status, "", False, str(payload)[:300], _since(begun))
            reason = None
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line.removeprefix(b"data: ")
                if data == b"[DONE]":
                    finished = reason is not None
                    break
                chunk = jsonio.loads(data)
                if "error" in chunk:
                    return Answer(status, "".join(text), False, str(chunk)[:300], _since(begun))
                for choice in chunk.get("choices", ()):
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if not text and started is not None:
                            started()
                        text.append(content)
                    reason = choice.get("finish_reason") or reason
            error = None if finished else "the stream ended without a finish and [DONE]"
            return Answer(status, "".join(text), finished, error, _since(begun))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Answer(status, "".join(text), False, f"{type(exc).__name__}: {exc}", _since(begun))


def _since(begun: float) -> float:
    return time.perf_counter() - begun


class Load:
    """``clients`` concurrent clients on each of ``urls``, asking until the block ends.

    Every other request of a client is streamed. Each answer is kept with the
    :attr:`phase` it began in (the test names the phases: "before", "redis down" …).

    >>> async with Load(http, replicas.urls) as load:          # doctest: +SKIP
    ...     await load.more(50)          # 50 more answers, whatever their phase
    ...     load.phase = "redis down"
    """

    def __init__(
        self, http: aiohttp.ClientSession, urls: Sequence[str], *, clients: int = 4
    ) -> None:
        self._http = http
        self._urls = list(urls)
        self._clients = clients
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.phase = "start"
        self.answers: list[tuple[str, Answer]] = []

    async def _client(self, url: str, n: int) -> None:
        stream = bool(n % 2)
        while not self._stopping:
            phase = self.phase
            answer = await ask(self._http, url, stream=stream)
            stream = not stream
            self.answers.append((phase, answer))
            for waiter in [w for w in self._waiters if len(self.answers) >= w[0]]:
                self._waiters.remove(waiter)
                if not waiter[1].done():
                    waiter[1].set_result(None)

    async def more(self, n: int, *, timeout: float = 20.0) -> None:
        """Until ``n`` more answers have come back (of any kind)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((len(self.answers) + n, future))
        await asyncio.wait_for(future, timeout)

    def of(self, phase: str) -> list[Answer]:
        """The answers to the requests that began in ``phase``."""
        return [answer for began, answer in self.answers if began == phase]

    @property
    def failed(self) -> list[tuple[str, Answer]]:
        return [(phase, answer) for phase, answer in self.answers if not answer.ok]

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._client(url, n), name=f"load-{i}-{n}")
            for i, url in enumerate(self._urls)
            for n in range(self._clients)
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Let every request in flight finish (none is cut short), then stop."""
        self._stopping = True
        await asyncio.gather(*self._tasks)
