"""JSON in and out (the HTTP front, the upstreams): orjson when it is installed, the standard
library if not.

Both give compact UTF-8 bytes; a chunk of a stream is serialised once per event, so
the faster encoder is worth having on the hot path. :func:`json_kind` names a
parsed value's JSON type for error messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["JSONDecodeError", "dumps", "json_kind", "loads"]

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

JSONDecodeError: type[ValueError] = ValueError
"""What :func:`loads` raises for text that is not JSON (both decoders raise a ValueError)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


if _orjson is not None:

    def dumps(value: Any) -> bytes:
        """``value`` as compact UTF-8 JSON."""
        result: bytes = _orjson.dumps(value)
        return result

    def loads(data: bytes | str) -> Any:
        """Parse JSON text; raises :data:`JSONDecodeError` (a ``ValueError``) if it is not."""
        return _orjson.loads(data)

else:  # pragma: no cover - depends on the environment

    def dumps(value: Any) -> bytes:
        """``value`` as compact UTF-8 JSON."""
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def loads(data: bytes | str) -> Any:
        """Parse JSON text; raises :data:`JSONDecodeError` (a ``ValueError``) if it is not."""
        # NaN and Infinity are not JSON; orjson refuses them too.
        return json.loads(data, parse_constant=_reject_constant)


def json_kind(value: object) -> str:
    """What JSON type ``value`` is, for a message: ``"a string"``, ``"null"``, ``"an object"`` …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
