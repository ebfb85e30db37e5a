"""OpenAI's Responses request, as a schema: ``POST /v1/responses`` bodies, stateless.

:class:`ResponsesBody` is the request as the client wrote it, decoded by msgspec
straight from the body (:func:`decode_responses`) or converted from a dict
(:func:`convert_responses`); :meth:`ResponsesBody.to_request` maps it onto the
provider-neutral :class:`runestone.messages.ChatRequest`, so it is routed, retried
and failed over like any chat completion:

==============================  =====================================================
Responses                       chat completions
==============================  =====================================================
``instructions``                a system message, first
``input`` (a string)            one user message
message items                   messages of the same role (``input_text`` /
                                ``output_text`` / ``refusal`` → text, ``input_image``
                                → an image part)
``function_call`` items         tool calls of one assistant message (joined to the
                                assistant message just before them)
``function_call_output`` items  tool messages
``reasoning`` items             dropped when they carry no reasoning text (a summary
                                or encrypted content is for OpenAI's own models only)
``tools`` (function tools)      ``tools``
``max_output_tokens``           ``max_tokens``
``text.format``                 ``response_format``
``reasoning.effort``            ``reasoning_effort``
``parallel_tool_calls``,        passed on as they are (``ChatRequest.extra``)
``service_tier``,
``prompt_cache_key``,
``safety_identifier``,
``text.verbosity``
==============================  =====================================================

The gateway keeps no state: translated, ``previous_response_id``, ``conversation``,
``item_reference`` items and ``background`` are refused naming the field, ``store``
is accepted and nothing is stored. A body decoded for a pass-through
(:func:`native_fields`) names them instead, with what else only an upstream speaking
the Responses API can carry (built-in tools and their calls, ``include`` values asking
for upstream state, reasoning items' encrypted content, fields this schema does not
know): such a request goes only to that upstream, as written. ``include``,
``truncation``, ``stream_options`` and ``reasoning.summary`` are accepted and change
nothing in a translation (there is nothing to include, no truncation is done, and no
reasoning is returned). Every other field is refused by it: a Responses field this
translation does not know could not be honoured.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
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
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    check_nesting,
)
from runestone.wire.openai_chat import ToolName, ToolParameters, tool_choice
from runestone.wire.schema import OpenUnion, Wire, convert, dec_hook, decoder, may_nest_deep

__all__ = [
    "STATEFUL",
    "DecodedResponses",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionTool",
    "InputItem",
    "ResponsesBody",
    "convert_responses",
    "decode_responses",
    "native_fields",
]

_MODEL: Final = "the model (or alias) to answer with, a non-empty string"
_STATELESS: Final = (
    "this gateway is stateless and keeps no responses or conversations; send the whole "
    "conversation in input instead"
)
_IMAGE_URL: Final = r"^(https?://|data:)"


# --------------------------------------------------------------------------- content parts


class InputText(Wire, tag_field="type", tag="input_text"):
    """``{"type": "input_text", "text": ...}``."""

    text: str


class InputImage(Wire, tag_field="type", tag="input_image"):
    """``{"type": "input_image", "image_url": ...}`` (a ``file_id`` is refused)."""

    image_url: (
        Annotated[str, Meta(pattern=_IMAGE_URL, extra={"expected": "an http(s) or data: URL"})]
        | None
    ) = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high"] | None = None


class OutputText(Wire, tag_field="type", tag="output_text"):
    """Text the assistant wrote (its ``annotations`` and ``logprobs`` are not read)."""

    text: str


class RefusalPart(Wire, tag_field="type", tag="refusal"):
    """The assistant's refusal, as it wrote it."""

    refusal: str


_NonEmpty = Meta(min_length=1)
_UserParts = Annotated[
    list[
        Annotated[
            InputText | InputImage,
            Meta(
                extra={
                    "invalid": "a user message takes 'input_text' and 'input_image' parts, "
                    "got {value}"
                }
            ),
        ]
    ],
    _NonEmpty,
]
_TextParts = Annotated[
    list[
        Annotated[
            InputText,
            Meta(extra={"invalid": "this message takes only 'input_text' parts, got {value}"}),
        ]
    ],
    _NonEmpty,
]
_AssistantParts = Annotated[
    list[
        Annotated[
            OutputText | RefusalPart,
            Meta(
                extra={
                    "invalid": "an assistant message takes 'output_text' and 'refusal' parts, "
                    "got {value}"
                }
            ),
        ]
    ],
    _NonEmpty,
]
_Content = Meta(extra={"expected": "a string or a non-empty list of content parts"})


# --------------------------------------------------------------------------- input items


class UserItem(Wire, tag_field="role", tag="user"):
    """A user message: text, or ``input_text`` / ``input_image`` parts."""

    content: Annotated[str | _UserParts, _Content]


class SystemItem(Wire, tag_field="role", tag="system"):
    """Instructions as a message."""

    content: Annotated[str | _TextParts, _Content]


class DeveloperItem(Wire, tag_field="role", tag="developer"):
    """Instructions as a message (OpenAI's newer name for a system message)."""

    content: Annotated[str | _TextParts, _Content]


class AssistantItem(Wire, tag_field="role", tag="assistant"):
    """What the assistant said before (a message item of an earlier response, or its text)."""

    content: Annotated[str | _AssistantParts, _Content]


class FunctionCallItem(Wire, tag_field="type", tag="function_call"):
    """A function call the assistant made before."""

    call_id: Annotated[str, Meta(min_length=1, extra={"expected": "the call's id"})]
    name: Annotated[str, Meta(min_length=1, extra={"expected": "the function's name"})]
    arguments: Annotated[str, Meta(extra={"expected": "JSON text (a string)"})]


class FunctionCallOutputItem(Wire, tag_field="type", tag="function_call_output"):
    """A function's answer to one call."""

    call_id: Annotated[
        str, Meta(min_length=1, extra={"expected": "the call_id of the function_call it answers"})
    ]
    output: Annotated[
        str
        | Annotated[
            list[
                Annotated[
                    InputText,
                    Meta(
                        extra={
                            "invalid": "a function's output takes only 'input_text' parts, "
                            "got {value}"
                        }
                    ),
                ]
            ],
            _NonEmpty,
        ],
        Meta(extra={"expected": "a string or a list of 'input_text' parts"}),
    ]


class ReasoningText(Wire):
    """One piece of a reasoning item's text (its ``type`` is not read)."""

    text: str = ""


class ReasoningItem(Wire, tag_field="type", tag="reasoning"):
    """An earlier response's reasoning: ``summary`` and ``encrypted_content`` are not read
    (only OpenAI's own models take them back); reasoning text is refused (see
    :meth:`ResponsesBody.to_request`)."""

    content: list[ReasoningText] | None = None


_MESSAGES: Final[Mapping[str, type[msgspec.Struct]]] = {
    "user": UserItem,
    "system": SystemItem,
    "developer": DeveloperItem,
    "assistant": AssistantItem,
}
_ITEMS: Final[Mapping[str, type[msgspec.Struct]]] = {
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
    "reasoning": ReasoningItem,
}
_KINDS: Final = "'message', 'function_call', 'function_call_output' or 'reasoning'"
_ROLES: Final = "'user', 'assistant', 'system' or 'developer'"


class InputItem(OpenUnion):
    """One item of ``input``: a message (its ``type`` may be left out; its role picks the
    member), a function call, a function's output or a reasoning item. Every other type
    is refused: an ``item_reference`` needs stored state, and the tools whose calls the
    other types replay are not served."""

    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = _ITEMS

    @classmethod
    def member_for(cls, data: Mapping[str, Any]) -> type[msgspec.Struct] | None:
        kind = data.get("type", "message")
        if kind == "message":
            role = data.get("role")
            return _MESSAGES.get(role) if isinstance(role, str) else None
        return _ITEMS.get(kind) if isinstance(kind, str) else None

    @classmethod
    def decode(cls, data: object) -> OpenUnion:
        # The messages below are our own wording, passed on as they are (not msgspec's,
        # which :func:`runestone.wire.refusals.refusal` would reword without our context).
        if not isinstance(data, dict):
            raise TypeError(f"Expected `object`, got `{_kind(data)}`")
        kind = data.get("type", "message")
        if kind == "message":
            role = data.get("role")
            if role is None:
                raise TypeError(f"required: a message item needs a role ({_ROLES}) - at `$.role`")
            if not isinstance(role, str) or role not in _MESSAGES:
                raise TypeError(f"expected {_ROLES}, got {role!r} - at `$.role`")
        elif kind == "item_reference":
            raise TypeError(f"item references need stored items; {_STATELESS} - at `$.type`")
        elif not isinstance(kind, str) or kind not in _ITEMS:
            raise TypeError(
                f"expected {_KINDS}, got {kind!r}: other input items are not supported by "
                "this gateway - at `$.type`"
            )
        member = cls.member_for(data)
        assert member is not None  # checked above
        try:
            return cls(msgspec.convert(data, member, dec_hook=dec_hook))
        except msgspec.ValidationError as exc:
            # msgspec puts the path of this object after the member's own path.
            raise TypeError(str(exc)) from None


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "null"
    return "int" if isinstance(value, int) else "float"


# --------------------------------------------------------------------------- tools


class FunctionTool(Wire, kw_only=True):
    """``{"type": "function", "name": ..., "parameters": ...}``: the only kind of tool served."""

    type: Annotated[
        Literal["function"],
        Meta(
            extra={
                "invalid": "only function tools are supported by this gateway, got {value}",
                "expected": "'function'",
            }
        ),
    ]
    name: ToolName
    description: str | None = None
    parameters: ToolParameters | None = None
    strict: bool | None = None


class FunctionChoice(Wire, tag_field="type", tag="function"):
    """``{"type": "function", "name": ...}``."""

    name: Annotated[str, Meta(min_length=1, extra={"expected": "the function's name"})]


_ToolChoice = Annotated[
    Literal["none", "auto", "required"] | FunctionChoice,
    Meta(
        extra={
            "invalid": "expected 'none', 'auto', 'required' or {{'type': 'function', "
            "'name': ...}}, got {value}",
            "expected": "a string or an object",
        }
    ),
]


# --------------------------------------------------------------------------- text, reasoning


class PlainFormat(Wire, tag_field="type", tag="text"):
    """Plain text answers."""


class JsonObjectFormat(Wire, tag_field="type", tag="json_object"):
    """Answers that are one JSON object."""


class JsonSchemaFormat(Wire, tag_field="type", tag="json_schema"):
    """Answers matching a JSON Schema (chat's ``json_schema`` response format, flattened)."""

    name: Annotated[str, Meta(min_length=1, extra={"expected": "the schema's name"})]
    schema: Annotated[dict[str, Any], Meta(extra={"expected": "a JSON Schema object"})]
    description: str | None = None
    strict: bool | None = None


class TextConfig(Wire, forbid_unknown_fields=True):
    """``text``: the answer's format and verbosity."""

    format: (
        Annotated[
            PlainFormat | JsonObjectFormat | JsonSchemaFormat,
            Meta(extra={"expected": "an object like {'type': 'text'}"}),
        ]
        | None
    ) = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(Wire, forbid_unknown_fields=True):
    """``reasoning``: ``effort`` is passed on; a summary is never returned, so not read."""

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(Wire, forbid_unknown_fields=True):
    """``stream_options``: accepted; obfuscation padding is never added."""

    include_obfuscation: bool | None = None


# --------------------------------------------------------------------------- the body


class ResponsesBody(Wire, kw_only=True, forbid_unknown_fields=True):
    """A Responses request body."""

    model: Annotated[str, Meta(pattern=r"\S", extra={"expected": _MODEL})]
    input: Annotated[
        str | Annotated[list[InputItem], _NonEmpty],
        Meta(extra={"expected": "a string or a non-empty list of input items"}),
    ]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: _ToolChoice | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    text: TextConfig | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: ReasoningConfig | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None

    def to_request(self, *, deep: bool = True) -> ChatRequest:
        """The chat request this body asks for (see the module docstring).

        Raises :class:`RequestValidationError` naming the field for what the schema
        cannot say: state asked for, a call's output without its call, a tool choice
        naming no tool. ``deep``: the free-form values (tool parameters, the schema)
        may nest deeper than :data:`MAX_NESTING` and must be measured.
        """
        for name in ("previous_response_id", "conversation"):
            if getattr(self, name) is not None:
                raise RequestValidationError(_STATELESS, field=name)
        if self.background:
            raise RequestValidationError(
                "background responses need stored state; this gateway is stateless",
                field="background",
            )
        check = check_nesting if deep else _unmeasured
        tools = _to_tools(self.tools or (), check)
        messages: list[Message] = []
        if self.instructions:
            messages.append(Message(Role.SYSTEM, self.instructions))
        if isinstance(self.input, str):
            messages.append(Message(Role.USER, self.input))
        else:
            messages.extend(_to_messages(self.input))
        if not messages or all(m.role in (Role.SYSTEM, Role.DEVELOPER) for m in messages):
            raise RequestValidationError(
                "there is nothing to answer: give a user message (or earlier turns)",
                field="input",
            )
        extra: dict[str, Any] = {}
        for name in (
            "parallel_tool_calls",
            "service_tier",
            "prompt_cache_key",
            "safety_identifier",
        ):
            value = getattr(self, name)
            if value is not None:
                extra[name] = value
        if self.reasoning is not None and self.reasoning.effort is not None:
            extra["reasoning_effort"] = self.reasoning.effort
        response_format = None
        if self.text is not None:
            if self.text.verbosity is not None:
                extra["verbosity"] = self.text.verbosity
            response_format = _to_response_format(self.text.format, check)
        return ChatRequest(
            model=self.model,
            messages=tuple(messages),
            stream=bool(self.stream),
            tools=tools,
            tool_choice=_to_tool_choice(self.tool_choice, tools),
            temperature=None if self.temperature is None else float(self.temperature),
            top_p=None if self.top_p is None else float(self.top_p),
            max_tokens=self.max_output_tokens,
            response_format=response_format,
            user=self.user,
            metadata=self.metadata,
            extra=extra,
        )

    def echo(self) -> dict[str, Any]:
        """The request's settings as a response object repeats them (``tools``,
        ``tool_choice``, ``text`` … in the Responses API's own shape), defaults filled in
        as OpenAI fills them where the gateway knows them, null where it does not."""
        tools = [msgspec.to_builtins(tool) for tool in self.tools or ()]
        for tool in tools:
            tool.setdefault("description", None)
            tool.setdefault("parameters", None)
            tool.setdefault("strict", None)
        choice = self.tool_choice
        text: dict[str, Any] = {"format": {"type": "text"}, "verbosity": "medium"}
        if self.text is not None:
            if self.text.format is not None:
                text["format"] = msgspec.to_builtins(self.text.format)
            if self.text.verbosity is not None:
                text["verbosity"] = self.text.verbosity
        reasoning = None
        if self.reasoning is not None:
            reasoning = {
                "effort": self.reasoning.effort,
                "summary": self.reasoning.summary or self.reasoning.generate_summary,
            }
        return {
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "metadata": dict(self.metadata or {}),
            "parallel_tool_calls": True
            if self.parallel_tool_calls is None
            else self.parallel_tool_calls,
            "prompt_cache_key": self.prompt_cache_key,
            "reasoning": reasoning,
            "safety_identifier": self.safety_identifier,
            "service_tier": self.service_tier,
            "temperature": self.temperature,
            "text": text,
            "tool_choice": (
                "auto"
                if choice is None
                else choice
                if isinstance(choice, str)
                else {"type": "function", "name": choice.name}
            ),
            "tools": tools,
            "top_p": self.top_p,
            "truncation": self.truncation or "disabled",
            "user": self.user,
        }


FIELDS: Final = frozenset(ResponsesBody.__struct_encode_fields__)
"""The request fields the schema takes; any other is refused."""


# --------------------------------------------------------------------------- decoding

_decode: Final = decoder(ResponsesBody)


class DecodedResponses(NamedTuple):
    """A request decoded by the schema, and whether its free-form values need measuring."""

    body: ResponsesBody
    deep: bool
    """The free-form values may nest too deep (see :func:`may_nest_deep`)."""

    def to_request(self) -> ChatRequest:
        """The :class:`ChatRequest` (raises :class:`RequestValidationError` for a rule
        across fields)."""
        return self.body.to_request(deep=self.deep)


def decode_responses(body: bytes) -> DecodedResponses:
    """A request body decoded as :class:`ResponsesBody`.

    Raises :class:`runestone.wire.schema.BodyError` for a body that is no JSON object
    and :class:`RequestValidationError` naming the first bad field.
    """
    return DecodedResponses(_decode(body), may_nest_deep(body))


def convert_responses(data: object) -> DecodedResponses:
    """A request dict as :class:`ResponsesBody` (see :func:`decode_responses`). The dict
    is the caller's: the free-form values the request keeps are copies."""
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    # msgspec passes free-form values (dict[str, Any]) through as they are.
    return DecodedResponses(convert(copy.deepcopy(data), ResponsesBody), True)


# --------------------------------------------------------------------------- pass-through

STATEFUL: Final = ("previous_response_id", "conversation", "background")
"""The fields asking for state kept upstream: named first among those only a native
upstream can carry."""
_STATE_INCLUDES: Final = frozenset({"reasoning.encrypted_content"})
_PLACEHOLDER: Final = {"type": "reasoning"}  # an input item the translation drops


def native_fields(fields: Mapping[str, msgspec.Raw]) -> tuple[list[str], dict[str, Any]]:
    """The fields of a body (each top-level one as its JSON text) that only an upstream
    speaking the Responses API can carry, as the API names them (``previous_response_id``,
    ``tools[1].type``, ``input[0].type``, ``include``, ``input[2].encrypted_content``, an
    unknown field's name); and the body without them, for the translation that sizes and
    routes it (a dropped input item is left as an empty reasoning item, so the others keep
    their indices in a refusal). The body is returned decoded only when some are named."""
    names: list[str] = []
    later: list[str] = []
    drop: set[str] = set()
    for name in STATEFUL:
        raw = fields.get(name)
        if raw is None:
            continue
        value = msgspec.json.decode(raw)
        if value is not None and value is not False:
            names.append(name)
            drop.add(name)
    for name in fields:
        if name not in FIELDS:
            later.append(name)
            drop.add(name)
    changed: dict[str, Any] = {}
    tools = _decoded(fields, "tools")
    if isinstance(tools, list):
        kept = []
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and kind != "function":
                later.append(f"tools[{i}].type")
            else:
                kept.append(tool)
        if len(kept) != len(tools):
            changed["tools"] = kept
            choice = _decoded(fields, "tool_choice")
            if isinstance(choice, dict) and choice.get("type") != "function":
                later.append("tool_choice")
                drop.add("tool_choice")
    include = _decoded(fields, "include")
    if isinstance(include, list) and any(value in _STATE_INCLUDES for value in include):
        later.append("include")
        drop.add("include")
    items = _decoded(fields, "input")
    if isinstance(items, list):
        translated = list(items)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            kind = item.get("type", "message")
            if kind == "reasoning" and item.get("encrypted_content"):
                later.append(f"input[{i}].encrypted_content")
                translated[i] = _PLACEHOLDER
            elif isinstance(kind, str) and kind not in ("message", *_ITEMS):
                later.append(f"input[{i}].type")
                translated[i] = _PLACEHOLDER
        if translated != items:
            changed["input"] = translated
    names.extend(later)
    if not names:
        return names, {}
    body = {
        name: changed[name] if name in changed else msgspec.json.decode(raw)
        for name, raw in fields.items()
        if name not in drop
    }
    return names, body


def _decoded(fields: Mapping[str, msgspec.Raw], name: str) -> Any:
    raw = fields.get(name)
    return None if raw is None else msgspec.json.decode(raw)


# --------------------------------------------------------------------------- to the model


def _unmeasured(value: object, *, levels: int, field: str) -> None:
    """The body is known to nest no deeper than :data:`MAX_NESTING`: nothing to measure."""


ItemValue: TypeAlias = (
    UserItem
    | SystemItem
    | DeveloperItem
    | AssistantItem
    | FunctionCallItem
    | FunctionCallOutputItem
    | ReasoningItem
)


def _to_messages(items: Sequence[InputItem]) -> list[Message]:
    out: list[Message] = []
    calls: set[str] = set()
    # The assistant message that function calls join: the one just before them. Chat
    # completions carry a turn's text and its calls in one message.
    joinable: int | None = None
    for i, item in enumerate(items):
        value: ItemValue = item.value  # type: ignore[assignment]  # decode made a member
        if isinstance(value, FunctionCallItem):
            call = ToolCall(value.call_id, value.name, value.arguments)
            calls.add(value.call_id)
            if joinable is None:
                out.append(Message(Role.ASSISTANT, None, tool_calls=(call,)))
                joinable = len(out) - 1
            else:
                before = out[joinable]
                out[joinable] = Message(
                    Role.ASSISTANT, before.content, tool_calls=(*before.tool_calls, call)
                )
            continue
        if isinstance(value, ReasoningItem):
            if any(part.text for part in value.content or ()):
                raise RequestValidationError(
                    "reasoning text cannot be given back to a chat-completions model; leave "
                    "the reasoning item out",
                    field=f"input[{i}].content",
                )
            continue  # summaries and encrypted content: only OpenAI's own models read them
        joinable = None
        if isinstance(value, FunctionCallOutputItem):
            if value.call_id not in calls:
                raise RequestValidationError(
                    f"answers no function_call in input (call_id {value.call_id!r}); this "
                    "gateway is stateless: send the function_call item before its output",
                    field=f"input[{i}].call_id",
                )
            output = value.output
            text = output if isinstance(output, str) else "".join(p.text for p in output)
            out.append(Message(Role.TOOL, text, tool_call_id=value.call_id))
        elif isinstance(value, AssistantItem):
            content = value.content
            text = (
                content
                if isinstance(content, str)
                else "".join(p.text if isinstance(p, OutputText) else p.refusal for p in content)
            )
            out.append(Message(Role.ASSISTANT, text))
            joinable = len(out) - 1
        elif isinstance(value, UserItem):
            asked = value.content
            out.append(
                Message(Role.USER, asked if isinstance(asked, str) else _user_parts(asked, i))
            )
        else:
            said = value.content
            text = said if isinstance(said, str) else "".join(p.text for p in said)
            role = Role.SYSTEM if isinstance(value, SystemItem) else Role.DEVELOPER
            out.append(Message(role, text))
    return out


def _user_parts(parts: Sequence[InputText | InputImage], index: int) -> tuple[ContentPart, ...]:
    out: list[ContentPart] = []
    for k, part in enumerate(parts):
        if isinstance(part, InputText):
            out.append(TextPart(part.text))
            continue
        if part.image_url is None:
            if part.file_id is not None:
                raise RequestValidationError(
                    "file ids need OpenAI's Files API, which this gateway does not serve; send "
                    "the image as image_url (an http(s) or data: URL)",
                    field=f"input[{index}].content[{k}].file_id",
                )
            raise RequestValidationError(
                "required: an http(s) or data: URL", field=f"input[{index}].content[{k}].image_url"
            )
        out.append(ImagePart(part.image_url, part.detail))
    return tuple(out)


def _to_tools(tools: Sequence[FunctionTool], check: Callable[..., None]) -> tuple[Tool, ...]:
    out: list[Tool] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if tool.name in seen:
            raise RequestValidationError(
                f"duplicate tool name {tool.name!r}", field=f"tools[{i}].name"
            )
        seen.add(tool.name)
        if tool.parameters is not None:
            # (request → tools → tool → parameters)
            check(tool.parameters, levels=MAX_NESTING - 3, field=f"tools[{i}].parameters")
        out.append(Tool(tool.name, tool.description, tool.parameters, tool.strict))
    return tuple(out)


def _to_tool_choice(
    choice: str | FunctionChoice | None, tools: Sequence[Tool]
) -> ToolChoice | None:
    if choice is None or isinstance(choice, str):
        return tool_choice(choice, tools)
    return tool_choice(choice.name, tools, named=True, field="tool_choice.name")


def _to_response_format(
    fmt: PlainFormat | JsonObjectFormat | JsonSchemaFormat | None, check: Callable[..., None]
) -> dict[str, Any] | None:
    if fmt is None:
        return None
    if isinstance(fmt, JsonSchemaFormat):
        # (request → text → format → schema)
        check(fmt.schema, levels=MAX_NESTING - 3, field="text.format.schema")
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
        if fmt.description is not None:
            schema["description"] = fmt.description
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}
    return {"type": "json_object" if isinstance(fmt, JsonObjectFormat) else "text"}
