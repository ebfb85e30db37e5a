"""The normalized request and event model every provider speaks.

A request arrives OpenAI-shaped (``ChatRequest.from_dict``; over HTTP, either API's
body), is validated once by its wire schema (:mod:`runestone.wire`) with an error
naming the offending field, and is then a frozen value that each provider
translates to its own wire format. Whatever a provider streams back is
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Final, TypeAlias

import msgspec

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
    NoCandidatesError,
    ProviderError,
    RateLimitedError,
    RequestValidationError,
    RunestoneError,
    StreamCutError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
)

__all__ = [
    "MAX_NESTING",
    "ChatRequest",
    "Completion",
    "CompletionBuilder",
    "ContentPart",
    "Done",
    "EmbeddingAnswer",
    "EmbeddingRequest",
    "Event",
    "FinishReason",
    "ImagePart",
    "Message",
    "NativeBody",
    "Origin",
    "Passthrough",
    "RawPart",
    "ReasoningDelta",
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
    "WireFormat",
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


class WireFormat(enum.StrEnum):
    """An upstream API's request and answer format, as a client may speak it to us."""

    OPENAI_CHAT = "openai_chat"
    """OpenAI's chat completions (``POST /v1/chat/completions``)."""
    ANTHROPIC_MESSAGES = "anthropic_messages"
    """Anthropic's messages (``POST /v1/messages``)."""
    OPENAI_COMPLETIONS = "openai_completions"
    """OpenAI's legacy completions (``POST /v1/completions``): a raw prompt, which no
    other format carries, so such a request is only ever passed through."""
    OPENAI_RESPONSES = "openai_responses"
    """OpenAI's Responses API (``POST /v1/responses``): translated onto chat completions
    for every other upstream, passed through to one that speaks it."""


@dataclass(frozen=True, slots=True)
class NativeBody:
    """A request body as the client wrote it, kept for a lossless pass-through.

    An upstream that speaks ``wire`` gets ``body`` itself (its model swapped for the
    upstream's name, ``stream`` set), with ``headers`` (the client's beta and version
    headers), and its answer goes back unchanged. The :class:`ChatRequest` beside it is
    what every other upstream gets; ``only_native`` names, as the client's API names
    them, the fields it cannot carry (``thinking``, ``messages.0.content.1`` …): while
    any is there, only an upstream of ``wire`` may take the request.
    """

    wire: WireFormat
    fields: Mapping[str, msgspec.Raw]
    """Each top-level field of the body, as the JSON text the client wrote: passed on
    without being decoded (only what the gateway reads of it is)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    only_native: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()
    """The capabilities its fields ask of a model (``thinking``, ``prompt_caching``,
    ``server_tools``, ``completions``: :class:`runestone.providers.Capability` values)."""
    usage_chunk: bool = True
    """OpenAI streams: the client asked for the usage chunk (else it is not passed on)."""

    def value(self, name: str) -> Any:
        """Field ``name`` decoded (None when the body has none)."""
        raw = self.fields.get(name)
        return None if raw is None else msgspec.json.decode(raw)

    def encode(self, changes: Mapping[str, Any], dropped: Iterable[str] = ()) -> bytes:
        """The body as JSON, every field as the client wrote it but ``changes`` (name →
        new value, in place, or added at the end) and the ``dropped`` ones."""
        gone = frozenset(dropped)
        parts: list[Any] = []
        for name, raw in self.fields.items():
            if name in gone:
                continue
            parts.append(_json_key(name))
            parts.append(msgspec.json.encode(changes[name]) if name in changes else raw)
        for name, value in changes.items():
            if name not in self.fields and name not in gone:
                parts.append(_json_key(name))
                parts.append(msgspec.json.encode(value))
        # "key": value pairs, comma-separated; the pieces are joined in one copy.
        out: list[Any] = [b"{"]
        for i in range(0, len(parts), 2):
            if i:
                out.append(b",")
            out.append(parts[i])
            out.append(parts[i + 1])
        out.append(b"}")
        return b"".join(out)


def _json_key(name: str) -> bytes:
    return msgspec.json.encode(name) + b":"


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
    native: NativeBody | None = field(default=None, compare=False, repr=False)
    """The body as the client wrote it, for an upstream of its own wire format (see
    :class:`NativeBody`); None for a request made in Python or in another format."""

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
        # The schema is built on this module's types: imported when first used.
        from runestone.wire.openai_chat import convert_chat

        return convert_chat(data).to_request()

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


def nesting(value: object, *, above: int | None = None) -> int:
    """How many levels of objects and lists ``value`` nests (0 for a string or a number);
    ``above``: stop counting once it is deeper than that (the answer is then ``above + 1``)."""
    if not isinstance(value, Mapping | list | tuple):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    # A loop, not recursion: the value is the client's and may be as deep as it likes.
    while stack:
        node, level = stack.pop()
        if level > deepest:
            deepest = level
            if above is not None and deepest > above:
                return deepest
        children: Iterable[object] = node.values() if isinstance(node, Mapping) else node
        for child in children:
            # Most children are strings and numbers: told apart by their exact type first,
            # as an isinstance against Mapping (an ABC) is the slow test.
            kind = type(child)
            if kind is dict or kind is list or kind is tuple:
                stack.append((child, level + 1))
            elif kind in _SCALARS:
                continue
            elif isinstance(child, Mapping | list | tuple):
                stack.append((child, level + 1))
    return deepest


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def check_nesting(value: object, *, levels: int, field: str) -> None:
    """Refuse ``value`` (a :class:`RequestValidationError` naming ``field``) when it nests
    more than ``levels`` levels: the levels of the request above it use up the rest of
    :data:`MAX_NESTING`."""
    if isinstance(value, Mapping | list | tuple) and nesting(value, above=levels) > levels:
        raise RequestValidationError(
            f"nested more than {MAX_NESTING} levels deep (objects and lists, counted from the "
            "top of the request); flatten it",
            field=field,
        )


# --------------------------------------------------------------------------- events


class FinishReason(enum.StrEnum):
    """Why an answer ended (OpenAI's vocabulary; other providers' reasons are mapped onto it)."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"


class _Frozen(msgspec.Struct, frozen=True, gc=False, repr_omit_defaults=True):
    """The base of the events and the embeddings values: frozen msgspec structs (cheap to
    build: an event is one per chunk).

    Their field types carry their constraints, which hold where events are decoded
    (``msgspec.convert(data, Usage)``); built in Python on the hot path they are not
    re-checked — the providers that build them read checked upstream data.
    """


class Origin(_Frozen, frozen=True, gc=False):
    """Which attempt the first content a caller receives came from (the commit point).

    An HTTP server sends its headers with that content, before ``Done`` names the
    answer's provider and model; this is what it can say by then.
    """

    provider: str
    model: str
    attempt: Annotated[int, msgspec.Meta(ge=1)]
    """How many attempts the request had made, this one included."""


class TextDelta(_Frozen, frozen=True, gc=False):
    """A piece of the answer's text. Equal pieces are equal whatever their origin."""

    text: str
    origin: Origin | None = None
    """Set on the request's first content only (see :class:`Origin`)."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not TextDelta:
            return NotImplemented
        return self.text == other.text

    def __hash__(self) -> int:
        return hash((TextDelta, self.text))


class ToolCallDelta(_Frozen, frozen=True, gc=False):
    """A piece of tool call ``index``: ``id`` and ``name`` come with its first piece.
    Equal pieces are equal whatever their origin."""

    index: Annotated[int, msgspec.Meta(ge=0)]
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    origin: Origin | None = None
    """Set on the request's first content only (see :class:`Origin`)."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not ToolCallDelta:
            return NotImplemented
        return (self.index, self.id, self.name, self.arguments) == (
            other.index,
            other.id,
            other.name,
            other.arguments,
        )

    def __hash__(self) -> int:
        return hash((ToolCallDelta, self.index, self.id, self.name, self.arguments))


class ReasoningDelta(_Frozen, frozen=True, gc=False):
    """A piece of the model's reasoning, shown before its answer (Anthropic's thinking,
    the reasoning text OpenAI-compatible servers stream). ``signature`` comes with the
    last piece where the upstream signs its reasoning (Anthropic does)."""

    text: str = ""
    signature: str | None = None
    origin: Origin | None = None
    """Set on the request's first content only (see :class:`Origin`)."""


class Usage(_Frozen, frozen=True, gc=False):
    """Token counts of one answer."""

    prompt_tokens: Annotated[int, msgspec.Meta(ge=0)]
    completion_tokens: Annotated[int, msgspec.Meta(ge=0)]
    cached_tokens: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Of the prompt tokens, those read from the upstream's prompt cache."""
    reasoning_tokens: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Of the completion tokens, those the model spent reasoning."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Done(_Frozen, frozen=True):
    """The answer is complete. ``finish_reason`` is a :class:`FinishReason` value."""

    finish_reason: str
    provider: str = ""
    model: str = ""
    usage: Usage | None = None
    attempts: tuple[Any, ...] = ()
    """Every attempt the request made (set on the final event a caller receives)."""
    cost: Annotated[float, msgspec.Meta(ge=0)] | None = None
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


class StreamError(_Frozen, frozen=True):
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
    field: str = ""
    """The request field it is about, where one is (no candidate could carry it)."""

    def __post_init__(self) -> None:
        kind: object = self.kind
        if isinstance(kind, str) and not isinstance(kind, ErrorKind):
            msgspec.structs.force_setattr(self, "kind", ErrorKind(kind) if kind else None)

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
        field = exc.field if isinstance(exc, NoCandidatesError) else ""
        return cls(error_class, str(exc), kind=ErrorKind.of(exc), reason=reason, field=field)

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


class Passthrough(_Frozen, frozen=True, gc=False):
    """Bytes of an upstream's answer in the client's own wire format, passed on as they
    are (see :class:`NativeBody`): SSE frames of a stream, or a whole answer's JSON body.
    A stream's first one holds every frame before its first content too."""

    data: bytes
    text: str = ""
    """The answer's text in these frames (what a continuation would have to extend)."""
    opaque: bool = False
    """They carry content other than text (tool calls, reasoning, a thinking block …):
    no continuation can extend the answer past them."""
    blocks: int = 0
    """Anthropic: the content blocks the stream has opened, these frames included."""
    open_text: bool = False
    """Anthropic: the last block opened is text, and still open."""
    origin: Origin | None = None
    """Set on the request's first content only (see :class:`Origin`)."""


StreamEvent: TypeAlias = TextDelta | ToolCallDelta | ReasoningDelta | Passthrough | Usage | Done
"""What a provider's stream yields."""

Event: TypeAlias = (
    TextDelta | ToolCallDelta | ReasoningDelta | Passthrough | Usage | Done | StreamError
)
"""What a caller receives: stream events, then ``Done`` or ``StreamError``."""


class EmbeddingRequest(_Frozen, frozen=True):
    """One embeddings request: the texts to embed, on ``model`` (an alias, a
    ``provider/model``, or, handed to a provider, its own model name)."""

    model: str
    inputs: tuple[str, ...]
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """The vector length asked for (models that can shorten theirs); None: the model's."""
    user: str | None = None


class EmbeddingAnswer(_Frozen, frozen=True):
    """A provider's embeddings: one vector per input, in order, and what they cost."""

    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: Annotated[int, msgspec.Meta(ge=0)] = 0
    provider: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer (the non-streaming result)."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = FinishReason.STOP
    usage: Usage | None = None
    provider: str = ""
    model: str = ""
    native: bytes | None = None
    """The upstream's answer body as it came, for the client of its own wire format
    (a pass-through, see :class:`NativeBody`); None otherwise."""
    reasoning: str = ""
    """The reasoning shown before the answer (see :class:`ReasoningDelta`)."""
    signature: str | None = None
    """The upstream's signature of that reasoning, where it signs it."""

    def events(self) -> tuple[StreamEvent, ...]:
        """The same answer as the events a stream would have yielded."""
        out: list[StreamEvent] = []
        if self.reasoning or self.signature:
            out.append(ReasoningDelta(self.reasoning, self.signature))
        if self.text:
            out.append(TextDelta(self.text))
        for i, call in enumerate(self.tool_calls):
            out.append(ToolCallDelta(i, call.id, call.name, call.arguments))
        if self.native is not None:
            out.append(Passthrough(self.native))
        if self.usage is not None:
            out.append(self.usage)
        out.append(Done(self.finish_reason, self.provider, self.model, self.usage))
        return tuple(out)


class CompletionBuilder:
    """Assembles stream events into a :class:`Completion` (text joined, tool calls by index)."""

    __slots__ = ("_calls", "_done", "_native", "_reasoning", "_signature", "_text", "_usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, list[str]] = {}
        self._native: list[bytes] = []
        self._reasoning: list[str] = []
        self._signature: str | None = None
        self._usage: Usage | None = None
        self._done: Done | None = None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, Passthrough):
            self._native.append(event.data)
        elif isinstance(event, ReasoningDelta):
            self._reasoning.append(event.text)
            if event.signature is not None:
                self._signature = event.signature
        elif isinstance(event, TextDelta):
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
            native=b"".join(self._native) if self._native else None,
            reasoning="".join(self._reasoning),
            signature=self._signature,
        )
