"""A provider with no network: deterministic answers at a configurable pace.

The bundled default config answers through it, so a fresh machine with no API
keys still streams, and every structured-output or agent client example runs.
Answers are split into word-sized tokens and streamed at ``options.token_rate``
tokens a second after ``options.first_token_delay`` seconds. It plays every
part of the protocol, the same way every time:

- the answer is ``options.text``; with ``response_format`` ``json_schema`` it is
  JSON valid against that schema (:mod:`runestone.providers.json_example`), with
  ``json_object`` the object ``{"answer": <the text>}``;
- ``tool_choice`` ``required`` or a named function: one call to that tool
  (``required``: the first tool named in the last user message, else the first
  tool), its arguments valid against the tool's ``parameters``;
- ``tool_choice`` ``auto`` (or none given, with tools): it calls a tool when the
  last message is the user's and names the tool as a word (case-insensitive;
  the first such tool in the request's order), and answers in text otherwise;
- the last message a tool result: it answers in text quoting it ("The
  get_weather tool returned: …") and calls no tool unless forced to, so an agent
  loop ends;
- ``max_tokens`` cuts the answer with finish reason ``length``;
- a final assistant message holding a prefix of the answer is a prefill: only
  the rest is streamed (declare the model's ``prefill`` capability to use it);
- ``reasoning_effort`` (or Anthropic's ``thinking``, mapped onto it) other than
  ``minimal``: it reasons first — one sentence naming the effort and the question,
  signed with its digest (:func:`reasoning_of`), shown as a thinking block or
  ``reasoning_content`` (declare ``thinking`` among the model's capabilities).

Tool calls are not paced and come whole in one delta; call ids are
``call_simulated_<n>``, ``n`` counting the calls earlier in the conversation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import re
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Final, cast

from msgspec import Meta

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.messages import (
    ChatRequest,
    Done,
    EmbeddingAnswer,
    EmbeddingRequest,
    FinishReason,
    Message,
    ReasoningDelta,
    Role,
    StreamEvent,
    TextDelta,
    Tool,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
)
from runestone.providers.base import Provider, ProviderOptions
from runestone.providers.json_example import UnsatisfiableSchemaError, example_json
from runestone.providers.settings import ProviderSettings
from runestone.schema import NonNegative

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DEFAULT_TEXT",
    "SimulatedProvider",
    "embedding_of",
    "split_tokens",
]

DEFAULT_TEXT: Final = (
    "This answer comes from Runestone's simulated provider: no network and no API key, "
    "the same words every time, streamed at a steady pace so that everything downstream "
    "can be tried on a fresh machine."
)
DEFAULT_TOKEN_RATE: Final = 50.0
DEFAULT_FIRST_TOKEN_DELAY: Final = 0.05


DEFAULT_DIMENSIONS: Final = 256
"""The vector length of a simulated embedding model that names none."""


def embedding_of(text: str, dimensions: int) -> tuple[float, ...]:
    """``text``'s simulated embedding: ``dimensions`` numbers drawn from a generator seeded
    by the text's hash, scaled to length 1."""
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return tuple(x / norm for x in raw)


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
    ``first_token_delay`` (s), ``text``. How it answers tools and structured output:
    the module docstring."""

    type_name = "simulated"
    has_health_probe = True  # nothing to reach: its probe answers healthy, trivially
    embeds = True
    options_type = SimulatedOptions

    def __init__(self, settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(settings, clock=clock)
        options = cast(SimulatedOptions, self.read_options(settings))
        self.text: str = options.text
        self.tokens = split_tokens(self.text)
        self.interval = 1.0 / options.token_rate if options.token_rate > 0 else 0.0
        self.first_token_delay = options.first_token_delay

    async def embed(self, request: EmbeddingRequest) -> EmbeddingAnswer:
        """Deterministic unit-length vectors: the same text gives the same vector, of the
        model's ``dimensions`` (or the request's, or :data:`DEFAULT_DIMENSIONS`)."""
        info = self.settings.models.get(request.model)
        size = request.dimensions or (info.dimensions if info else None) or DEFAULT_DIMENSIONS
        vectors = tuple(embedding_of(text, size) for text in request.inputs)
        tokens = sum(len(text.split()) for text in request.inputs)
        return EmbeddingAnswer(vectors, tokens, self.name, request.model)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        prompt_tokens = max(1, sum(len(m.text.split()) for m in request.messages))
        call = _tool_to_call(request)
        if self.first_token_delay:
            await asyncio.sleep(self.first_token_delay)
        if call is not None:
            arguments = _arguments(call)
            call_id = f"call_simulated_{_calls_so_far(request)}"
            yield ToolCallDelta(0, call_id, call.name, arguments)
            usage = Usage(prompt_tokens, max(1, len(split_tokens(arguments))))
            yield usage
            yield Done(FinishReason.TOOL_CALLS, self.name, request.model, usage)
            return
        limit = request.max_tokens
        finish = FinishReason.STOP
        sent = 0
        thought = reasoning_of(request)
        if thought:
            for token in split_tokens(thought):
                if sent and self.interval:
                    await asyncio.sleep(self.interval)
                yield ReasoningDelta(token)
                sent += 1
            yield ReasoningDelta("", signature_of(thought))
            sent = 0  # the answer's own tokens are counted against max_tokens
        for token in self._answer_tokens(request):
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

    def answer(self, request: ChatRequest) -> str:
        """The whole text answer to ``request`` (before a prefill is taken off it)."""
        text = _acknowledgement(request) or self.text
        fmt = request.response_format
        kind = fmt.get("type") if fmt is not None else None
        if kind == "json_object":
            return json.dumps({"answer": text}, ensure_ascii=False)
        if kind == "json_schema" and fmt is not None:
            spec = fmt.get("json_schema")
            schema = spec.get("schema", {}) if isinstance(spec, Mapping) else {}
            try:
                return example_json(schema)
            except UnsatisfiableSchemaError:
                # Nothing is valid: valid JSON at least, and the reason, as a model might.
                return json.dumps({"answer": text, "error": "the schema cannot be satisfied"})
        return text

    def _answer_tokens(self, request: ChatRequest) -> tuple[str, ...]:
        text = self.answer(request)
        last = request.messages[-1]
        if last.role is Role.ASSISTANT and not last.tool_calls:
            prefill = last.text
            if prefill and text.startswith(prefill):
                return split_tokens(text[len(prefill) :])
        return split_tokens(text) if text != self.text else self.tokens


def reasoning_of(request: ChatRequest) -> str:
    """What the simulated model thinks before answering ``request``: nothing unless it
    asks for reasoning (``reasoning_effort`` other than ``minimal``, which Anthropic's
    ``thinking`` maps onto), else a sentence naming the effort and the question."""
    effort = request.extra.get("reasoning_effort")
    if effort is None or effort == "minimal":
        return ""
    question = next(
        (m.text for m in reversed(request.messages) if m.role is Role.USER and m.text), ""
    )
    words = question.split()
    shown = " ".join(words[:12]) + (" …" if len(words) > 12 else "")
    return f"Thinking ({effort} effort) about: {shown or 'the conversation'}. Answer as configured."


def signature_of(thought: str) -> str:
    """The signature of ``thought``: the same text signs the same way (a digest, base64)."""
    digest = hashlib.sha256(thought.encode()).digest()
    return base64.b64encode(digest).decode()


_FORCED: Final = frozenset({ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION})
_QUOTE_LIMIT: Final = 500
"""Characters of a tool result quoted back (the rest is elided)."""


def _tool_to_call(request: ChatRequest) -> Tool | None:
    """The tool the answer calls, or None for a text answer (rules: the module docstring)."""
    tools = request.tools
    choice = request.tool_choice
    if not tools or (choice is not None and choice.mode is ToolChoiceMode.NONE):
        return None
    if choice is not None and choice.mode is ToolChoiceMode.FUNCTION:
        named = [t for t in tools if t.name == choice.name]
        return named[0] if named else Tool(choice.name or tools[0].name)
    last = request.messages[-1]
    mentioned = _mentioned(tools, last.text) if last.role is Role.USER else None
    if choice is not None and choice.mode in _FORCED:
        return mentioned or tools[0]
    return mentioned


def _mentioned(tools: tuple[Tool, ...], text: str) -> Tool | None:
    """The first tool whose name ``text`` holds as a word (not inside a longer name)."""
    for tool in tools:
        if re.search(rf"(?<![\w-]){re.escape(tool.name)}(?![\w-])", text, re.IGNORECASE):
            return tool
    return None


def _arguments(tool: Tool) -> str:
    """Arguments for a call to ``tool``: JSON valid against its ``parameters``."""
    if not tool.parameters:
        return "{}"
    try:
        return example_json(tool.parameters)
    except UnsatisfiableSchemaError:
        return "{}"  # nothing is valid: the emptiest object, as a model would try


def _calls_so_far(request: ChatRequest) -> int:
    return sum(len(m.tool_calls) for m in request.messages)


def _acknowledgement(request: ChatRequest) -> str | None:
    """When the conversation ends with tool results: a sentence quoting each, else None."""
    results: list[Message] = []
    for message in reversed(request.messages):
        if message.role is not Role.TOOL:
            break
        results.insert(0, message)
    if not results:
        return None
    names = {
        call.id: call.name
        for message in request.messages
        if message.role is Role.ASSISTANT
        for call in message.tool_calls
    }
    sentences = []
    for result in results:
        name = names.get(result.tool_call_id or "") or result.name
        quoted = result.text.strip()
        if len(quoted) > _QUOTE_LIMIT:
            quoted = quoted[:_QUOTE_LIMIT] + "…"
        tool = f"The {name} tool" if name else "The tool"
        sentences.append(f"{tool} returned: {quoted or '(nothing)'}")
    return "\n".join(sentences)
