"""Anthropic's Messages wire format, mapped onto the one request model and back.

A ``POST /v1/messages`` body becomes a :class:`ChatRequest` (``system`` → a
system message, ``tool_use`` blocks → tool calls, ``tool_result`` blocks → tool
messages, images → image parts), so it is routed like any other request. The
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
from runestone.exceptions import RequestValidationError
from runestone.jsonio import json_kind
from runestone.messages import (
    MAX_NESTING,
    ChatRequest,
    Completion,
    ToolCall,
    ToolCallDelta,
    Usage,
    check_nesting,
)
from runestone.server.dialect import ChatCall
from runestone.server.errors import ApiError

__all__ = [
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

_KNOWN_KEYS: Final = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
        "service_tier",
    }
)


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _fail(message: str, field: str) -> RequestValidationError:
    return RequestValidationError(message, field=field)


# --------------------------------------------------------------------------- request


def parse_messages(data: Mapping[str, Any]) -> ChatRequest:
    """Map a Messages API body onto a :class:`ChatRequest`.

    Raises :class:`RequestValidationError` naming the bad field as Anthropic
    names it (``messages.1.content.0.source``).
    """
    for key in data:
        if key not in _KNOWN_KEYS:
            raise _fail("not supported by this gateway", str(key))
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("required: the model (or alias) to answer with, a non-empty string", "model")
    max_tokens = data.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _fail(f"required: an integer >= 1, got {json_kind(max_tokens)}", "max_tokens")
    out: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
    messages: list[dict[str, Any]] = []
    system = data.get("system")
    if system is not None:
        text = _system_text(system)
        if text:
            messages.append({"role": "system", "content": text})
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _fail(
            f"required: a non-empty list of messages, got {json_kind(raw_messages)}", "messages"
        )
    for i, message in enumerate(raw_messages):
        messages.extend(_message(message, f"messages.{i}"))
    out["messages"] = messages
    stream = data.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _fail(f"expected true or false, got {json_kind(stream)}", "stream")
    out["stream"] = bool(stream)
    for name in ("temperature", "top_p"):
        value = data.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(f"expected a number, got {json_kind(value)}", name)
            if not 0 <= value <= 1:
                raise _fail(f"must be between 0 and 1, got {value}", name)
            out[name] = value
    top_k = data.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise _fail(f"expected an integer >= 1, got {json_kind(top_k)}", "top_k")
        out["top_k"] = top_k
    stops = data.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise _fail("expected a list of non-empty strings", "stop_sequences")
        if stops:
            out["stop"] = stops
    tools = data.get("tools")
    if tools is not None:
        out["tools"] = _tools(tools)
    choice = data.get("tool_choice")
    if choice is not None:
        mapped = _tool_choice(choice)
        if mapped is not None:
            out["tool_choice"] = mapped
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise _fail(f"expected an object, got {json_kind(metadata)}", "metadata")
        user = metadata.get("user_id")
        if user is not None:
            if not isinstance(user, str):
                raise _fail(f"expected a string, got {json_kind(user)}", "metadata.user_id")
            out["user"] = user
    # What is left to check (content parts, tool names …) is named as mapped.
    return ChatRequest.from_dict(out)


def _system_text(system: object) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise _fail(
            f"expected a string or a list of text blocks, got {json_kind(system)}", "system"
        )
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, Mapping) or block.get("type") != "text":
            raise _fail("expected a text block {'type': 'text', 'text': ...}", f"system.{i}")
        text = block.get("text")
        if not isinstance(text, str):
            raise _fail(f"expected a string, got {json_kind(text)}", f"system.{i}.text")
        parts.append(text)
    return "\n\n".join(parts)


def _message(message: object, at: str) -> list[dict[str, Any]]:
    if not isinstance(message, Mapping):
        raise _fail(f"expected an object, got {json_kind(message)}", at)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise _fail(f"expected 'user' or 'assistant', got {role!r}", f"{at}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _fail(
            f"required: a string or a list of content blocks, got {json_kind(content)}",
            f"{at}.content",
        )
    if not content:
        raise _fail("the list of content blocks is empty", f"{at}.content")
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        where = f"{at}.content.{j}"
        if not isinstance(block, Mapping):
            raise _fail(f"expected a content block object, got {json_kind(block)}", where)
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise _fail(f"expected a string, got {json_kind(text)}", f"{where}.text")
            parts.append({"type": "text", "text": text})
        elif kind == "image" and role == "user":
            parts.append(_image(block.get("source"), f"{where}.source"))
        elif kind == "tool_use" and role == "assistant":
            calls.append(_tool_use(block, where))
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block, where))
        else:
            allowed = "text, image, tool_result" if role == "user" else "text, tool_use"
            raise _fail(
                f"unsupported block type {kind!r} in a {role} message; expected one of: {allowed}",
                f"{where}.type",
            )
    if role == "assistant":
        text = "".join(part["text"] for part in parts)
        mapped: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            mapped["tool_calls"] = calls
        elif not text:
            raise _fail("an assistant message needs text or tool_use blocks", f"{at}.content")
        return [mapped]
    out = results  # tool results answer the previous assistant turn, so they come first
    if parts:
        out = [*results, {"role": "user", "content": parts}]
    return out


def _image(source: object, at: str) -> dict[str, Any]:
    if not isinstance(source, Mapping):
        raise _fail(f"expected an image source object, got {json_kind(source)}", at)
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not media_type.startswith("image/"):
            raise _fail("expected an image media type like 'image/png'", f"{at}.media_type")
        if not isinstance(data, str) or not data:
            raise _fail("expected base64 image data", f"{at}.data")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        given = source.get("url")
        if not isinstance(given, str) or not given.startswith(("http://", "https://")):
            raise _fail("expected an http(s) URL", f"{at}.url")
        url = given
    else:
        raise _fail(f"expected 'base64' or 'url', got {kind!r}", f"{at}.type")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_use(block: Mapping[str, Any], at: str) -> dict[str, Any]:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise _fail("required: the tool call's id", f"{at}.id")
    if not isinstance(name, str) or not name:
        raise _fail("required: the tool's name", f"{at}.name")
    if not isinstance(arguments, Mapping):
        raise _fail(f"expected an object, got {json_kind(arguments)}", f"{at}.input")
    # (request → messages → message → content → block → input)
    check_nesting(arguments, levels=MAX_NESTING - 5, field=f"{at}.input")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))},
    }


def _tool_result(block: Mapping[str, Any], at: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail("required: the id of the tool_use it answers", f"{at}.tool_use_id")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise _fail("only text blocks are supported in a tool result", f"{at}.content.{k}")
            text = part.get("text")
            if not isinstance(text, str):
                raise _fail(f"expected a string, got {json_kind(text)}", f"{at}.content.{k}.text")
            texts.append(text)
        content = "\n".join(texts)
    elif not isinstance(content, str):
        raise _fail(f"expected a string or a list of text blocks, got {json_kind(content)}", at)
    is_error = block.get("is_error", False)
    if not isinstance(is_error, bool):
        raise _fail(f"expected true or false, got {json_kind(is_error)}", f"{at}.is_error")
    if is_error:
        # OpenAI's tool message has no error flag: say it in the text the model reads.
        content = f"[tool error] {content}"
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _tools(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _fail(f"expected a list of tools, got {json_kind(tools)}", "tools")
    out = []
    for i, tool in enumerate(tools):
        at = f"tools.{i}"
        if not isinstance(tool, Mapping):
            raise _fail(f"expected a tool object, got {json_kind(tool)}", at)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise _fail(f"server tools ({kind!r}) are not supported by this gateway", f"{at}.type")
        name, description, schema = (
            tool.get("name"),
            tool.get("description"),
            tool.get("input_schema"),
        )
        if not isinstance(name, str) or not name:
            raise _fail("required: the tool's name", f"{at}.name")
        if description is not None and not isinstance(description, str):
            raise _fail(f"expected a string, got {json_kind(description)}", f"{at}.description")
        if not isinstance(schema, Mapping):
            raise _fail(
                f"required: the tool's JSON Schema object, got {json_kind(schema)}",
                f"{at}.input_schema",
            )
        # (request → tools → tool → input_schema)
        check_nesting(schema, levels=MAX_NESTING - 3, field=f"{at}.input_schema")
        function: dict[str, Any] = {"name": name, "parameters": dict(schema)}
        if description is not None:
            function["description"] = description
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object) -> str | dict[str, Any] | None:
    if not isinstance(choice, Mapping):
        raise _fail(
            f"expected an object like {{'type': 'auto'}}, got {json_kind(choice)}", "tool_choice"
        )
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise _fail("required: the tool's name", "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    raise _fail(f"expected 'auto', 'any', 'tool' or 'none', got {kind!r}", "tool_choice.type")


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
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def message_body(
    *,
    message_id: str,
    model: str,
    text: str,
    tool_calls: tuple[ToolCall, ...],
    finish_reason: str,
    usage: Usage | None,
) -> dict[str, Any]:
    """A whole ``message`` object."""
    content: list[dict[str, Any]] = []
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
        return head + _event(
            b"content_block_delta",
            {
                "type": "content_block_delta",
                "index": self._block,
                "delta": {"type": "input_json_delta", "partial_json": delta.arguments},
            },
        )

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

    def parse(self, data: Mapping[str, Any]) -> ChatCall:
        return ChatCall(parse_messages(data))

    def stream_encoder(self, call: ChatCall) -> MessageStream:
        return MessageStream(call.request.model)

    def whole(self, completion: Completion) -> dict[str, Any]:
        return message_body(
            message_id=new_message_id(),
            model=completion.model,
            text=completion.text,
            tool_calls=completion.tool_calls,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
        )

    def error_body(self, error: ApiError) -> dict[str, Any]:
        return error.anthropic_body()
