"""Anthropic's Messages request, as a schema: ``POST /v1/messages`` bodies.

:class:`MessagesBody` is the request as the client wrote it, decoded by msgspec
straight from the body (:func:`decode_messages_body`) or converted from a dict
(:func:`convert_messages_body`); :meth:`MessagesBody.to_request` maps it onto the one
request model (``system`` → a system message, ``tool_use`` blocks → tool calls,
``tool_result`` blocks → tool messages, images → image parts). Fields are named as
Anthropic names them: ``messages.1.content.0.source``.

The body is closed: a field this gateway does not serve (``thinking`` …) is refused,
never dropped unseen. What the schema cannot say (an assistant message with neither
text nor tool use, two tools alike, a ``tool_choice`` naming a tool not offered,
JSON nested too deep) is checked in :meth:`MessagesBody.to_request`, on the structs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Final, Literal, TypeAlias

import msgspec
from msgspec import Meta

from runestone import jsonio
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
)
from runestone.wire.schema import OpenUnion, Wire, convert, decoder

__all__ = [
    "TRANSLATED",
    "AssistantTurn",
    "CountTokensBody",
    "MessagesBody",
    "TextBlock",
    "ToolResultBlock",
    "ToolUseBlock",
    "UserTurn",
    "convert_messages_body",
    "decode_count_tokens_body",
    "decode_fields",
    "decode_messages_body",
    "native_fields",
]

_MODEL: Final = "the model (or alias) to answer with, a non-empty string"
_NonEmpty: Final = Meta(min_length=1)


# --------------------------------------------------------------------------- content blocks


class TextBlock(Wire, tag_field="type", tag="text"):
    """``{"type": "text", "text": ...}``."""

    text: str
    cache_control: Any = None
    """A prompt-caching breakpoint (and on every block below): for an Anthropic upstream."""
    citations: Any = None


class Base64Source(Wire, tag_field="type", tag="base64"):
    """An image given inline."""

    media_type: Annotated[
        str, Meta(pattern=r"^image/", extra={"expected": "an image media type like 'image/png'"})
    ]
    data: Annotated[str, Meta(min_length=1, extra={"expected": "base64 image data"})]


class URLSource(Wire, tag_field="type", tag="url"):
    """An image given by its address."""

    url: Annotated[str, Meta(pattern=r"^https?://", extra={"expected": "an http(s) URL"})]


class ImageBlock(Wire, tag_field="type", tag="image"):
    """``{"type": "image", "source": {...}}``."""

    source: Annotated[Base64Source | URLSource, Meta(extra={"expected": "an image source object"})]
    cache_control: Any = None


class ToolUseBlock(Wire, tag_field="type", tag="tool_use"):
    """A tool call the assistant made; ``input`` is its arguments."""

    id: Annotated[str, Meta(min_length=1, extra={"expected": "the tool call's id"})]
    name: Annotated[str, Meta(min_length=1, extra={"expected": "the tool's name"})]
    input: dict[str, Any] = {}
    cache_control: Any = None


class ResultBlock(OpenUnion):
    """A block of a tool result: text, or another type (an image, a document …) kept as
    written, for an Anthropic upstream only."""

    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {"text": TextBlock}


class ToolResultBlock(Wire, tag_field="type", tag="tool_result"):
    """A tool's answer to one ``tool_use``."""

    tool_use_id: Annotated[
        str, Meta(min_length=1, extra={"expected": "the id of the tool_use it answers"})
    ]
    content: Annotated[
        str | list[ResultBlock],
        Meta(extra={"expected": "a string or a list of content blocks"}),
    ] = ""
    is_error: bool = False
    cache_control: Any = None


_Blocks = Meta(min_length=1, extra={"expected": "a string or a non-empty list of content blocks"})


class UserBlock(OpenUnion):
    """A user turn's block: text, an image, a tool result, or another type (a document,
    a search result …) kept as written, for an Anthropic upstream only."""

    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {
        "text": TextBlock,
        "image": ImageBlock,
        "tool_result": ToolResultBlock,
    }
    REFUSED: ClassVar[Mapping[str, str]] = {
        "tool_use": "unsupported block type 'tool_use' in a user message",
    }


class AssistantBlock(OpenUnion):
    """An assistant turn's block: text, a tool use, or another type (thinking, a server
    tool's use and result …) kept as written, for an Anthropic upstream only."""

    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {
        "text": TextBlock,
        "tool_use": ToolUseBlock,
    }
    REFUSED: ClassVar[Mapping[str, str]] = {
        "image": "unsupported block type 'image' in an assistant message",
        "tool_result": "unsupported block type 'tool_result' in an assistant message",
    }


class UserTurn(Wire, tag_field="role", tag="user"):
    """A user turn: text, or blocks of text, images and tool results."""

    content: Annotated[
        str | Annotated[list[UserBlock], _Blocks],
        Meta(extra={"expected": "a string or a list of content blocks"}),
    ]


class AssistantTurn(Wire, tag_field="role", tag="assistant"):
    """An assistant turn: text, or blocks of text and tool use."""

    content: Annotated[
        str | Annotated[list[AssistantBlock], _Blocks],
        Meta(extra={"expected": "a string or a list of content blocks"}),
    ]


Turn: TypeAlias = UserTurn | AssistantTurn


# --------------------------------------------------------------------------- tools


class ToolSpec(Wire):
    """A client tool: its name, what it does, the JSON Schema of its input."""

    name: Annotated[
        str,
        Meta(
            pattern=r"^[A-Za-z0-9_-]{1,64}$", extra={"expected": "1-64 letters, digits, '_' or '-'"}
        ),
    ]
    input_schema: Annotated[
        dict[str, Any], Meta(extra={"expected": "the tool's JSON Schema object"})
    ]
    description: str | None = None
    type: Literal["custom"] | None = None
    cache_control: Any = None


class AnyTool(OpenUnion):
    """A tool: a client tool (no ``type``, or ``custom``), or a server tool (web search,
    code execution …) kept as written, for an Anthropic upstream only."""

    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {"custom": ToolSpec}

    @classmethod
    def member_for(cls, data: Mapping[str, Any]) -> type[msgspec.Struct] | None:
        return ToolSpec if "type" not in data else super().member_for(data)

    @classmethod
    def decode(cls, data: object) -> OpenUnion:
        if isinstance(data, dict) and "type" not in data:
            data = {**data, "type": "custom"}
        return super().decode(data)


class AutoChoice(Wire, tag_field="type", tag="auto"):
    """The model decides."""


class AnyChoice(Wire, tag_field="type", tag="any"):
    """The model must use one of the tools."""


class ToolNameChoice(Wire, tag_field="type", tag="tool"):
    """The model must use this tool."""

    name: Annotated[str, Meta(min_length=1, extra={"expected": "the tool's name"})]


class NoneChoice(Wire, tag_field="type", tag="none"):
    """The model must not use the tools."""


_Choice = Annotated[
    AutoChoice | AnyChoice | ToolNameChoice | NoneChoice,
    Meta(extra={"expected": "an object like {'type': 'auto'}"}),
]


class ThinkingConfig(Wire):
    """``thinking``: ``{"type": "enabled", "budget_tokens": N}``, ``disabled``, or a
    type added since (kept for the upstream)."""

    type: Annotated[str, Meta(min_length=1)]
    budget_tokens: Annotated[int, Meta(ge=1)] | None = None

    @property
    def effort(self) -> str | None:
        """OpenAI's ``reasoning_effort`` nearest this budget; None when it is off."""
        if self.type == "disabled":
            return None
        budget = self.budget_tokens
        if budget is None:
            return "medium"
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


class Metadata(Wire):
    """``metadata``: only ``user_id`` is read."""

    user_id: str | None = None


class MessagesBody(Wire):
    """A Messages API request body: what the gateway reads of it. Other fields (and
    blocks of other types) are kept in the body and passed through to an Anthropic
    upstream (:func:`native_fields` names them)."""

    model: Annotated[str, Meta(pattern=r"\S", extra={"expected": _MODEL})]
    max_tokens: Annotated[int, Meta(ge=1, extra={"expected": "an integer >= 1"})]
    messages: Annotated[
        list[Turn], Meta(min_length=1, extra={"expected": "a non-empty list of messages"})
    ]
    system: (
        Annotated[
            str | list[Annotated[TextBlock, Meta(extra={"invalid": "expected a text block"})]],
            Meta(extra={"expected": "a string or a list of text blocks"}),
        ]
        | None
    ) = None
    stream: bool | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=1)] | None = None
    stop_sequences: list[Annotated[str, _NonEmpty]] | None = None
    tools: list[AnyTool] | None = None
    tool_choice: _Choice | None = None
    metadata: Metadata | None = None
    service_tier: Any = None  # accepted, and left to the provider's default
    thinking: (
        Annotated[ThinkingConfig, Meta(extra={"expected": "an object like {'type': 'enabled'}"})]
        | None
    ) = None

    def to_request(self, *, deep: bool = True, native: NativeBody | None = None) -> ChatRequest:
        """The request this body asks for, in the one request model.

        ``deep``: tool inputs and schemas may nest deeper than :data:`MAX_NESTING` and
        must be measured (see :func:`runestone.wire.schema.may_nest_deep`). ``native``:
        the body as the client wrote it, kept for an Anthropic upstream.
        """
        check = check_nesting if deep else _unmeasured
        messages: list[Message] = []
        system = self.system
        if system is not None:
            text = system if isinstance(system, str) else "\n\n".join(b.text for b in system)
            if text:
                messages.append(Message(Role.SYSTEM, text))
        for i, turn in enumerate(self.messages):
            messages.extend(_to_messages(turn, i, check))
        tools = _to_tools(self.tools or (), check)
        effort = None if self.thinking is None else self.thinking.effort
        return ChatRequest(
            model=self.model,
            messages=tuple(messages),
            stream=bool(self.stream),
            tools=tools,
            tool_choice=_to_tool_choice(self.tool_choice, tools),
            temperature=None if self.temperature is None else float(self.temperature),
            top_p=None if self.top_p is None else float(self.top_p),
            max_tokens=self.max_tokens,
            stop=tuple(self.stop_sequences or ()),
            user=self.metadata.user_id if self.metadata is not None else None,
            extra={} if effort is None else {"reasoning_effort": effort},
            native=native,
        )


_decode: Final = decoder(MessagesBody, dotted=True)


def decode_messages_body(body: bytes) -> MessagesBody:
    """A request body as :class:`MessagesBody`.

    Raises :class:`runestone.wire.schema.BodyError` for a body that is no JSON object
    and :class:`RequestValidationError` naming the first bad field.
    """
    return _decode(body)


def convert_messages_body(data: object) -> MessagesBody:
    """A request dict as :class:`MessagesBody` (see :func:`decode_messages_body`).

    The dict is the caller's: the tool inputs and schemas the request keeps are copies.
    """
    # msgspec passes free-form values (dict[str, Any]) through as they are.
    return convert(copy.deepcopy(data), MessagesBody, dotted=True)


class CountTokensBody(Wire):
    """A ``/v1/messages/count_tokens`` body: only what the gateway reads is checked (the
    model, to route it; the messages, to estimate them); every other key goes to the
    upstream as the client sent it."""

    model: Annotated[str, Meta(pattern=r"\S", extra={"expected": _MODEL})]
    messages: Annotated[
        list[Any], Meta(min_length=1, extra={"expected": "a non-empty list of messages"})
    ]


_decode_count: Final = decoder(CountTokensBody, dotted=True)


def decode_count_tokens_body(body: bytes) -> dict[str, Any]:
    """A count_tokens body, checked as :class:`CountTokensBody`, as the dict it was.

    Raises :class:`runestone.wire.schema.BodyError` for a body that is no JSON object
    and :class:`RequestValidationError` naming the first bad field.
    """
    _decode_count(body)
    data: dict[str, Any] = jsonio.loads(body)
    return data


# --------------------------------------------------------------------------- native fields

TRANSLATED: Final = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "stream",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
        "service_tier",
        "thinking",
    }
)
"""The top-level fields with a counterpart in the one request model; any other
(``top_k``, ``context_management``, ``container`` …) only an Anthropic upstream carries."""
_THINKING_BLOCKS: Final = frozenset({"thinking", "redacted_thinking"})
_KEYS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])


def decode_fields(body: bytes) -> dict[str, msgspec.Raw]:
    """Each top-level field of a (decoded already, so valid) body, as its JSON text."""
    return _KEYS.decode(body)


def native_fields(
    body: MessagesBody, fields: Mapping[str, msgspec.Raw]
) -> tuple[list[str], set[str]]:
    """What of a Messages body only an Anthropic upstream can carry, named as Anthropic
    names fields, and the capabilities those ask of a model (``thinking``,
    ``prompt_caching``, ``server_tools``); ``fields``: the body's top-level fields."""
    names = [key for key in fields if key not in TRANSLATED]
    needs: set[str] = set()
    if body.thinking is not None and body.thinking.type != "disabled":
        needs.add("thinking")
    if body.metadata is not None and "metadata" in fields:
        extra = _KEYS.decode(fields["metadata"]).keys() - {"user_id"}
        names += [f"metadata.{key}" for key in sorted(extra)]

    def block(item: object, at: str) -> None:
        if isinstance(item, OpenUnion):
            item = item.value
        if isinstance(item, dict):  # a type the gateway does not model
            names.append(at)
            kind = item.get("type")
            if kind in _THINKING_BLOCKS:
                needs.add("thinking")
            elif isinstance(kind, str) and ("server_tool" in kind or kind.endswith("_result")):
                needs.add("server_tools")
            return
        if getattr(item, "cache_control", None) is not None:
            names.append(f"{at}.cache_control")
            needs.add("prompt_caching")
        if isinstance(item, TextBlock) and item.citations is not None:
            names.append(f"{at}.citations")
        if isinstance(item, ToolResultBlock) and isinstance(item.content, list):
            for k, part in enumerate(item.content):
                block(part, f"{at}.content.{k}")

    if isinstance(body.system, list):
        for i, item in enumerate(body.system):
            block(item, f"system.{i}")
    for i, turn in enumerate(body.messages):
        if isinstance(turn.content, list):
            for j, part in enumerate(turn.content):
                block(part, f"messages.{i}.content.{j}")
    for i, tool in enumerate(body.tools or ()):
        if isinstance(tool.value, dict):
            names.append(f"tools.{i}")
            needs.add("server_tools")
        else:
            block(tool.value, f"tools.{i}")
    return names, needs


# --------------------------------------------------------------------------- to the model


def _unmeasured(value: object, *, levels: int, field: str) -> None:
    """The body is known to nest no deeper than :data:`MAX_NESTING`: nothing to measure."""


def _to_messages(turn: Turn, index: int, check: Callable[..., None]) -> list[Message]:
    content = turn.content
    if isinstance(turn, UserTurn):
        if isinstance(content, str):
            return [Message(Role.USER, content)]
        parts: list[ContentPart] = []
        results: list[Message] = []
        for union in content:
            block = union.value
            if isinstance(block, TextBlock):
                parts.append(TextPart(block.text))
            elif isinstance(block, ImageBlock):
                parts.append(_image(block))
            elif isinstance(block, ToolResultBlock):
                results.append(_tool_result(block))
            elif isinstance(block, dict):  # kept as written: carried by the native body
                parts.append(RawPart(str(block.get("type")), block))
        # Tool results answer the previous assistant turn, so they come first.
        return [*results, Message(Role.USER, tuple(parts))] if parts else results
    if isinstance(content, str):
        return [Message(Role.ASSISTANT, content)]
    texts: list[str] = []
    calls: list[ToolCall] = []
    kept = False
    for j, item in enumerate(content):
        block = item.value
        if isinstance(block, dict):
            kept = True  # thinking, a server tool's blocks …: carried by the native body
        elif isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            # (request → messages → message → content → block → input)
            check(block.input, levels=MAX_NESTING - 5, field=f"messages.{index}.content.{j}.input")
            arguments = jsonio.dumps(block.input).decode()
            calls.append(ToolCall(block.id, block.name, arguments))
    text = "".join(texts)
    if not calls and not text and not kept:
        raise RequestValidationError(
            "an assistant message needs text or tool_use blocks", field=f"messages.{index}.content"
        )
    return [Message(Role.ASSISTANT, text or None, tool_calls=tuple(calls))]


def _image(block: ImageBlock) -> ImagePart:
    source = block.source
    if isinstance(source, Base64Source):
        return ImagePart(f"data:{source.media_type};base64,{source.data}")
    return ImagePart(source.url)


def _tool_result(block: ToolResultBlock) -> Message:
    content = block.content
    text = (
        content
        if isinstance(content, str)
        else "\n".join(part.value.text for part in content if isinstance(part.value, TextBlock))
    )
    if block.is_error:
        # OpenAI's tool message has no error flag: say it in the text the model reads.
        text = f"[tool error] {text}"
    return Message(Role.TOOL, text, tool_call_id=block.tool_use_id)


def _to_tools(tools: Sequence[AnyTool], check: Callable[..., None]) -> tuple[Tool, ...]:
    out: list[Tool] = []
    seen: set[str] = set()
    for i, union in enumerate(tools):
        tool = union.value
        if not isinstance(tool, ToolSpec):
            continue  # a server tool: carried by the native body
        if tool.name in seen:
            raise RequestValidationError(
                f"duplicate tool name {tool.name!r}", field=f"tools.{i}.name"
            )
        seen.add(tool.name)
        # (request → tools → tool → input_schema)
        check(tool.input_schema, levels=MAX_NESTING - 3, field=f"tools.{i}.input_schema")
        out.append(Tool(tool.name, tool.description, tool.input_schema))
    return tuple(out)


def _to_tool_choice(
    choice: AutoChoice | AnyChoice | ToolNameChoice | NoneChoice | None, tools: Sequence[Tool]
) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, ToolNameChoice):
        if all(tool.name != choice.name for tool in tools):
            raise RequestValidationError(
                f"names tool {choice.name!r}, which is not in tools", field="tool_choice.name"
            )
        return ToolChoice(ToolChoiceMode.FUNCTION, choice.name)
    if isinstance(choice, AnyChoice):
        if not tools:
            raise RequestValidationError("'any' needs tools", field="tool_choice")
        return ToolChoice(ToolChoiceMode.REQUIRED)
    return ToolChoice(
        ToolChoiceMode.AUTO if isinstance(choice, AutoChoice) else ToolChoiceMode.NONE
    )
