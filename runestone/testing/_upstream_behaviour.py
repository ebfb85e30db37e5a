"""Which fault the fake upstream plays: parsed from the request's ``model`` field.

A model is ``"<behaviour>"`` or ``"<behaviour>:<arg>"``. A name that is not a
behaviour (``gpt-4o-mini``, ``llama3:8b``) is served as ``healthy``; a known
behaviour with a missing or bad argument is an error naming the problem, so a
typo in a test never silently turns into a healthy answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, StrEnum

__all__ = ["ArgKind", "Behaviour", "BehaviourError", "Selection", "parse_model"]


class Behaviour(StrEnum):
    """Every behaviour the fake upstream can play; the value is the model name."""

    HEALTHY = "healthy"
    RATE_LIMIT_ONCE = "rate-limit-once"
    RATE_LIMIT = "rate-limit"
    ERROR_ONCE = "error-once"
    UNAVAILABLE = "unavailable"
    OVERLOADED = "overloaded"
    RESET = "reset"
    BLACKHOLE = "blackhole"
    SLOW_FIRST_TOKEN = "slow-first-token"
    CUT_AFTER = "cut-after"
    STALL_AFTER = "stall-after"
    MALFORMED_CHUNK = "malformed-chunk"
    NO_DONE = "no-done"
    ERROR_EVENT_AFTER = "error-event-after"
    INVALID_EVENT_AFTER = "invalid-event-after"
    CONTEXT_LENGTH = "context-length"
    CONTENT_POLICY = "content-policy"
    PREFILL = "prefill"
    REJECT_PREFILL = "reject-prefill"
    DOWN_FOR = "down-for"
    UNAUTHORIZED = "unauthorized"
    TOOL_CALL = "tool-call"
    THINKING = "thinking"


class ArgKind(Enum):
    """What may follow the ``:`` of a behaviour."""

    NONE = "no argument"
    SECONDS = "a number of seconds"
    TOKENS = "a whole number of tokens"


@dataclass(frozen=True, slots=True)
class _ArgSpec:
    kind: ArgKind
    required: bool = False
    default: float | None = None
    example: str = ""


_ARGS: dict[Behaviour, _ArgSpec] = {
    Behaviour.RATE_LIMIT_ONCE: _ArgSpec(ArgKind.SECONDS, default=1.0, example="2"),
    Behaviour.SLOW_FIRST_TOKEN: _ArgSpec(ArgKind.SECONDS, required=True, example="0.5"),
    Behaviour.CUT_AFTER: _ArgSpec(ArgKind.TOKENS, required=True, example="3"),
    Behaviour.STALL_AFTER: _ArgSpec(ArgKind.TOKENS, required=True, example="3"),
    Behaviour.ERROR_EVENT_AFTER: _ArgSpec(ArgKind.TOKENS, required=True, example="3"),
    Behaviour.INVALID_EVENT_AFTER: _ArgSpec(ArgKind.TOKENS, required=True, example="3"),
    Behaviour.DOWN_FOR: _ArgSpec(ArgKind.SECONDS, required=True, example="30"),
}
_NO_ARG = _ArgSpec(ArgKind.NONE)
_BY_NAME = {b.value: b for b in Behaviour}


class BehaviourError(ValueError):
    """A model names a behaviour but its argument is missing or unusable."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The behaviour a request selected, with its parsed argument (``None`` if it takes none)."""

    model: str
    behaviour: Behaviour
    arg: float | int | None = None


def parse_model(model: str) -> Selection:
    """Parse a request's model name; raise :class:`BehaviourError` on a bad argument."""
    name, colon, raw = model.partition(":")
    behaviour = _BY_NAME.get(name)
    if behaviour is None:
        return Selection(model, Behaviour.HEALTHY)
    spec = _ARGS.get(behaviour, _NO_ARG)
    if not colon:
        if spec.required:
            raise BehaviourError(
                f"behaviour {name!r} needs {spec.kind.value} after ':' "
                f"(e.g. '{name}:{spec.example}'), got {model!r}"
            )
        return Selection(model, behaviour, spec.default)
    if spec.kind is ArgKind.NONE:
        raise BehaviourError(f"behaviour {name!r} takes no argument, got {model!r}")
    return Selection(model, behaviour, _parse_arg(name, spec, raw))


def _parse_arg(name: str, spec: _ArgSpec, raw: str) -> float | int:
    problem = f"behaviour {name!r} takes {spec.kind.value} after ':', got {raw!r}"
    if spec.kind is ArgKind.TOKENS:
        if not raw.isascii() or not raw.isdigit():
            raise BehaviourError(problem)
        return int(raw)
    try:
        seconds = float(raw)
    except ValueError:
        raise BehaviourError(problem) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise BehaviourError(f"{problem} (it must be finite and not negative)")
    return seconds
