"""Checks shared by the policy dataclasses: every bad value names its field."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from runestone.exceptions import ConfigError
from runestone.suggest import unknown_key

__all__ = ["check_fraction", "check_int", "check_number", "from_mapping"]

_T = TypeVar("_T")


def check_number(
    name: str,
    value: object,
    *,
    minimum: float = 0.0,
    exclusive: bool = False,
    allow_none: bool = False,
) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` is a finite number >= minimum."""
    if value is None and allow_none:
        return
    # bool is an int subclass; `window: true` is a typo, not one second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"expected a number, got {value!r}", path=name)
    if not math.isfinite(value):
        raise ConfigError(f"expected a finite number, got {value!r}", path=name)
    if value < minimum or (exclusive and value == minimum):
        relation = ">" if exclusive else ">="
        raise ConfigError(f"expected a number {relation} {minimum:g}, got {value!r}", path=name)


def check_int(name: str, value: object, *, minimum: int) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` is an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"expected a whole number, got {value!r}", path=name)
    if value < minimum:
        raise ConfigError(f"expected a whole number >= {minimum}, got {value!r}", path=name)


def check_fraction(name: str, value: object, *, allow_zero: bool, allow_one: bool) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` lies in [0, 1] as allowed."""
    check_number(name, value, minimum=0.0, exclusive=not allow_zero)
    assert isinstance(value, int | float)  # narrowed by check_number
    if value > 1 or (value == 1 and not allow_one):
        bound = "<= 1" if allow_one else "< 1"
        raise ConfigError(f"expected a fraction {bound}, got {value!r}", path=name)


def from_mapping(factory: Callable[..., _T], fields: frozenset[str], data: object, path: str) -> _T:
    """Build ``factory(**data)`` from a config mapping; errors carry the full key path."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", path=path)
    unknown = sorted(str(key) for key in data if key not in fields)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(unknown_key(unknown[0], sorted(fields)), path=where)
    kwargs: dict[str, Any] = {str(key): value for key, value in data.items()}
    try:
        return factory(**kwargs)
    except ConfigError as exc:
        raise ConfigError(
            str(exc).removeprefix(f"{exc.path}: "), path=f"{path}.{exc.path}" if path else exc.path
        ) from exc
