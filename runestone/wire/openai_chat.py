"""OpenAI's chat-completions request, as a schema: ``POST /v1/chat/completions`` bodies and
the dicts given to the embedded API.

:class:`ChatBody` is the request as the client wrote it, decoded by msgspec straight
from the body (:func:`decode_chat`) or converted from a dict (:func:`convert_chat`);
:meth:`ChatBody.to_request` makes it the provider-neutral
:class:`runestone.messages.ChatRequest`. What the schema cannot say (a ``tool_choice``
naming a tool that is not offered, an assistant message with neither content nor tool
calls, two tool names alike, ``stream_options`` without ``stream``, free-form JSON
nested too deep) is checked there, on the decoded structs.

Fields of the request that are not modelled here go to ``ChatRequest.extra``: the
raw body keeps them, and :func:`decode_chat` reads them from it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal, NamedTuple, TypeAlias

import msgspec
from msgspec import Meta

from runestone.exceptions import RequestValidationError
from runestone.messages import (
    MAX_NESTING,
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    NativeBody,
    RawPart,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    check_nesting,
    nesting,
)
from runestone.wire.schema import OpenUnion, Wire, convert, decoder, may_nest_deep

__all__ = [
    "FIELDS",
    "MAPPED",
    "NO_OP",
    "AssistantMessage",
    "ChatBody",
    "ChatMessage",
    "ChatNeeds",
    "DecodedChat",
    "DeveloperMessage",
    "ImageURLPart",
    "SystemMessage",
    "TextContentPart",
    "ToolMessage",
    "ToolName",
    "ToolParameters",
    "UserMessage",
    "convert_chat",
    "convert_needs",
    "decode_chat",
    "to_messages",
    "to_tools",
    "tool_choice",
]

_MODEL: Final = "the model (or alias) to answer with, a non-empty string"
_FUNCTION: Final = "an object with the function's name"
_TOOL_NAME: Final = "1-64 letters, digits, '_' or '-'"
_JSON_SCHEMA: Final = "a json_schema response format needs an object with a string 'name'"


# --------------------------------------------------------------------------- content parts


class TextContentPart(Wire, tag_field="type", tag="text"):
    """``{"type": "text", "text": ...}``."""

    text: str


_IMAGE_URL: Final = r"^(https?://|data:)"


class ImageURL(Wire):
    """An image's address: an ``http(s):`` or a ``data:`` URL."""

    url: Annotated[
        str,
        Meta(
            pattern=_IMAGE_URL,
            extra={
                "expected": "an http(s) or data: URL",
                # {} or no url at all: the whole object is wrong, as the client reads it.
                "missing_at": "",
            },
        ),
    ]
    detail: Literal["auto", "low", "high"] | None = None


class ImageURLPart(Wire, tag_field="type", tag="image_url"):
    """``{"type": "image_url", "image_url": {"url": ..., "detail": ...}}`` (or the URL alone)."""

    image_url: Annotated[
        Annotated[str, Meta(pattern=_IMAGE_URL, extra={"expected": "an http(s) or data: URL"})]
        | ImageURL,
        Meta(extra={"expected": "{'url': 'https://...' or 'data:image/...;base64,...'}"}),
    ]


class UserPart(OpenUnion):
    """A user message's part: text, an image, or another type kept verbatim."""

    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {
        "text": TextContentPart,
        "image_url": ImageURLPart,
    }


class AssistantPart(OpenUnion):
    """An assistant message's part: text, or another type kept verbatim; no images."""

    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {"text": TextContentPart}
    REFUSED: ClassVar[Mapping[str, str]] = {"image_url": "images are allowed only in user messages"}


_NonEmpty = Meta(min_length=1)
_Content = Meta(extra={"expected": "a string or a list of content parts"})
_TextOnly = Meta(extra={"invalid": "this message takes only text parts, got {value}"})
TextContent: TypeAlias = Annotated[
    str | Annotated[list[Annotated[TextContentPart, _TextOnly]], _NonEmpty], _Content
]


# --------------------------------------------------------------------------- messages


class FunctionCall(Wire):
    """The function of a tool call: its name and the JSON text of its arguments."""

    name: str
    arguments: Annotated[str, Meta(extra={"expected": "JSON text (a string)"})] = ""


class ToolCallPart(Wire):
    """A tool call the assistant made."""

    id: Annotated[str, Meta(min_length=1, extra={"expected": "the call's id"})]
    function: Annotated[FunctionCall, Meta(extra={"expected": _FUNCTION})]


class SystemMessage(Wire, tag_field="role", tag="system"):
    """Instructions from the application."""

    content: TextContent
    name: str | None = None


class DeveloperMessage(Wire, tag_field="role", tag="developer"):
    """Instructions from the application (OpenAI's newer name for a system message)."""

    content: TextContent
    name: str | None = None


class UserMessage(Wire, tag_field="role", tag="user"):
    """What the user said: text, or a list of parts."""

    content: Annotated[str | Annotated[list[UserPart], _NonEmpty], _Content]
    name: str | None = None


class AssistantMessage(Wire, tag_field="role", tag="assistant"):
    """What the assistant said before: content, tool calls, or both."""

    content: Annotated[str | list[AssistantPart], _Content] | None = None
    name: str | None = None
    tool_calls: list[ToolCallPart] | None = None


class ToolMessage(Wire, tag_field="role", tag="tool"):
    """A tool's answer to one call."""

    content: TextContent
    tool_call_id: Annotated[
        str,
        Meta(min_length=1, extra={"expected": "for a tool message: the id of the call it answers"}),
    ]
    name: str | None = None


ChatMessage: TypeAlias = (
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage
)
"""One message, its role the tag."""


# --------------------------------------------------------------------------- tools


ToolName: TypeAlias = Annotated[
    str,
    Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", extra={"expected": "1-64 letters, digits, '_' or '-'"}),
]
"""A function tool's name, as OpenAI takes it (chat and Responses alike)."""
ToolParameters: TypeAlias = Annotated[
    dict[str, Any], Meta(extra={"expected": "a JSON Schema object"})
]
"""A function tool's parameters: a JSON Schema object."""


class FunctionSpec(Wire):
    """A function the model may call."""

    name: ToolName
    description: str | None = None
    parameters: ToolParameters | None = None
    strict: bool | None = None


class ToolSpec(Wire, kw_only=True):
    """``{"type": "function", "function": {...}}``: the only kind of tool served."""

    type: Annotated[
        Literal["function"],
        Meta(extra={"invalid": "only function tools are supported, got {value}"}),
    ] = "function"
    function: Annotated[FunctionSpec, Meta(extra={"expected": _FUNCTION})]


class FunctionName(Wire):
    """The function a ``tool_choice`` names."""

    name: str


class NamedToolChoice(Wire):
    """``{"type": "function", "function": {"name": ...}}``."""

    function: Annotated[
        FunctionName,
        Meta(
            extra={
                "expected": "{'type': 'function', 'function': {'name': ...}}",
                "missing_at": "function.name",
            }
        ),
    ]


_ToolChoice = Annotated[
    Literal["none", "auto", "required"] | NamedToolChoice,
    Meta(
        extra={
            "invalid": "expected 'none', 'auto', 'required' or a function object, got {value}",
            "expected": "a string or an object",
        }
    ),
]


# --------------------------------------------------------------------------- the rest


class JsonSchemaFormat(Wire):
    """The ``json_schema`` of a structured-output response format."""

    name: str


class TextFormat(Wire, tag_field="type", tag="text"):
    """Plain text answers."""


class JsonObjectFormat(Wire, tag_field="type", tag="json_object"):
    """Answers that are one JSON object."""


class JsonSchemaResponseFormat(Wire, tag_field="type", tag="json_schema"):
    """Answers matching a JSON Schema."""

    json_schema: Annotated[
        JsonSchemaFormat,
        Meta(extra={"expected": _JSON_SCHEMA}),
    ]


class ResponseFormat(OpenUnion):
    """``response_format``: checked against its member, kept as the client wrote it (it
    may carry more than we model, and goes to the provider as it is)."""

    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {
        "text": TextFormat,
        "json_object": JsonObjectFormat,
        "json_schema": JsonSchemaResponseFormat,
    }

    @classmethod
    def decode(cls, data: object) -> OpenUnion:
        out = super().decode(data)
        if isinstance(out.value, dict):  # a tag not among the members: not a format we know
            shown = repr(out.value.get(cls.TAG))
            raise TypeError(f"Invalid value {shown} - at `$.{cls.TAG}`")
        return cls(data)  # type: ignore[arg-type]  # data is a dict: super().decode checked it


class StreamOptions(Wire):
    """``stream_options``: only ``include_usage`` is read."""

    include_usage: bool | None = None


_Tokens = Annotated[int, Meta(ge=1)]
_Stop = Annotated[str, Meta(min_length=1)]


class ChatNeeds(Wire):
    """The fields of a request that say what it needs from a model (see
    :meth:`runestone.routing.Requirements.from_request`), read as leniently as that
    needs: no model, any number of messages, the response format only by its type."""

    messages: list[ChatMessage]
    tools: list[ToolSpec] | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: _Tokens | None = None
    max_completion_tokens: _Tokens | None = None


class ChatBody(Wire, kw_only=True):
    """A chat-completions request body."""

    model: Annotated[str, Meta(pattern=r"\S", extra={"expected": _MODEL})]
    messages: Annotated[
        list[ChatMessage], Meta(min_length=1, extra={"expected": "a non-empty list of messages"})
    ]
    tools: list[ToolSpec] | None = None
    response_format: ResponseFormat | None = None
    max_tokens: _Tokens | None = None
    max_completion_tokens: _Tokens | None = None
    stream: bool | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    tool_choice: _ToolChoice | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    stop: _Stop | list[_Stop] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    stream_options: (
        Annotated[StreamOptions, Meta(extra={"expected": "an object like {'include_usage': true}"})]
        | None
    ) = None

    def to_request(
        self,
        extra: Mapping[str, Any],
        *,
        own: bool = False,
        deep: bool = True,
        native: NativeBody | None = None,
    ) -> ChatRequest:
        """The request this body asks for; ``extra`` holds the fields not modelled here.

        ``own``: the free-form values (tool parameters, the response format, parts kept
        verbatim, ``extra``) are the caller's and must be copied. ``deep``: they may nest
        deeper than :data:`MAX_NESTING` and must be measured (see :func:`may_nest_deep`).
        ``native``: the body as the client wrote it, kept for an OpenAI-format upstream.
        """
        if self.n is not None and self.n > 1 and native is None:
            raise RequestValidationError(
                "n > 1 is served over the HTTP API only, by OpenAI-format upstreams", field="n"
            )
        free = _FREE[own, deep]
        tools = to_tools(self.tools or (), free)
        max_tokens = self.max_tokens
        if self.max_completion_tokens is not None:
            if max_tokens is not None and max_tokens != self.max_completion_tokens:
                raise RequestValidationError(
                    f"conflicts with max_tokens={max_tokens}; give one of them",
                    field="max_completion_tokens",
                )
            max_tokens = self.max_completion_tokens
        for key, value in extra.items():
            if not isinstance(key, str):
                raise RequestValidationError("field names must be strings", field=repr(key))
            free.check(value, levels=MAX_NESTING - 1, field=key)
        response_format = None
        if self.response_format is not None:
            free.check(self.response_format.value, levels=MAX_NESTING - 1, field="response_format")
            response_format = free.keep(self.response_format.value)
        stop = self.stop
        return ChatRequest(
            model=self.model,
            messages=to_messages(self.messages, free),
            stream=bool(self.stream),
            tools=tools,
            tool_choice=_to_tool_choice(self.tool_choice, tools),
            temperature=None if self.temperature is None else float(self.temperature),
            top_p=None if self.top_p is None else float(self.top_p),
            max_tokens=max_tokens,
            stop=() if stop is None else (stop,) if isinstance(stop, str) else tuple(stop),
            response_format=response_format,
            user=self.user,
            metadata=self.metadata,
            extra={key: free.keep(value) for key, value in extra.items()},
            native=native,
        )

    def native_fields(self, extra: Mapping[str, Any]) -> list[str]:
        """The fields of this body only an OpenAI-format upstream carries: ``n`` above 1,
        ``metadata``, and every field not modelled that no other upstream maps (``seed``,
        ``logprobs`` …) unless it has its no-op value (``store: false`` …)."""
        fields = [
            key
            for key, value in extra.items()
            if key not in MAPPED and value is not None and NO_OP.get(key, _NOT) != value
        ]
        if self.n is not None and self.n > 1:
            fields.insert(0, "n")
        if self.metadata:
            fields.append("metadata")
        return fields

    @property
    def include_usage(self) -> bool:
        """``stream_options.include_usage`` (a streamed answer ends with its usage)."""
        options = self.stream_options
        if options is None:
            return False
        if not self.stream:
            raise RequestValidationError("only allowed when stream is true", field="stream_options")
        return bool(options.include_usage)


FIELDS: Final = frozenset(ChatBody.__struct_encode_fields__)
"""The request fields the schema models; the others go to ``ChatRequest.extra``."""
MAPPED: Final = frozenset(
    {"reasoning_effort", "parallel_tool_calls", "top_k", "thinking", "service_tier"}
)
"""Fields not modelled that other upstreams map onto their own (Anthropic's thinking
budget, ``disable_parallel_tool_use`` …) or take as they are."""
NO_OP: Final[Mapping[str, object]] = {
    "store": False,
    "logprobs": False,
    "presence_penalty": 0,
    "frequency_penalty": 0,
}
"""Fields not modelled whose value here asks for nothing: any upstream can take them."""
_NOT: Final = object()


def _same(value: Any) -> Any:
    return value


def _unmeasured(value: object, *, levels: int, field: str) -> None:
    """The body is known to nest no deeper than :data:`MAX_NESTING`: nothing to measure."""


@dataclass(frozen=True, slots=True)
class _Free:
    """What becomes of the free-form JSON values of a request: ``keep`` copies one (or
    not), ``check`` refuses one nested too deep (or knows it cannot be)."""

    keep: Callable[[Any], Any]
    check: Callable[..., None]


_AS_DECODED: Final = _Free(_same, check_nesting)
# Made once: a request picks its own by (own, deep).
_FREE: Final[Mapping[tuple[bool, bool], _Free]] = {
    (own, deep): _Free(copy.deepcopy if own else _same, check_nesting if deep else _unmeasured)
    for own in (False, True)
    for deep in (False, True)
}


# --------------------------------------------------------------------------- decoding

_decode: Final = decoder(ChatBody)
_keys: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_value: Final = msgspec.json.Decoder()


class DecodedChat(NamedTuple):
    """A request decoded by the schema, and what :meth:`to_request` needs beside it."""

    body: ChatBody
    extra: dict[str, Any]
    """The request's fields the schema does not model, as the client wrote them."""
    own: bool
    """The free-form values are the caller's (a dict given to the embedded API)."""
    deep: bool
    """The free-form values may nest too deep (see :func:`may_nest_deep`)."""
    fields: Mapping[str, msgspec.Raw] | None = None
    """Each top-level field as the JSON text it was (a body decoded from bytes)."""

    def to_request(self, native: NativeBody | None = None) -> ChatRequest:
        """The :class:`ChatRequest` (raises :class:`RequestValidationError` for a rule
        across fields); ``native``: the body as the client wrote it."""
        return self.body.to_request(self.extra, own=self.own, deep=self.deep, native=native)


def decode_chat(body: bytes) -> DecodedChat:
    """A request body decoded as :class:`ChatBody`, with its fields not modelled.

    Raises :class:`runestone.wire.schema.BodyError` for a body that is no JSON object
    and :class:`RequestValidationError` naming the first bad field.
    """
    chat = _decode(body)
    deep = may_nest_deep(body)
    # msgspec skips fields a struct does not declare; the body still has them.
    fields = _keys.decode(body)
    if fields.keys() <= FIELDS:
        return DecodedChat(chat, {}, False, deep, fields)  # positional: the hot path
    extra = {k: _value.decode(v) for k, v in fields.items() if k not in FIELDS}
    return DecodedChat(chat, extra, False, deep, fields)


def convert_chat(data: object) -> DecodedChat:
    """A request dict converted to :class:`ChatBody`, with its fields not modelled (see
    :func:`decode_chat`); its free-form values are copied into the request."""
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    chat = convert(data, ChatBody)
    assert isinstance(data, dict)  # convert refused anything but an object
    extra = {k: v for k, v in data.items() if k not in FIELDS}
    return DecodedChat(chat, extra, own=True, deep=True)


def convert_needs(data: object) -> ChatNeeds:
    """A request dict as :class:`ChatNeeds`; raises :class:`RequestValidationError`
    naming the first bad field it reads."""
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    return convert(data, ChatNeeds)


# --------------------------------------------------------------------------- to the model


def to_messages(messages: Sequence[ChatMessage], free: _Free = _AS_DECODED) -> tuple[Message, ...]:
    """The messages of the request model."""
    out: list[Message] = []
    for i, message in enumerate(messages):
        content = message.content
        # Most messages are a role and a string: made here, in one step (a long chat
        # is mostly this loop).
        if (
            type(content) is str
            and not isinstance(message, ToolMessage)
            and not (isinstance(message, AssistantMessage) and message.tool_calls)
        ):
            out.append(Message(_ROLE_OF[type(message)], content, message.name))
            continue
        out.append(_to_message(message, i, free))
    return tuple(out)


def _to_message(message: ChatMessage, index: int, free: _Free) -> Message:
    # ``index`` names the message in an error; the name is made only then.
    if isinstance(message, UserMessage):
        said = message.content
        return Message(
            Role.USER,
            said if isinstance(said, str) else _user_parts(said, index, free),
            name=message.name,
        )
    if isinstance(message, AssistantMessage):
        calls = _to_calls(message.tool_calls, index) if message.tool_calls else ()
        wrote = message.content
        if not calls and (wrote is None or (not wrote and not isinstance(wrote, str))):
            raise RequestValidationError(
                "required: a string or a list of content parts (or tool_calls)"
                if wrote is None
                else "the list of content parts is empty",
                field=f"messages[{index}].content",
            )
        content = (
            wrote
            if wrote is None or isinstance(wrote, str)
            else _assistant_parts(wrote, index, free)
        )
        return Message(Role.ASSISTANT, content, name=message.name, tool_calls=calls)
    text = message.content
    parts = text if isinstance(text, str) else tuple([TextPart(p.text) for p in text])
    if isinstance(message, ToolMessage):
        return Message(Role.TOOL, parts, name=message.name, tool_call_id=message.tool_call_id)
    return Message(_ROLE_OF[type(message)], parts, name=message.name)


_ROLE_OF: Final[Mapping[type[Wire], Role]] = {
    SystemMessage: Role.SYSTEM,
    DeveloperMessage: Role.DEVELOPER,
    UserMessage: Role.USER,
    AssistantMessage: Role.ASSISTANT,
    ToolMessage: Role.TOOL,
}


def _user_parts(parts: Sequence[UserPart], index: int, free: _Free) -> tuple[ContentPart, ...]:
    out: list[ContentPart] = []
    for k, part in enumerate(parts):
        value = part.value
        if isinstance(value, TextContentPart):
            out.append(TextPart(value.text))
        elif isinstance(value, ImageURLPart):
            image = value.image_url
            if isinstance(image, str):
                out.append(ImagePart(image))
            else:
                out.append(ImagePart(image.url, image.detail))
        else:
            out.append(_raw(value, index, k, free))
    return tuple(out)


def _assistant_parts(
    parts: Sequence[AssistantPart], index: int, free: _Free
) -> tuple[ContentPart, ...]:
    out: list[ContentPart] = []
    for k, part in enumerate(parts):
        value = part.value
        if isinstance(value, TextContentPart):
            out.append(TextPart(value.text))
        else:
            out.append(_raw(value, index, k, free))
    return tuple(out)


def _raw(value: object, index: int, k: int, free: _Free) -> RawPart:
    assert isinstance(value, dict)  # an OpenUnion keeps unknown members as their object
    # (request → messages → message → content → part)
    free.check(value, levels=MAX_NESTING - 4, field=f"messages[{index}].content[{k}]")
    return RawPart(type=value["type"], data=free.keep(value))


def _to_calls(calls: Sequence[ToolCallPart], index: int) -> tuple[ToolCall, ...]:
    out = []
    for j, call in enumerate(calls):
        arguments = call.function.arguments
        if arguments.count("[") + arguments.count("{") > MAX_NESTING:
            _check_arguments(arguments, f"messages[{index}].tool_calls[{j}].function.arguments")
        out.append(ToolCall(id=call.id, name=call.function.name, arguments=arguments))
    return tuple(out)


def _check_arguments(arguments: str, field: str) -> None:
    """Tool-call arguments are JSON text that providers may parse and send on as JSON: JSON
    inside a string, which no schema of the request can see into. (Called only for text
    with more brackets than :data:`MAX_NESTING`: fewer cannot nest too deep.)"""
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


def to_tools(tools: Sequence[ToolSpec], free: _Free = _AS_DECODED) -> tuple[Tool, ...]:
    """The tools of the request model."""
    out: list[Tool] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        function = tool.function
        if function.name in seen:
            raise RequestValidationError(
                f"duplicate tool name {function.name!r}", field=f"tools[{i}].function.name"
            )
        seen.add(function.name)
        parameters = function.parameters
        if parameters is not None:
            # (request → tools → tool → function → parameters)
            free.check(parameters, levels=MAX_NESTING - 4, field=f"tools[{i}].function.parameters")
            parameters = free.keep(parameters)
        out.append(Tool(function.name, function.description, parameters, function.strict))
    return tuple(out)


def _to_tool_choice(
    choice: str | NamedToolChoice | None, tools: Sequence[Tool]
) -> ToolChoice | None:
    if choice is None or isinstance(choice, str):
        return tool_choice(choice, tools)
    return tool_choice(choice.function.name, tools, named=True, field="tool_choice.function.name")


def tool_choice(
    choice: str | None, tools: Sequence[Tool], *, named: bool = False, field: str = ""
) -> ToolChoice | None:
    """OpenAI's ``tool_choice``: a mode (``auto``, ``none``, ``required``) or, ``named``,
    the name of one of ``tools`` (a refusal names ``field``). Shared with the Responses
    request, which spells a named choice its own way."""
    if choice is None:
        return None
    if not named:
        mode = ToolChoiceMode(choice)
        if mode is ToolChoiceMode.REQUIRED and not tools:
            raise RequestValidationError("'required' needs tools", field="tool_choice")
        return ToolChoice(mode)
    if all(tool.name != choice for tool in tools):
        raise RequestValidationError(f"names tool {choice!r}, which is not in tools", field=field)
    return ToolChoice(ToolChoiceMode.FUNCTION, choice)
