"""Runestone: an LLM gateway built as an Erlang-style supervised actor system on pykka."""

from __future__ import annotations

from runestone.exceptions import (
    ActorCrashedError,
    ActorUnavailableError,
    ChildStartError,
    ConfigError,
    EscalationError,
    ProviderError,
    RunestoneError,
)

__all__ = [
    "ActorCrashedError",
    "ActorUnavailableError",
    "ChildStartError",
    "ConfigError",
    "EscalationError",
    "ProviderError",
    "RunestoneError",
    "__version__",
]

__version__ = "0.1.0"
