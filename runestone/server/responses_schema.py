"""OpenAI's Responses wire format, answered from a chat completion: the whole object and
its stream, as OpenAI sends them.

A ``POST /v1/responses`` body becomes a :class:`~runestone.messages.ChatRequest`
(:mod:`runestone.wire.openai_responses`), so it is routed, retried and failed over
like any chat completion; only the answer's shape differs. A whole answer is a
``response`` object: a ``message`` item holding the text (``output_text``) and one
``function_call`` item per tool call, ``status`` ``completed`` — or ``incomplete``
with ``incomplete_details.reason`` when the answer was cut by ``max_output_tokens``
(finish reason ``length``) or a content filter. Nothing is stored (``store`` is
false). A streamed answer is SSE, every event with its ``sequence_number``::

    event: response.created                 the response, in progress, no output
    event: response.in_progress
    event: response.output_item.added       a message item opens (output_index n)
    event: response.content_part.added      its output_text part
    event: response.output_text.delta       text
    event: response.output_text.done
    event: response.content_part.done
    event: response.output_item.done
    event: response.output_item.added       a function_call item opens
    event: response.function_call_arguments.delta
    event: response.function_call_arguments.done
    event: response.output_item.done
    event: response.completed               (or response.incomplete) the whole response

An upstream that speaks the Responses API itself gets the body as the client wrote it
(:class:`~runestone.messages.NativeBody`; only its model and ``stream`` changed) and
its answer is passed back unchanged; every other one gets the translation. Fields only
such an upstream can carry (``previous_response_id``, ``conversation``, ``background``,
built-in tools, ``item_reference`` items, ``include`` asking for encrypted reasoning,
unknown fields: :func:`~runestone.wire.openai_responses.native_fields`) send the
request to it alone; with none configured, the 400 names the field.

A failure after content has been sent is ``event: error`` — its ``code``,
``message`` and ``param``, and the same as a nested ``error`` object, which the
openai SDK raises as an ``APIError`` — then ``event: response.failed`` (status
``failed``, the output so far): never a ``response.completed``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from runestone import jsonio
from runestone.exceptions import RequestValidationError
from runestone.messages import (
    ChatRequest,
    Completion,
    FinishReason,
    Message,
    NativeBody,
    Passthrough,
    ReasoningDelta,
    Role,
    ToolCall,
    ToolCallDelta,
    Usage,
    WireFormat,
)
from runestone.server.dialect import NO_HEADERS, ChatCall
from runestone.server.errors import ApiError
from runestone.wire.openai_responses import (
    STATEFUL,
    ResponsesBody,
    convert_responses,
    decode_responses,
    native_fields,
)
from runestone.wire.schema import BodyError

__all__ = [
    "INCOMPLETE_REASONS",
    "ResponseStream",
    "ResponsesDialect",
    "new_response_id",
    "output_items",
    "parse_responses",
    "response_body",
    "usage_body",
]

INCOMPLETE_REASONS: Final[Mapping[str, str]] = {
    FinishReason.LENGTH: "max_output_tokens",
    FinishReason.CONTENT_FILTER: "content_filter",
}
"""The ``incomplete_details.reason`` of each finish reason that leaves a response incomplete."""


def new_response_id() -> str:
    return "resp_" + uuid.uuid4().hex


def _item_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def parse_responses(data: Mapping[str, Any]) -> ChatCall:
    """Validate a Responses body given as a dict; raises :class:`RequestValidationError`
    naming the first bad field."""
    decoded = convert_responses(data)
    return ChatCall(decoded.to_request(), True, decoded.body.echo())


def usage_body(usage: Usage | None) -> dict[str, Any] | None:
    """The Responses ``usage`` object (null when the upstream gave no counts)."""
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        # Not counted by the chat answers this is made from.
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _status(finish_reason: str) -> tuple[str, dict[str, str] | None]:
    reason = INCOMPLETE_REASONS.get(str(finish_reason))
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


def response_body(
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    echo: Mapping[str, Any],
    incomplete_details: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole ``response`` object; ``echo`` holds the request's settings it repeats
    (:meth:`runestone.wire.openai_responses.ResponsesBody.echo`)."""
    finished = status in ("completed", "incomplete", "failed")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "prompt_cache_key": echo.get("prompt_cache_key"),
        "reasoning": echo.get("reasoning"),
        "safety_identifier": echo.get("safety_identifier"),
        "service_tier": echo.get("service_tier"),
        "store": False,  # stateless: nothing is kept, whatever the request asked
        "temperature": echo.get("temperature"),
        "text": echo.get("text", {"format": {"type": "text"}, "verbosity": "medium"}),
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": list(echo.get("tools", ())),
        "top_logprobs": 0,
        "top_p": echo.get("top_p"),
        "truncation": echo.get("truncation", "disabled"),
        "usage": usage_body(usage) if finished else None,
        "user": echo.get("user"),
        "metadata": dict(echo.get("metadata") or {}),
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [_text_part(text)],
    }


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def output_items(
    text: str, tool_calls: tuple[ToolCall, ...], finish_reason: str
) -> list[dict[str, Any]]:
    """The ``output`` of a whole answer: its text as a message item (when it has text, or
    no calls), then a function_call item per call."""
    out: list[dict[str, Any]] = []
    if text or not tool_calls:
        status = "incomplete" if str(finish_reason) in INCOMPLETE_REASONS else "completed"
        out.append(_message_item(_item_id("msg_"), text, status))
    for call in tool_calls:
        out.append(_call_item(_item_id("fc_"), call.id, call.name, call.arguments, "completed"))
    return out


class _Item:
    """The output item open in a stream: a message taking text, or a function call."""

    __slots__ = ("call_id", "delta_head", "id", "index", "name", "parts", "tool_index")

    def __init__(self, index: int, item_id: str, tool_index: int | None = None) -> None:
        self.index = index
        self.id = item_id
        self.tool_index = tool_index
        self.call_id = ""
        self.name = ""
        self.parts: list[str] = []
        self.delta_head = b""


class ResponseStream:
    """The SSE events of one streamed response; items open and close as the content
    changes kind, and the finished ones make the final response's output."""

    __slots__ = ("_echo", "_item", "_output", "_seq", "created_at", "model", "response_id")

    def __init__(
        self,
        model: str,
        *,
        echo: Mapping[str, Any] | None = None,
        response_id: str | None = None,
        created_at: int | None = None,
    ) -> None:
        self.response_id = response_id or new_response_id()
        self.created_at = int(time.time()) if created_at is None else created_at
        self.model = model
        self._echo: Mapping[str, Any] = echo or {}
        self._seq = 0
        self._item: _Item | None = None
        self._output: list[dict[str, Any]] = []

    def set_model(self, model: str) -> None:
        self.model = model

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        seq = self._seq
        self._seq = seq + 1
        data = {"type": kind, **payload, "sequence_number": seq}
        return b"event: " + kind.encode() + b"\ndata: " + jsonio.dumps(data) + b"\n\n"

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return response_body(
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            status=status,
            echo=self._echo,
            **{"output": [], "usage": None, **fields},
        )

    def opening(self) -> bytes:
        """``response.created`` and ``response.in_progress``."""
        return self._event(
            "response.created", {"response": self._response("in_progress")}
        ) + self._event("response.in_progress", {"response": self._response("in_progress")})

    # -- items ------------------------------------------------------------------------------

    def _open_message(self) -> bytes:
        item = self._item = _Item(len(self._output), _item_id("msg_"))
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        # The text deltas are the hot path: their constant part is encoded once.
        item.delta_head = (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            b'"item_id":'
            + jsonio.dumps(item.id)
            + b',"output_index":'
            + str(item.index).encode()
            + b',"content_index":0,"logprobs":[],"delta":'
        )
        return self._event(
            "response.output_item.added",
            {"output_index": item.index, "item": _message_item(item.id, None, "in_progress")},
        ) + self._event("response.content_part.added", {**where, "part": _text_part("")})

    def _open_call(self, delta: ToolCallDelta) -> bytes:
        item = self._item = _Item(len(self._output), _item_id("fc_"), delta.index)
        item.call_id = delta.id or "call_" + uuid.uuid4().hex[:24]
        item.name = delta.name or ""
        return self._event(
            "response.output_item.added",
            {
                "output_index": item.index,
                "item": _call_item(item.id, item.call_id, item.name, "", "in_progress"),
            },
        )

    def _close(self, status: str = "completed") -> bytes:
        item = self._item
        if item is None:
            return b""
        self._item = None
        done = "".join(item.parts)
        if item.tool_index is None:
            where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
            finished = _message_item(item.id, done, status)
            out = self._event(
                "response.output_text.done", {**where, "text": done, "logprobs": []}
            ) + self._event("response.content_part.done", {**where, "part": _text_part(done)})
        else:
            finished = _call_item(item.id, item.call_id, item.name, done, status)
            out = self._event(
                "response.function_call_arguments.done",
                {
                    "item_id": item.id,
                    "output_index": item.index,
                    "name": item.name,
                    "arguments": done,
                },
            )
        self._output.append(finished)
        return out + self._event(
            "response.output_item.done", {"output_index": item.index, "item": finished}
        )

    # -- content ----------------------------------------------------------------------------

    def text(self, text: str) -> bytes:
        item = self._item
        head = b""
        if item is None or item.tool_index is not None:
            head = self._close() + self._open_message()
            item = self._item
            assert item is not None
        item.parts.append(text)
        seq = self._seq
        self._seq = seq + 1
        return (
            head
            + item.delta_head
            + jsonio.dumps(text)
            + b',"sequence_number":'
            + str(seq).encode()
            + b"}\n\n"
        )

    def tool_call(self, delta: ToolCallDelta) -> bytes:
        item = self._item
        head = b""
        if item is None or delta.id is not None or item.tool_index != delta.index:
            head = self._close() + self._open_call(delta)
            item = self._item
            assert item is not None
        elif delta.name:
            item.name += delta.name
        if not delta.arguments:
            return head
        item.parts.append(delta.arguments)
        return head + self._event(
            "response.function_call_arguments.delta",
            {"item_id": item.id, "output_index": item.index, "delta": delta.arguments},
        )

    def reasoning(self, delta: ReasoningDelta) -> bytes:
        """Nothing: a stateless response shows no reasoning (OpenAI's own keep it in
        encrypted items this gateway cannot make)."""
        return b""

    def follow(self, frames: Passthrough) -> None:
        """Go on numbering after the upstream's frames (a passed-through stream is never
        continued, so nothing else is carried over)."""
        numbers = _SEQUENCE.findall(frames.data)
        if numbers:
            self._seq = int(numbers[-1]) + 1

    def closing(self, finish_reason: str, usage: Usage | None) -> bytes:
        """Close the open item, then ``response.completed`` (or ``response.incomplete``)
        with the whole response."""
        status, details = _status(finish_reason)
        out = self._close("incomplete" if details else "completed")
        response = self._response(
            status, output=self._output, usage=usage, incomplete_details=details
        )
        kind = "response.completed" if details is None else "response.incomplete"
        return out + self._event(kind, {"response": response})

    def error(self, error: ApiError) -> bytes:
        """``error`` (which the SDK raises), then ``response.failed``; the open item is
        closed as incomplete first, so the output so far is whole items."""
        out = self._close("incomplete")
        body = error.openai_body()["error"]
        out += self._event(
            "error",
            {"code": error.code, "message": error.message, "param": error.param, "error": body},
        )
        failure = {
            # Responses' own error codes: a rate limit, or the server's failure.
            "code": "rate_limit_exceeded" if error.status == 429 else "server_error",
            "message": error.message,
        }
        response = self._response("failed", output=self._output, error=failure)
        return out + self._event("response.failed", {"response": response})


_SEQUENCE: Final = re.compile(rb'"sequence_number":\s*(\d+)')
_FIELDS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_STATE_HINT: Final = (
    "this gateway is stateless and keeps no responses or conversations: {field} needs an "
    "upstream that "
    "speaks the Responses API and keeps them, and none can take this request ({message}); "
    "send the whole conversation in input instead"
)
_NATIVE_HINT: Final = (
    "{field} can only go to an upstream that speaks the Responses API itself, and none can "
    "take this request ({message})"
)
_TOOLS_HINT: Final = (
    "only function tools are translated onto chat completions: {field} needs an upstream "
    "that speaks the Responses API itself, and none can take this request ({message})"
)


def _routing_request(body: ResponsesBody, fields: Mapping[str, msgspec.Raw]) -> ChatRequest:
    """A request for routing alone, when the translation cannot be made of a body only a
    native upstream can take (function outputs answering calls it keeps …): its input
    and instructions as one user message, sized as written."""
    text = " ".join(
        bytes(fields[name]).decode() for name in ("instructions", "input") if name in fields
    )
    return ChatRequest(
        model=body.model,
        messages=(Message(Role.USER, text),),
        stream=bool(body.stream),
        max_tokens=body.max_output_tokens,
    )


class ResponsesDialect:
    """``POST /v1/responses``."""

    name = "responses"

    def decode(self, body: bytes, headers: Mapping[str, str] = NO_HEADERS) -> ChatCall:
        try:
            fields = _FIELDS.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            decode_responses(body)  # no JSON object: raises the BodyError naming why
            raise BodyError("the body is not a JSON object") from None
        names, translatable = native_fields(fields)
        if not names:
            decoded = decode_responses(body)
            native = NativeBody(WireFormat.OPENAI_RESPONSES, fields)
            request = decoded.to_request().replace(native=native)
            return ChatCall(request, True, decoded.body.echo())
        # Only a native upstream can take it; the rest is still checked, and translated
        # for routing where it can be.
        decoded = convert_responses(translatable)
        native = NativeBody(WireFormat.OPENAI_RESPONSES, fields, only_native=tuple(names))
        try:
            request = decoded.to_request()
        except RequestValidationError:
            request = _routing_request(decoded.body, fields)
        return ChatCall(request.replace(native=native), True, decoded.body.echo())

    def stream_encoder(self, call: ChatCall) -> ResponseStream:
        return ResponseStream(call.request.model, echo=call.echo)

    def whole(self, completion: Completion, call: ChatCall) -> dict[str, Any]:
        status, details = _status(completion.finish_reason)
        return response_body(
            response_id=new_response_id(),
            created_at=int(time.time()),
            model=completion.model,
            status=status,
            output=output_items(completion.text, completion.tool_calls, completion.finish_reason),
            usage=completion.usage,
            echo=call.echo,
            incomplete_details=details,
        )

    def error_body(self, error: ApiError) -> dict[str, Any]:
        field = error.param
        if error.code == "model_not_supported" and field and field != "model":
            # No candidate could carry a field only a native upstream can: say why.
            template = _STATE_HINT if field in STATEFUL else _NATIVE_HINT
            if field.startswith("tools["):
                template = _TOOLS_HINT
            hint = template.format(field=field, message=error.message)
            error = ApiError(error.status, hint, code=error.code, param=field)
        return error.openai_body()
