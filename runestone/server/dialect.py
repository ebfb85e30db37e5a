"""What an API wire format provides to the exchange: parse a body, encode an answer.

Four dialects exist — OpenAI's chat completions
(:class:`runestone.server.openai_schema.OpenAIDialect`), OpenAI's Responses
(:class:`runestone.server.responses_schema.ResponsesDialect`), Anthropic's messages
(:class:`runestone.server.anthropic_schema.AnthropicDialect`) and OpenAI's legacy
completions (:class:`runestone.server.completions_schema.CompletionsDialect`, only
ever passed through); the exchange
(:mod:`runestone.server.exchange`) runs a request the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Protocol

from runestone.messages import (
    ChatRequest,
    Completion,
    Passthrough,
    ReasoningDelta,
    ToolCallDelta,
    Usage,
)
from runestone.server.errors import ApiError

__all__ = ["NO_HEADERS", "ChatCall", "Dialect", "StreamEncoder"]


NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A validated chat request and the answer options that live outside it."""

    request: ChatRequest
    include_usage: bool = False
    echo: Mapping[str, Any] = field(default_factory=dict)
    """What the answer repeats of the request as the client wrote it (a Responses
    object echoes its settings: ``tools``, ``text`` …); empty for the other dialects."""

    def with_usage(self) -> ChatCall:
        """The call with the usage chunk on (a passed-through stream's too)."""
        request = self.request
        native = request.native
        if native is not None and not native.usage_chunk:
            request = request.replace(native=replace(native, usage_chunk=True))
        return replace(self, request=request, include_usage=True)


class StreamEncoder(Protocol):
    """The frames of one streamed answer, as bytes ready for the wire."""

    def set_model(self, model: str) -> None:
        """Name ``model`` (the one answering) in the frames from now on."""

    def opening(self) -> bytes:
        """The frames before any content."""

    def text(self, text: str) -> bytes: ...

    def tool_call(self, delta: ToolCallDelta) -> bytes: ...

    def reasoning(self, delta: ReasoningDelta) -> bytes:
        """The model's reasoning, as this format shows it (or nothing, where it has no
        place for it)."""

    def follow(self, frames: Passthrough) -> None:
        """Go on from ``frames``, the last an upstream's stream passed through (a
        continuation extends its text): what was opened there stays open."""

    def closing(self, finish_reason: str, usage: Usage | None) -> bytes:
        """The frames that end a complete answer."""

    def error(self, error: ApiError) -> bytes:
        """An in-band error frame ending a broken answer."""


class Dialect(Protocol):
    """One API's wire format."""

    name: str

    def decode(self, body: bytes, headers: Mapping[str, str] = NO_HEADERS) -> ChatCall:
        """Decode and validate a request body (``headers``: the request's, for those passed
        through to the upstream): raises
        :class:`runestone.wire.schema.BodyError` for one that is no JSON object, and
        ``RequestValidationError`` naming the first bad field."""

    def stream_encoder(self, call: ChatCall) -> StreamEncoder: ...

    def whole(self, completion: Completion, call: ChatCall) -> dict[str, Any]:
        """The body of a whole (non-streamed) answer to ``call``."""

    def error_body(self, error: ApiError) -> dict[str, Any]: ...
