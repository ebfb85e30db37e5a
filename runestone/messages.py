"""The normalized request and event model every provider speaks.

A request arrives OpenAI-shaped (``ChatRequest.from_dict``), is validated once
with an error naming the offending field, and is then a frozen value that each
provider translates to its own wire format. Whatever a provider streams back is
normalized into the same small vocabulary of frozen events::

    TextDelta | ToolCallDelta | Usage      zero or more, in order
    Done                                   exactly one, last, on success
    StreamError                            the in-band terminal event on failure

Providers *raise* a :class:`runestone.exceptions.ProviderError` on failure;
``StreamError.from_exception`` turns it into the event a caller receives.

Free-form JSON a request carries on to a provider (fields we do not model,
``response_format``, tool ``parameters``, content parts of other types, tool-call
arguments) may nest at most :data:`MAX_NESTING` levels deep, counted from the
top of the request: deeper is refused here, naming the field, rather than left
to fail inside a provider's JSON encoder.
"""

from __future__ import annotations

import copy
import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeAlias

from runestone.exceptions import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ContextLengthExceededError,
    ErrorClass,
    ErrorKind,
    ErrorReason,
    InternalProviderError,
    MalformedResponseError,
    ProviderError,
    RateLimitedError,
    RequestValidationError,
    RunestoneError,
    StreamCutError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from runestone.jsonio import json_kind

__all__ = [
    "MAX_NESTING",
    "ChatRequest",
    "Completion",
    "CompletionBuilder",
    "ContentPart",
    "Done",
    "Event",
    "FinishReason",
    "ImagePart",
    "Message",
    "Origin",
    "RawPart",
    "ResponseFormat",
    "Role",
    "StreamError",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolChoiceMode",
    "Usage",
    "check_nesting",
    "nesting",
]


# --------------------------------------------------------------------------- request


class Role(enum.StrEnum):
    """Who speaks a message."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class TextPart:
    """A text content part."""

    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image content part: an ``https:`` URL or a ``data:`` URL (base64)."""

    url: str
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        image: dict[str, Any] = {"url": self.url}
        if self.detail is not None:
            image["detail"] = self.detail
        return {"type": "image_url", "image_url": image}


@dataclass(frozen=True, slots=True)
class RawPart:
    """A content part of a type we do not model (``input_audio``, ``file`` …), kept verbatim.

    OpenAI-shaped targets receive it unchanged; targets that cannot take it refuse
    the request with a :class:`runestone.exceptions.BadRequestError`.
    """

    type: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.data))


ContentPart: TypeAlias = TextPart | ImagePart | RawPart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call made by the assistant; ``arguments`` is JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    ``content`` is a string, a tuple of content parts, or ``None`` (only for an
    assistant message that carries tool calls).
    """

    role: Role
    content: str | tuple[ContentPart, ...] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The message's text: the string content, or its text parts joined."""
        content = self.content
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "".join(part.text for part in content if isinstance(part, TextPart))

    @property
    def has_images(self) -> bool:
        content = self.content
        return isinstance(content, tuple) and any(isinstance(p, ImagePart) for p in content)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role.value}
        content = self.content
        if content is None:
            out["content"] = None
        elif isinstance(content, str):
            out["content"] = content
        else:
            out["content"] = [part.to_dict() for part in content]
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is its JSON Schema."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            function["description"] = self.description
        if self.parameters is not None:
            function["parameters"] = copy.deepcopy(dict(self.parameters))
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}


class ToolChoiceMode(enum.StrEnum):
    """How the model may use the tools."""

    NONE = "none"
    AUTO = "auto"
    REQUIRED = "required"
    FUNCTION = "function"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``none``/``auto``/``required``, or one named function (mode FUNCTION with ``name``)."""

    mode: ToolChoiceMode
    name: str | None = None

    def to_wire(self) -> str | dict[str, Any]:
        if self.mode is ToolChoiceMode.FUNCTION:
            return {"type": "function", "function": {"name": self.name}}
        return self.mode.value


ResponseFormat: TypeAlias = Mapping[str, Any]

MAX_NESTING: Final = 32
"""How many levels of objects and lists a request may nest, the request itself the first.

Far beyond any real request (OpenAI caps a strict tool schema at 10 levels), far
below what the JSON encoders a provider uses can take (orjson stops at 255).
"""

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PART_DETAILS: Final = frozenset({"auto", "low", "high"})
_RESPONSE_FORMAT_TYPES: Final = frozenset({"text", "json_object", "json_schema"})
# Keys of the OpenAI request we model; everything else goes to ``extra``.
_MODELLED_KEYS: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "response_format",
        "user",
        "metadata",
        "n",
        "stream_options",  # the gateway always asks for usage itself
    }
)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat-completion request, validated and provider-neutral.

    ``extra`` holds request fields we do not model (``seed``, ``top_k``,
    ``presence_penalty`` …); each provider passes on those its target accepts.
    Mapping fields are private copies made at validation and must not be mutated.
    """

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    response_format: ResponseFormat | None = None
    user: str | None = None
    metadata: Mapping[str, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    # ---- derived facts the router and providers ask about

    @property
    def uses_tools(self) -> bool:
        """The request offers tools or replays tool calls/results."""
        return bool(self.tools) or any(m.tool_calls or m.role is Role.TOOL for m in self.messages)

    @property
    def uses_images(self) -> bool:
        return any(m.has_images for m in self.messages)

    @property
    def wants_json(self) -> bool:
        fmt = self.response_format
        return fmt is not None and fmt.get("type") in ("json_object", "json_schema")

    @property
    def ends_with_assistant(self) -> bool:
        """The last message is an assistant message: a prefill of the answer."""
        return self.messages[-1].role is Role.ASSISTANT

    def replace(self, **changes: Any) -> ChatRequest:
        """A copy with ``changes`` applied (``model=``, ``messages=`` …)."""
        return replace(self, **changes)

    # ---- conversion

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatRequest:
        """Validate an OpenAI-shaped request dict.

        Raises :class:`RequestValidationError` whose ``field`` names the first bad field.
        """
        if not isinstance(data, Mapping):
            raise RequestValidationError(
                f"expected a JSON object, got {json_kind(data)}", field="request"
            )
        model = data.get("model")
        if not isinstance(model, str) or not model.strip():
            raise RequestValidationError(
                "required: the model (or alias) to answer with, a non-empty string",
                field="model",
            )
        messages = _parse_messages(data.get("messages"))
        stream = data.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise RequestValidationError(
                f"expected true or false, got {json_kind(stream)}", field="stream"
            )
        n = data.get("n")
        if n is not None and (_is_bool(n) or n != 1):
            raise RequestValidationError("only n=1 is supported", field="n")
        tools = _parse_tools(data.get("tools"))
        tool_choice = _parse_tool_choice(data.get("tool_choice"), tools)
        temperature = _number(data.get("temperature"), "temperature", 0.0, 2.0)
        top_p = _number(data.get("top_p"), "top_p", 0.0, 1.0)
        max_tokens = _parse_max_tokens(data)
        stop = _parse_stop(data.get("stop"))
        response_format = _parse_response_format(data.get("response_format"))
        user = data.get("user")
        if user is not None and not isinstance(user, str):
            raise RequestValidationError(f"expected a string, got {json_kind(user)}", field="user")
        metadata = _parse_metadata(data.get("metadata"))
        for key, value in data.items():
            if key not in _MODELLED_KEYS:
                if not isinstance(key, str):
                    raise RequestValidationError("field names must be strings", field=repr(key))
                check_nesting(value, levels=MAX_NESTING - 1, field=key)
        extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in _MODELLED_KEYS}
        return cls(
            model=model,
            messages=messages,
            stream=stream,
            tools=tools,
            tool_choice=tool_choice,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            stop=stop,
            response_format=response_format,
            user=user,
            metadata=metadata,
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """The request as an OpenAI-shaped dict (``from_dict(to_dict())`` gives it back)."""
        out: dict[str, Any] = copy.deepcopy(dict(self.extra))
        out["model"] = self.model
        out["messages"] = [m.to_dict() for m in self.messages]
        out["stream"] = self.stream
        if self.tools:
            out["tools"] = [t.to_dict() for t in self.tools]
        if self.tool_choice is not None:
            out["tool_choice"] = self.tool_choice.to_wire()
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.top_p is not None:
            out["top_p"] = self.top_p
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.stop:
            out["stop"] = list(self.stop)
        if self.response_format is not None:
            out["response_format"] = copy.deepcopy(dict(self.response_format))
        if self.user is not None:
            out["user"] = self.user
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _number(value: object, name: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if _is_bool(value) or not isinstance(value, int | float):
        raise RequestValidationError(f"expected a number, got {json_kind(value)}", field=name)
    if not low <= value <= high:
        raise RequestValidationError(
            f"must be between {low:g} and {high:g}, got {value}", field=name
        )
    return float(value)


def _parse_max_tokens(data: Mapping[str, Any]) -> int | None:
    result: int | None = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = data.get(name)
        if value is None:
            continue
        if _is_bool(value) or not isinstance(value, int):
            raise RequestValidationError(f"expected an integer, got {json_kind(value)}", field=name)
        if value < 1:
            raise RequestValidationError(f"must be at least 1, got {value}", field=name)
        if result is not None and result != value:
            raise RequestValidationError(
                f"conflicts with max_tokens={result}; give one of them", field=name
            )
        result = value
    return result


def _parse_stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise RequestValidationError(
            f"expected a string or a list of strings, got {json_kind(value)}", field="stop"
        )
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise RequestValidationError(
                f"expected a non-empty string, got {json_kind(item)}", field=f"stop[{i}]"
            )
    return tuple(value)


def _parse_response_format(value: object) -> ResponseFormat | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RequestValidationError(
            f"expected an object, got {json_kind(value)}", field="response_format"
        )
    check_nesting(value, levels=MAX_NESTING - 1, field="response_format")
    kind = value.get("type")
    if kind not in _RESPONSE_FORMAT_TYPES:
        raise RequestValidationError(
            f"expected one of {sorted(_RESPONSE_FORMAT_TYPES)}, got {kind!r}",
            field="response_format.type",
        )
    if kind == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, Mapping) or not isinstance(schema.get("name"), str):
            raise RequestValidationError(
                "a json_schema response format needs an object with a string 'name'",
                field="response_format.json_schema",
            )
    return copy.deepcopy(dict(value))


def _parse_metadata(value: object) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RequestValidationError(
            f"expected an object, got {json_kind(value)}", field="metadata"
        )
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise RequestValidationError(
                f"expected a string value, got {json_kind(item)}", field=f"metadata.{key}"
            )
    return dict(value)


def _parse_tools(value: object) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise RequestValidationError(f"expected a list, got {json_kind(value)}", field="tools")
    tools: list[Tool] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(item, Mapping):
            raise RequestValidationError(f"expected an object, got {json_kind(item)}", field=where)
        if item.get("type", "function") != "function":
            raise RequestValidationError(
                f"only function tools are supported, got {item.get('type')!r}",
                field=f"{where}.type",
            )
        function = item.get("function")
        if not isinstance(function, Mapping):
            raise RequestValidationError(
                "expected an object with the function's name", field=f"{where}.function"
            )
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise RequestValidationError(
                "expected 1-64 letters, digits, '_' or '-'", field=f"{where}.function.name"
            )
        if name in seen:
            raise RequestValidationError(
                f"duplicate tool name {name!r}", field=f"{where}.function.name"
            )
        seen.add(name)
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise RequestValidationError(
                f"expected a string, got {json_kind(description)}",
                field=f"{where}.function.description",
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise RequestValidationError(
                f"expected a JSON Schema object, got {json_kind(parameters)}",
                field=f"{where}.function.parameters",
            )
        # (request → tools → tool → function → parameters)
        check_nesting(parameters, levels=MAX_NESTING - 4, field=f"{where}.function.parameters")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise RequestValidationError(
                f"expected true or false, got {json_kind(strict)}", field=f"{where}.function.strict"
            )
        tools.append(
            Tool(
                name=name,
                description=description,
                parameters=copy.deepcopy(dict(parameters)) if parameters is not None else None,
                strict=strict,
            )
        )
    return tuple(tools)


def _parse_tool_choice(value: object, tools: Sequence[Tool]) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            mode = ToolChoiceMode(value)
        except ValueError:
            mode = ToolChoiceMode.FUNCTION
        if mode is ToolChoiceMode.FUNCTION:
            raise RequestValidationError(
                f"expected 'none', 'auto', 'required' or a function object, got {value!r}",
                field="tool_choice",
            )
        if mode is ToolChoiceMode.REQUIRED and not tools:
            raise RequestValidationError("'required' needs tools", field="tool_choice")
        return ToolChoice(mode)
    if isinstance(value, Mapping):
        function = value.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str):
            raise RequestValidationError(
                "expected {'type': 'function', 'function': {'name': ...}}",
                field="tool_choice.function.name",
            )
        if name not in {t.name for t in tools}:
            raise RequestValidationError(
                f"names tool {name!r}, which is not in tools", field="tool_choice.function.name"
            )
        return ToolChoice(ToolChoiceMode.FUNCTION, name)
    raise RequestValidationError(
        f"expected a string or an object, got {json_kind(value)}", field="tool_choice"
    )


def _parse_messages(value: object) -> tuple[Message, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise RequestValidationError(
            f"required: a non-empty list of messages, got {json_kind(value)}", field="messages"
        )
    return tuple(_parse_message(item, f"messages[{i}]") for i, item in enumerate(value))


def _parse_message(item: object, where: str) -> Message:
    if not isinstance(item, Mapping):
        raise RequestValidationError(f"expected an object, got {json_kind(item)}", field=where)
    raw_role = item.get("role")
    try:
        role = Role(raw_role) if isinstance(raw_role, str) else Role("?")
    except ValueError:
        raise RequestValidationError(
            f"expected one of {[r.value for r in Role]}, got {raw_role!r}", field=f"{where}.role"
        ) from None
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise RequestValidationError(
            f"expected a string, got {json_kind(name)}", field=f"{where}.name"
        )
    tool_calls = _parse_tool_calls(item.get("tool_calls"), where) if role is Role.ASSISTANT else ()
    content = _parse_content(item.get("content"), role, where, has_tool_calls=bool(tool_calls))
    tool_call_id = None
    if role is Role.TOOL:
        tool_call_id = item.get("tool_call_id")
        if not isinstance(tool_call_id, str) or not tool_call_id:
            raise RequestValidationError(
                "required for a tool message: the id of the call it answers",
                field=f"{where}.tool_call_id",
            )
    return Message(
        role=role, content=content, name=name, tool_calls=tool_calls, tool_call_id=tool_call_id
    )


def _parse_tool_calls(value: object, where: str) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise RequestValidationError(
            f"expected a list, got {json_kind(value)}", field=f"{where}.tool_calls"
        )
    calls = []
    for j, call in enumerate(value):
        at = f"{where}.tool_calls[{j}]"
        if not isinstance(call, Mapping):
            raise RequestValidationError(f"expected an object, got {json_kind(call)}", field=at)
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise RequestValidationError("required: the call's id", field=f"{at}.id")
        function = call.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise RequestValidationError(
                "expected an object with the function's name", field=f"{at}.function"
            )
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            raise RequestValidationError(
                f"expected JSON text (a string), got {json_kind(arguments)}",
                field=f"{at}.function.arguments",
            )
        _check_arguments(arguments, f"{at}.function.arguments")
        calls.append(ToolCall(id=call_id, name=function["name"], arguments=arguments))
    return tuple(calls)


def _parse_content(
    value: object, role: Role, where: str, *, has_tool_calls: bool
) -> str | tuple[ContentPart, ...] | None:
    at = f"{where}.content"
    if value is None:
        if role is Role.ASSISTANT and has_tool_calls:
            return None
        raise RequestValidationError(
            "required: a string or a list of content parts"
            + (" (or tool_calls)" if role is Role.ASSISTANT else ""),
            field=at,
        )
    if isinstance(value, str):
        return value
    if not isinstance(value, list | tuple):
        raise RequestValidationError(
            f"expected a string or a list of content parts, got {json_kind(value)}", field=at
        )
    if not value and not has_tool_calls:
        raise RequestValidationError("the list of content parts is empty", field=at)
    parts = tuple(_parse_part(part, role, f"{at}[{k}]") for k, part in enumerate(value))
    return parts


def _parse_part(part: object, role: Role, at: str) -> ContentPart:
    if not isinstance(part, Mapping):
        raise RequestValidationError(
            f"expected a content part object, got {json_kind(part)}", field=at
        )
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise RequestValidationError(
                f"expected a string, got {json_kind(text)}", field=f"{at}.text"
            )
        return TextPart(text)
    if role in (Role.SYSTEM, Role.DEVELOPER, Role.TOOL):
        raise RequestValidationError(
            f"a {role.value} message takes only text parts, got {kind!r}", field=f"{at}.type"
        )
    if kind == "image_url":
        if role is not Role.USER:
            raise RequestValidationError(
                "images are allowed only in user messages", field=f"{at}.type"
            )
        image = part.get("image_url")
        if isinstance(image, str):
            image = {"url": image}
        if not isinstance(image, Mapping) or not isinstance(image.get("url"), str):
            raise RequestValidationError(
                "expected {'url': 'https://...' or 'data:image/...;base64,...'}",
                field=f"{at}.image_url",
            )
        url: str = image["url"]
        if not url.startswith(("http://", "https://", "data:")):
            raise RequestValidationError(
                "expected an http(s) or data: URL", field=f"{at}.image_url.url"
            )
        detail = image.get("detail")
        if detail is not None and detail not in _PART_DETAILS:
            raise RequestValidationError(
                f"expected one of {sorted(_PART_DETAILS)}, got {detail!r}",
                field=f"{at}.image_url.detail",
            )
        return ImagePart(url=url, detail=detail)
    if not isinstance(kind, str) or not kind:
        raise RequestValidationError("required: the content part's type", field=f"{at}.type")
    # (request → messages → message → content → part)
    check_nesting(part, levels=MAX_NESTING - 4, field=at)
    return RawPart(type=kind, data=copy.deepcopy(dict(part)))


def nesting(value: object) -> int:
    """How many levels of objects and lists ``value`` nests (0 for a string or a number)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    # A loop, not recursion: the value is the client's and may be as deep as it likes.
    while stack:
        node, level = stack.pop()
        if isinstance(node, Mapping):
            children: Iterable[object] = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_nesting(value: object, *, levels: int, field: str) -> None:
    """Refuse ``value`` (a :class:`RequestValidationError` naming ``field``) when it nests
    more than ``levels`` levels: the levels of the request above it use up the rest of
    :data:`MAX_NESTING`."""
    if isinstance(value, Mapping | list | tuple) and nesting(value) > levels:
        raise RequestValidationError(
            f"nested more than {MAX_NESTING} levels deep (objects and lists, counted from the "
            "top of the request); flatten it",
            field=field,
        )


def _check_arguments(arguments: str, field: str) -> None:
    """Tool-call arguments are JSON text that providers may parse and send on as JSON."""
    if arguments.count("[") + arguments.count("{") <= MAX_NESTING:
        return  # too few brackets to nest too deep: nothing to parse
    try:
        parsed = json.loads(arguments)
    except RecursionError:
        too_deep = True
    except ValueError:
        return  # not JSON: the model's text as it is, which providers send on as text
    else:
        too_deep = nesting(parsed) > MAX_NESTING
    if too_deep:
        raise RequestValidationError(
            f"the JSON text is nested more than {MAX_NESTING} levels deep; flatten it",
            field=field,
        )


# --------------------------------------------------------------------------- events


class FinishReason(enum.StrEnum):
    """Why an answer ended (OpenAI's vocabulary; other providers' reasons are mapped onto it)."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"


@dataclass(frozen=True, slots=True)
class Origin:
    """Which attempt the first content a caller receives came from (the commit point).

    An HTTP server sends its headers with that content, before ``Done`` names the
    answer's provider and model; this is what it can say by then.
    """

    provider: str
    model: str
    attempt: int
    """How many attempts the request had made, this one included."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str
    origin: Origin | None = field(default=None, compare=False, repr=False)
    """Set on the request's first content only (see :class:`Origin`)."""


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of tool call ``index``: ``id`` and ``name`` come with its first piece."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    origin: Origin | None = field(default=None, compare=False, repr=False)
    """Set on the request's first content only (see :class:`Origin`)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one answer."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Done:
    """The answer is complete. ``finish_reason`` is a :class:`FinishReason` value."""

    finish_reason: str
    provider: str = ""
    model: str = ""
    usage: Usage | None = None
    attempts: tuple[Any, ...] = ()
    """Every attempt the request made (set on the final event a caller receives)."""
    cost: float | None = None
    """What the answer cost on the provider that answered, when its prices are known."""


_ERROR_TYPES: Final[Mapping[ErrorClass, type[ProviderError]]] = {
    ErrorClass.RATE_LIMITED: RateLimitedError,
    ErrorClass.SERVER_ERROR: UpstreamServerError,
    ErrorClass.CONNECTION_ERROR: UpstreamConnectionError,
    ErrorClass.CONNECT_TIMEOUT: UpstreamTimeoutError,
    ErrorClass.HEADERS_TIMEOUT: UpstreamTimeoutError,
    ErrorClass.FIRST_TOKEN_TIMEOUT: UpstreamTimeoutError,
    ErrorClass.IDLE_TIMEOUT: UpstreamTimeoutError,
    ErrorClass.TOTAL_TIMEOUT: UpstreamTimeoutError,
    ErrorClass.STREAM_CUT: StreamCutError,
    ErrorClass.MALFORMED: MalformedResponseError,
    ErrorClass.CONTEXT_LENGTH: ContextLengthExceededError,
    ErrorClass.CONTENT_POLICY: ContentPolicyError,
    ErrorClass.BAD_REQUEST: BadRequestError,
    ErrorClass.AUTHENTICATION: AuthenticationError,
    ErrorClass.INTERNAL: InternalProviderError,
}


@dataclass(frozen=True, slots=True)
class StreamError:
    """The in-band terminal event of a failed stream."""

    error_class: ErrorClass
    message: str
    provider: str = ""
    model: str = ""
    retry_after: float | None = None
    content_delivered: bool = False
    attempts: tuple[Any, ...] = ()
    """Every attempt the request made (set on the final event a caller receives)."""
    kind: ErrorKind | None = None
    """The Runestone error behind it (``NoCandidatesError`` …); None: a provider's, unnamed.
    A plain string naming one is taken too (and kept as its :class:`ErrorKind`)."""
    reason: ErrorReason | None = None
    """Why, machine-readably, where the kind alone does not say (``unknown_model`` …)."""

    def __post_init__(self) -> None:
        kind: object = self.kind
        if isinstance(kind, str) and not isinstance(kind, ErrorKind):
            object.__setattr__(self, "kind", ErrorKind(kind) if kind else None)

    @classmethod
    def from_exception(
        cls, exc: BaseException, *, error_class: ErrorClass = ErrorClass.SERVER_ERROR
    ) -> StreamError:
        """The event for an error: a failed attempt's (its message is already free of
        secrets), or another error's, in ``error_class``, named by its kind and reason."""
        if isinstance(exc, ProviderError):
            return cls(
                error_class=exc.error_class,
                message=exc.message,
                provider=exc.provider,
                model=exc.model,
                retry_after=exc.retry_after,
                content_delivered=exc.content_delivered,
            )
        reason = exc.reason if isinstance(exc, RunestoneError) else None
        return cls(error_class, str(exc), kind=ErrorKind.of(exc), reason=reason)

    def to_exception(self) -> ProviderError:
        """The matching :class:`ProviderError`, for callers that raise rather than stream."""
        error_type = _ERROR_TYPES.get(self.error_class, ProviderError)
        return error_type(
            self.message,
            provider=self.provider,
            model=self.model,
            retry_after=self.retry_after,
            content_delivered=self.content_delivered,
            error_class=self.error_class,
        )


StreamEvent: TypeAlias = TextDelta | ToolCallDelta | Usage | Done
"""What a provider's stream yields."""

Event: TypeAlias = TextDelta | ToolCallDelta | Usage | Done | StreamError
"""What a caller receives: stream events, then ``Done`` or ``StreamError``."""


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer (the non-streaming result)."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = FinishReason.STOP
    usage: Usage | None = None
    provider: str = ""
    model: str = ""

    def events(self) -> tuple[StreamEvent, ...]:
        """The same answer as the events a stream would have yielded."""
        out: list[StreamEvent] = []
        if self.text:
            out.append(TextDelta(self.text))
        for i, call in enumerate(self.tool_calls):
            out.append(ToolCallDelta(i, call.id, call.name, call.arguments))
        if self.usage is not None:
            out.append(self.usage)
        out.append(Done(self.finish_reason, self.provider, self.model, self.usage))
        return tuple(out)


class CompletionBuilder:
    """Assembles stream events into a :class:`Completion` (text joined, tool calls by index)."""

    __slots__ = ("_calls", "_done", "_text", "_usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, list[str]] = {}
        self._usage: Usage | None = None
        self._done: Done | None = None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self._calls.setdefault(event.index, ["", "", ""])
            if event.id:
                call[0] = event.id
            if event.name:
                call[1] += event.name
            call[2] += event.arguments
        elif isinstance(event, Usage):
            self._usage = event
        elif isinstance(event, Done):
            self._done = event

    def extend(self, events: Iterable[StreamEvent]) -> None:
        for event in events:
            self.add(event)

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def done(self) -> bool:
        return self._done is not None

    def build(self) -> Completion:
        """The completion; raises ``ValueError`` if no ``Done`` was added."""
        done = self._done
        if done is None:
            raise ValueError("the stream has not finished: no Done event")
        calls = tuple(ToolCall(*self._calls[i]) for i in sorted(self._calls))
        return Completion(
            text=self.text,
            tool_calls=calls,
            finish_reason=done.finish_reason,
            usage=done.usage or self._usage,
            provider=done.provider,
            model=done.model,
        )
