"""What a request needs from a model: capabilities, and room for its prompt and answer.

Prompt size is *estimated*, never tokenized: about four characters a token
(the usual figure for English text with OpenAI- and Anthropic-style
tokenizers), plus a few tokens of framing per message and a fixed allowance per
image. It over-counts rather than under-counts on ordinary text, which is what a
context-window filter wants; a provider that still answers "context length
exceeded" triggers the context-window fallbacks (see :func:`runestone.routing.plan`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from runestone.exceptions import RequestValidationError
from runestone.messages import ChatRequest, ImagePart, Message, RawPart, Role, TextPart, Tool
from runestone.providers.settings import Capability

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_TOKENS",
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "Requirements",
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

_IMAGE_PART_TYPES: Final = frozenset({"image_url", "image", "input_image"})
_JSON_FORMATS: Final = frozenset({"json_object", "json_schema"})


@dataclass(frozen=True, slots=True)
class Requirements:
    """What one request needs from a candidate model.

    ``prefill`` is never inferred from a request; the caller sets it when it
    continues a cut stream by prefilling the delivered text (ARCHITECTURE §3).
    """

    tools: bool = False
    vision: bool = False
    json: bool = False
    prefill: bool = False
    prompt_tokens: int = 0
    max_tokens: int | None = None
    # Derived once: the planner asks for them once per candidate.
    _capabilities: frozenset[Capability] = field(init=False, repr=False, compare=False)
    _context_tokens: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_count("prompt_tokens", self.prompt_tokens, minimum=0)
        if self.max_tokens is not None:
            _check_count("max_tokens", self.max_tokens, minimum=1)
        wanted = (
            (self.tools, Capability.TOOLS),
            (self.vision, Capability.VISION),
            (self.json, Capability.JSON),
            (self.prefill, Capability.PREFILL),
        )
        needed = frozenset(capability for needed, capability in wanted if needed)
        object.__setattr__(self, "_capabilities", needed)
        object.__setattr__(self, "_context_tokens", self.prompt_tokens + (self.max_tokens or 0))

    @property
    def capabilities(self) -> frozenset[Capability]:
        """The capabilities a candidate must list."""
        return self._capabilities

    @property
    def context_tokens(self) -> int:
        """Context window the request needs: the prompt plus the longest answer it allows."""
        return self._context_tokens

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
            return cls(
                tools=request.uses_tools,
                vision=request.uses_images,
                json=request.wants_json,
                prompt_tokens=estimate_prompt_tokens(request.messages, request.tools),
                max_tokens=request.max_tokens,
            )
        if not isinstance(request, Mapping):
            raise RequestValidationError(
                f"expected a request object, got {type(request).__name__}", field="request"
            )
        messages = request.get("messages")
        if not isinstance(messages, list | tuple):
            raise RequestValidationError("expected a list of messages", field="messages")
        tools = request.get("tools") or ()
        if not isinstance(tools, list | tuple):
            raise RequestValidationError("expected a list of tools", field="tools")
        response_format = request.get("response_format")
        wants_json = (
            isinstance(response_format, Mapping) and response_format.get("type") in _JSON_FORMATS
        )
        return cls(
            tools=bool(tools) or any(_uses_tools(m) for m in messages),
            vision=any(_has_image(m) for m in messages),
            json=wants_json,
            prompt_tokens=estimate_prompt_tokens(messages, tools),
            max_tokens=_max_tokens(request),
        )


def estimate_prompt_tokens(messages: Iterable[object], tools: Iterable[object] = ()) -> int:
    """Estimate a prompt's tokens: ``chars // 4`` + 4 per message + 765 per image + 1.

    ``messages`` are :class:`runestone.messages.Message` values or OpenAI-shaped
    dicts (string content or a list of parts; tool calls count by their JSON);
    ``tools`` are :class:`runestone.messages.Tool` values or dicts, counted by
    their JSON. A message that is neither raises :class:`RequestValidationError`.
    """
    chars = 0
    images = 0
    count = 0
    for index, message in enumerate(messages):
        count += 1
        if isinstance(message, Message):
            text, pictures = _message_size(message)
        elif isinstance(message, Mapping):
            text, pictures = _dict_message_size(message, index)
        else:
            raise RequestValidationError(
                f"expected a message object, got {type(message).__name__}",
                field=f"messages[{index}]",
            )
        chars += text
        images += pictures
    for tool in tools:
        chars += len(_json(tool.to_dict() if isinstance(tool, Tool) else tool))
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS * count + IMAGE_TOKENS * images + 1


def _message_size(message: Message) -> tuple[int, int]:
    calls = message.tool_calls
    chars = len(_json([call.to_dict() for call in calls])) if calls else 0
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
                chars += len(_json(part.data))
    return chars, images


def _dict_message_size(message: Mapping[str, Any], index: int) -> tuple[int, int]:
    chars = len(_json(message["tool_calls"])) if message.get("tool_calls") else 0
    images = 0
    content = message.get("content")
    if isinstance(content, str):
        chars += len(content)
    elif isinstance(content, list | tuple):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") in _IMAGE_PART_TYPES:
                images += 1
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                chars += len(part["text"])
            else:
                chars += len(_json(part))
    elif content is not None:
        raise RequestValidationError(
            "expected a string or a list of content parts", field=f"messages[{index}].content"
        )
    return chars, images


def _uses_tools(message: object) -> bool:
    return isinstance(message, Mapping) and bool(
        message.get("tool_calls") or message.get("role") == Role.TOOL.value
    )


def _has_image(message: object) -> bool:
    if not isinstance(message, Mapping):
        return False
    content = message.get("content")
    return isinstance(content, list | tuple) and any(
        isinstance(part, Mapping) and part.get("type") in _IMAGE_PART_TYPES for part in content
    )


def _max_tokens(request: Mapping[str, Any]) -> int | None:
    for name in ("max_tokens", "max_completion_tokens"):
        value = request.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RequestValidationError(f"expected an integer >= 1, got {value!r}", field=name)
        return value
    return None


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected a whole number >= {minimum}, got {value!r}")


def _json(value: object) -> str:
    # Only for sizing: anything json cannot encode is sized by its repr.
    return json.dumps(value, default=repr, separators=(",", ":"))
