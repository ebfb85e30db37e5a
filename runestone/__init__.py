"""Runestone: an LLM gateway built as an Erlang-style supervised actor system on pykka.

::

    import runestone
    system = runestone.start("my-config.yaml")   # a path, a dict or a Config
    for event in system.stream({"model": "fast", "messages": [...], "stream": True}):
        ...
    system.stop()
"""

from __future__ import annotations

from runestone.config import Config, load_config
from runestone.exceptions import (
    ActorCrashedError,
    ActorUnavailableError,
    ChildStartError,
    ConfigError,
    ErrorClass,
    EscalationError,
    NoCandidatesError,
    NoHealthyUpstreamError,
    OverloadedError,
    ProviderError,
    RequestValidationError,
    RunestoneError,
)
from runestone.messages import (
    ChatRequest,
    Done,
    Event,
    Passthrough,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from runestone.providers import register_provider_type
from runestone.system import EventStream, Response, System, start

__all__ = [
    "ActorCrashedError",
    "ActorUnavailableError",
    "ChatRequest",
    "ChildStartError",
    "Config",
    "ConfigError",
    "Done",
    "ErrorClass",
    "EscalationError",
    "Event",
    "EventStream",
    "NoCandidatesError",
    "NoHealthyUpstreamError",
    "OverloadedError",
    "Passthrough",
    "ProviderError",
    "RequestValidationError",
    "Response",
    "RunestoneError",
    "StreamError",
    "System",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "__version__",
    "load_config",
    "register_provider_type",
    "start",
]

__version__ = "0.1.0"
