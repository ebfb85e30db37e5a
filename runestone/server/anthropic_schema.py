"""Anthropic's Messages wire format, mapped onto the one request model and back.

A ``POST /v1/messages`` body becomes a :class:`ChatRequest` (``system`` → a
system message, ``tool_use`` blocks → tool calls, ``tool_result`` blocks → tool
messages, images → image parts; the schema is
:mod:`runestone.wire.anthropic_messages`), so it is routed like any other request. The
answer goes back as a ``message`` object, or as Anthropic's stream::

    event: message_start          the message, empty
    event: content_block_start    a text or tool_use block opens (index n)
    event: content_block_delta    text_delta / input_json_delta
    event: content_block_stop
    event: message_delta          stop_reason and usage
    event: message_stop

A failure after content has been sent is ``event: error`` and no ``message_stop``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

from runestone import jsonio
from runestone.messages import (
    ChatRequest,
    Completion,
    NativeBody,
    Passthrough,
    ReasoningDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    WireFormat,
)
from runestone.server.dialect import NO_HEADERS, ChatCall
from runestone.server.errors import ApiError
from runestone.wire.anthropic_messages import (
    convert_messages_body,
    decode_fields,
    decode_messages_body,
    native_fields,
)
from runestone.wire.schema import may_nest_deep

__all__ = [
    "FORWARDED_HEADERS",
    "STOP_REASONS",
    "AnthropicDialect",
    "MessageStream",
    "message_body",
    "new_message_id",
    "parse_messages",
]

STOP_REASONS: Final[Mapping[str, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
"""Anthropic's ``stop_reason`` for each finish reason."""


FORWARDED_HEADERS: Final = ("anthropic-version", "anthropic-beta")
"""The client's headers an Anthropic upstream gets with its passed-through body."""


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


# --------------------------------------------------------------------------- request


def parse_messages(data: Mapping[str, Any]) -> ChatRequest:
    """Map a Messages API body given as a dict onto a :class:`ChatRequest`.

    Raises :class:`RequestValidationError` naming the bad field as Anthropic
    names it (``messages.1.content.0.source``).
    """
    return convert_messages_body(data).to_request()


# --------------------------------------------------------------------------- answer


def _tool_input(arguments: str) -> Any:
    # The model wrote JSON text; Anthropic's clients expect the object. Text that is
    # not a JSON object is passed on as written rather than guessed at.
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
    return value if isinstance(value, dict) else arguments


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    if usage.cached_tokens:
        # Anthropic counts the prompt read from its cache apart from input_tokens.
        return {
            "input_tokens": usage.prompt_tokens - usage.cached_tokens,
            "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": usage.completion_tokens,
        }
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def message_body(
    *,
    message_id: str,
    model: str,
    text: str,
    tool_calls: tuple[ToolCall, ...],
    finish_reason: str,
    usage: Usage | None,
    reasoning: str = "",
    signature: str | None = None,
) -> dict[str, Any]:
    """A whole ``message`` object (``reasoning``: a thinking block first)."""
    content: list[dict[str, Any]] = []
    if reasoning or signature:
        content.append({"type": "thinking", "thinking": reasoning, "signature": signature or ""})
    if text:
        content.append({"type": "text", "text": text})
    for call in tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _tool_input(call.arguments),
            }
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(str(finish_reason), "end_turn"),
        "stop_sequence": None,
        "usage": _usage(usage),
    }


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + jsonio.dumps(data) + b"\n\n"


class MessageStream:
    """The events of one streamed message; content blocks open and close as needed."""

    __slots__ = ("_block", "_block_kind", "_blocks", "_id", "model")

    def __init__(self, model: str, *, message_id: str | None = None) -> None:
        self._id = message_id or new_message_id()
        self.model = model
        self._block = -1  # the open block's index; -1: none is open
        self._block_kind = ""
        self._blocks = 0

    @property
    def message_id(self) -> str:
        return self._id

    def set_model(self, model: str) -> None:
        self.model = model

    def opening(self) -> bytes:
        return _event(
            b"message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self._id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            },
        )

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._block = self._blocks
        self._blocks += 1
        self._block_kind = kind
        return out + _event(
            b"content_block_start",
            {"type": "content_block_start", "index": self._block, "content_block": block},
        )

    def _close(self) -> bytes:
        if self._block < 0:
            return b""
        index, self._block = self._block, -1
        return _event(b"content_block_stop", {"type": "content_block_stop", "index": index})

    def text(self, text: str) -> bytes:
        head = b""
        if self._block_kind != "text" or self._block < 0:
            head = self._open("text", {"type": "text", "text": ""})
        return head + (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(self._block).encode()
            + b',"delta":{"type":"text_delta","text":'
            + jsonio.dumps(text)
            + b"}}\n\n"
        )

    def tool_call(self, delta: ToolCallDelta) -> bytes:
        head = b""
        if delta.id is not None or self._block_kind != f"tool:{delta.index}" or self._block < 0:
            head = self._open(
                f"tool:{delta.index}",
                {"type": "tool_use", "id": delta.id or "", "name": delta.name or "", "input": {}},
            )
        if not delta.arguments:
            return head
        return head + self._delta({"type": "input_json_delta", "partial_json": delta.arguments})

    def reasoning(self, delta: ReasoningDelta) -> bytes:
        """A ``thinking`` block: ``thinking_delta`` for the text, ``signature_delta``
        for the signature (which closes what the model thought)."""
        out = b""
        if self._block_kind != "thinking" or self._block < 0:
            out = self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if delta.text:
            out += self._delta({"type": "thinking_delta", "thinking": delta.text})
        if delta.signature:
            out += self._delta({"type": "signature_delta", "signature": delta.signature})
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event(
            b"content_block_delta",
            {"type": "content_block_delta", "index": self._block, "delta": delta},
        )

    def follow(self, frames: Passthrough) -> None:
        """Take over the upstream's blocks: text goes on in its open text block, and any
        new block is numbered after its blocks."""
        self._blocks = frames.blocks
        if frames.open_text and frames.blocks:
            self._block, self._block_kind = frames.blocks - 1, "text"
        else:
            self._block, self._block_kind = -1, ""

    def closing(self, finish_reason: str, usage: Usage | None) -> bytes:
        """Close the open block, then ``message_delta`` and ``message_stop``."""
        return (
            self._close()
            + _event(
                b"message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": STOP_REASONS.get(str(finish_reason), "end_turn"),
                        "stop_sequence": None,
                    },
                    "usage": _usage(usage),
                },
            )
            + _event(b"message_stop", {"type": "message_stop"})
        )

    @staticmethod
    def error(error: ApiError) -> bytes:
        """An in-band ``error`` event (no ``message_stop`` follows it)."""
        return _event(b"error", error.anthropic_body())


class AnthropicDialect:
    """``POST /v1/messages``."""

    name = "anthropic"

    def decode(self, body: bytes, headers: Mapping[str, str] = NO_HEADERS) -> ChatCall:
        decoded = decode_messages_body(body)
        fields = decode_fields(body)
        names, needs = native_fields(decoded, fields)
        native = NativeBody(
            WireFormat.ANTHROPIC_MESSAGES,
            fields,
            {name: headers[name] for name in FORWARDED_HEADERS if name in headers},
            tuple(names),
            frozenset(needs),
        )
        return ChatCall(decoded.to_request(deep=may_nest_deep(body), native=native))

    def stream_encoder(self, call: ChatCall) -> MessageStream:
        return MessageStream(call.request.model)

    def whole(self, completion: Completion, call: ChatCall) -> dict[str, Any]:
        return message_body(
            message_id=new_message_id(),
            model=completion.model,
            text=completion.text,
            tool_calls=completion.tool_calls,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            reasoning=completion.reasoning,
            signature=completion.signature,
        )

    def error_body(self, error: ApiError) -> dict[str, Any]:
        return error.anthropic_body()
