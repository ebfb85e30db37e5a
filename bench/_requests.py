"""The request bodies the schema benchmarks decode: a chat of any length, an Anthropic one."""

from __future__ import annotations

from typing import Any

__all__ = ["ANTHROPIC", "chat"]


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
