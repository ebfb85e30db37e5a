"""Logging, configured once: structlog for our events, stdlib records rendered the same way.

pykka, aiohttp and uvicorn log through the standard library; a
:class:`structlog.stdlib.ProcessorFormatter` renders their records with the
same processors as ours. A redaction processor removes API keys and
authorization headers from every event before it is rendered.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["REDACTED", "configure_logging", "redact", "redact_text"]

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"(api[_-]?key|authorization|x-api-key|secret|password|passwd|token|bearer|cookie)",
    re.IGNORECASE,
)
# Bearer tokens, and the key shapes OpenAI and Anthropic hand out.
_SECRET_TEXT = re.compile(
    r"(?i:bearer\s+)[A-Za-z0-9._~+/=-]+|\bsk-[A-Za-z0-9_-]{8,}|\bsk-ant-[A-Za-z0-9_-]{8,}"
)
_NOT_SECRET_SUFFIX = ("_tokens", "tokens")

_configured = False


def redact_text(text: str) -> str:
    """``text`` with bearer tokens and API-key-shaped strings replaced."""
    return _SECRET_TEXT.sub(REDACTED, text)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered.endswith(_NOT_SECRET_SUFFIX):  # prompt_tokens, max_tokens: counts, not secrets
        return False
    return bool(_SECRET_KEY.search(lowered))


def _redact_value(key: str, value: Any) -> Any:
    if _is_secret_key(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(key, v) for v in value)
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no API key or authorization header survives into a log line."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(key, value)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def configure_logging(level: str | int = "INFO", *, json: bool = False) -> None:
    """Configure structlog and the stdlib root logger once; later calls only change the level."""
    global _configured
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    root.setLevel(numeric)
    if _configured:
        return
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            # First, so an event below the level costs no more processing.
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root.handlers[:] = [handler]
    _configured = True
