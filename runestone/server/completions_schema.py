"""OpenAI's legacy completions (``POST /v1/completions``): a raw prompt, only passed through.

A completions body has no counterpart in the one request model (there is no chat
equivalent of a raw prompt), so it is never translated: the dialect keeps it as
written (:class:`~runestone.messages.NativeBody` of
:attr:`~runestone.messages.WireFormat.OPENAI_COMPLETIONS`, ``prompt`` named in
``only_native``), builds a :class:`~runestone.messages.ChatRequest` for routing alone
(the longest prompt as one user message, ``max_tokens``, ``stream``), and the request
goes only to a model listing the ``completions`` capability of a provider that speaks the
format. Its answer (``text_completion`` frames, or the whole body) comes back as the
upstream wrote it, and no stream is ever continued after a cut (``only_native`` rules it
out), so the encoder here speaks only when the gateway itself must: it still writes
correct legacy frames, should any event not passed through reach it::

    data: {"id": "cmpl-…", "object": "text_completion", "created": …, "model": …,
           "choices": [{"text": "Hel", "index": 0, "logprobs": null, "finish_reason": null}]}
    data: {… "choices": [{"text": "", … "finish_reason": "stop"}]}              the end
    data: {… "choices": [], "usage": {…}}              with stream_options.include_usage
    data: [DONE]

A failure after content is ``data: {"error": {…}}`` and no ``[DONE]``, as for chat.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from runestone import jsonio
from runestone.messages import (
    Completion,
    NativeBody,
    Passthrough,
    ReasoningDelta,
    ToolCallDelta,
    Usage,
    WireFormat,
)
from runestone.providers.settings import Capability
from runestone.server.dialect import NO_HEADERS, ChatCall
from runestone.server.errors import ApiError
from runestone.server.openai_schema import DONE_FRAME, error_frame, usage_body
from runestone.wire.openai_completions import decode_completions_body

__all__ = ["CompletionsDialect", "TextCompletionEncoder", "new_text_completion_id"]


def new_text_completion_id() -> str:
    return "cmpl-" + uuid.uuid4().hex[:24]


def _choice(text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}


class TextCompletionEncoder:
    """The SSE frames of one streamed legacy completion, written by the gateway."""

    __slots__ = ("_id", "_include_usage", "created", "model")

    def __init__(
        self,
        model: str,
        *,
        include_usage: bool = False,
        completion_id: str | None = None,
        created: int | None = None,
    ) -> None:
        self._id = completion_id or new_text_completion_id()
        self.created = int(time.time()) if created is None else created
        self._include_usage = include_usage
        self.model = model

    def set_model(self, model: str) -> None:
        """Name ``model`` in the frames from now on."""
        self.model = model

    def _frame(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self._id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + jsonio.dumps(chunk) + b"\n\n"

    def opening(self) -> bytes:
        """Nothing: a legacy stream has no role chunk; its first frame is text."""
        return b""

    def text(self, text: str) -> bytes:
        return self._frame([_choice(text, None)])

    def tool_call(self, delta: ToolCallDelta) -> bytes:
        """Nothing: a completion has no tool calls (none is ever asked for)."""
        return b""

    def reasoning(self, delta: ReasoningDelta) -> bytes:
        """Nothing: a legacy completion has no place for reasoning."""
        return b""

    def follow(self, frames: Passthrough) -> None:
        """Nothing to carry over: each chunk stands alone (and no stream is continued)."""

    def closing(self, finish_reason: str, usage: Usage | None) -> bytes:
        """The finish-reason frame, the usage frame when asked for, and ``[DONE]``."""
        frames = [self._frame([_choice("", str(finish_reason))])]
        if self._include_usage:
            frames.append(self._frame([], usage=usage_body(usage)))
        frames.append(DONE_FRAME)
        return b"".join(frames)

    @staticmethod
    def error(error: ApiError) -> bytes:
        """An in-band error frame (no ``[DONE]`` follows it)."""
        return error_frame(error)


class CompletionsDialect:
    """``POST /v1/completions``."""

    name = "completions"

    def decode(self, body: bytes, headers: Mapping[str, str] = NO_HEADERS) -> ChatCall:
        decoded, fields = decode_completions_body(body)
        include_usage = decoded.include_usage
        native = NativeBody(
            WireFormat.OPENAI_COMPLETIONS,
            fields,
            only_native=("prompt",),
            needs=frozenset({Capability.COMPLETIONS}),
            usage_chunk=include_usage,
        )
        return ChatCall(decoded.to_request(native), include_usage)

    def stream_encoder(self, call: ChatCall) -> TextCompletionEncoder:
        return TextCompletionEncoder(call.request.model, include_usage=call.include_usage)

    def whole(self, completion: Completion, call: ChatCall) -> dict[str, Any]:
        return {
            "id": new_text_completion_id(),
            "object": "text_completion",
            "created": int(time.time()),
            "model": completion.model,
            "choices": [_choice(completion.text, str(completion.finish_reason))],
            "usage": usage_body(completion.usage),
        }

    def error_body(self, error: ApiError) -> dict[str, Any]:
        return error.openai_body()
