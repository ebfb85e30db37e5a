"""The provider actor: one per provider, owner of its circuit breaker and health figures.

It grants and refuses permits, takes outcome reports and publishes its status
to the directory. It never does upstream I/O: attempts run on the data plane
and only their outcomes come here.

While its circuit is open it runs the provider's cheap health probe whenever
the breaker says one is due (``CircuitBreaker.probe_at``) and reports the result
to the breaker: a pass makes the circuit half-open at once, so traffic comes back
within the probe cap of a provider's recovery instead of after a recovery time
that doubles per opening. Every circuit transition is logged at WARNING with the
evidence that caused it and counted in the metrics, as are panic-mode calls.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
import structlog

from runestone.clock import SYSTEM_CLOCK, Cancellable, Clock
from runestone.directory import Directory, ProviderStatus
from runestone.exceptions import ErrorClass, SupervisionError
from runestone.gate import PermitGate
from runestone.providers.base import HealthCheck
from runestone.request import AttemptOutcome
from runestone.resilience import (
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitState,
    HealthTracker,
    Permit,
    ProbeTicket,
    StateChange,
    TransitionReason,
)
from runestone.resilience.failure_policy import CircuitEffect, failure_policy
from runestone.supervisors import SupervisedActor

if TYPE_CHECKING:
    from runestone.cluster.circuits import SharedCircuit, SharedState
    from runestone.metrics import Metrics

__all__ = [
    "Acquire",
    "Drain",
    "GetStatus",
    "ProviderActor",
    "Refused",
    "Release",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Acquire:
    """Ask for a permit to start one attempt; ``panic``: every candidate is held back
    (routing's panic mode), so an open circuit due a probe lets this call probe it.

    With ``reply`` (a stream task on the loop, which must not wait) the answer, a
    :class:`Permit` or :class:`Refused`, is handed to it instead of an ``ask``'s future;
    an Acquire that can never be handled hands it the error.
    """

    panic: bool = False
    reply: Callable[[Permit | Refused | BaseException], None] | None = None

    def undeliverable(self, error: BaseException) -> None:
        if self.reply is not None:
            self.reply(error)


@dataclass(frozen=True, slots=True)
class Refused:
    """No permit: the circuit is open (or half-open with its probes taken)."""

    provider: str
    retry_at: float | None


@dataclass(frozen=True, slots=True)
class Release:
    """An attempt under ``permit`` was cancelled or never made: no outcome."""

    permit: Permit


@dataclass(frozen=True, slots=True)
class GetStatus:
    pass


@dataclass(frozen=True, slots=True)
class Probe:
    """Time for an active health probe."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    future: concurrent.futures.Future[HealthCheck]


@dataclass(frozen=True, slots=True)
class RecoveryProbeDue:
    """Time to see whether the open circuit's provider is back."""


@dataclass(frozen=True, slots=True)
class RecoveryProbeResult:
    ticket: ProbeTicket
    future: concurrent.futures.Future[HealthCheck]


@dataclass(frozen=True, slots=True)
class SharedHeard:
    """The cluster changed this provider's shared circuit (``None``: Redis is back, read it)."""

    state: SharedState | None


@dataclass(frozen=True, slots=True)
class SharedCooled:
    """Another replica met a 429 from this provider: hold calls back for ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class SharedDone:
    """A call to the shared circuit ended: ``then(state)``, ``None`` when Redis failed.

    ``undeliverable`` is told instead when this actor is gone by then (a waiting caller).
    """

    state: SharedState | None
    then: Callable[[SharedState | None], None]
    undeliverable: Callable[[BaseException], None] | None = None


@dataclass(frozen=True, slots=True)
class Drain:
    """Stop after the attempts in flight end; ``notify`` is called (with the child id) then."""

    notify: Callable[[str], None]


class ProviderActor(SupervisedActor):
    """The control-plane side of one provider (see the module docstring)."""

    own_messages: ClassVar[tuple[type, ...]] = (
        Probe,
        ProbeResult,
        RecoveryProbeDue,
        RecoveryProbeResult,
        SharedHeard,
        SharedCooled,
        SharedDone,
    )

    def __init__(
        self,
        name: str,
        child_id: str,
        policy: CircuitBreakerPolicy,
        directory: Directory,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        on_state_change: Callable[[str, StateChange], None] | None = None,
        probe: Callable[[], concurrent.futures.Future[HealthCheck]] | None = None,
        probe_interval: float | None = None,
        probe_when_open: bool = False,
        metrics: Metrics | None = None,
        gate: PermitGate | None = None,
        share: SharedCircuit | None = None,
    ) -> None:
        super().__init__()
        # Cluster mode: the circuit is decided in Redis while it answers (runestone.cluster).
        self._share = share
        self._shared_epoch = -1
        self._shared_failures = 0
        self._shared_probes: dict[int, str] = {}
        self._opened_alone = False
        self._gate = gate or PermitGate(name)
        self._probe = probe
        self._probe_interval = probe_interval
        self._probe_timer: Cancellable | None = None
        # Out-of-band probes of an open circuit need a probe that really asks the upstream.
        self._probe_when_open = probe_when_open and probe is not None
        self._recovery_timer: Cancellable | None = None
        self._recovery_timer_at: float | None = None
        self._metrics = metrics
        self._evidence: dict[str, object] = {}
        self.name = name
        self.child_id = child_id
        self._directory = directory
        self._clock = clock
        self._breaker = CircuitBreaker(policy, clock, rng)
        self._health = HealthTracker(clock)
        self._on_state_change = on_state_change
        self._drain: Drain | None = None
        self._breaker.add_listener(self._changed)

    def on_start(self) -> None:
        self._publish()
        self._schedule_probe()
        if self._share is not None:
            self._share.listen(self._heard, self._heard_cooling)
            self._when_done(self._share.read(), self._reconcile)

    def on_stop(self) -> None:
        if self._probe_timer is not None:
            self._probe_timer.cancel()
        self._cancel_recovery_timer()
        if self._share is not None:
            self._share.unlisten(self._heard)

    # -- the shared circuit (cluster mode) -------------------------------------------------

    def _heard_cooling(self, seconds: float) -> None:
        """On the loop: another replica's 429 cools this provider for ``seconds``."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(SharedCooled(seconds))

    def _heard(self, state: SharedState | None) -> None:
        """On the loop: a change published by another replica, or a rejoin (None)."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(SharedHeard(state))

    def _when_done(
        self,
        future: concurrent.futures.Future[SharedState],
        then: Callable[[SharedState | None], None],
        undeliverable: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run ``then`` in this actor with the answer of a shared call (None: Redis failed)."""
        own = self.actor_ref

        def done(f: concurrent.futures.Future[SharedState]) -> None:
            try:
                state: SharedState | None = f.result()
            except BaseException as exc:  # noqa: BLE001 - any failure means: decide alone
                state = None
                if (
                    not isinstance(exc, Exception)
                    or type(exc).__name__ != "ClusterUnavailableError"
                ):
                    log.warning("shared_circuit_call_failed", provider=self.name, error=repr(exc))
            try:
                own.tell(SharedDone(state, then, undeliverable))
            except pykka.ActorDeadError as exc:
                if undeliverable is not None:
                    undeliverable(exc)

        future.add_done_callback(done)

    def _adopt(self, state: SharedState | None) -> None:
        """Take on the shared circuit's state, unless it is older news than we have."""
        if state is None or state.epoch < self._shared_epoch:
            return
        newer = state.epoch > self._shared_epoch
        self._shared_epoch = state.epoch
        if state.state is CircuitState.CLOSED:
            self._shared_failures = state.consecutive
        local = self._breaker.state
        if newer or local is not state.state or state.state is CircuitState.OPEN:
            self._evidence = {"cluster_reason": state.reason, "decided_by": state.by}
            self._breaker.adopt(state.state, open_for=state.open_in)
            self._evidence = {}
        if state.state is not CircuitState.CLOSED or local is CircuitState.CLOSED:
            self._opened_alone = False
        self._publish()

    def _reconcile(self, state: SharedState | None) -> None:
        """After a start or a rejoin: adopt the shared record, or push an opening made alone."""
        share = self._share
        if state is None or share is None:
            return
        if (
            self._opened_alone
            and state.state is CircuitState.CLOSED
            and self._breaker.state is not CircuitState.CLOSED
        ):
            self._opened_alone = False
            self._shared_epoch = max(self._shared_epoch, state.epoch)
            self._when_done(share.opened("consecutive_failures"), self._adopt)
            return
        self._adopt(state)

    def _shared_decides(self) -> bool:
        """Whether an Acquire goes to the shared circuit: it is up, and only the shared
        circuit can say (open or half-open, not forced, not cooling after a 429)."""
        share = self._share
        return (
            share is not None
            and share.up
            and self._breaker.forced is None
            and self._breaker.cooling_until is None
            and self._breaker.state is not CircuitState.CLOSED
        )

    def _shared_acquire(self, message: Acquire) -> None:
        assert self._share is not None
        assert message.reply is not None
        probe_id, future = self._share.acquire(panic=message.panic)

        def granted(state: SharedState | None) -> None:
            assert message.reply is not None
            message.reply(self._granted(message.panic, probe_id, state))

        self._when_done(future, granted, message.undeliverable)

    def _granted(self, panic: bool, probe_id: str, state: SharedState | None) -> Permit | Refused:
        if state is None:  # Redis failed: decide alone
            return self._acquire(panic)
        self._adopt(state)
        if state.granted and state.state is CircuitState.HALF_OPEN:
            permit = self._breaker.grant_probe()
            self._shared_probes[permit.id] = probe_id
            self._publish()
            return permit
        if state.granted:
            return self._acquire(panic)
        now = self._clock.monotonic()
        retry_at = None if state.open_in is None else now + state.open_in
        if panic or retry_at is None:
            retry_at = self._breaker.panic_retry_at if panic else self._breaker.retry_at
        return Refused(self.name, retry_at)

    def _share_outcome(self, permit: Permit, current: bool, error: Any) -> None:
        """Tell the shared circuit what an attempt under ``permit`` ended in."""
        share = self._share
        if share is None:
            return
        probe_id = self._shared_probes.pop(permit.id, None)
        counts = error is not None and (
            failure_policy(error.error_class).circuit is CircuitEffect.FAILURE
        )
        if probe_id is not None:
            result = "success" if error is None else "failure" if counts else "release"
            self._when_done(share.settle(probe_id, result), self._adopt)
        elif current and share.up:
            if counts:
                self._when_done(share.fail(), self._failed)
            elif error is None and self._shared_failures > 0:
                self._shared_failures = 0
                self._when_done(share.succeed(), self._adopt)

    def _share_release(self, permit: Permit) -> None:
        """A shared probe's attempt was never made or was cancelled: free its slot."""
        probe_id = self._shared_probes.pop(permit.id, None)
        if probe_id is not None and self._share is not None:
            self._when_done(self._share.settle(probe_id, "release"), self._adopt)

    def _failed(self, state: SharedState | None) -> None:
        if state is not None and state.state is CircuitState.CLOSED:
            self._shared_failures = state.consecutive
        self._adopt(state)

    # -- out-of-band probes of an open circuit ---------------------------------------------

    def _cancel_recovery_timer(self) -> None:
        if self._recovery_timer is not None:
            self._recovery_timer.cancel()
        self._recovery_timer = None
        self._recovery_timer_at = None

    def _schedule_recovery_probe(self) -> None:
        """Keep one timer at the breaker's next probe time (none while nothing is due)."""
        if not self._probe_when_open:
            return
        due = self._breaker.probe_at
        if due == self._recovery_timer_at and (due is None or self._recovery_timer is not None):
            return
        self._cancel_recovery_timer()
        if due is None:
            return
        own = self.actor_ref

        def fire() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                own.tell(RecoveryProbeDue())

        self._recovery_timer_at = due
        self._recovery_timer = self._clock.call_later(due - self._clock.monotonic(), fire)

    def _recovery_probe_due(self) -> None:
        self._recovery_timer = None
        self._recovery_timer_at = None
        ticket = self._breaker.begin_probe()
        if ticket is None:
            self._schedule_recovery_probe()
            return
        share = self._share
        if share is None or not share.up:
            self._run_probe(lambda f: RecoveryProbeResult(ticket, f))
            return

        def claimed(state: SharedState | None) -> None:
            if state is None or state.granted:  # ours (or Redis failed: probe alone)
                self._run_probe(lambda f: RecoveryProbeResult(ticket, f))
                return
            # Another replica probes in this interval. Its pass would reach us as the
            # half-open change; unheard of, it counts here as the failure it most likely is
            # (the interval grows on every replica alike).
            self._breaker.record_probe(ticket, healthy=False)
            self._adopt(state)
            self._schedule_recovery_probe()

        self._when_done(share.claim_recovery_probe(ticket.interval), claimed)

    def _run_probe(self, result: Callable[[concurrent.futures.Future[HealthCheck]], Any]) -> None:
        """Start the provider's probe on the data plane; its end comes back as ``result(f)``."""
        assert self._probe is not None
        own = self.actor_ref
        try:
            future = self._probe()
        except RuntimeError:  # the data plane is stopping
            return

        def done(f: concurrent.futures.Future[HealthCheck]) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                own.tell(result(f))

        future.add_done_callback(done)

    def _recovery_probed(
        self, ticket: ProbeTicket, future: concurrent.futures.Future[HealthCheck]
    ) -> None:
        try:
            check = future.result()
        except BaseException as exc:  # noqa: BLE001 - a probe that broke is a failed probe
            healthy, detail, latency = False, repr(exc), 0.0
        else:
            healthy, detail, latency = check.healthy, check.message, check.latency
        if self._metrics is not None:
            result = "pass" if healthy else "fail"
            self._metrics.recovery_probes.labels(self.name, result).inc()
        log.info(
            "recovery_probe",
            provider=self.name,
            healthy=healthy,
            latency=round(latency, 4),
            detail=detail[:200],
        )
        self._evidence = {"probe": "passed" if healthy else "failed", "probe_latency": latency}
        self._breaker.record_probe(ticket, healthy=healthy)
        self._evidence = {}
        self._publish()
        self._schedule_recovery_probe()

    def _schedule_probe(self) -> None:
        if self._probe is None or self._probe_interval is None:
            return
        own = self.actor_ref

        def due() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                own.tell(Probe())

        self._probe_timer = self._clock.call_later(self._probe_interval, due)

    def _start_probe(self) -> None:
        self._run_probe(ProbeResult)

    def _probed(self, future: concurrent.futures.Future[HealthCheck]) -> None:
        try:
            check = future.result()
        except BaseException as exc:  # noqa: BLE001 - a probe that broke is a failed probe
            log.warning("health_probe_failed", provider=self.name, error=repr(exc))
        else:
            # A probe is a call like any other in the health figures, but holds no permit:
            # the breaker is driven by real traffic only.
            self._health.record_start()
            if check.healthy:
                self._health.record_success(check.latency)
            else:
                detail = f"active probe: {check.message}"[:200]
                self._health.record_failure(
                    check.error_class or ErrorClass.SERVER_ERROR, detail=detail
                )
            self._publish()
        self._schedule_probe()

    def _changed(self, change: StateChange) -> None:
        self._health.record_state_change(change)
        health = self._health.snapshot()
        # WARNING: an opening or a recovery decides where traffic goes; say why it happened.
        log.warning(
            "circuit_state_changed",
            provider=self.name,
            old=change.old.value,
            new=change.new.value,
            reason=change.reason.value,
            last_error=None if health.last_error is None else health.last_error.value,
            last_error_detail=health.last_error_detail,
            window_calls=health.window_calls,
            window_failures=health.window_failures,
            **self._evidence,
        )
        if self._metrics is not None:
            self._metrics.circuit_transitions.labels(
                self.name, change.old.value, change.new.value, change.reason.value
            ).inc()
        if self._on_state_change is not None:
            self._on_state_change(self.name, change)
        if change.new is CircuitState.OPEN or change.old is CircuitState.OPEN:
            self._schedule_recovery_probe()
        self._share_change(change)

    def _share_change(self, change: StateChange) -> None:
        """A transition on this replica's own evidence is the cluster's too."""
        share = self._share
        if share is None or change.reason is TransitionReason.CLUSTER:
            return
        if change.new is CircuitState.OPEN and change.reason in (
            TransitionReason.CONSECUTIVE_FAILURES,
            TransitionReason.FAILURE_RATE,
        ):
            if share.up:
                self._when_done(share.opened(change.reason.value), self._adopt)
            else:
                self._opened_alone = True
        elif change.reason is TransitionReason.HEALTH_PROBE_PASSED and share.up:
            self._when_done(share.probe_passed(self._shared_epoch), self._adopt)

    def _status(self) -> ProviderStatus:
        # Attempts in flight are counted by the gate, on the loop, as they start and end.
        health = replace(self._health.snapshot(), in_flight=self._gate.in_flight)
        return ProviderStatus(self._breaker.snapshot(), health)

    def _publish(self) -> None:
        self._gate.set(self._breaker.free_admission(), draining=self._drain is not None)
        self._directory.publish(self.child_id, self._status())

    def on_receive(self, message: Any) -> Any:
        match message:
            case Acquire(panic=panic, reply=reply):
                if reply is not None and self._shared_decides():
                    self._shared_acquire(message)
                    return None
                answer = self._acquire(panic)
                if reply is None:
                    return answer
                reply(answer)
            case SharedDone(state=state, then=then):
                then(state)
            case SharedCooled(seconds=seconds):
                self._breaker.cool(seconds)
                self._publish()
            case SharedHeard(state=None):
                if self._share is not None:
                    self._when_done(self._share.read(), self._reconcile)
            case SharedHeard(state=state):
                self._adopt(state)
            case AttemptOutcome():
                self._settle(message)
            case Release(permit=permit):
                self._share_release(permit)
                self._breaker.release(permit)
                self._publish()
                self._maybe_drained()
            case GetStatus():
                return self._status()
            case Drain():
                self._drain = message
                self._maybe_drained()
            case Probe():
                self._start_probe()
            case ProbeResult(future=future):
                self._probed(future)
            case RecoveryProbeDue():
                self._recovery_probe_due()
            case RecoveryProbeResult(ticket=ticket, future=future):
                self._recovery_probed(ticket, future)
            case _:
                raise SupervisionError(
                    f"provider actor {self.name!r} got an unknown message {type(message).__name__}"
                )
        return None

    def _acquire(self, panic: bool) -> Permit | Refused:
        if panic:
            self._evidence = {"panic": True}
        permit = self._breaker.acquire(panic=panic)
        self._evidence = {}
        if panic:
            self._panicked(permit)
        self._publish()  # the state may have moved on with time, or a probe been taken
        if permit is None:
            retry_at = self._breaker.panic_retry_at if panic else self._breaker.retry_at
            return Refused(self.name, retry_at)
        return permit

    def _panicked(self, permit: Permit | None) -> None:
        result = "refused" if permit is None else "probe"
        if self._metrics is not None:
            self._metrics.panic_calls.labels(self.name, result).inc()
        log.warning(
            "panic_mode_call",
            provider=self.name,
            result=result,
            circuit=self._breaker.state.value,
            retry_at_in=_seconds_from(self._breaker.panic_retry_at, self._clock.monotonic()),
        )

    def _settle(self, outcome: AttemptOutcome) -> None:
        """Book an attempt that ran under a permit: breaker, health figures, metrics."""
        permit = outcome.permit
        if permit is None:
            raise SupervisionError(
                f"provider actor {self.name!r} got the outcome of an attempt without a permit"
            )
        error = outcome.error
        current = permit.epoch == self._breaker.epoch and self._breaker.forced is None
        self._share_outcome(permit, current, error)
        if error is None:
            self._breaker.record_success(permit)
            self._health.record_attempt(outcome)
        else:
            # Health first, so a transition this failure causes is logged with it as evidence.
            self._health.record_attempt(outcome)
            self._evidence = {"error_class": error.error_class.value}
            cooling = self._breaker.cooling_until
            self._breaker.record_failure(permit, error.error_class, retry_after=error.retry_after)
            self._evidence = {}
            self._share_cooling(cooling)
        self._publish()
        self._maybe_drained()
        if self._metrics is not None:
            # Written here, off the loop: the attempt's figures cost the data plane nothing.
            self._metrics.observe_attempt(outcome)

    def _share_cooling(self, before: float | None) -> None:
        """A 429 that began or lengthened the cooling holds the other replicas back too."""
        after = self._breaker.cooling_until
        if self._share is None or after is None or (before is not None and after <= before):
            return
        self._share.cooled(round(after - self._clock.monotonic(), 3))

    def _maybe_drained(self) -> None:
        if self._drain is not None and self._gate.in_flight == 0:
            notify, self._drain = self._drain.notify, None
            notify(self.child_id)


def _seconds_from(at: float | None, now: float) -> float | None:
    return None if at is None else round(at - now, 3)
