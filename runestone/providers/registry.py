"""Provider types by name: the built-ins, anything registered, and entry-point plugins.

The ProviderFactory builds providers from config through :func:`create_provider`;
no list of provider types is hard-coded anywhere else. A package adds a type
either by calling :func:`register_provider_type` or by declaring an entry point::

    [project.entry-points."runestone.providers"]
    my_llm = "my_package.provider:MyProvider"

Entry points are loaded once, the first time a name is not found among the
registered types; one that fails to load is logged and reported when its name
is asked for, without breaking the other types.
"""

from __future__ import annotations

import importlib.metadata
import threading
from typing import Final

import structlog

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import ConfigError
from runestone.providers.anthropic import AnthropicProvider
from runestone.providers.base import Provider
from runestone.providers.openai import OpenAIProvider
from runestone.providers.openai_compatible import OpenAICompatibleProvider
from runestone.providers.settings import ProviderSettings
from runestone.providers.simulated import SimulatedProvider

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "ProviderRegistry",
    "create_provider",
    "provider_type",
    "provider_types",
    "register_provider_type",
]

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP: Final = "runestone.providers"

_BUILTINS: Final[tuple[type[Provider], ...]] = (
    OpenAIProvider,
    AnthropicProvider,
    OpenAICompatibleProvider,
    SimulatedProvider,
)


class ProviderRegistry:
    """A name -> provider class table. Thread-safe."""

    def __init__(self, *, builtins: bool = True, group: str | None = ENTRY_POINT_GROUP) -> None:
        self._lock = threading.RLock()
        self._types: dict[str, type[Provider]] = {}
        self._group = group
        self._plugins_loaded = group is None
        self._plugin_errors: dict[str, str] = {}
        if builtins:
            for cls in _BUILTINS:
                self.register(cls.type_name, cls)

    def register(self, name: str, cls: type[Provider], *, replace: bool = False) -> None:
        """Make ``cls`` the provider type called ``name``.

        Re-registering the same class is a no-op; another class under a taken
        name needs ``replace=True``.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a provider type needs a non-empty name, got {name!r}")
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise TypeError(f"provider type {name!r} must be a Provider subclass, got {cls!r}")
        with self._lock:
            current = self._types.get(name)
            if current is not None and current is not cls and not replace:
                raise ValueError(
                    f"provider type {name!r} is already {current.__qualname__}; "
                    "pass replace=True to replace it"
                )
            self._types[name] = cls
            self._plugin_errors.pop(name, None)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._types.pop(name, None)

    def get(self, name: str) -> type[Provider]:
        """The class for ``name``; ``ConfigError`` naming the known types if there is none."""
        with self._lock:
            cls = self._types.get(name)
            if cls is None and not self._plugins_loaded:
                self.load_plugins()
                cls = self._types.get(name)
            if cls is not None:
                return cls
            failed = self._plugin_errors.get(name)
            known = sorted(self._types)
        if failed is not None:
            raise ConfigError(f"provider type {name!r} is a plugin that failed to load: {failed}")
        raise ConfigError(f"unknown provider type {name!r}; known types: {', '.join(known)}")

    def names(self) -> tuple[str, ...]:
        """Every known type name, plugins included, sorted."""
        with self._lock:
            if not self._plugins_loaded:
                self.load_plugins()
            return tuple(sorted(self._types))

    def load_plugins(self) -> tuple[str, ...]:
        """Load the entry points of the plugin group; return the names registered now."""
        with self._lock:
            self._plugins_loaded = True
            if self._group is None:
                return ()
            loaded = []
            for entry in importlib.metadata.entry_points(group=self._group):
                if entry.name in self._types:
                    continue  # registered already, in code or by an earlier load
                try:
                    cls = entry.load()
                    self.register(entry.name, cls)
                except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the rest
                    reason = f"{type(exc).__name__}: {exc}"
                    self._plugin_errors[entry.name] = reason
                    log.warning(
                        "provider_plugin_failed", plugin=entry.name, value=entry.value, error=reason
                    )
                else:
                    loaded.append(entry.name)
            return tuple(loaded)

    def create(self, settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> Provider:
        """Validate ``settings`` against its type and build the provider."""
        try:
            cls = self.get(settings.type)
        except ConfigError as exc:
            raise ConfigError(str(exc), path=f"providers.{settings.name}.type") from None
        cls.validate_config(settings)
        return cls(settings, clock=clock)


REGISTRY: Final = ProviderRegistry()
"""The process-wide registry the config and the ProviderFactory use."""


def register_provider_type(name: str, cls: type[Provider], *, replace: bool = False) -> None:
    """Register ``cls`` as provider type ``name`` in the process-wide registry."""
    REGISTRY.register(name, cls, replace=replace)


def provider_type(name: str) -> type[Provider]:
    """The provider class registered as ``name`` (entry-point plugins included)."""
    return REGISTRY.get(name)


def provider_types() -> tuple[str, ...]:
    """Every registered provider type name, sorted."""
    return REGISTRY.names()


def create_provider(settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> Provider:
    """Build the provider ``settings`` describes, after validating them."""
    return REGISTRY.create(settings, clock=clock)
