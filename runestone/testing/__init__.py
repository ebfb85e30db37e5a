"""Test tools for Runestone and its users: a fake clock and a fault-injecting fake upstream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runestone.testing.clock import FakeClock

if TYPE_CHECKING:
    from runestone.testing.upstream import (
        CACHE_CREATION_TOKENS,
        CACHE_READ_TOKENS,
        KNOWN_SIGNATURE,
        KNOWN_TEXT,
        KNOWN_THOUGHT,
        KNOWN_TOKENS,
        KNOWN_TOOL_ARGUMENTS,
        Attempt,
        Behaviour,
        FakeUpstream,
        Outcome,
    )

__all__ = [
    "CACHE_CREATION_TOKENS",
    "CACHE_READ_TOKENS",
    "KNOWN_SIGNATURE",
    "KNOWN_TEXT",
    "KNOWN_THOUGHT",
    "KNOWN_TOKENS",
    "KNOWN_TOOL_ARGUMENTS",
    "Attempt",
    "Behaviour",
    "FakeClock",
    "FakeUpstream",
    "Outcome",
]

# The upstream names load on first use: importing the package for FakeClock should not
# pull in aiohttp, and `python -m runestone.testing.upstream` must not find its module
# already imported by this package (runpy warns about that).
_UPSTREAM_NAMES = frozenset(__all__) - {"FakeClock"}


def __getattr__(name: str) -> Any:
    if name in _UPSTREAM_NAMES:
        from runestone.testing import upstream

        return getattr(upstream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
