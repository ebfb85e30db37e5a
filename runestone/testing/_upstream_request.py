"""A chat request as the fake upstream reads it: validated the way the real API would.

Only what the fake needs is extracted (behaviour, streaming, prompt size, a
trailing assistant message, the first tool's name). Anything the real API
would refuse is a :class:`BadRequestError` whose message names the field. A legacy
completions request (``openai_completions``) has a ``prompt`` instead of messages, a
Responses one (``openai_responses``) ``input`` (a string or items) and ``instructions``;
the fake keeps no responses, so a ``previous_response_id`` is accepted and not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runestone.testing._upstream_behaviour import BehaviourError, Selection, parse_model

__all__ = ["BadRequestError", "ChatCall", "read_chat_call"]

_ANTHROPIC_ROLES = ("user", "assistant")


class BadRequestError(ValueError):
    """The request is one the real API would answer with 400; the message names the field."""


@dataclass(frozen=True, slots=True)
class ChatCall:
    """What the fake upstream needs from one chat request."""

    selection: Selection
    stream: bool
    include_usage: bool
    input_tokens: int
    last_assistant_text: str | None
    """The text of the final message when it is the assistant's (a prefill), else ``None``."""
    tool_name: str | None
    """The name of the request's first tool, ``None`` without tools."""


def read_chat_call(api: str, body: object, headers: Mapping[str, str]) -> ChatCall:
    """Validate a parsed request body for ``api`` ("openai", "openai_completions",
    "openai_responses" or "anthropic")."""
    if not isinstance(body, dict):
        raise BadRequestError(f"request body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError(f"'model' must be a non-empty string, got {model!r}")
    try:
        selection = parse_model(model)
    except BehaviourError as exc:
        raise BadRequestError(f"'model': {exc}") from exc
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequestError(f"'stream' must be true or false, got {stream!r}")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    if api == "openai_completions":
        return ChatCall(selection, stream, include_usage, _prompt_tokens(body), None, None)
    if api == "openai_responses":
        return _responses_call(body, selection, stream)
    messages = _messages(body.get("messages"))
    if api == "anthropic":
        _check_anthropic(body, messages, headers)
    texts = [_text(m.get("content")) for m in messages]
    texts.append(_text(body.get("system")))
    words = sum(len(text.split()) for text in texts)
    last = messages[-1]
    return ChatCall(
        selection=selection,
        stream=stream,
        include_usage=include_usage,
        input_tokens=max(1, words),
        last_assistant_text=_text(last.get("content")) if last["role"] == "assistant" else None,
        tool_name=_first_tool_name(body.get("tools")),
    )


def _responses_call(body: dict[str, Any], selection: Selection, stream: bool) -> ChatCall:
    given = body.get("input")
    if isinstance(given, str):
        items: list[Any] = [{"role": "user", "content": given}]
    elif isinstance(given, list) and given:
        items = given
    else:
        raise BadRequestError(f"'input' must be a string or a non-empty list, got {given!r}")
    texts = [_text(item.get("content")) for item in items if isinstance(item, dict)]
    texts.append(_text(body.get("instructions")))
    words = sum(len(text.split()) for text in texts)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise BadRequestError(f"'tools' must be a list, got {type(tools).__name__}")
    functions = [t for t in tools or () if isinstance(t, dict) and t.get("type") == "function"]
    return ChatCall(
        selection=selection,
        stream=stream,
        include_usage=True,  # a Responses stream ends with its usage, always
        input_tokens=max(1, words),
        last_assistant_text=None,  # no prefill in the Responses API
        tool_name=_first_tool_name(functions),
    )


def _prompt_tokens(body: dict[str, Any]) -> int:
    """A completions prompt's size: its words, or its token ids (the longest prompt's)."""
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts:
        raise BadRequestError(
            "'prompt' must be a string, a list of strings, a list of token ids or a list of "
            f"token-id lists, got {prompt!r}"
        )
    if all(isinstance(item, str) for item in prompts):
        return max(1, max(len(item.split()) for item in prompts))
    if all(isinstance(item, int) and not isinstance(item, bool) for item in prompts):
        return len(prompts)
    if all(isinstance(item, list) and item for item in prompts):
        return max(len(item) for item in prompts)
    raise BadRequestError(f"'prompt' mixes kinds of prompts: {prompt!r}")


def _messages(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequestError(f"'messages' must be a non-empty list, got {value!r}")
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequestError(f"'messages[{index}]' must be an object with a string 'role'")
    return value


def _check_anthropic(
    body: dict[str, Any], messages: list[dict[str, Any]], headers: Mapping[str, str]
) -> None:
    if not headers.get("anthropic-version"):
        raise BadRequestError("the 'anthropic-version' header is required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequestError(f"'max_tokens' is required: an integer >= 1, got {max_tokens!r}")
    for index, message in enumerate(messages):
        if message["role"] not in _ANTHROPIC_ROLES:
            raise BadRequestError(
                f"'messages[{index}].role' must be 'user' or 'assistant' "
                f"(system prompts go in the top-level 'system'), got {message['role']!r}"
            )


def _text(content: object) -> str:
    """The text of a message content: a string, or the text parts of a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            block["text"]
            for block in content
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        ]
        return " ".join(parts)
    return ""


def _first_tool_name(tools: object) -> str | None:
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list):
        raise BadRequestError(f"'tools' must be a list, got {type(tools).__name__}")
    first = tools[0]
    # OpenAI nests the name under "function"; Anthropic puts it at the top.
    holder = first.get("function", first) if isinstance(first, dict) else None
    name = holder.get("name") if isinstance(holder, dict) else None
    if not isinstance(name, str) or not name:
        raise BadRequestError("'tools[0]' has no name ('function.name' or 'name')")
    return name
