"""Random crash sequences against a reference model of OTP supervisor semantics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from runestone.exceptions import ActorUnavailableError
from runestone.io import DataPlane
from runestone.supervisors import (
    ChildSpec,
    ExitKind,
    ExitReason,
    IntensityPolicy,
    LoopSupervisor,
    RestartStrategy,
    RestartType,
    SupervisorHandle,
    start_supervisor,
    strategy_named,
)
from runestone.testing import FakeClock
from tests.supervisors.workers import crash_and_wait, loop_worker_spec, worker_spec

# How a test makes a child exit, and whether that exit is abnormal.
EXITS = {
    "tell_crash": (lambda h: h.tell("crash"), True),
    "ask_crash": (lambda h: h.ask("crash"), True),
    "base_exception": (lambda h: h.ask("interrupt"), True),
    "normal_stop": (lambda h: h.tell("stop"), False),
}


@dataclass
class Model:
    """OTP semantics, small enough to trust by reading."""

    order: list[str]
    restart: dict[str, RestartType]
    strategy: str
    max_restarts: int
    max_seconds: float
    now: float = 0.0
    running: dict[str, bool] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    restart_times: list[float] = field(default_factory=list)
    escalated: bool = False
    journal: list[str] = field(default_factory=list)
    dynamic: bool = False
    """OTP's dynamic supervisor: a child that exits for good is forgotten, whatever its kind."""

    def exit(self, child: str, abnormal: bool) -> None:
        self.running[child] = False
        kind = self.restart[child]
        should = kind is RestartType.PERMANENT or (kind is RestartType.TRANSIENT and abnormal)
        if not should:
            if kind is RestartType.TEMPORARY or self.dynamic:
                self._forget(child)
            return
        self.restart_times = [t for t in self.restart_times if self.now - t < self.max_seconds]
        self.restart_times.append(self.now)
        if len(self.restart_times) > self.max_restarts:
            self.escalated = True
            for c in self.order:
                self.running[c] = False
            return
        if self.strategy == "one_for_one":
            affected = [child]
        elif self.strategy == "one_for_all":
            affected = list(self.order)
        else:
            affected = self.order[self.order.index(child) :]
        for c in affected:
            if c != child and self.restart[c] is RestartType.TEMPORARY:
                self._forget(c)
        for c in affected:
            if c in self.restart:
                self.running[c] = True
                self.starts[c] += 1

    def _forget(self, child: str) -> None:
        self.order.remove(child)
        del self.restart[child]
        del self.running[child]
        del self.starts[child]


_KINDS = st.lists(st.sampled_from(list(RestartType)), min_size=1, max_size=4)
_MAX_RESTARTS = st.integers(min_value=0, max_value=4)
_MAX_SECONDS = st.sampled_from([1.0, 5.0, 10.0])
_STRATEGIES = st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"])


class SupervisorMachine(RuleBasedStateMachine):
    """A thread supervisor of thread actors (pykka), against the model."""

    root: SupervisorHandle | None = None
    plane: DataPlane | None = None
    dynamic = False

    @initialize(
        strategy=_STRATEGIES, kinds=_KINDS, max_restarts=_MAX_RESTARTS, max_seconds=_MAX_SECONDS
    )
    def boot(
        self,
        strategy: str,
        kinds: list[RestartType],
        max_restarts: int,
        max_seconds: float,
    ) -> None:
        self._boot(strategy, kinds, max_restarts, max_seconds)

    def child_spec(self, child_id: str, restart: RestartType) -> ChildSpec:
        return worker_spec(child_id, restart=restart)

    def supervisor_options(self) -> dict[str, Any]:
        return {}

    def _boot(
        self,
        strategy: str,
        kinds: list[RestartType],
        max_restarts: int,
        max_seconds: float,
    ) -> None:
        ids = [f"c{i}" for i in range(len(kinds))]
        self.clock = FakeClock()
        self.exits: list[ExitReason] = []
        self.model = Model(
            order=list(ids),
            restart=dict(zip(ids, kinds, strict=True)),
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            running=dict.fromkeys(ids, True),
            starts=dict.fromkeys(ids, 1),
            dynamic=self.dynamic,
        )
        chosen: RestartStrategy = strategy_named(strategy)
        self.root = start_supervisor(
            [self.child_spec(i, k) for i, k in zip(ids, kinds, strict=True)],
            name="root",
            strategy=chosen,
            intensity=IntensityPolicy(max_restarts, max_seconds),
            clock=self.clock,
            on_exit=self.exits.append,
            **self.supervisor_options(),
        )
        self.handles = {i: self.root.child(i) for i in ids}

    def teardown(self) -> None:
        if self.root is not None:
            self.root.stop()
        if self.plane is not None:
            self.plane.stop()

    @precondition(lambda self: not self.model.escalated)
    @rule(data=st.data(), how=st.sampled_from(sorted(EXITS)))
    def a_child_exits(self, data: st.DataObject, how: str) -> None:
        running = [c for c in self.model.order if self.model.running[c]]
        if not running:
            return
        child = data.draw(st.sampled_from(running), label="child")
        action, abnormal = EXITS[how]
        crash_and_wait(self.handles[child], action)
        self.model.exit(child, abnormal)
        if self.model.escalated:
            root = self.root
            assert root is not None
            incarnation = root.incarnation
            assert incarnation is None or incarnation.exited.wait(5)
        else:
            assert self.root is not None
            self.root.count_children()  # the supervisor has handled the exit by now

    @rule(fraction=st.sampled_from([0.0, 0.25, 0.5, 0.999, 1.0, 2.0]))
    def time_passes(self, fraction: float) -> None:
        # In fractions of the window, so its exact edge comes up often.
        seconds = fraction * self.model.max_seconds
        self.clock.advance(seconds)
        self.model.now += seconds

    @invariant()
    def the_supervisor_matches_the_model(self) -> None:
        if self.root is None:
            return
        if self.model.escalated:
            assert [e.kind for e in self.exits] == [ExitKind.ESCALATED]
            try:
                self.root.which_children(timeout=1)
            except ActorUnavailableError:
                return
            raise AssertionError("an escalated supervisor still answers")
        assert not self.exits
        rows = self.root.which_children()
        assert [r.id for r in rows] == self.model.order
        for row in rows:
            expected_running = self.model.running[row.id]
            assert (row.state.value == "running") == expected_running, row
            incarnation = self.handles[row.id].incarnation
            if expected_running:
                assert incarnation is not None
                assert incarnation.generation == self.model.starts[row.id], row.id


SupervisorMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=12, deadline=None
)
test_supervisor_matches_the_otp_model = SupervisorMachine.TestCase


class LoopChildrenMachine(SupervisorMachine):
    """A thread supervisor of loop actors: the same rules, whichever kind a child is."""

    @initialize(
        strategy=_STRATEGIES, kinds=_KINDS, max_restarts=_MAX_RESTARTS, max_seconds=_MAX_SECONDS
    )
    def boot(
        self,
        strategy: str,
        kinds: list[RestartType],
        max_restarts: int,
        max_seconds: float,
    ) -> None:
        self.plane = DataPlane(name="model-loop").start()
        self._boot(strategy, kinds, max_restarts, max_seconds)

    def child_spec(self, child_id: str, restart: RestartType) -> ChildSpec:
        assert self.plane is not None
        return loop_worker_spec(child_id, self.plane.loop, restart=restart)


class LoopSupervisorMachine(LoopChildrenMachine):
    """A loop supervisor (a dynamic one: one_for_one) of loop actors."""

    dynamic = True

    @initialize(kinds=_KINDS, max_restarts=_MAX_RESTARTS, max_seconds=_MAX_SECONDS)
    def boot(  # type: ignore[override]
        self,
        kinds: list[RestartType],
        max_restarts: int,
        max_seconds: float,
    ) -> None:
        self.plane = DataPlane(name="model-loop").start()
        self._boot("one_for_one", kinds, max_restarts, max_seconds)

    def supervisor_options(self) -> dict[str, Any]:
        assert self.plane is not None
        return {"actor_class": LoopSupervisor, "loop": self.plane.loop}


LoopChildrenMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=12, deadline=None
)
LoopSupervisorMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=12, deadline=None
)
test_loop_children_match_the_otp_model = LoopChildrenMachine.TestCase
test_a_loop_supervisor_matches_the_otp_model = LoopSupervisorMachine.TestCase
