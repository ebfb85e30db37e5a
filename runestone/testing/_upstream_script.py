"""What the fake upstream does with one request: a script of bytes, pauses and an ending.

:func:`script_for` is pure: given the request, the wire format and the
server's state (is this the model's first request since reset, how long since
reset), it returns the :class:`Script` the server then plays on the socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum, StrEnum

from runestone.testing._upstream_behaviour import Behaviour
from runestone.testing._upstream_request import ChatCall
from runestone.testing._upstream_wire import (
    KNOWN_TEXT,
    KNOWN_TOKENS,
    KNOWN_TOOL_ARGUMENT_PIECES,
    ErrorKind,
    Finish,
    Reply,
    ToolCall,
    Wire,
)

__all__ = ["Ending", "Outcome", "Script", "Timing", "script_for"]

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"


class Outcome(StrEnum):
    """What the fake upstream did with an attempt (a ``str``: compare with plain strings)."""

    OK = "ok"
    PREFILL = "prefill"
    TOOL_CALL = "tool_call"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    OVERLOADED = "overloaded"
    DOWN = "down"
    RESET = "reset"
    BLACKHOLE = "blackhole"
    CUT = "cut"
    STALLED = "stalled"
    MALFORMED = "malformed"
    NO_DONE = "no_done"
    ERROR_EVENT = "error_event"
    CONTEXT_LENGTH = "context_length"
    CONTENT_POLICY = "content_policy"
    PREFILL_REJECTED = "prefill_rejected"
    UNAUTHORIZED = "unauthorized"
    BAD_REQUEST = "bad_request"


class Ending(Enum):
    """How the server leaves the connection once the script's steps are played."""

    COMPLETE = "complete"
    """Finish the response properly (terminal chunk; keep-alive as usual)."""
    CUT = "cut"
    """Close the connection mid-body (FIN after the bytes already written)."""
    STALL = "stall"
    """Write nothing more; hold the connection until the client or the server closes it."""
    RESET = "reset"
    """TCP reset (SO_LINGER 0 then close) before any response byte."""
    BLACKHOLE = "blackhole"
    """No response at all; hold the connection until the client or the server closes it."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Pacing of healthy answers."""

    first_token_delay: float = 0.0
    token_interval: float = 0.0


@dataclass(frozen=True, slots=True)
class Script:
    """The response to play: status and headers, then steps (bytes to write, float = pause)."""

    outcome: Outcome
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    steps: tuple[bytes | float, ...] = ()
    ending: Ending = Ending.COMPLETE
    content_length: int | None = None
    """Declared body length; ``None`` means chunked (an SSE stream)."""


# Behaviours that fail before any answer, whatever the request: behaviour -> (error, outcome).
_ALWAYS_FAILING: dict[Behaviour, tuple[ErrorKind, Outcome]] = {
    Behaviour.RATE_LIMIT: (ErrorKind.RATE_LIMITED, Outcome.RATE_LIMITED),
    Behaviour.UNAVAILABLE: (ErrorKind.UNAVAILABLE, Outcome.UNAVAILABLE),
    Behaviour.OVERLOADED: (ErrorKind.OVERLOADED, Outcome.OVERLOADED),
    Behaviour.CONTEXT_LENGTH: (ErrorKind.CONTEXT_LENGTH, Outcome.CONTEXT_LENGTH),
    Behaviour.CONTENT_POLICY: (ErrorKind.CONTENT_POLICY, Outcome.CONTENT_POLICY),
    Behaviour.UNAUTHORIZED: (ErrorKind.UNAUTHORIZED, Outcome.UNAUTHORIZED),
}
_STOPS_AFTER_N = (
    Behaviour.CUT_AFTER,
    Behaviour.STALL_AFTER,
    Behaviour.ERROR_EVENT_AFTER,
    Behaviour.INVALID_EVENT_AFTER,
)


def error_script(
    wire: Wire,
    kind: ErrorKind,
    outcome: Outcome,
    *,
    detail: str = "",
    input_tokens: int = 1,
    headers: tuple[tuple[str, str], ...] = (),
) -> Script:
    """A JSON error response in ``wire``'s shape."""
    status, body = wire.error(kind, detail, input_tokens)
    data = json.dumps(body).encode()
    return Script(
        outcome,
        status=status,
        headers=(("Content-Type", JSON_CONTENT_TYPE), *headers),
        steps=(data,),
        content_length=len(data),
    )


def script_for(
    call: ChatCall, wire: Wire, reply: Reply, timing: Timing, *, first: bool, elapsed: float
) -> Script:
    """The script for ``call``.

    ``first``: no request for this exact model since start/reset (drives the
    ``*-once`` behaviours). ``elapsed``: seconds since start/reset (``down-for``).
    """
    behaviour, arg = call.selection.behaviour, call.selection.arg
    failing = _ALWAYS_FAILING.get(behaviour)
    if failing is not None:
        return error_script(wire, *failing, input_tokens=call.input_tokens)
    if behaviour is Behaviour.RATE_LIMIT_ONCE and first:
        seconds = float(arg if arg is not None else 1.0)
        retry = (
            ("Retry-After", _seconds_text(seconds)),
            ("retry-after-ms", f"{seconds * 1000:.0f}"),
        )
        return error_script(wire, ErrorKind.RATE_LIMITED, Outcome.RATE_LIMITED, headers=retry)
    if behaviour is Behaviour.ERROR_ONCE and first:
        return error_script(wire, ErrorKind.SERVER_ERROR, Outcome.SERVER_ERROR)
    if behaviour is Behaviour.DOWN_FOR and elapsed < float(arg or 0.0):
        return error_script(wire, ErrorKind.UNAVAILABLE, Outcome.DOWN)
    if behaviour is Behaviour.REJECT_PREFILL and call.last_assistant_text is not None:
        return error_script(wire, ErrorKind.PREFILL_REJECTED, Outcome.PREFILL_REJECTED)
    if behaviour is Behaviour.RESET:
        return Script(Outcome.RESET, ending=Ending.RESET)
    if behaviour is Behaviour.BLACKHOLE:
        return Script(Outcome.BLACKHOLE, ending=Ending.BLACKHOLE)
    return _answer(call, wire, reply, timing)


def _answer(call: ChatCall, wire: Wire, reply: Reply, timing: Timing) -> Script:
    behaviour, arg = call.selection.behaviour, call.selection.arg
    outcome = Outcome.OK
    tool: ToolCall | None = None
    pieces = KNOWN_TOKENS
    if behaviour is Behaviour.TOOL_CALL and call.tool_name is not None:
        tool_id = wire.tool_id_prefix + reply.id.removeprefix(wire.id_prefix)
        tool = ToolCall(tool_id, call.tool_name)
        pieces = KNOWN_TOOL_ARGUMENT_PIECES
        outcome = Outcome.TOOL_CALL
    elif behaviour is Behaviour.PREFILL and call.last_assistant_text is not None:
        prefix = call.last_assistant_text
        if KNOWN_TEXT.startswith(prefix):
            pieces = _rest_of_known_text(len(prefix))
            outcome = Outcome.PREFILL
    first_delay = timing.first_token_delay
    if behaviour is Behaviour.SLOW_FIRST_TOKEN:
        first_delay = float(arg or 0.0)
    if call.stream:
        return _stream(call, wire, reply, pieces, tool, outcome, first_delay, timing.token_interval)
    return _whole(call, wire, reply, pieces, tool, outcome, first_delay, timing.token_interval)


def _stream(
    call: ChatCall,
    wire: Wire,
    reply: Reply,
    pieces: tuple[str, ...],
    tool: ToolCall | None,
    outcome: Outcome,
    first_delay: float,
    interval: float,
) -> Script:
    behaviour = call.selection.behaviour
    stop_after = int(call.selection.arg or 0) if behaviour in _STOPS_AFTER_N else None
    malformed_at = len(pieces) // 2 if behaviour is Behaviour.MALFORMED_CHUNK else None
    delta = wire.text_delta if tool is None else wire.tool_delta
    steps: list[bytes | float] = [*wire.stream_start(reply, tool)]
    for index, piece in enumerate(pieces):
        if index == stop_after:
            break
        if index == malformed_at:
            steps.append(wire.malformed(reply))
        pause = first_delay if index == 0 else interval
        if pause > 0:
            steps.append(pause)
        steps.append(delta(reply, piece))
    headers = (("Content-Type", SSE_CONTENT_TYPE), ("Cache-Control", "no-cache"))
    if behaviour is Behaviour.CUT_AFTER:
        return Script(Outcome.CUT, headers=headers, steps=_coalesced(steps), ending=Ending.CUT)
    if behaviour is Behaviour.STALL_AFTER:
        stalled = _coalesced(steps)
        return Script(Outcome.STALLED, headers=headers, steps=stalled, ending=Ending.STALL)
    if behaviour is Behaviour.ERROR_EVENT_AFTER:
        steps.append(wire.error_event())
        return Script(Outcome.ERROR_EVENT, headers=headers, steps=_coalesced(steps))
    if behaviour is Behaviour.INVALID_EVENT_AFTER:
        steps.append(wire.error_event(ErrorKind.BAD_REQUEST))
        return Script(Outcome.ERROR_EVENT, headers=headers, steps=_coalesced(steps))
    finish = Finish.STOP if tool is None else Finish.TOOL
    steps.extend(wire.stream_finish(reply, finish, len(pieces)))
    if behaviour is Behaviour.NO_DONE:
        outcome = Outcome.NO_DONE
    else:
        steps.append(wire.stream_end())
    if behaviour is Behaviour.MALFORMED_CHUNK:
        outcome = Outcome.MALFORMED
    return Script(outcome, headers=headers, steps=_coalesced(steps))


def _whole(
    call: ChatCall,
    wire: Wire,
    reply: Reply,
    pieces: tuple[str, ...],
    tool: ToolCall | None,
    outcome: Outcome,
    first_delay: float,
    interval: float,
) -> Script:
    behaviour = call.selection.behaviour
    if behaviour is Behaviour.ERROR_EVENT_AFTER:
        # No stream to put an error event in: the same failure as a status.
        if wire.api == "anthropic":
            return error_script(wire, ErrorKind.OVERLOADED, Outcome.OVERLOADED)
        return error_script(wire, ErrorKind.SERVER_ERROR, Outcome.SERVER_ERROR)
    if behaviour is Behaviour.INVALID_EVENT_AFTER:
        return error_script(wire, ErrorKind.BAD_REQUEST, Outcome.BAD_REQUEST)
    text = None if tool is not None else "".join(pieces)
    data = json.dumps(wire.body(reply, text, tool, len(pieces))).encode()
    headers = (("Content-Type", JSON_CONTENT_TYPE),)
    # A whole answer takes as long as its stream would have.
    pause = first_delay + interval * max(0, len(pieces) - 1)
    pauses: tuple[float, ...] = (pause,) if pause > 0 else ()
    if behaviour is Behaviour.CUT_AFTER:
        half: tuple[bytes | float, ...] = (*pauses, data[: len(data) // 2])
        return Script(Outcome.CUT, 200, headers, half, Ending.CUT, content_length=len(data))
    if behaviour is Behaviour.STALL_AFTER:
        return Script(Outcome.STALLED, 200, headers, (), Ending.STALL, content_length=len(data))
    if behaviour is Behaviour.MALFORMED_CHUNK:
        data = data[: len(data) // 2]
        outcome = Outcome.MALFORMED
    steps: tuple[bytes | float, ...] = (*pauses, data)
    return Script(outcome, 200, headers, steps, content_length=len(data))


def _coalesced(steps: list[bytes | float]) -> tuple[bytes | float, ...]:
    """Frames with no pause between them joined into one write (fewer syscalls, same bytes)."""
    merged: list[bytes | float] = []
    pending: list[bytes] = []
    for step in steps:
        if isinstance(step, bytes):
            pending.append(step)
            continue
        if pending:
            merged.append(b"".join(pending))
            pending.clear()
        merged.append(step)
    if pending:
        merged.append(b"".join(pending))
    return tuple(merged)


def _rest_of_known_text(offset: int) -> tuple[str, ...]:
    """The tokens of KNOWN_TEXT after its first ``offset`` characters (a token may be split)."""
    rest: list[str] = []
    start = 0
    for token in KNOWN_TOKENS:
        end = start + len(token)
        if end > offset:
            rest.append(token[max(0, offset - start) :])
        start = end
    return tuple(rest)


def _seconds_text(seconds: float) -> str:
    """``1.0`` -> ``"1"``, ``0.05`` -> ``"0.05"``: Retry-After as the test wrote it."""
    return f"{seconds:f}".rstrip("0").rstrip(".")
