"""The request bodies the benchmarks send: a chat of any length, an Anthropic one, and a
Claude-Code-like Anthropic request of a given size."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ANTHROPIC", "chat", "claude_code"]


def chat(messages: int) -> dict[str, Any]:
    turns: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(messages - 1):
        role = "user" if i % 2 == 0 else "assistant"
        turns.append({"role": role, "content": f"message {i}: " + "lorem ipsum " * 20})
    return {
        "model": "fast",
        "messages": turns,
        "stream": True,
        "temperature": 0.2,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    }


ANTHROPIC: dict[str, Any] = {
    "model": "smart",
    "max_tokens": 1024,
    "system": "You are terse.",
    "messages": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "tu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "18 C, sunny"}],
        },
    ],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    "stream": True,
}


_TOOLS = ("Read", "Edit", "Bash", "Grep", "Glob", "Write", "TodoWrite", "WebFetch")


def _tool(name: str) -> dict[str, Any]:
    properties = {
        f"{name.lower()}_{i}": {"type": "string", "description": f"Argument {i} of {name}. " * 4}
        for i in range(4)
    }
    return {
        "name": name,
        "description": f"{name}: what it does, when to use it and when not to. " * 12,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": sorted(properties)[:2],
            "additionalProperties": False,
        },
    }


def _source(turn: int, lines: int = 40) -> str:
    return "\n".join(
        f"{i + 1:>5}\t    value_{turn}_{i} = compute(value_{turn}_{i - 1}, factor={i % 7})  # step"
        for i in range(lines)
    )


def claude_code(model: str, messages_bytes: int = 50_000, *, stream: bool) -> dict[str, Any]:
    """What a coding agent sends mid-session, the way Claude Code does: a system prompt in
    blocks with ``cache_control``, eight tools with JSON schemas, thinking enabled, and a
    history of about ``messages_bytes`` of JSON: assistant turns of a signed thinking block,
    text and a ``tool_use``, each answered by a ``tool_result`` holding a file's lines; the
    last user turn marked for caching.
    """
    system = [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {
            "type": "text",
            "text": "Follow the repository's conventions; keep answers short. " * 150,
            "cache_control": {"type": "ephemeral"},
        },
    ]
    tools = [_tool(name) for name in _TOOLS]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    history: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Fix the failing test in core."}]}
    ]
    size, turn = 0, 0
    while size < messages_bytes:
        call = f"toolu_{turn:024d}"
        assistant = {
            "role": "assistant",
            "content": [
                {
                    "type": "thinking",
                    "thinking": f"Turn {turn}: the next file to read is core/part_{turn}.py. " * 6,
                    "signature": "EqQBCkgIBRABGAIiQL" + "x" * 300,
                },
                {"type": "text", "text": f"Reading core/part_{turn}.py."},
                {
                    "type": "tool_use",
                    "id": call,
                    "name": _TOOLS[turn % len(_TOOLS)],
                    "input": {"file_path": f"/repo/core/part_{turn}.py", "limit": 2000},
                },
            ],
        }
        result = {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call, "content": _source(turn)},
            ],
        }
        history += [assistant, result]
        size += len(json.dumps(assistant)) + len(json.dumps(result))
        turn += 1
    history.append(
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "Now run the tests.",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        }
    )
    return {
        "model": model,
        "max_tokens": 32000,
        "system": system,
        "tools": tools,
        "messages": history,
        "thinking": {"type": "enabled", "budget_tokens": 16000},
        "metadata": {"user_id": "user_bench_session_0"},
        "stream": stream,
    }
