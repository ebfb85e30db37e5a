"""A provider with no network: deterministic text at a configurable pace.

The bundled default config answers through it, so a fresh machine with no API
keys still streams. Every answer is the same text (``options.text``), split
into word-sized tokens and streamed at ``options.token_rate`` tokens a second
after ``options.first_token_delay`` seconds. It behaves like a real model where
that matters downstream:

- ``max_tokens`` cuts the answer with finish reason ``length``;
- a final assistant message holding a prefix of the text is a prefill: only the
  rest is streamed (declare the model's ``prefill`` capability to use it);
- ``tool_choice`` ``required`` or a named function yields one call with ``{}``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from typing import ClassVar, Final

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import ConfigError
from runestone.messages import (
    ChatRequest,
    Done,
    FinishReason,
    Role,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
)
from runestone.providers.base import Provider
from runestone.providers.settings import ProviderSettings

__all__ = ["DEFAULT_TEXT", "SimulatedProvider", "split_tokens"]

DEFAULT_TEXT: Final = (
    "This answer comes from Runestone's simulated provider: no network and no API key, "
    "the same words every time, streamed at a steady pace so that everything downstream "
    "can be tried on a fresh machine."
)
DEFAULT_TOKEN_RATE: Final = 50.0
DEFAULT_FIRST_TOKEN_DELAY: Final = 0.05


def split_tokens(text: str) -> tuple[str, ...]:
    """``text`` as word-sized tokens (each word with its following whitespace)."""
    tokens = re.findall(r"\s*\S+\s*", text)
    return tuple(tokens) if tokens else ((text,) if text else ())


class SimulatedProvider(Provider):
    """``type: simulated``. Options: ``token_rate`` (tokens/s; 0 = unpaced),
    ``first_token_delay`` (s), ``text``."""

    type_name = "simulated"
    has_health_probe = True  # nothing to reach: its probe answers healthy, trivially
    options_schema: ClassVar[frozenset[str]] = frozenset(
        {"token_rate", "first_token_delay", "text"}
    )

    def __init__(self, settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(settings, clock=clock)
        options = settings.options
        self.text: str = options.get("text", DEFAULT_TEXT)
        self.tokens = split_tokens(self.text)
        rate = float(options.get("token_rate", DEFAULT_TOKEN_RATE))
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.first_token_delay = float(options.get("first_token_delay", DEFAULT_FIRST_TOKEN_DELAY))

    @classmethod
    def validate_config(cls, settings: ProviderSettings) -> None:
        super().validate_config(settings)
        path = f"providers.{settings.name}"
        options = settings.options
        for key in ("token_rate", "first_token_delay"):
            value = options.get(key, 0.0)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(f"expected a number >= 0, got {value!r}", path=f"{path}.{key}")
        text = options.get("text", DEFAULT_TEXT)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("expected a non-empty string", path=f"{path}.text")

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        tokens = self._answer_tokens(request)
        prompt_tokens = max(1, sum(len(m.text.split()) for m in request.messages))
        if self.first_token_delay:
            await asyncio.sleep(self.first_token_delay)
        choice = request.tool_choice
        if request.tools and choice is not None and choice.mode in _CALLING:
            name = choice.name or request.tools[0].name
            yield ToolCallDelta(0, "call_simulated_0", name, "{}")
            usage = Usage(prompt_tokens, 1)
            yield usage
            yield Done(FinishReason.TOOL_CALLS, self.name, request.model, usage)
            return
        limit = request.max_tokens
        finish = FinishReason.STOP
        sent = 0
        for token in tokens:
            if limit is not None and sent >= limit:
                finish = FinishReason.LENGTH
                break
            if sent and self.interval:
                await asyncio.sleep(self.interval)
            yield TextDelta(token)
            sent += 1
        usage = Usage(prompt_tokens, sent)
        yield usage
        yield Done(finish, self.name, request.model, usage)

    def _answer_tokens(self, request: ChatRequest) -> tuple[str, ...]:
        last = request.messages[-1]
        if last.role is Role.ASSISTANT and not last.tool_calls:
            prefill = last.text
            if prefill and self.text.startswith(prefill):
                return split_tokens(self.text[len(prefill) :])
        return self.tokens


_CALLING: Final = frozenset({ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION})
