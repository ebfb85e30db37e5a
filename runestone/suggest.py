"""Did you mean …? The closest known name to a misspelt one, for the errors that refuse it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "unknown_key"]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely misspells, or ``None`` when none is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key(key: object, allowed: Iterable[str], *, what: str = "unknown key") -> str:
    """``"unknown key; did you mean 'policy'?"``, or the keys allowed when none is close."""
    allowed = list(allowed)
    guess = closest(str(key), allowed)
    if guess is not None:
        return f"{what}; did you mean {guess!r}?"
    return f"{what}; expected one of: {', '.join(allowed)}" if allowed else what
