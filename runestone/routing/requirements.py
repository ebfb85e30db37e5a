"""What a request needs from a model: capabilities, and room for its prompt and answer.

Prompt size is *estimated*, never tokenized: about four characters a token
(the usual figure for English text with OpenAI- and Anthropic-style
tokenizers), plus a few tokens of framing per message and a fixed allowance per
image. It over-counts rather than under-counts on ordinary text, which is what a
context-window filter wants; a provider that still answers "context length
exceeded" triggers the context-window fallbacks (see :func:`runestone.routing.plan`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final

from msgspec import Meta

from runestone import jsonio
from runestone.messages import (
    ChatRequest,
    ImagePart,
    Message,
    RawPart,
    Role,
    TextPart,
    Tool,
    WireFormat,
)
from runestone.providers.settings import Capability
from runestone.schema import Count, Shape
from runestone.wire.openai_chat import convert_needs, to_messages, to_tools

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_TOKENS",
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "Requirements",
    "estimate_from_size",
    "estimate_prompt_tokens",
]

CHARS_PER_TOKEN: Final = 4
"""Characters per token in the estimate."""
MESSAGE_OVERHEAD_TOKENS: Final = 4
"""Tokens of role and framing each message costs on top of its text."""
IMAGE_TOKENS: Final = 765
"""Allowance per image: OpenAI's figure for a 1024x1024 image at high detail."""
DEFAULT_OUTPUT_TOKENS: Final = 512
"""Answer length assumed for cost estimates when the request sets no ``max_tokens``."""

_JSON_FORMATS: Final = frozenset({"json_object", "json_schema"})
_WANTED: Final = (
    Capability.TOOLS,
    Capability.VISION,
    Capability.JSON,
    Capability.PREFILL,
    Capability.EMBEDDINGS,
    Capability.THINKING,
    Capability.PROMPT_CACHING,
    Capability.SERVER_TOOLS,
    Capability.COMPLETIONS,
)
_NEEDED: Final = {
    flags: frozenset(c for c, wanted in zip(_WANTED, flags, strict=True) if wanted)
    for flags in itertools.product((False, True), repeat=len(_WANTED))
}


class Requirements(Shape, frozen=True):
    """What one request needs from a candidate model.

    ``prefill`` is never inferred from a request; the caller sets it when it
    continues a cut stream by prefilling the delivered text (ARCHITECTURE §3).
    """

    tools: bool = False
    vision: bool = False
    json: bool = False
    prefill: bool = False
    embeddings: bool = False
    """An embeddings request: only embedding models serve it."""
    thinking: bool = False
    prompt_caching: bool = False
    server_tools: bool = False
    completions: bool = False
    """A legacy completions request: only models serving that endpoint take it."""
    prompt_tokens: Annotated[int, Meta(ge=0)] = 0
    max_tokens: Count | None = None
    wire: WireFormat | None = None
    """Only an upstream speaking this wire format can carry the request (it has fields
    no other format has); None: any can."""
    native_field: str = ""
    """The first of those fields, as the client's API names it (for the refusal)."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        """The capabilities a candidate must list."""
        # The planner asks once per candidate: the 512 possible sets, made once.
        return _NEEDED[
            self.tools,
            self.vision,
            self.json,
            self.prefill,
            self.embeddings,
            self.thinking,
            self.prompt_caching,
            self.server_tools,
            self.completions,
        ]

    @property
    def context_tokens(self) -> int:
        """Context window the request needs: the prompt plus the longest answer it allows."""
        return self.prompt_tokens + (self.max_tokens or 0)

    @property
    def output_tokens(self) -> int:
        """Answer length for cost estimates: ``max_tokens`` or :data:`DEFAULT_OUTPUT_TOKENS`."""
        return DEFAULT_OUTPUT_TOKENS if self.max_tokens is None else self.max_tokens

    @classmethod
    def from_request(cls, request: ChatRequest | Mapping[str, Any]) -> Requirements:
        """Read what ``request`` needs: a validated :class:`ChatRequest` or an OpenAI-shaped dict.

        A dict is checked only as far as this reads it; a bad field raises
        :class:`RequestValidationError` naming it.
        """
        if isinstance(request, ChatRequest):
            native = request.native
            asked = frozenset() if native is None else native.needs
            only = () if native is None else native.only_native
            return cls(
                tools=request.uses_tools,
                vision=request.uses_images,
                json=request.wants_json,
                thinking=request.extra.get("reasoning_effort") not in (None, "minimal")
                or Capability.THINKING in asked,
                prompt_caching=Capability.PROMPT_CACHING in asked,
                server_tools=Capability.SERVER_TOOLS in asked,
                completions=Capability.COMPLETIONS in asked,
                prompt_tokens=estimate_prompt_tokens(request.messages, request.tools),
                max_tokens=request.max_tokens,
                wire=native.wire if native is not None and only else None,
                native_field=only[0] if only else "",
            )
        # A dict is read by the request's schema, as leniently as this needs it.
        needs = convert_needs(request)
        messages = to_messages(needs.messages)
        tools = to_tools(needs.tools or ())
        response_format = needs.response_format or {}
        max_tokens = needs.max_tokens
        return cls(
            tools=bool(tools) or any(m.tool_calls or m.role is Role.TOOL for m in messages),
            vision=any(m.has_images for m in messages),
            json=response_format.get("type") in _JSON_FORMATS,
            prompt_tokens=estimate_prompt_tokens(messages, tools),
            max_tokens=needs.max_completion_tokens if max_tokens is None else max_tokens,
        )


def estimate_prompt_tokens(messages: Iterable[object], tools: Iterable[object] = ()) -> int:
    """Estimate a prompt's tokens: ``chars // 4`` + 4 per message + 765 per image + 1.

    ``messages`` are :class:`runestone.messages.Message` values or OpenAI-shaped
    dicts (string content or a list of parts; tool calls count by their JSON);
    ``tools`` are :class:`runestone.messages.Tool` values or dicts, counted by
    their JSON. A message that is neither raises :class:`RequestValidationError`.
    """
    items = list(messages)
    if not all(isinstance(message, Message) for message in items):
        # Dicts are read by the request's schema; a Message goes there as its own dict.
        dicts = [m.to_dict() if isinstance(m, Message) else m for m in items]
        items = list(to_messages(convert_needs({"messages": dicts}).messages))
    chars = 0
    images = 0
    for message in items:
        assert isinstance(message, Message)  # dicts were converted above
        text, pictures = _message_size(message)
        chars += text
        images += pictures
    count = len(items)
    for tool in tools:
        chars += _json_size(_tool_dict(tool) if isinstance(tool, Tool) else tool)
    return estimate_from_size(chars, count, images)


def estimate_from_size(chars: int, messages: int, images: int) -> int:
    """The estimate's one formula: ``chars // 4`` + 4 per message + 765 per image + 1."""
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS * messages + IMAGE_TOKENS * images + 1


def _message_size(message: Message) -> tuple[int, int]:
    calls = message.tool_calls
    chars = _json_size([call.to_dict() for call in calls]) if calls else 0
    images = 0
    content = message.content
    if isinstance(content, str):
        chars += len(content)
    elif content is not None:
        for part in content:
            if isinstance(part, TextPart):
                chars += len(part.text)
            elif isinstance(part, ImagePart):
                images += 1
            elif isinstance(part, RawPart):
                text, attached = _raw_size(part.data)
                chars += text
                images += attached
    return chars, images


def _tool_dict(tool: Tool) -> dict[str, Any]:
    # Tool.to_dict's shape without its copy of the schema: this only sizes it.
    function: dict[str, Any] = {"name": tool.name, "description": tool.description}
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    return {"type": "function", "function": function}


_ATTACHMENT_CHARS: Final = 1024


def _raw_size(value: object) -> tuple[int, int]:
    """The characters of a part kept verbatim, and the attachments in it: a long string
    with no whitespace (base64: a document, audio, a file) is an attachment, allowed for
    as an image is, not counted a token per four of its characters."""
    chars = 0
    attachments = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) > _ATTACHMENT_CHARS and not any(c.isspace() for c in item[:256]):
                attachments += 1
            else:
                chars += len(item) + 2
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                chars += len(str(key)) + 3
                stack.append(inner)
        elif isinstance(item, list | tuple):
            stack.extend(item)
            chars += 2
        else:
            chars += len(repr(item))
    return chars, attachments


def _json_size(value: object) -> int:
    """The length of ``value`` as compact JSON (only for sizing: what JSON cannot encode
    is sized by its repr)."""
    try:
        return len(jsonio.dumps(value))
    except TypeError:
        return len(json.dumps(value, default=repr, separators=(",", ":")))
