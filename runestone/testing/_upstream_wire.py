"""The bytes the fake upstream puts on the wire, in OpenAI's and Anthropic's exact shapes.

Small classes, one per API (OpenAI chat, OpenAI legacy completions, OpenAI Responses,
Anthropic), turn "a text delta", "the finish", "a 429" into that API's SSE frames and
JSON bodies. They do no I/O and hold no state, but for the Responses one, whose events
are numbered and end with the whole response: :meth:`Wire.for_reply` gives a fresh one
for each answer.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

__all__ = [
    "CACHE_CREATION_TOKENS",
    "CACHE_READ_TOKENS",
    "KNOWN_SIGNATURE",
    "KNOWN_TEXT",
    "KNOWN_THOUGHT",
    "KNOWN_TOKENS",
    "KNOWN_TOOL_ARGUMENTS",
    "KNOWN_TOOL_ARGUMENT_PIECES",
    "AnthropicWire",
    "ErrorKind",
    "Finish",
    "OpenAICompletionsWire",
    "OpenAIResponsesWire",
    "OpenAIWire",
    "Reply",
    "ToolCall",
    "Wire",
]

KNOWN_TEXT = (
    "Runestone keeps answering when providers misbehave: it retries what can be retried, "
    "fails over what cannot, and never passes a broken stream off as a finished answer. "
    "Every healthy reply from this fake upstream is exactly this paragraph, word for word."
)
"""The one answer every healthy request gets, so a truncated answer never passes for a whole one."""

_WORDS = KNOWN_TEXT.split(" ")
KNOWN_TOKENS: tuple[str, ...] = (*(word + " " for word in _WORDS[:-1]), _WORDS[-1])
"""How :data:`KNOWN_TEXT` is streamed: each word with its following space."""

KNOWN_TOOL_ARGUMENTS = '{"location": "Paris"}'
"""The arguments of every tool call the fake upstream makes (a JSON object as text)."""

KNOWN_TOOL_ARGUMENT_PIECES: tuple[str, ...] = ('{"loc', 'ation": ', '"Par', 'is"}')
"""How :data:`KNOWN_TOOL_ARGUMENTS` is streamed, in several pieces."""

KNOWN_THOUGHT = "The question is the usual one; the known paragraph answers it."
"""The reasoning a ``thinking`` answer shows before its text."""
KNOWN_SIGNATURE = "c2lnbmVkIGJ5IHRoZSBmYWtlIHVwc3RyZWFt"
"""The signature of that reasoning (Anthropic's thinking blocks carry one)."""
CACHE_READ_TOKENS = 7
"""Prompt tokens a ``thinking`` answer says were read from the prompt cache."""
CACHE_CREATION_TOKENS = 3
"""Prompt tokens a ``thinking`` answer says were written to the prompt cache."""

_COMPACT = (",", ":")


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=_COMPACT, ensure_ascii=False)


class Finish(Enum):
    """Why an answer ended, before each API names it."""

    STOP = "stop"
    TOOL = "tool"


class ErrorKind(Enum):
    """The error responses the fake upstream gives."""

    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    OVERLOADED = "overloaded"
    CONTEXT_LENGTH = "context_length"
    CONTENT_POLICY = "content_policy"
    PREFILL_REJECTED = "prefill_rejected"
    UNAUTHORIZED = "unauthorized"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"


_INVALID = "invalid_request_error"


def _event_detail(kind: ErrorKind | None) -> str:
    return "fake upstream: refused mid-answer" if kind is ErrorKind.BAD_REQUEST else ""


_NO_PREFILL = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)

# kind -> (status, message template, type, param, code); the real API's wording where known.
_OPENAI_ERRORS: dict[ErrorKind, tuple[int, str, str, str | None, str | None]] = {
    ErrorKind.RATE_LIMITED: (
        429,
        "Rate limit reached for requests. Please try again later.",
        "requests",
        None,
        "rate_limit_exceeded",
    ),
    ErrorKind.SERVER_ERROR: (
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
        None,
    ),
    ErrorKind.UNAVAILABLE: (
        503,
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
        None,
    ),
    # OpenAI has no 529: an overloaded OpenAI answers 503.
    ErrorKind.OVERLOADED: (
        503,
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
        None,
    ),
    ErrorKind.CONTEXT_LENGTH: (
        400,
        "This model's maximum context length is {window} tokens. However, your messages "
        "resulted in {total} tokens. Please reduce the length of the messages.",
        _INVALID,
        "messages",
        "context_length_exceeded",
    ),
    ErrorKind.CONTENT_POLICY: (
        400,
        "Your request was rejected as a result of our safety system: it may contain content "
        "that is not allowed by our content policy.",
        _INVALID,
        None,
        "content_policy_violation",
    ),
    ErrorKind.PREFILL_REJECTED: (400, _NO_PREFILL, _INVALID, "messages", None),
    ErrorKind.UNAUTHORIZED: (
        401,
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        _INVALID,
        None,
        "invalid_api_key",
    ),
    ErrorKind.BAD_REQUEST: (400, "{detail}", _INVALID, None, None),
    ErrorKind.NOT_FOUND: (404, "{detail}", _INVALID, None, "unknown_url"),
}

# kind -> (status, error type, message template).
_ANTHROPIC_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    ErrorKind.RATE_LIMITED: (
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit. Please try again later.",
    ),
    ErrorKind.SERVER_ERROR: (500, "api_error", "Internal server error"),
    ErrorKind.UNAVAILABLE: (503, "api_error", "Service unavailable"),
    ErrorKind.OVERLOADED: (529, "overloaded_error", "Overloaded"),
    ErrorKind.CONTEXT_LENGTH: (
        400,
        _INVALID,
        "prompt is too long: {total} tokens > {window} maximum",
    ),
    ErrorKind.CONTENT_POLICY: (
        400,
        _INVALID,
        "Output blocked by content filtering policy: the request violates the content policy.",
    ),
    ErrorKind.PREFILL_REJECTED: (400, _INVALID, _NO_PREFILL),
    ErrorKind.UNAUTHORIZED: (401, "authentication_error", "invalid x-api-key"),
    ErrorKind.BAD_REQUEST: (400, _INVALID, "{detail}"),
    ErrorKind.NOT_FOUND: (404, "not_found_error", "{detail}"),
}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The one tool call a ``tool-call`` answer makes."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Reply:
    """What every frame of one answer repeats: its id, model, time and prompt size."""

    id: str
    model: str
    created: int
    input_tokens: int
    include_usage: bool = False
    thinking: bool = False
    """Reason first (:data:`KNOWN_THOUGHT`) and report cache and reasoning usage, the
    way each API does (the ``thinking`` behaviour)."""


class Wire(ABC):
    """One API's wire format: SSE frames for a stream, JSON bodies otherwise."""

    api: ClassVar[str]
    id_prefix: ClassVar[str]
    tool_id_prefix: ClassVar[str]
    request_id_header: ClassVar[str]

    def for_reply(self) -> Wire:
        """The wire to write one answer with (itself, unless it keeps count of the frames)."""
        return self

    @abstractmethod
    def stream_start(self, reply: Reply, tool: ToolCall | None) -> list[bytes]:
        """Frames sent before the first token."""

    @abstractmethod
    def text_delta(self, reply: Reply, text: str) -> bytes:
        """One token of text."""

    @abstractmethod
    def tool_delta(self, reply: Reply, piece: str) -> bytes:
        """One piece of the tool call's arguments."""

    @abstractmethod
    def stream_finish(self, reply: Reply, finish: Finish, output_tokens: int) -> list[bytes]:
        """The finish reason and usage, everything before the terminal sentinel."""

    @abstractmethod
    def stream_end(self) -> bytes:
        """The terminal sentinel (``[DONE]`` or ``message_stop``)."""

    @abstractmethod
    def malformed(self, reply: Reply) -> bytes:
        """One frame whose ``data:`` is not JSON (cut off mid-object)."""

    @abstractmethod
    def error_event(self, kind: ErrorKind | None = None) -> bytes:
        """An in-stream error event (``kind`` None: the API's usual mid-answer failure)."""

    @abstractmethod
    def body(
        self, reply: Reply, text: str | None, tool: ToolCall | None, output_tokens: int
    ) -> dict[str, Any]:
        """A whole (non-streamed) answer."""

    @abstractmethod
    def error(self, kind: ErrorKind, detail: str, input_tokens: int) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of an error response."""

    @abstractmethod
    def models(self, names: Sequence[str], created: int) -> dict[str, Any]:
        """The model listing (``GET /v1/models``)."""


class OpenAIWire(Wire):
    """OpenAI chat completions: ``chat.completion.chunk`` frames and ``data: [DONE]``."""

    api = "openai"
    id_prefix = "chatcmpl-"
    tool_id_prefix = "call_"
    request_id_header = "x-request-id"
    _FINISH: ClassVar[dict[Finish, str]] = {Finish.STOP: "stop", Finish.TOOL: "tool_calls"}
    _CONTEXT_WINDOW = 128_000

    def _chunk(self, reply: Reply, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": "fp_runestone",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if reply.include_usage:
            # With include_usage every chunk carries "usage": null but the last one.
            chunk["usage"] = None
        return self._frame(chunk)

    @staticmethod
    def _frame(obj: object) -> bytes:
        return f"data: {_dumps(obj)}\n\n".encode()

    @staticmethod
    def _usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": reply.input_tokens + output_tokens,
        }
        if reply.thinking:
            usage["prompt_tokens_details"] = {"cached_tokens": CACHE_READ_TOKENS}
            usage["completion_tokens_details"] = {"reasoning_tokens": len(KNOWN_THOUGHT.split())}
        return usage

    def stream_start(self, reply: Reply, tool: ToolCall | None) -> list[bytes]:
        if tool is None:
            first = self._chunk(reply, {"role": "assistant", "content": "", "refusal": None})
            if reply.thinking:
                # The reasoning field compatible servers (vLLM, DeepSeek …) stream.
                return [first, self._chunk(reply, {"reasoning_content": KNOWN_THOUGHT})]
            return [first]
        call = {
            "index": 0,
            "id": tool.id,
            "type": "function",
            "function": {"name": tool.name, "arguments": ""},
        }
        delta = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
        return [self._chunk(reply, delta)]

    def text_delta(self, reply: Reply, text: str) -> bytes:
        return self._chunk(reply, {"content": text})

    def tool_delta(self, reply: Reply, piece: str) -> bytes:
        return self._chunk(reply, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})

    def stream_finish(self, reply: Reply, finish: Finish, output_tokens: int) -> list[bytes]:
        frames = [self._chunk(reply, {}, self._FINISH[finish])]
        if reply.include_usage:
            last = {
                "id": reply.id,
                "object": "chat.completion.chunk",
                "created": reply.created,
                "model": reply.model,
                "system_fingerprint": "fp_runestone",
                "choices": [],
                "usage": self._usage(reply, output_tokens),
            }
            frames.append(self._frame(last))
        return frames

    def stream_end(self) -> bytes:
        return b"data: [DONE]\n\n"

    def malformed(self, reply: Reply) -> bytes:
        whole = self._chunk(reply, {"content": "lost "}).decode()
        return (whole[: len(whole) // 2] + "\n\n").encode()

    def error_event(self, kind: ErrorKind | None = None) -> bytes:
        _, body = self.error(kind or ErrorKind.SERVER_ERROR, _event_detail(kind), 0)
        return self._frame(body)

    def body(
        self, reply: Reply, text: str | None, tool: ToolCall | None, output_tokens: int
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if reply.thinking:
            message["reasoning_content"] = KNOWN_THOUGHT
        if tool is not None:
            message["tool_calls"] = [
                {
                    "id": tool.id,
                    "type": "function",
                    "function": {"name": tool.name, "arguments": KNOWN_TOOL_ARGUMENTS},
                }
            ]
        finish = Finish.STOP if tool is None else Finish.TOOL
        return {
            "id": reply.id,
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": "fp_runestone",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._FINISH[finish],
                }
            ],
            "usage": self._usage(reply, output_tokens),
        }

    def error(self, kind: ErrorKind, detail: str, input_tokens: int) -> tuple[int, dict[str, Any]]:
        status, template, type_, param, code = _OPENAI_ERRORS[kind]
        window = self._CONTEXT_WINDOW
        message = template.format(detail=detail, window=window, total=window + input_tokens)
        return status, {"error": {"message": message, "type": type_, "param": param, "code": code}}

    def models(self, names: Sequence[str], created: int) -> dict[str, Any]:
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "runestone"}
            for name in names
        ]
        return {"object": "list", "data": data}


class OpenAICompletionsWire(OpenAIWire):
    """OpenAI legacy completions: ``text_completion`` frames, each choice's text in
    ``text`` (no role chunk, no tool calls), then ``data: [DONE]``; errors and the model
    listing as for chat."""

    api = "openai_completions"
    id_prefix = "cmpl-"

    def _text_chunk(self, reply: Reply, text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        chunk: dict[str, Any] = {
            "id": reply.id,
            "object": "text_completion",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": "fp_runestone",
            "choices": [choice],
        }
        if reply.include_usage:
            chunk["usage"] = None
        return self._frame(chunk)

    def stream_start(self, reply: Reply, tool: ToolCall | None) -> list[bytes]:
        return []  # the first frame is text

    def text_delta(self, reply: Reply, text: str) -> bytes:
        return self._text_chunk(reply, text)

    def tool_delta(self, reply: Reply, piece: str) -> bytes:
        return self._text_chunk(reply, piece)  # never played: a completion has no tools

    def stream_finish(self, reply: Reply, finish: Finish, output_tokens: int) -> list[bytes]:
        frames = [self._text_chunk(reply, "", "stop")]
        if reply.include_usage:
            last = {
                "id": reply.id,
                "object": "text_completion",
                "created": reply.created,
                "model": reply.model,
                "system_fingerprint": "fp_runestone",
                "choices": [],
                "usage": self._usage(reply, output_tokens),
            }
            frames.append(self._frame(last))
        return frames

    def malformed(self, reply: Reply) -> bytes:
        whole = self._text_chunk(reply, "lost ").decode()
        return (whole[: len(whole) // 2] + "\n\n").encode()

    def body(
        self, reply: Reply, text: str | None, tool: ToolCall | None, output_tokens: int
    ) -> dict[str, Any]:
        return {
            "id": reply.id,
            "object": "text_completion",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": "fp_runestone",
            "choices": [
                {"text": text or "", "index": 0, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": self._usage(reply, output_tokens),
        }


class OpenAIResponsesWire(OpenAIWire):
    """OpenAI's Responses API: named SSE events, each with its ``sequence_number``, from
    ``response.created`` to ``response.completed`` (which holds the whole response, its
    usage too); a whole answer is the ``response`` object. Errors and listings as for
    chat. Stateful (the numbers, the text so far): one instance per answer."""

    api = "openai_responses"
    id_prefix = "resp_"
    tool_id_prefix = "call_"

    def __init__(self) -> None:
        self._seq = 0
        self._reply: Reply | None = None
        self._tool: ToolCall | None = None
        self._parts: list[str] = []
        self._done: dict[str, Any] | None = None

    def for_reply(self) -> OpenAIResponsesWire:
        return OpenAIResponsesWire()

    def _event(self, kind: str, **payload: Any) -> bytes:
        data = {"type": kind, **payload, "sequence_number": self._seq}
        self._seq += 1
        return f"event: {kind}\ndata: {_dumps(data)}\n\n".encode()

    @staticmethod
    def _item_id(reply: Reply, prefix: str) -> str:
        return prefix + reply.id.removeprefix("resp_")

    @staticmethod
    def _usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
        thinking = reply.thinking
        return {
            "input_tokens": reply.input_tokens,
            "input_tokens_details": {
                "cached_tokens": CACHE_READ_TOKENS if thinking else 0,
                "cache_write_tokens": CACHE_CREATION_TOKENS if thinking else 0,
            },
            "output_tokens": output_tokens,
            "output_tokens_details": {
                "reasoning_tokens": len(KNOWN_THOUGHT.split()) if thinking else 0
            },
            "total_tokens": reply.input_tokens + output_tokens,
        }

    def _response(
        self,
        reply: Reply,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "id": reply.id,
            "object": "response",
            "created_at": reply.created,
            "status": status,
            "background": False,
            "completed_at": reply.created if status == "completed" else None,
            "error": error,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "model": reply.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": {},
        }

    def _message(self, reply: Reply, text: str | None, status: str) -> dict[str, Any]:
        content = (
            []
            if text is None
            else [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
        )
        return {
            "id": self._item_id(reply, "msg_"),
            "type": "message",
            "status": status,
            "content": content,
            "role": "assistant",
        }

    def _call(self, reply: Reply, tool: ToolCall, arguments: str, status: str) -> dict[str, Any]:
        return {
            "id": self._item_id(reply, "fc_"),
            "type": "function_call",
            "status": status,
            "arguments": arguments,
            "call_id": tool.id,
            "name": tool.name,
        }

    def _output(self, reply: Reply, status: str) -> list[dict[str, Any]]:
        done = "".join(self._parts)
        tool = self._tool
        if tool is None:
            return [self._message(reply, done, status)]
        return [self._call(reply, tool, done, status)]

    def stream_start(self, reply: Reply, tool: ToolCall | None) -> list[bytes]:
        self._reply, self._tool = reply, tool
        opening = self._response(reply, "in_progress", [])
        frames = [
            self._event("response.created", response=opening),
            self._event("response.in_progress", response=opening),
        ]
        if tool is not None:
            item = self._call(reply, tool, "", "in_progress")
            frames.append(self._event("response.output_item.added", output_index=0, item=item))
            return frames
        frames.append(
            self._event(
                "response.output_item.added",
                output_index=0,
                item=self._message(reply, None, "in_progress"),
            )
        )
        frames.append(
            self._event(
                "response.content_part.added",
                item_id=self._item_id(reply, "msg_"),
                output_index=0,
                content_index=0,
                part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""},
            )
        )
        return frames

    def text_delta(self, reply: Reply, text: str) -> bytes:
        self._parts.append(text)
        return self._event(
            "response.output_text.delta",
            item_id=self._item_id(reply, "msg_"),
            output_index=0,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def tool_delta(self, reply: Reply, piece: str) -> bytes:
        self._parts.append(piece)
        return self._event(
            "response.function_call_arguments.delta",
            item_id=self._item_id(reply, "fc_"),
            output_index=0,
            delta=piece,
        )

    def stream_finish(self, reply: Reply, finish: Finish, output_tokens: int) -> list[bytes]:
        done = "".join(self._parts)
        (item,) = self._output(reply, "completed")
        frames: list[bytes] = []
        if self._tool is None:
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            frames.append(self._event("response.output_text.done", **where, text=done, logprobs=[]))
            frames.append(
                self._event("response.content_part.done", **where, part=item["content"][0])
            )
        else:
            frames.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=0,
                    name=self._tool.name,
                    arguments=done,
                )
            )
        frames.append(self._event("response.output_item.done", output_index=0, item=item))
        self._done = self._response(
            reply, "completed", [item], usage=self._usage(reply, output_tokens)
        )
        return frames

    def stream_end(self) -> bytes:
        assert self._done is not None, "stream_finish first"
        return self._event("response.completed", response=self._done)

    def malformed(self, reply: Reply) -> bytes:
        whole = self.text_delta(reply, "lost ").decode()
        self._parts.pop()
        return (whole[: len(whole) // 2] + "\n\n").encode()

    def error_event(self, kind: ErrorKind | None = None) -> bytes:
        _, body = self.error(kind or ErrorKind.SERVER_ERROR, _event_detail(kind), 0)
        error = body["error"]
        code = error["code"] or error["type"]
        out = self._event("error", code=code, message=error["message"], param=error["param"])
        reply = self._reply
        if reply is None:
            return out
        failure = {"code": code, "message": error["message"]}
        response = self._response(reply, "failed", self._output(reply, "incomplete"), error=failure)
        return out + self._event("response.failed", response=response)

    def body(
        self, reply: Reply, text: str | None, tool: ToolCall | None, output_tokens: int
    ) -> dict[str, Any]:
        if tool is None:
            output = [self._message(reply, text or "", "completed")]
        else:
            output = [self._call(reply, tool, KNOWN_TOOL_ARGUMENTS, "completed")]
        return self._response(reply, "completed", output, usage=self._usage(reply, output_tokens))


class AnthropicWire(Wire):
    """Anthropic messages: named SSE events from ``message_start`` to ``message_stop``."""

    api = "anthropic"
    id_prefix = "msg_"
    tool_id_prefix = "toolu_"
    request_id_header = "request-id"
    _STOP: ClassVar[dict[Finish, str]] = {Finish.STOP: "end_turn", Finish.TOOL: "tool_use"}
    _CONTEXT_WINDOW = 200_000

    @staticmethod
    def _event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()

    def stream_start(self, reply: Reply, tool: ToolCall | None) -> list[bytes]:
        message: dict[str, Any] = {
            "id": reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The real API opens with output_tokens 1; message_delta carries the total.
            "usage": {**self._input_usage(reply), "output_tokens": 1},
        }
        block: dict[str, Any] = (
            {"type": "text", "text": ""}
            if tool is None
            else {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
        )
        frames = [self._event("message_start", {"type": "message_start", "message": message})]
        if reply.thinking:
            thinking = {"type": "thinking", "thinking": "", "signature": ""}
            frames += [
                self._start(0, thinking),
                self._delta(0, {"type": "thinking_delta", "thinking": KNOWN_THOUGHT}),
                self._delta(0, {"type": "signature_delta", "signature": KNOWN_SIGNATURE}),
                self._event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ]
        return [
            *frames,
            self._start(self._index(reply), block),
            self._event("ping", {"type": "ping"}),
        ]

    @staticmethod
    def _index(reply: Reply) -> int:
        """The answer's text or tool block: after the thinking block, if there is one."""
        return 1 if reply.thinking else 0

    @staticmethod
    def _input_usage(reply: Reply) -> dict[str, int]:
        if not reply.thinking:
            return {"input_tokens": reply.input_tokens}
        return {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": CACHE_CREATION_TOKENS,
            "cache_read_input_tokens": CACHE_READ_TOKENS,
        }

    def _start(self, index: int, block: dict[str, Any]) -> bytes:
        return self._event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return self._event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def text_delta(self, reply: Reply, text: str) -> bytes:
        return self._delta(self._index(reply), {"type": "text_delta", "text": text})

    def tool_delta(self, reply: Reply, piece: str) -> bytes:
        return self._delta(self._index(reply), {"type": "input_json_delta", "partial_json": piece})

    def stream_finish(self, reply: Reply, finish: Finish, output_tokens: int) -> list[bytes]:
        index = self._index(reply)
        return [
            self._event("content_block_stop", {"type": "content_block_stop", "index": index}),
            self._event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._STOP[finish], "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
        ]

    def stream_end(self) -> bytes:
        return self._event("message_stop", {"type": "message_stop"})

    def malformed(self, reply: Reply) -> bytes:
        whole = self.text_delta(reply, "lost ").decode()
        return (whole[: len(whole) // 2] + "\n\n").encode()

    def error_event(self, kind: ErrorKind | None = None) -> bytes:
        _, body = self.error(kind or ErrorKind.OVERLOADED, _event_detail(kind), 0)
        return self._event("error", body)

    def body(
        self, reply: Reply, text: str | None, tool: ToolCall | None, output_tokens: int
    ) -> dict[str, Any]:
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": text or ""}]
            if tool is None
            else [
                {
                    "type": "tool_use",
                    "id": tool.id,
                    "name": tool.name,
                    "input": json.loads(KNOWN_TOOL_ARGUMENTS),
                }
            ]
        )
        if reply.thinking:
            thought = {"type": "thinking", "thinking": KNOWN_THOUGHT, "signature": KNOWN_SIGNATURE}
            content.insert(0, thought)
        finish = Finish.STOP if tool is None else Finish.TOOL
        return {
            "id": reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_reason": self._STOP[finish],
            "stop_sequence": None,
            "usage": {**self._input_usage(reply), "output_tokens": output_tokens},
        }

    def error(self, kind: ErrorKind, detail: str, input_tokens: int) -> tuple[int, dict[str, Any]]:
        status, type_, template = _ANTHROPIC_ERRORS[kind]
        window = self._CONTEXT_WINDOW
        message = template.format(detail=detail, window=window, total=window + input_tokens)
        return status, {"type": "error", "error": {"type": type_, "message": message}}

    def models(self, names: Sequence[str], created: int) -> dict[str, Any]:
        data = [
            {
                "type": "model",
                "id": name,
                "display_name": name,
                "created_at": "2024-10-22T00:00:00Z",
            }
            for name in names
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
