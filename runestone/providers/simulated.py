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
import re
from collections.abc import AsyncIterator
from typing import Annotated, Final, cast

from msgspec import Meta

from runestone.clock import SYSTEM_CLOCK, Clock
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
from runestone.providers.base import Provider, ProviderOptions
from runestone.providers.settings import ProviderSettings
from runestone.schema import NonNegative

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


class SimulatedOptions(ProviderOptions, frozen=True):
    """The simulated provider's own keys."""

    token_rate: NonNegative = DEFAULT_TOKEN_RATE
    """Tokens a second (0: as fast as it can)."""
    first_token_delay: NonNegative = DEFAULT_FIRST_TOKEN_DELAY
    """Seconds before the first token."""
    text: Annotated[str, Meta(pattern=r"\S", extra={"expected": "a non-empty string"})] = (
        DEFAULT_TEXT
    )
    """The answer it gives (word by word)."""


class SimulatedProvider(Provider):
    """``type: simulated``. Options: ``token_rate`` (tokens/s; 0 = unpaced),
    ``first_token_delay`` (s), ``text``."""

    type_name = "simulated"
    has_health_probe = True  # nothing to reach: its probe answers healthy, trivially
    options_type = SimulatedOptions

    def __init__(self, settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(settings, clock=clock)
        options = cast(SimulatedOptions, self.read_options(settings))
        self.text: str = options.text
        self.tokens = split_tokens(self.text)
        self.interval = 1.0 / options.token_rate if options.token_rate > 0 else 0.0
        self.first_token_delay = options.first_token_delay

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
