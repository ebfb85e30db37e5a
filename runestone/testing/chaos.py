"""Chaos: many concurrent streams through every way in while a seeded schedule breaks things.

One implementation for the CI suite (``tests/chaos/``) and the long run
(``bench/chaos.py``)::

    report = run_chaos(ChaosSettings(requests=2000, seed=7, kinds=ALL_KINDS))
    print(report.render())
    assert not report.violations

**The system under test** is a real one: two :class:`FakeUpstream` servers on
127.0.0.1 (``primary``, OpenAI-shaped, the one that misbehaves; ``backup``,
Anthropic-shaped, always healthy) and one :class:`System` served over HTTP by an
in-process uvicorn on 127.0.0.1 whose loop is the system's data plane, as under
``runestone serve``. Every alias lists a primary route first and ``backup/healthy``
after it, so a healthy candidate always exists: a valid request that fails is a
violation, whatever the primary did.

**Requests** go in through four paths (:class:`Path`): ``system.stream()`` from
threads, ``await system.astream()`` and HTTP ``POST /v1/chat/completions`` from an
asyncio loop of their own, and an actor ``StreamRequest`` whose events are told to
a collector actor. Which path and which upstream behaviour each request gets is
drawn from ``random.Random(seed)``.

**The schedule** (another ``Random`` from the same seed) picks an action kind
from the enabled :class:`Kind` set at jittered intervals and performs it:
crashes (a message no actor understands, told: the handler raises) and stops
(the current incarnation stopped: a normal exit its supervisor restarts) of the
Router, the factory, a provider actor, the providers supervisor, the pool
supervisor, admission, the task supervisor and single stream tasks, and flaps of
the primary upstream (stopped, then served again on the same port). Cuts and
stalls are upstream behaviours a request picks (``cut-after:N``,
``stall-after:N``). After an action that takes the task subtree down (the pool
or task supervisor), the schedule waits until every request it caught has moved
on, so it is paced by recovery, not by the machine's speed.

**The invariants**, checked per request by :func:`check_request` and counted by
kind in :class:`ChaosReport`:

* exactly one terminal event (``no_terminal``, ``two_terminals``,
  ``events_after_terminal``), and it arrives within the deadline
  (``late_terminal``: after ``request_timeout + late_slack``);
* text before a ``Done`` is :data:`KNOWN_TEXT` exactly (``text_lost``,
  ``text_repeated``, ``text_garbled``); text before an error is a prefix of it,
  and the error's ``content_delivered`` says whether any reached the caller
  (``content_flag_wrong``);
* a valid request does not fail (``valid_request_failed:<kind>``,
  ``failed_during_stop:<target>``, ``submit_raised:<type>``), except where the
  failure is its own task's: **legitimate errors** are exactly

  - ``ended_after_task_crash``: its stream task was crashed *after* content
    reached the caller, and the error says ``content_delivered`` (a task crashed
    before the commit point is restarted and must answer whole);
  - ``ended_after_repeated_task_crashes``: its stream task was crashed more than
    ``MAX_TASK_RESTARTS`` times, and the error is that crash (a request that keeps
    crashing its task is ended, not restarted forever);
  - ``ended_after_task_stop``: its stream task was stopped (``terminate_child``);
  - ``ended_by_task_subtree``: the pool or task supervisor was crashed or stopped
    after content reached the caller (a supervisor's children go with it, and a
    task restarted past the commit point ends its request in-band), and the error
    says ``content_delivered``;

* after every request has ended the admission count returns to 0
  (``leaked_slots``), the root has not escalated, and after ``stop`` no actor
  and no thread of ours is left (``actors_left_after_stop``,
  ``threads_left_after_stop``; leftovers are then stopped so the next run starts
  clean).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pykka

__all__ = [
    "ALL_KINDS",
    "SAFE_KINDS",
    "ChaosReport",
    "ChaosSettings",
    "Excuses",
    "Kind",
    "Path",
    "Poison",
    "Progress",
    "RequestRecord",
    "Terminal",
    "check_request",
    "run_chaos",
]

USER = [{"role": "user", "content": "Tell me the known text."}]


class Poison:
    """A message no actor understands: told to one, its handler raises and it crashes."""


class Path(StrEnum):
    """The ways a request comes in."""

    STREAM = "stream"
    ASTREAM = "astream"
    ACTOR = "actor"
    HTTP = "http"


class Kind(StrEnum):
    """What the chaos schedule (or a request's upstream behaviour) can do; each is toggled."""

    CRASH_ROUTER = "crash_router"
    STOP_ROUTER = "stop_router"
    CRASH_FACTORY = "crash_factory"
    STOP_FACTORY = "stop_factory"
    CRASH_PROVIDER = "crash_provider"
    STOP_PROVIDER = "stop_provider"
    CRASH_PROVIDERS_SUP = "crash_providers_sup"
    STOP_PROVIDERS_SUP = "stop_providers_sup"
    CRASH_POOL_SUP = "crash_pool_sup"
    STOP_POOL_SUP = "stop_pool_sup"
    CRASH_ADMISSION = "crash_admission"
    STOP_ADMISSION = "stop_admission"
    CRASH_TASKS_SUP = "crash_tasks_sup"
    STOP_TASKS_SUP = "stop_tasks_sup"
    CRASH_TASK = "crash_task"
    STOP_TASK = "stop_task"
    UPSTREAM_FLAP = "upstream_flap"
    UPSTREAM_CUT = "upstream_cut"
    """A request's primary route cuts its stream after a few tokens (not scheduled)."""
    UPSTREAM_STALL = "upstream_stall"
    """A request's primary route stalls after a few tokens (not scheduled)."""


ALL_KINDS: frozenset[Kind] = frozenset(Kind)
SAFE_KINDS: frozenset[Kind] = frozenset(
    {
        Kind.CRASH_ROUTER,
        Kind.CRASH_FACTORY,
        Kind.STOP_FACTORY,
        Kind.CRASH_PROVIDER,
        Kind.UPSTREAM_FLAP,
        Kind.UPSTREAM_CUT,
        Kind.UPSTREAM_STALL,
    }
)
"""The kinds that exposed none of issue 9's supervision bugs (the others did, and run as
regression groups in ``tests/chaos``)."""
REQUEST_FAULTS: Mapping[Kind, str] = {
    Kind.UPSTREAM_CUT: "cut-after:5",
    Kind.UPSTREAM_STALL: "stall-after:3",
}
_TASK_SUBTREE = frozenset(
    {Kind.CRASH_POOL_SUP, Kind.STOP_POOL_SUP, Kind.CRASH_TASKS_SUP, Kind.STOP_TASKS_SUP}
)
_CONTROL_TIMEOUT = 40.0
"""Bound on one terminate/restart call (a supervisor stops its children first)."""


@dataclass(frozen=True)
class ChaosSettings:
    """One chaos run. ``kinds`` are the enabled actions and request faults."""

    requests: int = 2000
    concurrency: int = 32
    seed: int = 0
    kinds: frozenset[Kind] = ALL_KINDS
    paths: frozenset[Path] = frozenset(Path)
    action_interval: float = 0.05
    """Mean seconds between scheduled actions (each gap drawn from 0.5 to 1.5 times it)."""
    fault_share: float = 0.3
    """Share of requests whose primary route plays an enabled upstream fault."""
    request_timeout: float = 8.0
    late_slack: float = 1.0
    token_interval: float = 0.004
    max_in_flight: int = 512
    intensity: tuple[int, int] = (100_000, 5)
    """The tree's (max_restarts, max_seconds): chaos restarts must never escalate."""
    drain_timeout: float = 15.0
    """After the last request, how long the admission count gets to return to 0."""
    progress: Callable[[str], None] | None = None


@dataclass
class Terminal:
    """A request's terminal event, normalised across paths."""

    done: bool
    kind: str = ""
    """For an error: the Runestone error kind, or HTTP error code/type."""
    content_delivered: bool | None = None
    """What the error said; ``None`` where the path does not carry it (HTTP)."""
    message: str = ""


class Progress:
    """Wakes whoever waits for requests to move on: each record's text and terminal notify it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked at each notification); its last value."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)


@dataclass
class RequestRecord:
    """What one request saw, in order."""

    n: int
    path: Path
    model: str
    key: str
    started: float = 0.0
    ended: float | None = None
    text: list[str] = field(default_factory=list)
    terminals: list[Terminal] = field(default_factory=list)
    after_terminal: int = 0
    raised: str | None = None
    """The exception the entry call raised (``system.stream`` refusing, …)."""
    hung: bool = False
    """No end within the harness's hard bound (deadline + guard grace + slack)."""
    finished: threading.Event = field(default_factory=threading.Event, repr=False)
    progress: Progress | None = field(default=None, repr=False)

    def add_text(self, text: str) -> None:
        if self.terminals:
            self.after_terminal += 1
        self.text.append(text)
        if self.progress is not None:
            self.progress.notify()

    def add_terminal(self, terminal: Terminal) -> None:
        if not self.terminals:
            self.ended = time.monotonic()
        self.terminals.append(terminal)
        self.finished.set()
        if self.progress is not None:
            self.progress.notify()

    @property
    def in_flight(self) -> bool:
        return bool(self.started) and not self.terminals

    def add_event(self, event: Any) -> None:
        from runestone.messages import Done, StreamError, TextDelta

        if isinstance(event, TextDelta):
            self.add_text(event.text)
        elif isinstance(event, Done):
            self.add_terminal(Terminal(True))
        elif isinstance(event, StreamError):
            self.add_terminal(
                Terminal(
                    False,
                    event.kind or event.error_class.value,
                    event.content_delivered,
                    event.message,
                )
            )
        elif self.terminals:
            self.after_terminal += 1


@dataclass
class Excuses:
    """What the schedule did that may legitimately end a request with an error."""

    crashed_tasks: set[str] = field(default_factory=set)
    task_crashes: collections.Counter[str] = field(default_factory=collections.Counter)
    """How often the schedule crashed each request's task (by request key)."""
    stopped_tasks: set[str] = field(default_factory=set)
    task_subtree_events: list[float | tuple[float, float]] = field(default_factory=list)
    """When the pool or task supervisor was crashed or stopped: a time, or the window
    from the action to the supervisor's restart (a crash lands when it is handled)."""
    stop_windows: list[tuple[float, float, str]] = field(default_factory=list)
    """(from, to, target) of every stop-and-restart of a control-plane actor."""

    def overlaps_subtree_event(self, record: RequestRecord) -> bool:
        end = record.ended if record.ended is not None else float("inf")
        for event in self.task_subtree_events:
            begin, finish = event if isinstance(event, tuple) else (event, event)
            if record.started <= finish and begin <= end:
                return True
        return False

    def stop_overlapping(self, record: RequestRecord) -> str | None:
        end = record.ended if record.ended is not None else float("inf")
        for begin, finish, target in self.stop_windows:
            if begin <= end and record.started <= finish:
                return target
        return None


def check_request(
    record: RequestRecord,
    excuses: Excuses,
    *,
    known_text: str,
    deadline: float,
) -> tuple[str, list[str]]:
    """Classify one request: its outcome label and the invariants it broke (kinds).

    ``deadline`` is the seconds after its start by which its terminal must have come.
    """
    violations: list[str] = []
    text = "".join(record.text)
    if record.raised is not None:
        return "raised", [f"submit_raised:{record.raised}"]
    if not record.terminals:
        return ("hung" if record.hung else "no_terminal"), ["no_terminal"]
    if len(record.terminals) > 1:
        violations.append("two_terminals")
    if record.after_terminal:
        violations.append("events_after_terminal")
    if record.ended is not None and record.ended - record.started > deadline:
        violations.append("late_terminal")
    terminal = record.terminals[0]
    if terminal.done:
        if text != known_text:
            violations.append(_text_problem(text, known_text))
        return "done", violations
    if not known_text.startswith(text):
        violations.append(_text_problem(text, known_text))
    delivered = bool(text)
    if terminal.content_delivered is not None and terminal.content_delivered != delivered:
        violations.append("content_flag_wrong")
    key = record.key
    if key in excuses.stopped_tasks:
        return "ended_after_task_stop", violations
    if key in excuses.crashed_tasks and delivered and terminal.content_delivered is not False:
        return "ended_after_task_crash", violations
    from runestone.actors.stream_task import MAX_TASK_RESTARTS

    if excuses.task_crashes[key] > MAX_TASK_RESTARTS and _is_task_crash(terminal):
        # A request whose task keeps crashing ends in-band instead of restarting forever.
        return "ended_after_repeated_task_crashes", violations
    if (
        excuses.overlaps_subtree_event(record)
        and delivered
        and terminal.content_delivered is not False
    ):
        # Its task went down with its supervisor after content reached the caller: the
        # restarted task ends it in-band (before the commit point it must answer whole).
        return "ended_by_task_subtree", violations
    target = excuses.stop_overlapping(record)
    if target is not None:
        violations.append(f"failed_during_stop:{target}")
    else:
        violations.append(f"valid_request_failed:{terminal.kind or 'unknown'}")
    return "failed", violations


def _is_task_crash(terminal: Terminal) -> bool:
    """The error is its task's crash: the error kind in-process; over HTTP an
    ``internal_error`` whose message names it."""
    if terminal.kind == "ActorCrashedError":
        return True
    return terminal.kind == "internal_error" and "(ActorCrashedError)" in terminal.message


def _text_problem(text: str, known: str) -> str:
    if known.startswith(text):
        return "text_lost"
    pairs = enumerate(zip(text, known, strict=False))
    common = next((i for i, (a, b) in pairs if a != b), len(known))
    rest = text[common : common + 24]
    if any(known.startswith(rest, q) for q in range(common)):
        return "text_repeated"  # it goes on from an earlier point: something was sent twice
    return "text_garbled"


@dataclass
class ChaosReport:
    """The counts of one chaos run."""

    settings: ChaosSettings
    requests: int = 0
    by_path: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    kills: collections.Counter[str] = field(default_factory=collections.Counter)
    """Actions performed, by kind (request faults: requests that played them)."""
    action_failures: collections.Counter[str] = field(default_factory=collections.Counter)
    """Actions the system refused or that failed to complete, by kind (not violations)."""
    violations: collections.Counter[str] = field(default_factory=collections.Counter)
    leaked_slots: int = 0
    leftover_actors: list[str] = field(default_factory=list)
    leftover_threads: list[str] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)
    """One example request per violation kind."""
    elapsed: float = 0.0

    def violation(self, kind: str, example: str = "") -> None:
        self.violations[kind] += 1
        if example and kind not in self.examples:
            self.examples[kind] = example[:400]

    @property
    def violation_families(self) -> set[str]:
        """Violation kinds without their detail (``valid_request_failed:X`` → its family)."""
        return {kind.partition(":")[0] for kind in self.violations}

    def render(self) -> str:
        def counts(counter: collections.Counter[str]) -> str:
            if not counter:
                return "none"
            return ", ".join(f"{k}={v}" for k, v in sorted(counter.items()))

        s = self.settings
        lines = [
            f"chaos: seed={s.seed} requests={self.requests} concurrency={s.concurrency} "
            f"elapsed={self.elapsed:.1f}s",
            f"  kinds enabled: {', '.join(sorted(k.value for k in s.kinds)) or 'none'}",
            f"  requests by path: {counts(self.by_path)}",
            f"  outcomes: {counts(self.outcomes)}",
            f"  kills by kind: {counts(self.kills)} (total {sum(self.kills.values())})",
            f"  actions refused/failed by kind: {counts(self.action_failures)}",
            f"  violations by kind: {counts(self.violations)} "
            f"(total {sum(self.violations.values())})",
            f"  leaked admission slots: {self.leaked_slots}",
            f"  left after stop: actors={len(self.leftover_actors)} "
            f"threads={len(self.leftover_threads)}",
        ]
        for kind, example in sorted(self.examples.items()):
            lines.append(f"    e.g. {kind}: {example}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------ the set-up


def _provider(
    kind: str, base_url: str, models: Iterable[str], *, healthy: bool = False
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": kind,
        "api_key": f"sk-test-chaos-{kind}",
        "base_url": base_url,
        "timeouts": {"connect": 1, "first_token": 2, "idle": 0.5, "total": 6},
        "retry": {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05},
        "circuit_breaker": {"consecutive_failures": 5, "recovery": 0.5, "min_calls": 20},
        "models": {name: {} for name in models},
    }
    if healthy:
        # The candidate that is always there: a loaded machine's slow tokens must not make
        # it look dead (tight timeouts are for the primary, whose stalls are the faults).
        block["timeouts"] = {"connect": 5, "first_token": 5, "idle": 5, "total": 30}
        block["circuit_breaker"] = {
            "consecutive_failures": 1000,
            "failure_rate": 1.0,
            "recovery": 0.5,
        }
    return block


def _config(settings: ChaosSettings, primary: Any, backup: Any) -> dict[str, Any]:
    faults = [REQUEST_FAULTS[k] for k in sorted(settings.kinds & REQUEST_FAULTS.keys())]
    aliases = {
        f"chaos-{model.partition(':')[0]}": [f"primary/{model}", "backup/healthy"]
        for model in ["healthy", *faults]
    }
    max_restarts, max_seconds = settings.intensity
    return {
        "providers": {
            "primary": _provider("openai", primary.openai_base_url, ["healthy", *faults]),
            "backup": _provider("anthropic", backup.anthropic_base_url, ["healthy"], healthy=True),
        },
        "routing": {
            "policy": "priority",
            "aliases": aliases,
            "resume": {"prefill": False, "replay": True},
        },
        "supervision": {"max_restarts": max_restarts, "max_seconds": max_seconds},
        "pool": {
            "max_in_flight": settings.max_in_flight,
            "request_timeout": settings.request_timeout,
        },
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": 1},
        "logging": {"level": "CRITICAL"},
    }


class _Served:
    """The system on an in-process uvicorn whose loop is its data plane (as ``runestone serve``)."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        from runestone.io import new_event_loop
        from runestone.server.app import create_app
        from runestone.server.runner import bind

        self._sock = bind("127.0.0.1", 0)
        port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._up = threading.Event()
        self.gateway: Any = None

        def started(gateway: Any) -> None:
            self.gateway = gateway
            self._up.set()

        app = create_app(config, on_started=started)
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                lifespan="on",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=1,
                timeout_keep_alive=75,
                backlog=4096,
            )
        )
        self.failure: BaseException | None = None

        def run() -> None:
            try:
                with asyncio.Runner(loop_factory=new_event_loop) as runner:
                    runner.run(self._server.serve(sockets=[self._sock]))
            except BaseException as exc:  # noqa: BLE001 - reported to the harness
                self.failure = exc
                self._up.set()

        self._thread = threading.Thread(target=run, name="chaos-server", daemon=True)
        self._thread.start()
        if not self._up.wait(30) or self.failure is not None:
            self.stop()
            raise RuntimeError(f"the chaos server did not start: {self.failure!r}")

    @property
    def system(self) -> Any:
        return self.gateway.system

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(60)
        self._sock.close()


class _Upstream:
    """The primary fake upstream, which can flap: stopped, then served again on its port."""

    def __init__(self, token_interval: float) -> None:
        from runestone.testing.upstream import FakeUpstream

        self._token_interval = token_interval
        self.current = FakeUpstream(token_interval=token_interval)
        self.current.start()
        self.port = self.current.port
        self.openai_base_url = self.current.openai_base_url

    def flap(self, down_for: float, wake: threading.Event) -> None:
        from runestone.testing.upstream import FakeUpstream

        self.current.stop()
        wake.wait(down_for)
        self.current = FakeUpstream(port=self.port, token_interval=self._token_interval)
        for _ in range(50):
            try:
                self.current.start()
                return
            except RuntimeError:  # the port is not free again yet
                wake.wait(0.02)
        self.current.start()

    def stop(self) -> None:
        self.current.stop()


# ------------------------------------------------------------------------------ the drivers


class _Collector(pykka.ThreadingActor):
    """Where the actor path's events are told: ``(request number, event)``."""

    def __init__(self, records: Mapping[int, RequestRecord]) -> None:
        super().__init__()
        self._records = records

    def on_receive(self, message: Any) -> None:
        n, event = message
        self._records[n].add_event(event)


class _Tagged:
    """A ``reply_to`` that tells the collector actor each event with its request's number."""

    def __init__(self, ref: pykka.ActorRef[Any], n: int) -> None:
        self._ref = ref
        self._n = n

    def tell(self, event: Any) -> None:
        self._ref.tell((self._n, event))


def _body(record: RequestRecord) -> dict[str, Any]:
    return {"model": record.model, "messages": USER, "stream": True}


def _drive_stream(system: Any, record: RequestRecord, bound: float) -> None:
    record.started = time.monotonic()
    try:
        stream = system.stream(_body(record), request_id=record.key)
    except Exception as exc:  # noqa: BLE001 - counted: a valid request refused
        record.raised = type(exc).__name__
        return
    sink = stream._sink  # a ThreadSink: its get() takes a timeout, iteration does not
    hard = record.started + bound
    with contextlib.closing(stream):
        while True:
            remaining = hard - time.monotonic()
            if remaining <= 0:
                record.hung = True
                return
            try:
                event = sink.get(timeout=remaining)
            except StopIteration:
                return
            except TimeoutError:
                record.hung = True
                return
            except Exception as exc:  # noqa: BLE001 - the sink ended with an error
                record.raised = type(exc).__name__
                return
            record.add_event(event)


def _drive_actor(system: Any, collector: Any, record: RequestRecord, bound: float) -> None:
    from runestone.actors.pool import StreamRequest

    record.started = time.monotonic()
    try:
        system.pool.tell(
            StreamRequest(_body(record), _Tagged(collector, record.n), request_id=record.key)
        )
    except Exception as exc:  # noqa: BLE001 - counted: a valid request refused
        record.raised = type(exc).__name__
        return
    if not record.finished.wait(bound):
        record.hung = True


async def _drive_astream(system: Any, record: RequestRecord, bound: float) -> None:
    record.started = time.monotonic()
    events: Any = None
    try:
        async with asyncio.timeout(bound):
            events = await system.astream(_body(record), request_id=record.key)
            async for event in events:
                record.add_event(event)
    except TimeoutError:
        record.hung = True
    except Exception as exc:  # noqa: BLE001 - counted: a valid request refused
        record.raised = type(exc).__name__
    finally:
        if events is not None:
            await events.aclose()


async def _drive_http(session: Any, url: str, record: RequestRecord, bound: float) -> None:
    import aiohttp

    record.started = time.monotonic()
    try:
        async with (
            asyncio.timeout(bound),
            session.post(
                url + "/v1/chat/completions",
                json=_body(record),
                headers={"x-request-id": record.key},
            ) as response,
        ):
            if response.status != 200:
                error = (await response.json(content_type=None)).get("error", {})
                record.add_terminal(
                    Terminal(
                        False,
                        str(error.get("code") or error.get("type") or response.status),
                        False,
                        str(error.get("message", ""))[:200],
                    )
                )
                return
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    record.add_terminal(Terminal(True))
                    continue
                frame = json.loads(data)
                if "error" in frame:
                    error = frame["error"]
                    record.add_terminal(
                        Terminal(
                            False,
                            str(error.get("code") or error.get("type")),
                            None,
                            str(error.get("message", ""))[:200],
                        )
                    )
                    continue
                for choice in frame.get("choices", ()):
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        record.add_text(content)
    except TimeoutError:
        record.hung = True
    except aiohttp.ClientError as exc:
        record.raised = type(exc).__name__


# ------------------------------------------------------------------------------ the schedule


class _Schedule:
    """Performs a seeded sequence of actions until told to stop."""

    def __init__(
        self,
        settings: ChaosSettings,
        system: Any,
        primary: _Upstream,
        report: ChaosReport,
        excuses: Excuses,
        records: list[RequestRecord],
        progress: Progress,
    ) -> None:
        self._rng = random.Random(f"{settings.seed}:schedule")
        self._records = records
        self._progress = progress
        self._recovery_timeout = settings.request_timeout
        self._kinds = sorted(settings.kinds - REQUEST_FAULTS.keys())
        self._interval = settings.action_interval
        self._system = system
        self._primary = primary
        self._report = report
        self._excuses = excuses
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-schedule", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._kinds:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._progress.notify()
        if self._thread.is_alive():
            self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.wait(self._interval * self._rng.uniform(0.5, 1.5)):
            kind = self._rng.choice(self._kinds)
            pick = self._rng.random()
            caught = (
                [(r, len(r.text)) for r in self._records if r.in_flight]
                if kind in _TASK_SUBTREE
                else []
            )
            try:
                self.perform(kind, pick)
            except Exception as exc:  # noqa: BLE001 - the system refused: counted, not fatal
                self._report.action_failures[f"{kind.value}:{type(exc).__name__}"] += 1
            else:
                self._report.kills[kind.value] += 1
            if caught:
                self._await_recovery(caught)

    def _await_recovery(self, caught: list[tuple[RequestRecord, int]]) -> None:
        """Let every request a subtree action caught move on (more text, or its terminal)
        before the next action, for at most one request's deadline.

        Such an action takes every stream task down, and a request before its commit point
        starts over: actions coming faster than requests recover starve them, which no
        supervisor can prevent, and how fast that is depends on the machine. Paced on
        recovery, not the clock, the run tests supervision at any speed; a request that
        never moves on still misses its deadline and is counted."""

        def recovered() -> bool:
            return self._stop.is_set() or all(
                r.terminals or len(r.text) > seen for r, seen in caught
            )

        self._progress.wait_for(recovered, self._recovery_timeout)

    def perform(self, kind: Kind, pick: float) -> None:
        system = self._system
        root = system.supervisor
        match kind:
            case Kind.CRASH_ROUTER:
                system.router.tell(Poison())
            case Kind.STOP_ROUTER:
                self._stop_child(root, "router")
            case Kind.CRASH_FACTORY:
                root.child("provider_factory").tell(Poison())
            case Kind.STOP_FACTORY:
                self._stop_child(root, "provider_factory")
            case Kind.CRASH_PROVIDER:
                entry = self._provider(pick)
                entry.handle.tell(Poison())
            case Kind.STOP_PROVIDER:
                entry = self._provider(pick)
                self._stop_child(root.child("providers"), entry.child_id, "provider")
            case Kind.CRASH_PROVIDERS_SUP:
                root.child("providers").tell(Poison())
            case Kind.STOP_PROVIDERS_SUP:
                self._stop_child(root, "providers")
            case Kind.CRASH_POOL_SUP:
                self._crash_subtree(root.child("pool"))
            case Kind.STOP_POOL_SUP:
                self._stop_subtree(root, "pool")
            case Kind.CRASH_ADMISSION:
                system.pool.tell(Poison())
            case Kind.STOP_ADMISSION:
                self._stop_child(root.child("pool"), "admission")
            case Kind.CRASH_TASKS_SUP:
                self._crash_subtree(root.child("pool").child("tasks"))
            case Kind.STOP_TASKS_SUP:
                self._stop_subtree(root.child("pool"), "tasks")
            case Kind.CRASH_TASK | Kind.STOP_TASK:
                tasks = root.child("pool").child("tasks")
                rows = tasks.which_children()
                if not rows:
                    raise LookupError("no stream task in flight")
                row = rows[int(pick * len(rows))]
                key = row.id.partition("#")[0]
                if kind is Kind.CRASH_TASK:
                    self._excuses.crashed_tasks.add(key)
                    self._excuses.task_crashes[key] += 1
                    row.handle.tell(Poison())
                else:
                    self._excuses.stopped_tasks.add(key)
                    tasks.terminate_child(row.id)
            case Kind.UPSTREAM_FLAP:
                self._primary.flap(0.05 + 0.2 * pick, self._stop)
            case _:
                raise ValueError(f"{kind} is not a scheduled action")

    def _stop_subtree(self, parent: Any, child_id: str) -> None:
        """Stop the pool or task supervisor; the excuse window lasts until it is back (a
        request that begins while it stops is caught by it too)."""
        begin = time.monotonic()
        try:
            self._stop_child(parent, child_id)
        finally:
            self._excuses.task_subtree_events.append((begin, time.monotonic()))

    def _crash_subtree(self, supervisor: Any) -> None:
        """Crash the pool or task supervisor; the excuse window lasts until it is back."""
        begin = time.monotonic()
        incarnation = supervisor.incarnation
        supervisor.tell(Poison())
        try:
            if incarnation is not None:
                incarnation.exited.wait(_CONTROL_TIMEOUT)
            supervisor.ref(timeout=_CONTROL_TIMEOUT)
        finally:
            self._excuses.task_subtree_events.append((begin, time.monotonic()))

    def _provider(self, pick: float) -> Any:
        entries = list(self._system.directory.entries().values())
        entry = entries[int(pick * len(entries))]
        if entry.handle is None:
            raise LookupError(f"provider {entry.name} has no actor now")
        return entry

    def _stop_child(self, parent: Any, child_id: str, target: str | None = None) -> None:
        """Stop a child (a normal exit of its current incarnation, not a crash) and wait
        for its supervisor to start it again, as its permanent child spec says."""
        begin = time.monotonic()
        try:
            handle = parent.child(child_id, timeout=_CONTROL_TIMEOUT)
            incarnation = handle.incarnation
            if incarnation is None or incarnation.ref is None:
                raise LookupError(f"{child_id} has no live incarnation now")
            incarnation.ref.stop(block=True, timeout=_CONTROL_TIMEOUT)
            handle.ref(timeout=_CONTROL_TIMEOUT)  # restarted
        finally:
            self._excuses.stop_windows.append((begin, time.monotonic(), target or child_id))


# ------------------------------------------------------------------------------ the run


def _plans(settings: ChaosSettings) -> list[RequestRecord]:
    rng = random.Random(f"{settings.seed}:requests")
    paths = sorted(settings.paths)
    faults = sorted(settings.kinds & REQUEST_FAULTS.keys())
    records = []
    for n in range(settings.requests):
        path = paths[n % len(paths)]
        model = "chaos-healthy"
        if faults and rng.random() < settings.fault_share:
            model = f"chaos-{REQUEST_FAULTS[rng.choice(faults)].partition(':')[0]}"
        records.append(RequestRecord(n, Path(path), model, f"chaos-{settings.seed}-{n}"))
    return records


def _our_threads(baseline: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive() and t not in baseline]


def run_chaos(settings: ChaosSettings) -> ChaosReport:
    """Run ``settings`` against a fresh system and return the counts (see the module docstring)."""
    from runestone.actors.stream_task import GUARD_GRACE
    from runestone.config import load_config
    from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream

    say = settings.progress or (lambda _text: None)
    baseline = set(threading.enumerate())
    actors_before = set(pykka.ActorRegistry.get_all())
    report = ChaosReport(settings)
    excuses = Excuses()
    records = _plans(settings)
    report.requests = len(records)
    bound = settings.request_timeout + GUARD_GRACE + 3.0
    began = time.monotonic()

    primary = _Upstream(settings.token_interval)
    backup = FakeUpstream(token_interval=settings.token_interval)
    backup.start()
    served: _Served | None = None
    schedule: _Schedule | None = None
    try:
        config = load_config(_config(settings, primary, backup))
        served = _Served(config)
        system = served.system
        url = served.url
        progress = Progress()
        for record in records:
            record.progress = progress
        schedule = _Schedule(settings, system, primary, report, excuses, records, progress)
        by_path: dict[Path, collections.deque[RequestRecord]] = {
            p: collections.deque() for p in Path
        }
        for record in records:
            by_path[record.path].append(record)
            report.by_path[record.path.value] += 1
            for kind, model in REQUEST_FAULTS.items():
                if record.model == f"chaos-{model.partition(':')[0]}":
                    report.kills[kind.value] += 1
        workers = max(1, settings.concurrency // max(1, len(settings.paths)))
        done = threading.Event()
        pending = [len(records)]
        pending_lock = threading.Lock()

        def ended() -> None:
            with pending_lock:
                pending[0] -= 1
                left = pending[0]
                if left % 500 == 0:
                    say(f"  {len(records) - left}/{len(records)} requests ended")
                if left == 0:
                    done.set()

        threads: list[threading.Thread] = []
        by_number = {r.n: r for r in records}
        collectors = [_Collector.start(by_number) for _ in range(workers)]

        def thread_worker(queue: collections.deque[RequestRecord], index: int) -> None:
            while True:
                try:
                    record = queue.popleft()
                except IndexError:
                    return
                if record.path is Path.STREAM:
                    _drive_stream(system, record, bound)
                else:
                    _drive_actor(system, collectors[index], record, bound)
                ended()

        for path in (Path.STREAM, Path.ACTOR):
            for index in range(workers if by_path[path] else 0):
                thread = threading.Thread(
                    target=thread_worker,
                    args=(by_path[path], index),
                    name=f"chaos-{path.value}-{index}",
                    daemon=True,
                )
                threads.append(thread)

        async def async_clients() -> None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def worker(queue: collections.deque[RequestRecord]) -> None:
                    while queue:
                        record = queue.popleft()
                        if record.path is Path.ASTREAM:
                            await _drive_astream(system, record, bound)
                        else:
                            await _drive_http(session, url, record, bound)
                        ended()

                await asyncio.gather(
                    *(
                        worker(by_path[path])
                        for path in (Path.ASTREAM, Path.HTTP)
                        if by_path[path]
                        for _ in range(workers)
                    )
                )

        threads.append(
            threading.Thread(target=asyncio.run, args=(async_clients(),), name="chaos-clients")
        )
        schedule.start()
        for thread in threads:
            thread.start()
        done.wait(len(records) * bound)  # every request is bounded; this only backstops
        schedule.stop()
        for thread in threads:
            thread.join(bound)
        say(f"  requests ended after {time.monotonic() - began:.1f}s; checking")

        deadline = settings.request_timeout + settings.late_slack
        for record in records:
            outcome, violations = check_request(
                record, excuses, known_text=KNOWN_TEXT, deadline=deadline
            )
            report.outcomes[outcome] += 1
            for violation in violations:
                report.violation(violation, _describe(record))

        report.leaked_slots = _drain(system, settings.drain_timeout)
        if report.leaked_slots:
            report.violation("leaked_slots", f"{report.leaked_slots} admission slot(s) held")
        if system._holder.root_exit:
            report.violation("root_escalated", str(system._holder.root_exit[0]))
        for collector in collectors:
            collector.stop()
    finally:
        if schedule is not None:
            schedule.stop()
        if served is not None:
            served.stop()
        primary.stop()
        backup.stop()
    report.elapsed = time.monotonic() - began

    _leftovers(report, baseline, actors_before)
    return report


def _describe(record: RequestRecord) -> str:
    terminals = [
        "Done" if t.done else f"Error({t.kind}, delivered={t.content_delivered}, {t.message!r})"
        for t in record.terminals
    ]
    took = None if record.ended is None else round(record.ended - record.started, 2)
    text = "".join(record.text)
    return (
        f"#{record.n} {record.path.value} {record.model} raised={record.raised} "
        f"hung={record.hung} took={took}s terminals={terminals} text={len(text)} chars"
    )


def _drain(system: Any, timeout: float) -> int:
    """Wait (bounded) for the admission count to return to 0; what is still held then."""
    deadline = time.monotonic() + timeout
    wake = threading.Event()
    in_flight = -1
    while time.monotonic() < deadline:
        try:
            in_flight = system.pool_stats(timeout=2).in_flight
        except Exception:  # noqa: BLE001 - admission unreachable: try again until the deadline
            in_flight = -1
        if in_flight == 0:
            return 0
        wake.wait(0.05)
    return in_flight if in_flight >= 0 else 1


def _leftovers(
    report: ChaosReport, baseline: set[threading.Thread], actors_before: set[Any]
) -> None:
    """Count what outlived the stop, then stop it so the next run starts clean."""
    deadline = time.monotonic() + 5.0
    for thread in _our_threads(baseline):
        thread.join(max(0.0, deadline - time.monotonic()))
    actors = [a for a in pykka.ActorRegistry.get_all() if a not in actors_before]
    threads = _our_threads(baseline)
    report.leftover_actors = sorted(repr(a) for a in actors)
    report.leftover_threads = sorted(t.name for t in threads)
    if actors:
        report.violation("actors_left_after_stop", ", ".join(report.leftover_actors[:5]))
        for actor in actors:
            actor.stop(block=False)
        for actor in actors:
            with contextlib.suppress(pykka.Timeout):
                actor.stop(block=True, timeout=2)
    if threads:
        report.violation("threads_left_after_stop", ", ".join(report.leftover_threads[:5]))
        again = time.monotonic() + 5.0
        for thread in threads:
            thread.join(max(0.0, again - time.monotonic()))
