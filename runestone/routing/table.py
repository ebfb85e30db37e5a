"""The routing tables: aliases, fallbacks and context-window fallbacks (ARCHITECTURE §7).

Every target is a ``"provider/model"`` key. Keys of ``fallbacks`` and
``context_window_fallbacks`` are ``"provider/model"`` keys or names a request
may use (an alias or a bare model name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runestone.exceptions import ConfigError

__all__ = ["RoutingTable"]

_TABLES = ("aliases", "fallbacks", "context_window_fallbacks")


def _empty() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Name tables the planner reads; frozen copies of what it is given."""

    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        for name in _TABLES:
            object.__setattr__(self, name, _freeze(getattr(self, name), f"routing.{name}"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, path: str = "routing") -> RoutingTable:
        """Build from the ``routing`` config section (other keys there are ignored)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping, got {type(data).__name__}", path=path)
        tables: dict[str, Mapping[str, tuple[str, ...]]] = {}
        for name in _TABLES:
            tables[name] = _freeze(data.get(name) or {}, f"{path}.{name}")
        return cls(**tables)


def _freeze(table: object, path: str) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"expected a mapping of names, got {type(table).__name__}", path=path)
    frozen: dict[str, tuple[str, ...]] = {}
    for name, targets in table.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"expected a non-empty name, got {name!r}", path=path)
        if isinstance(targets, str) or not isinstance(targets, Sequence):
            raise ConfigError(
                f"expected a list of 'provider/model' keys, got {targets!r}", path=where
            )
        for index, target in enumerate(targets):
            provider, _, model = target.partition("/") if isinstance(target, str) else ("", "", "")
            if not provider or not model:
                raise ConfigError(
                    f"expected a 'provider/model' key, got {target!r}", path=f"{where}[{index}]"
                )
        frozen[name] = tuple(targets)
    return MappingProxyType(frozen)
