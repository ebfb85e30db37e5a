"""A supervisor for short-lived children started at run time (the Pool's stream tasks).

one_for_one only, bounded by ``max_children``; children are transient by
default and are forgotten once they exit for good. An optional backoff delays
each restart (min, max, jitter) so a child that keeps failing does not spin.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import pykka
import structlog
from msgspec import Meta

from runestone.clock import SYSTEM_CLOCK, Cancellable, Clock
from runestone.exceptions import ChildStartError, SupervisionError
from runestone.schema import AtLeastOne, Count, NonNegative, Shape, check, not_below
from runestone.supervisors.actor import SupervisedActor
from runestone.supervisors.handle import ActorHandle
from runestone.supervisors.intensity import IntensityPolicy
from runestone.supervisors.loop_actor import LoopActor
from runestone.supervisors.requests import ChildState
from runestone.supervisors.spec import ChildSpec, RestartType
from runestone.supervisors.store import ChildStore
from runestone.supervisors.strategies import ONE_FOR_ONE
from runestone.supervisors.supervisor import RetryRestart, SupervisorBase, _Child

__all__ = ["DynamicBase", "DynamicSupervisor", "LoopSupervisor", "RestartBackoff", "Spawn"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start ``spec`` without waiting for an answer (``tell``); a failure to start is
    handed to ``on_error`` instead of the sender, which has moved on."""

    spec: ChildSpec
    on_error: Callable[[SupervisionError], None]

    def undeliverable(self, error: BaseException) -> None:
        """The supervisor will never start it: its sender hears so through ``on_error``."""
        self.on_error(SupervisionError(f"child {self.spec.id!r} not started: {error}"))


class RestartBackoff(Shape, frozen=True):
    """Delay before the n-th consecutive restart of a child: ``min * multiplier**(n-1)``,
    capped at ``max``, then spread by ``± jitter`` (a fraction).

    A bad value raises :class:`~runestone.schema.FieldError` (a ``ValueError``).
    """

    min: NonNegative = 0.01
    max: NonNegative = 1.0
    multiplier: AtLeastOne = 2.0
    jitter: Annotated[float, Meta(ge=0, le=1)] = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        not_below("max", self.max, self.min)

    def delay(self, restart_number: int, rng: random.Random) -> float:
        """The wait before restart number ``restart_number`` (1 for the first)."""
        base = min(self.max, self.min * self.multiplier ** max(0, restart_number - 1))
        spread = base * self.jitter
        return max(0.0, base + rng.uniform(-spread, spread))


class DynamicBase(SupervisorBase):
    """What a dynamic supervisor does, whichever kind of actor runs it."""

    default_restart: ClassVar[RestartType] = RestartType.TRANSIENT
    child_events_at_debug: ClassVar[bool] = True

    def __init__(
        self,
        children: tuple[ChildSpec, ...] = (),
        *,
        name: str = "dynamic",
        max_children: Count | None = None,
        backoff: RestartBackoff | None = None,
        intensity: IntensityPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        store: ChildStore | None = None,
        **_: Any,
    ) -> None:
        max_children = check(max_children, Count | None, "max_children")
        super().__init__(
            children, name=name, strategy=ONE_FOR_ONE, intensity=intensity, clock=clock, store=store
        )
        self.max_children = max_children
        self.backoff = backoff
        self._rng = rng or random.Random()
        self._timers: dict[str, Cancellable] = {}
        self._consecutive: dict[str, int] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Spawn):
            try:
                self._start_new(message.spec)
            except SupervisionError as exc:
                message.on_error(exc)
            return None
        return super().on_receive(message)

    def on_start(self) -> None:
        # Children kept from a crashed incarnation start again one by one: one that fails
        # to start is given up on, not the supervisor.
        for child in list(self._children.values()):
            try:
                self._start(child)
            except ChildStartError as exc:
                log.error("child_restart_failed", supervisor=self.name, error=str(exc))
                self._children.pop(child.spec.id, None)
                child.give_up()

    def on_stop(self) -> None:
        self._cancel_timers()
        super().on_stop()

    def on_failure(self, *exc_info: Any) -> None:
        self._cancel_timers()
        super().on_failure(*exc_info)

    def _cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _start_new(self, spec: ChildSpec) -> ActorHandle:
        if self.max_children is not None and len(self._children) >= self.max_children:
            raise SupervisionError(
                f"dynamic supervisor {self.name!r} is at max_children={self.max_children}; "
                f"child {spec.id!r} not started"
            )
        return super()._start_new(spec)

    def _restart_after_exit(self, child: _Child) -> None:
        if self.backoff is None:
            super()._restart_after_exit(child)
            return
        child_id = child.spec.id
        count = self._consecutive.get(child_id, 0) + 1
        self._consecutive[child_id] = count
        delay = self.backoff.delay(count, self._rng)
        own_ref = self.actor_ref

        def due() -> None:
            # The supervisor may have stopped while the restart waited.
            with contextlib.suppress(pykka.ActorDeadError):
                own_ref.tell(RetryRestart((child_id,), counts=False))

        self._timers[child_id] = self._clock.call_later(delay, due)

    def _retry(self, message: RetryRestart) -> None:
        for child_id in message.child_ids:
            self._timers.pop(child_id, None)
        super()._retry(message)

    def _retire(self, child: _Child) -> None:
        child.retire()
        self._children.pop(child.spec.id, None)
        self._consecutive.pop(child.spec.id, None)
        timer = self._timers.pop(child.spec.id, None)
        if timer is not None:
            timer.cancel()

    def _terminate(self, child_id: str) -> None:
        child = self._get(child_id)
        self._shutdown(child, ChildState.STOPPED)
        self._retire(child)


class DynamicSupervisor(DynamicBase, SupervisedActor):
    """A one_for_one supervisor of children added at run time, at most ``max_children``."""


class LoopSupervisor(DynamicBase, LoopActor):
    """A :class:`DynamicSupervisor` that lives on the data-plane loop, for loop-actor
    children (the stream tasks): a child is started, stopped and restarted there, with
    no thread crossing. Started with ``loop=`` (``supervisor_spec(..., loop=loop)``)."""
