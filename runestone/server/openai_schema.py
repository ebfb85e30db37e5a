"""OpenAI's chat-completions wire format: the request read, the answer written, exactly.

A streamed answer is a run of ``chat.completion.chunk`` frames::

    data: {… "delta": {"role": "assistant", "content": "", "refusal": null} …}   first
    data: {… "delta": {"content": "Hel"} …}                                       text
    data: {… "delta": {"tool_calls": [{"index": 0, "id": …, "function": …}]} …}  tool calls
    data: {… "delta": {}, "finish_reason": "stop"}                                 the end
    data: {… "choices": [], "usage": {…}}            with stream_options.include_usage
    data: [DONE]

A failure after content has been sent is ``data: {"error": {…}}`` and no ``[DONE]``:
the SDKs raise it, so a cut answer never reads as a short, finished one.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

from runestone import jsonio
from runestone.messages import (
    Completion,
    EmbeddingAnswer,
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
from runestone.wire.openai_chat import convert_chat, decode_chat

__all__ = [
    "DONE_FRAME",
    "ChunkEncoder",
    "OpenAIDialect",
    "completion_body",
    "decode_chat_call",
    "embeddings_body",
    "error_frame",
    "new_completion_id",
    "parse_chat",
    "usage_body",
]

DONE_FRAME: Final = b"data: [DONE]\n\n"


def parse_chat(data: Mapping[str, Any]) -> ChatCall:
    """Validate a chat-completions body given as a dict; raises
    :class:`RequestValidationError` naming the first bad field."""
    decoded = convert_chat(data)
    return ChatCall(decoded.to_request(), decoded.body.include_usage)


def decode_chat_call(raw: bytes) -> ChatCall:
    """Decode and validate a chat-completions body (see
    :func:`runestone.wire.openai_chat.decode_chat`), keeping it for an OpenAI-format
    upstream (:class:`NativeBody`)."""
    decoded = decode_chat(raw)
    include_usage = decoded.body.include_usage
    assert decoded.fields is not None  # decoded from bytes
    native = NativeBody(
        WireFormat.OPENAI_CHAT,
        decoded.fields,
        only_native=tuple(decoded.body.native_fields(decoded.extra)),
        usage_chunk=include_usage,
    )
    return ChatCall(decoded.to_request(native), include_usage)


def embeddings_body(
    answer: EmbeddingAnswer, model: str, *, encoding_format: str | None = None
) -> dict[str, Any]:
    """OpenAI's embeddings answer; ``base64`` vectors are little-endian float32, as
    OpenAI sends them (the SDKs ask for base64 by default)."""
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(answer.vectors):
        embedding: Any = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            if encoding_format == "base64"
            else list(vector)
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = answer.prompt_tokens
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage_body(usage: Usage | None) -> dict[str, Any] | None:
    """OpenAI's ``usage``; the cached and reasoning details where the upstream gave any."""
    if usage is None:
        return None
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def completion_body(
    *,
    completion_id: str,
    created: int,
    model: str,
    text: str,
    tool_calls: tuple[ToolCall, ...],
    finish_reason: str,
    usage: Usage | None,
    reasoning: str = "",
) -> dict[str, Any]:
    """A whole ``chat.completion`` object (``reasoning``: as ``reasoning_content``)."""
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI sends null content beside tool calls when the model wrote no text.
        "content": text if text or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = [call.to_dict() for call in tool_calls]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": str(finish_reason),
            }
        ],
        "usage": usage_body(usage),
        "system_fingerprint": None,
    }


class ChunkEncoder:
    """The SSE frames of one streamed completion; the constant parts are encoded once."""

    __slots__ = ("_head", "_id", "_include_usage", "_tail", "created", "model")

    def __init__(
        self,
        model: str,
        *,
        include_usage: bool = False,
        completion_id: str | None = None,
        created: int | None = None,
    ) -> None:
        self._id = completion_id or new_completion_id()
        self.created = int(time.time()) if created is None else created
        self._include_usage = include_usage
        self._tail = (
            b',"logprobs":null,"finish_reason":null}]'
            + (b',"usage":null' if include_usage else b"")
            + b"}\n\n"
        )
        self.model = ""
        self._head = b""
        self.set_model(model)

    @property
    def completion_id(self) -> str:
        return self._id

    def set_model(self, model: str) -> None:
        """Name ``model`` in the frames from now on."""
        self.model = model
        self._head = (
            b'data: {"id":'
            + jsonio.dumps(self._id)
            + b',"object":"chat.completion.chunk","created":'
            + str(self.created).encode()
            + b',"model":'
            + jsonio.dumps(model)
            + b',"system_fingerprint":null,"choices":[{"index":0,"delta":'
        )

    def opening(self) -> bytes:
        """The first frame: the assistant's role."""
        return self._head + b'{"role":"assistant","content":"","refusal":null}' + self._tail

    def text(self, text: str) -> bytes:
        return self._head + b'{"content":' + jsonio.dumps(text) + b"}" + self._tail

    def tool_call(self, delta: ToolCallDelta) -> bytes:
        call: dict[str, Any] = {"index": delta.index}
        if delta.id is not None:
            call["id"] = delta.id
            call["type"] = "function"
        function: dict[str, str] = {}
        if delta.name is not None:
            function["name"] = delta.name
        function["arguments"] = delta.arguments
        call["function"] = function
        return self._head + jsonio.dumps({"tool_calls": [call]}) + self._tail

    def reasoning(self, delta: ReasoningDelta) -> bytes:
        """``reasoning_content``, as OpenAI-compatible reasoning servers stream it (OpenAI
        itself shows none; the SDKs keep the field); a signature has no place here."""
        if not delta.text:
            return b""
        return self._head + b'{"reasoning_content":' + jsonio.dumps(delta.text) + b"}" + self._tail

    def follow(self, frames: Passthrough) -> None:
        """Nothing to carry over: a chunk stands alone (the role chunk was passed already)."""

    def closing(self, finish_reason: str, usage: Usage | None) -> bytes:
        """The finish-reason frame, the usage frame when asked for, and ``[DONE]``."""
        frames = [
            self._head
            + b'{},"logprobs":null,"finish_reason":'
            + jsonio.dumps(str(finish_reason))
            + b"}]"
            + (b',"usage":null' if self._include_usage else b"")
            + b"}\n\n"
        ]
        if self._include_usage:
            frames.append(
                b"data: "
                + jsonio.dumps(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "system_fingerprint": None,
                        "choices": [],
                        "usage": usage_body(usage),
                    }
                )
                + b"\n\n"
            )
        frames.append(DONE_FRAME)
        return b"".join(frames)

    @staticmethod
    def error(error: ApiError) -> bytes:
        """An in-band error frame (no ``[DONE]`` follows it)."""
        return error_frame(error)


def error_frame(error: ApiError) -> bytes:
    """OpenAI's in-band error frame, ``data: {"error": {…}}``, for any of its streams."""
    return b"data: " + jsonio.dumps(error.openai_body()) + b"\n\n"


class OpenAIDialect:
    """``POST /v1/chat/completions``."""

    name = "openai"

    def decode(self, body: bytes, headers: Mapping[str, str] = NO_HEADERS) -> ChatCall:
        return decode_chat_call(body)

    def stream_encoder(self, call: ChatCall) -> ChunkEncoder:
        return ChunkEncoder(call.request.model, include_usage=call.include_usage)

    def whole(self, completion: Completion, call: ChatCall) -> dict[str, Any]:
        return completion_body(
            completion_id=new_completion_id(),
            created=int(time.time()),
            model=completion.model,
            text=completion.text,
            tool_calls=completion.tool_calls,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            reasoning=completion.reasoning,
        )

    def error_body(self, error: ApiError) -> dict[str, Any]:
        return error.openai_body()
