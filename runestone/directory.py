"""The provider directory: which providers exist now, and the latest status each published.

The ProviderFactory writes it (add, replace, drain, remove); each ProviderActor
publishes its status into its own entry; the Router and stream tasks read it.
Readers get immutable snapshots, swapped in whole under a lock, so a read never
waits on a writer and never sees half an update.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from runestone.gate import PermitGate
from runestone.resilience import CircuitSnapshot, CircuitState, HealthSnapshot

if TYPE_CHECKING:
    from runestone.config import ProviderConfig
    from runestone.providers import Provider
    from runestone.supervisors import ActorHandle

__all__ = ["Directory", "ProviderEntry", "ProviderStatus"]


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """What a ProviderActor last published: its circuit and health figures."""

    circuit: CircuitSnapshot
    health: HealthSnapshot

    @property
    def state(self) -> CircuitState:
        return self.circuit.state

    def to_dict(self) -> dict[str, Any]:
        return {"circuit": self.circuit.to_dict(), "health": self.health.to_dict()}


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    """One live provider: its config, its provider object, its actor, its last status."""

    name: str
    config: ProviderConfig
    provider: Provider
    generation: int
    handle: ActorHandle | None = None
    status: ProviderStatus | None = None
    draining: bool = False
    gate: PermitGate = field(default=None, compare=False)  # type: ignore[assignment]
    """Its permit gate (one per entry, kept across restarts of its actor)."""

    def __post_init__(self) -> None:
        if getattr(self, "gate", None) is None:
            object.__setattr__(self, "gate", PermitGate(self.name))

    @property
    def child_id(self) -> str:
        return f"provider:{self.name}#{self.generation}"


@dataclass
class Directory:
    """The thread-safe, copy-on-write table of providers by name."""

    _entries: Mapping[str, ProviderEntry] = field(default_factory=dict)
    _draining: Mapping[str, ProviderEntry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def entries(self) -> Mapping[str, ProviderEntry]:
        """The providers that take new requests, in registration order."""
        return self._entries

    def draining(self) -> Mapping[str, ProviderEntry]:
        """Providers removed or replaced that still finish their streams, by child id."""
        return self._draining

    def get(self, name: str) -> ProviderEntry | None:
        return self._entries.get(name)

    def find(self, child_id: str) -> ProviderEntry | None:
        """An entry, live or draining, by its actor's child id."""
        for entry in self._entries.values():
            if entry.child_id == child_id:
                return entry
        return self._draining.get(child_id)

    def put(self, entry: ProviderEntry) -> ProviderEntry | None:
        """Add or replace ``entry``; the replaced one (if any) moves to draining."""
        with self._lock:
            entries = dict(self._entries)
            old = entries.get(entry.name)
            entries[entry.name] = entry
            self._entries = MappingProxyType(entries)
            if old is not None:
                self._drain_locked(old)
            return old

    def retire(self, name: str) -> ProviderEntry | None:
        """Stop routing to ``name``; its entry moves to draining until its streams end."""
        with self._lock:
            entries = dict(self._entries)
            old = entries.pop(name, None)
            self._entries = MappingProxyType(entries)
            if old is not None:
                self._drain_locked(old)
            return old

    def forget(self, child_id: str) -> ProviderEntry | None:
        """Drop a drained entry for good."""
        with self._lock:
            draining = dict(self._draining)
            old = draining.pop(child_id, None)
            self._draining = MappingProxyType(draining)
            return old

    def _drain_locked(self, entry: ProviderEntry) -> None:
        draining = dict(self._draining)
        draining[entry.child_id] = replace(entry, draining=True)
        self._draining = MappingProxyType(draining)

    def attach(self, child_id: str, handle: ActorHandle) -> None:
        """Record the actor handle of the entry with ``child_id``."""
        self._update(child_id, handle=handle)

    def publish(self, child_id: str, status: ProviderStatus) -> None:
        """A ProviderActor's newest status."""
        self._update(child_id, status=status)

    def _update(self, child_id: str, **changes: Any) -> None:
        with self._lock:
            for name, entry in self._entries.items():
                if entry.child_id == child_id:
                    entries = dict(self._entries)
                    entries[name] = replace(entry, **changes)
                    self._entries = MappingProxyType(entries)
                    return
            old = self._draining.get(child_id)
            if old is not None:
                draining = dict(self._draining)
                draining[child_id] = replace(old, **changes)
                self._draining = MappingProxyType(draining)
