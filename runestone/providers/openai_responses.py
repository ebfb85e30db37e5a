"""OpenAI's Responses API read for the books: ``POST {base_url}/responses``, passed through.

A Responses request is sent as the client wrote it (its model and ``stream`` set) to an
upstream that speaks the API, and its answer goes back unchanged; the gateway reads it
only for what it must know itself — the content (its commit point), the finish reason,
the usage and a failure:

=========================================  ============================================
Responses stream event                     read as
=========================================  ============================================
``response.output_text.delta``,            text (:class:`TextDelta`)
``response.refusal.delta``
``response.output_item.added``             a tool call's id and name
(a ``function_call`` item)                 (:class:`ToolCallDelta`)
``response.function_call_arguments.delta`` its arguments
``response.reasoning_summary_text.delta``, reasoning (:class:`ReasoningDelta`)
``response.reasoning_text.delta``
``response.completed``,                    the finish reason, the usage and the end
``response.incomplete``
``response.failed``, ``error``             the failure (classified as any error body)
=========================================  ============================================

Every other event (``response.created``, ``response.content_part.added`` …) is passed
on as it came; those before the first content wait for it (the commit point). A stream
passed through is never continued by another upstream: its items and sequence numbers
are the upstream's own, so every content frame is opaque to a continuation.

A whole answer (``object: response``) is read from its ``output`` items (``message``
items' ``output_text`` and ``refusal`` parts, ``function_call`` items, ``reasoning``
summaries) and ``usage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from runestone.messages import (
    ChatRequest,
    Completion,
    FinishReason,
    NativeBody,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from runestone.providers.errors import AttemptState, classify_error_body
from runestone.providers.http import StreamDecoder, loads
from runestone.providers.openai_usage import read_usage
from runestone.providers.sse import SSEEvent

__all__ = [
    "OpenAIResponsesStreamDecoder",
    "decode_response",
    "responses_finish_reason",
    "responses_usage",
]

_INCOMPLETE: Final[Mapping[str, str]] = {
    "max_output_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}
_TEXT_EVENTS: Final = frozenset({"response.output_text.delta", "response.refusal.delta"})
_REASONING_EVENTS: Final = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)
_ENDS: Final = frozenset({"response.completed", "response.incomplete"})


def responses_usage(data: object) -> Usage | None:
    """A Responses ``usage`` object as :class:`Usage` (None when there is none)."""
    return read_usage(data, "input", "output")


def responses_finish_reason(response: Mapping[str, Any]) -> str:
    """The finish reason of a finished ``response`` object: ``length`` or
    ``content_filter`` for an incomplete one, ``tool_calls`` when its output ends in
    function calls, else ``stop``."""
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return _INCOMPLETE.get(str(reason), FinishReason.LENGTH)
    output = response.get("output") or ()
    if any(isinstance(item, Mapping) and item.get("type") == "function_call" for item in output):
        return FinishReason.TOOL_CALLS
    return FinishReason.STOP


class OpenAIResponsesStreamDecoder(StreamDecoder):
    """Responses stream events to stream events (see the module docstring)."""

    __slots__ = ("_calls",)

    def __init__(
        self, request: ChatRequest, state: AttemptState, native: NativeBody | None = None
    ) -> None:
        super().__init__(request, state, native)
        self._calls: dict[int, int] = {}  # output_index -> tool-call index

    def decode(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        try:
            data = loads(event.raw)
            kind = data.get("type") or event.event
            if kind in _TEXT_EVENTS:
                delta = data.get("delta")
                if delta:
                    out.append(TextDelta(delta))
                    self.has_content = True
            elif kind == "response.function_call_arguments.delta":
                delta = data.get("delta")
                index = self._calls.get(data.get("output_index", 0))
                if delta and index is not None:
                    out.append(ToolCallDelta(index, None, None, delta))
            elif kind == "response.output_item.added":
                item = data.get("item") or {}
                if item.get("type") == "function_call":
                    index = self._calls[data.get("output_index", 0)] = len(self._calls)
                    arguments = item.get("arguments") or ""
                    out.append(
                        ToolCallDelta(index, item.get("call_id"), item.get("name"), arguments)
                    )
                    self.has_content = True
            elif kind in _REASONING_EVENTS:
                delta = data.get("delta")
                if delta and isinstance(delta, str):
                    out.append(ReasoningDelta(delta))
                    self.has_content = True
            elif kind in _ENDS:
                response = data.get("response") or {}
                self.finish_reason = responses_finish_reason(response)
                self.usage = responses_usage(response.get("usage"))
                self.finished = True
            elif kind == "response.failed":
                response = data.get("response") or {}
                self._fail(response.get("error") or {"message": "the response failed"})
            elif kind == "error":
                error = data.get("error")
                if not isinstance(error, Mapping):
                    error = {
                        "message": data.get("message"),
                        "code": data.get("code"),
                        "param": data.get("param"),
                    }
                self._fail(error)
        except (ValueError, AttributeError, TypeError, KeyError, IndexError) as exc:
            self.skip(event, exc)

    def _fail(self, error: Mapping[str, Any]) -> None:
        if self.failure is not None:
            return  # the error event came first; response.failed repeats it
        state = self.state
        body = dict(error)
        # A response's error has a code (server_error, rate_limit_exceeded …) and no type.
        body.setdefault("type", body.get("code"))
        self.failure = classify_error_body(
            {"error": body},
            provider=state.provider,
            model=state.model,
            content_delivered=state.content_delivered,
            secrets=state.secrets,
        )

    def native_opaque(self, event: SSEEvent, produced: bool) -> bool:
        # The upstream's items and sequence numbers cannot be carried on by another one.
        return True


def decode_response(data: Any, request: ChatRequest, provider: str) -> Completion:
    """A whole ``response`` object, read for the books (it is passed on as it came)."""
    if data.get("status") == "failed" or data.get("error"):
        raise ValueError(f"the response failed: {data.get('error')!r}")
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for item in data["output"]:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part["text"])
                elif part.get("type") == "refusal":
                    texts.append(part["refusal"])
        elif kind == "function_call":
            calls.append(ToolCall(item["call_id"], item["name"], item.get("arguments") or ""))
        elif kind == "reasoning":
            thoughts.extend(part.get("text") or "" for part in item.get("summary") or () if part)
    text = "".join(texts)
    if not isinstance(text, str):
        raise TypeError("output_text is not a string")
    return Completion(
        text=text,
        tool_calls=tuple(calls),
        finish_reason=responses_finish_reason(data),
        usage=responses_usage(data.get("usage")),
        provider=provider,
        model=request.model,
        reasoning="".join(thoughts),
    )
