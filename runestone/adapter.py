"""The old call shape, kept working on the new system: ``stream_chat(request, on_event)``.

Events use the old vocabulary, one dict each::

    {"type": "delta_text", "text": "..."}
    {"type": "metadata", "provider": ..., "model": ..., "usage": {...}, "cost": ...,
     "attempts": [...]}
    {"type": "done", "finish_reason": "stop"}
    {"type": "error", "error": {"class": ..., "message": ..., "provider": ..., ...}}

(tool-call pieces arrive as ``metadata`` with a ``tool_call`` key). Model
selection is the Router's: a request without ``model`` asks for the ``default``
alias, which the config defines (the legacy config shape maps each provider's
``default_model`` onto it); no model is named here.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from runestone.exceptions import RunestoneError
from runestone.messages import Done, StreamError, TextDelta, ToolCallDelta, Usage
from runestone.system import System, start

__all__ = ["DEFAULT_ALIAS", "default_system", "stream_chat"]

DEFAULT_ALIAS = "default"
"""The alias a request without ``model`` is routed by (defined in config, not here)."""

_lock = threading.Lock()
_system: System | None = None


def default_system() -> System:
    """The process-wide system the adapter uses: started on first use from
    ``$RUNESTONE_CONFIG`` (or the bundled config), stopped at exit."""
    global _system
    with _lock:
        if _system is None:
            _system = start(os.environ.get("RUNESTONE_CONFIG") or None)
            atexit.register(_system.stop)
        return _system


def stream_chat(
    request: Mapping[str, Any],
    on_event: Callable[[dict[str, Any]], object],
    *,
    system: System | None = None,
) -> str:
    """Stream ``request``, calling ``on_event`` with each old-style event; returns the text.

    Every call ends with exactly one ``done`` or ``error`` event; a request that
    cannot even start (bad request, overloaded) is reported as ``error`` too.
    """
    target = system or default_system()
    body = dict(request)
    body.setdefault("model", DEFAULT_ALIAS)
    body["stream"] = True
    text: list[str] = []
    try:
        stream = target.stream(body)
    except RunestoneError as exc:
        on_event({"type": "error", "error": {"class": type(exc).__name__, "message": str(exc)}})
        return ""
    usage: Usage | None = None
    with stream:
        for event in stream:
            if isinstance(event, TextDelta):
                text.append(event.text)
                on_event({"type": "delta_text", "text": event.text})
            elif isinstance(event, ToolCallDelta):
                on_event(
                    {
                        "type": "metadata",
                        "tool_call": {
                            "index": event.index,
                            "id": event.id,
                            "name": event.name,
                            "arguments": event.arguments,
                        },
                    }
                )
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Done):
                usage = event.usage or usage
                on_event(
                    {
                        "type": "metadata",
                        "provider": event.provider,
                        "model": event.model,
                        "usage": None
                        if usage is None
                        else {
                            "prompt_tokens": usage.prompt_tokens,
                            "completion_tokens": usage.completion_tokens,
                            "total_tokens": usage.total_tokens,
                        },
                        "cost": event.cost,
                        "attempts": [a.to_dict() for a in event.attempts],
                    }
                )
                on_event({"type": "done", "finish_reason": str(event.finish_reason)})
            elif isinstance(event, StreamError):
                on_event(
                    {
                        "type": "error",
                        "error": {
                            "class": event.error_class.value,
                            "kind": "" if event.kind is None else event.kind.value,
                            "message": event.message,
                            "provider": event.provider,
                            "model": event.model,
                            "retry_after": event.retry_after,
                            "content_delivered": event.content_delivered,
                        },
                    }
                )
    return "".join(text)
