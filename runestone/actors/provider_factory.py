"""The ProviderFactory: builds providers and their actors from config, at start and at run time.

Provider types come from the registry (``openai``, ``anthropic``,
``openai_compatible``, ``simulated``, ``register_provider_type()`` and the
``runestone.providers`` entry-point group); nothing here names one. Added
providers start at once; removed ones stop taking requests and stop once their
attempts in flight have ended; changed ones are replaced the same way.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka
import structlog

from runestone.actors.provider import Drain, ProviderActor
from runestone.clock import Clock
from runestone.directory import Directory, ProviderEntry
from runestone.exceptions import ConfigError, SupervisionError
from runestone.providers import create_provider
from runestone.resilience import StateChange
from runestone.supervisors import (
    ChildSpec,
    RestartType,
    SupervisedActor,
    Supervisor,
    SupervisorHandle,
)

if TYPE_CHECKING:
    from runestone.cluster.circuits import SharedCircuits
    from runestone.config import ProviderConfig
    from runestone.io import DataPlane
    from runestone.metrics import Metrics

__all__ = [
    "FactoryEnv",
    "ProviderFactory",
    "ProviderSupervisor",
    "Register",
    "Reload",
    "ReloadReport",
    "Unregister",
    "provider_spec",
]

log = structlog.get_logger(__name__)


@dataclass
class FactoryEnv:
    """What the factory and the provider supervisor share."""

    directory: Directory
    data_plane: DataPlane
    clock: Clock
    providers: Callable[[], SupervisorHandle]
    on_state_change: Callable[[str, StateChange], None] | None = None
    metrics: Metrics | None = None
    circuits: SharedCircuits | None = None
    """Cluster mode: the circuits shared through Redis (None: each provider decides alone)."""
    rng: random.Random = field(default_factory=random.Random)
    generations: dict[str, int] = field(default_factory=dict)
    initialized: bool = False

    def next_generation(self, name: str) -> int:
        self.generations[name] = self.generations.get(name, 0) + 1
        return self.generations[name]


@dataclass(frozen=True, slots=True)
class Register:
    config: ProviderConfig


@dataclass(frozen=True, slots=True)
class Unregister:
    name: str


@dataclass(frozen=True, slots=True)
class Reload:
    providers: Mapping[str, ProviderConfig]


@dataclass(frozen=True, slots=True)
class ReloadReport:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    replaced: tuple[str, ...]
    unchanged: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Drained:
    child_id: str


def provider_spec(entry: ProviderEntry, env: FactoryEnv) -> ChildSpec:
    """The child spec of ``entry``'s provider actor."""

    def start() -> pykka.ActorRef[Any]:
        circuits = env.circuits
        share = (
            None
            if circuits is None
            else circuits.circuit(entry.name, entry.config.circuit_breaker, rng=env.rng)
        )
        return ProviderActor.start(
            entry.name,
            entry.child_id,
            entry.config.circuit_breaker,
            env.directory,
            gate=entry.gate,
            clock=env.clock,
            rng=env.rng,
            on_state_change=env.on_state_change,
            probe=lambda: env.data_plane.submit(
                entry.provider.check_health(entry.config.probe_method, entry.config.probe_model)
            ),
            probe_interval=entry.config.probe_interval,
            probe_when_open=entry.provider.has_health_probe,
            metrics=env.metrics,
            share=share,
        )

    return ChildSpec(entry.child_id, start, restart=RestartType.PERMANENT)


class ProviderSupervisor(Supervisor):
    """Supervises the provider actors; (re)started from the directory as it is now."""

    def __init__(self, children: tuple[ChildSpec, ...] = (), **kwargs: Any) -> None:
        env: FactoryEnv = kwargs.pop("env")
        directory = env.directory
        specs = [provider_spec(e, env) for e in directory.entries().values()]
        specs += [provider_spec(e, env) for e in directory.draining().values()]
        super().__init__(specs, **kwargs)
        self._env = env

    def on_start(self) -> None:
        super().on_start()
        # A new incarnation made new slots: point the directory at them.
        for child_id, child in self._children.items():
            self._env.directory.attach(child_id, child.handle())


class ProviderFactory(SupervisedActor):
    """Registers, replaces and retires providers (see the module docstring)."""

    expected_exceptions = (ConfigError, SupervisionError)

    def __init__(self, initial: Mapping[str, ProviderConfig], env: FactoryEnv) -> None:
        super().__init__()
        self._initial = initial
        self._env = env

    def on_start(self) -> None:
        env = self._env
        if env.initialized:
            return  # a restart: the directory still holds what the last incarnation built
        for config in self._initial.values():
            env.directory.put(self._build(config))
        env.initialized = True

    def on_receive(self, message: Any) -> Any:
        match message:
            case Register(config=config):
                self._register(config)
            case Unregister(name=name):
                self._retire(name)
            case Reload(providers=providers):
                return self._reload(providers)
            case _Drained(child_id=child_id):
                self._drained(child_id)
            case _:
                raise SupervisionError(
                    f"provider factory got an unknown message {type(message).__name__}"
                )
        return None

    def _build(self, config: ProviderConfig) -> ProviderEntry:
        name = config.settings.name
        provider = create_provider(config.settings, clock=self._env.clock)
        self._env.data_plane.register_closeable(provider)
        entry = ProviderEntry(name, config, provider, self._env.next_generation(name))
        log.info("provider_built", provider=name, type=config.settings.type)
        return entry

    def _register(self, config: ProviderConfig) -> None:
        entry = self._build(config)
        old = self._env.directory.put(entry)
        handle = self._env.providers().start_child(provider_spec(entry, self._env))
        self._env.directory.attach(entry.child_id, handle)
        log.info("provider_registered", provider=entry.name, replaced=old is not None)
        if old is not None:
            self._drain(old)

    def _retire(self, name: str) -> None:
        old = self._env.directory.retire(name)
        if old is None:
            raise ConfigError(f"no provider named {name!r} is registered", path=f"providers.{name}")
        log.info("provider_retiring", provider=name)
        self._drain(old)

    def _drain(self, entry: ProviderEntry) -> None:
        own = self.actor_ref

        def drained(child_id: str) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                own.tell(_Drained(child_id))

        if entry.handle is None:
            self._drained(entry.child_id)
            return
        try:
            entry.handle.tell(Drain(drained))
        except SupervisionError:
            self._drained(entry.child_id)

    def _drained(self, child_id: str) -> None:
        entry = self._env.directory.forget(child_id)
        providers = self._env.providers()
        with contextlib.suppress(SupervisionError):
            providers.terminate_child(child_id)
            providers.delete_child(child_id)
        if entry is not None:
            provider = entry.provider
            self._env.data_plane.unregister_closeable(provider)
            with contextlib.suppress(RuntimeError):  # the data plane is stopping: it closes all
                self._env.data_plane.submit(provider.aclose())
        log.info("provider_stopped", child_id=child_id)

    def _reload(self, providers: Mapping[str, ProviderConfig]) -> ReloadReport:
        current = self._env.directory.entries()
        added = [n for n in providers if n not in current]
        removed = [n for n in current if n not in providers]
        replaced = [n for n in providers if n in current and current[n].config != providers[n]]
        unchanged = [n for n in providers if n in current and n not in replaced]
        for name in removed:
            self._retire(name)
        for name in [*replaced, *added]:
            self._register(providers[name])
        report = ReloadReport(tuple(added), tuple(removed), tuple(replaced), tuple(unchanged))
        log.info(
            "providers_reloaded",
            added=report.added,
            removed=report.removed,
            replaced=report.replaced,
        )
        return report
