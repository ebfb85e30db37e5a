"""One upstream attempt, run on the data plane: events go straight to the caller's sink.

The attempt is the only place a chunk is touched: it forwards text, tool-call
deltas and passed-through frames to the request's sink as they arrive (recording what reached
the caller, so a cut stream can be continued), keeps the usage and finish
reason for the stream task, and turns every failure into a
:class:`ProviderError` result. Its stream task hears of it once, when it ends.

Continuation modes (ARCHITECTURE §3): ``PREFILL`` sends the delivered text as a
final assistant message and forwards what the model adds; ``REPLAY`` asks for
the whole answer, forwards nothing while it repeats the delivered text exactly,
then only what follows, and stops at the first divergence.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import msgspec
import structlog

from runestone.exceptions import ErrorClass, InternalProviderError, ProviderError, StreamCutError
from runestone.messages import (
    ChatRequest,
    Done,
    Message,
    Origin,
    Passthrough,
    ReasoningDelta,
    Role,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from runestone.providers import Provider
    from runestone.request.context import RequestContext
    from runestone.resilience import Permit

__all__ = ["AttemptMode", "AttemptOutcome", "OutcomeKind", "attempt_request", "run_attempt"]

log = structlog.get_logger(__name__)


class AttemptMode(enum.StrEnum):
    """How an attempt asks its provider: afresh, or continuing a cut stream (§3)."""

    FRESH = "fresh"
    PREFILL = "prefill"
    REPLAY = "replay"


class OutcomeKind(enum.StrEnum):
    """The kind of ending an attempt came to; its value is its outcome label but for
    ``FAILED``, whose label is the error's class (``rate_limited`` …)."""

    OK = "ok"
    FAILED = "failed"
    """The upstream failed: :attr:`AttemptOutcome.error` says how."""
    REPLAY_DIVERGED = "replay_diverged"
    """A replay stopped repeating the text already delivered."""
    INTERNAL_ERROR = "internal_error"
    """Our own code failed during the attempt (never the upstream's fault)."""
    UNAVAILABLE = "unavailable"
    """Never started: the provider's actor was gone, restarting or did not answer in time."""
    CIRCUIT_OPEN = "circuit_open"
    """Never started: the provider's actor refused a permit."""
    CANCELLED = "cancelled"
    """Started and called off (the deadline passed, the caller went away)."""


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How one attempt ended: the one record of it, from the attempt runner to the caller.

    :func:`run_attempt` returns it; the stream task adds the ``permit`` it ran under
    and tells it to the provider actor, which books it in its breaker, health figures
    and metrics; the request's context keeps it, and the caller's final event
    (``Done.attempts`` / ``StreamError.attempts``) reports it (:meth:`to_dict`).
    """

    provider: str
    model: str
    kind: OutcomeKind = OutcomeKind.OK
    latency: float = 0.0
    first_token: float | None = None
    mode: AttemptMode = AttemptMode.FRESH
    error: ProviderError | None = None
    """How it failed (for ``FAILED``, ``REPLAY_DIVERGED`` and ``INTERNAL_ERROR``)."""
    usage: Usage | None = None
    finish_reason: str = "stop"
    permit: Permit | None = field(default=None, compare=False, repr=False)
    """The permit it ran under, for the provider actor's books (None: it never ran)."""

    @property
    def ok(self) -> bool:
        """The attempt completed: the answer is whole."""
        return self.kind is OutcomeKind.OK

    @property
    def outcome(self) -> str:
        """Its label in the metrics and the caller's final event: ``ok``, an error class
        (``rate_limited`` …) or the kind of ending (``circuit_open`` …)."""
        if self.kind is OutcomeKind.FAILED and self.error is not None:
            return self.error.error_class.value
        return self.kind.value

    @property
    def error_class(self) -> ErrorClass | None:
        """The class of its failure, None when it completed."""
        return None if self.error is None else self.error.error_class

    @property
    def detail(self) -> str:
        """A short reason for its failure (never a key), for the health figures."""
        return "" if self.error is None else self.error.message[:200]

    def to_dict(self) -> dict[str, object]:
        """The attempt as the HTTP front and the legacy adapter report it."""
        return {
            "provider": self.provider,
            "model": self.model,
            "outcome": self.outcome,
            "latency": round(self.latency, 6),
            "first_token": None if self.first_token is None else round(self.first_token, 6),
            "mode": self.mode.value,
        }


def attempt_request(ctx: RequestContext, model: str, mode: AttemptMode) -> ChatRequest:
    """The request one attempt sends: the caller's, for ``model``, plus a prefill if asked.
    A continuation is never a pass-through: it extends the text delivered, in the one
    request model."""
    if mode is AttemptMode.FRESH:
        return ctx.request.replace(model=model)
    request = ctx.request.replace(model=model, native=None)
    if mode is AttemptMode.PREFILL:
        prefill = Message(role=Role.ASSISTANT, content=ctx.delivered_text)
        request = request.replace(messages=(*request.messages, prefill))
    return request


_OTHER_CONTENT: Final = frozenset({ToolCallDelta, ReasoningDelta, Passthrough})
"""Content events other than text: what a replay cannot repeat (but a passed-through
frame's text, which it can)."""


def _delivered(event: StreamEvent) -> str | None:
    """What ``event`` puts before the caller: its text, or None for anything else."""
    if type(event) is Passthrough and not event.opaque:
        return event.text
    return None


def _origin(provider: Provider, ctx: RequestContext, model: str) -> Origin:
    """Where the request's first content comes from: this attempt, after those recorded."""
    return Origin(provider.name, model, len(ctx.attempts) + 1)


async def run_attempt(
    provider: Provider,
    ctx: RequestContext,
    model: str,
    mode: AttemptMode = AttemptMode.FRESH,
    token: object = None,
) -> AttemptOutcome:
    """Run one attempt against ``provider``; never raises but for cancellation.

    ``token`` is what the request's context must hold (:meth:`RequestContext.own`) for
    this attempt to deliver; once fenced off it ends as cancelled, delivering nothing more.
    """
    if token is None:
        token = object()
        ctx.own(token)
    loop = asyncio.get_running_loop()
    started = loop.time()
    request = attempt_request(ctx, model, mode)
    sink = ctx.sink
    first_token: float | None = None
    usage: Usage | None = None
    finish = "stop"
    # REPLAY: the text still to be matched before anything is forwarded.
    pending = ctx.delivered_text if mode is AttemptMode.REPLAY else ""

    def ended(
        kind: OutcomeKind, error: ProviderError, first: float | None = None
    ) -> AttemptOutcome:
        return AttemptOutcome(
            provider.name, model, kind, loop.time() - started, first, mode, error=error
        )

    try:
        if ctx.stream:
            async for event in provider.stream(request):
                if type(event) is TextDelta:
                    text = event.text
                    if pending:
                        if pending.startswith(text):
                            pending = pending[len(text) :]
                            continue
                        if not text.startswith(pending):
                            return ended(
                                OutcomeKind.REPLAY_DIVERGED,
                                StreamCutError(
                                    "replay diverged from the text already delivered",
                                    provider=provider.name,
                                    model=model,
                                    content_delivered=True,
                                ),
                            )
                        text = text[len(pending) :]
                        pending = ""
                        if not text:
                            continue
                        event = TextDelta(text)
                    if first_token is None:
                        first_token = loop.time() - started
                    if not ctx.committed:
                        event = TextDelta(text, _origin(provider, ctx, model))
                    if not ctx.deliver(token, text):
                        raise asyncio.CancelledError  # fenced off: its task moved on
                    await sink.send(event)
                elif type(event) in _OTHER_CONTENT:
                    if first_token is None:
                        first_token = loop.time() - started
                    if not ctx.committed:
                        event = msgspec.structs.replace(event, origin=_origin(provider, ctx, model))
                    if not ctx.deliver(token, _delivered(event)):
                        raise asyncio.CancelledError  # fenced off: its task moved on
                    await sink.send(event)
                elif type(event) is Usage:
                    usage = event
                elif type(event) is Done:
                    finish = event.finish_reason
                    usage = event.usage or usage
            if pending:
                # The replayed answer ended before it even repeated what was delivered.
                return ended(
                    OutcomeKind.REPLAY_DIVERGED,
                    StreamCutError(
                        "replay ended before repeating the text already delivered",
                        provider=provider.name,
                        model=model,
                        content_delivered=True,
                    ),
                )
        else:
            completion = await provider.complete(request)
            first_token = loop.time() - started
            for event in completion.events():
                if type(event) is TextDelta:
                    if not ctx.deliver(token, event.text):
                        raise asyncio.CancelledError  # fenced off: its task moved on
                    await sink.send(event)
                elif type(event) in _OTHER_CONTENT:
                    if not ctx.deliver(token, _delivered(event)):
                        raise asyncio.CancelledError
                    await sink.send(event)
            usage = completion.usage
            finish = completion.finish_reason
    except ProviderError as exc:
        if ctx.committed:
            exc.content_delivered = True
        return ended(OutcomeKind.FAILED, exc, first_token)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # A bug of ours in a provider, not an upstream failure: logged in full, and classed
        # INTERNAL so it is neither retried nor failed over nor held against the circuit.
        log.error("attempt_internal_error", provider=provider.name, model=model, exc_info=True)
        error = InternalProviderError(
            f"internal error in provider {provider.name!r}: {type(exc).__name__}",
            provider=provider.name,
            model=model,
            content_delivered=ctx.committed,
        )
        return ended(OutcomeKind.INTERNAL_ERROR, error, first_token)
    outcome = AttemptOutcome(
        provider.name,
        model,
        OutcomeKind.OK,
        loop.time() - started,
        first_token,
        mode,
        usage=usage,
        finish_reason=finish,
    )
    # The answer is whole: its terminal events go to the caller from here, at once, not
    # after a round trip through the stream task (which only keeps the books).
    if ctx.claim_terminal(token):
        if usage is not None:
            await sink.send(usage)
        await sink.send(
            Done(
                finish,
                provider.name,
                model,
                usage,
                attempts=(*ctx.attempts, outcome),
                cost=None if usage is None else provider.estimate_cost(model, usage),
            )
        )
        sink.finish()
    return outcome
