"""Anthropic's Messages API: ``POST {base_url}/v1/messages``.

Mapping from the OpenAI shape:

- every ``system``/``developer`` message, wherever it stands, becomes a block
  of the top-level ``system`` (in order), not only the first;
- ``tools`` → ``input_schema`` tools; ``tool_choice`` auto/required/none/named →
  ``auto``/``any``/``none``/``tool``; assistant ``tool_calls`` → ``tool_use``
  blocks; ``tool`` messages → ``tool_result`` blocks in one user turn;
- images: ``data:`` URLs → base64 sources, http(s) URLs → url sources;
- a final assistant message is a prefill. Anthropic refuses one that ends in
  whitespace, so that whitespace is trimmed on the wire and dropped again from
  the front of the continuation, keeping ``prefill + answer`` exact;
- ``reasoning_effort`` → a ``thinking`` budget (:data:`THINKING_BUDGETS`; the
  request's ``max_tokens`` bounds it, or the budget is added to the default), and
  refused with a 400 naming the field where Anthropic has no counterpart (an
  unknown effort, a ``max_tokens`` too small to think, a ``temperature`` other
  than 1); ``parallel_tool_calls: false`` → ``disable_parallel_tool_use``.

Streams: ``message_start`` (input usage), ``content_block_start``/``_delta``
(``text_delta``, ``input_json_delta``; ``thinking_delta`` and ``signature_delta`` as
reasoning), ``message_delta`` (``stop_reason``,
output usage), ``message_stop`` (the terminal sentinel); ``ping`` is ignored
and ``error`` (e.g. ``overloaded_error``) fails the attempt with its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, cast

from msgspec import Meta

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import BadRequestError, MalformedResponseError
from runestone.messages import (
    ChatRequest,
    Completion,
    FinishReason,
    ImagePart,
    Message,
    NativeBody,
    RawPart,
    ReasoningDelta,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
    WireFormat,
)
from runestone.providers.base import ProviderOptions
from runestone.providers.errors import AttemptState, classify_error_body
from runestone.providers.http import HttpProvider, StreamDecoder, dumps, loads
from runestone.providers.settings import ProviderSettings
from runestone.providers.sse import SSEEvent
from runestone.schema import Count

__all__ = [
    "THINKING_BUDGETS",
    "AnthropicProvider",
    "AnthropicStreamDecoder",
    "map_anthropic_stop_reason",
]

DEFAULT_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 4096

_STOP_REASONS: Final[Mapping[str, str]] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}
# Request fields we do not model that Anthropic accepts as they are.
_PASSTHROUGH: Final = frozenset({"top_k", "thinking", "service_tier"})

THINKING_BUDGETS: Final[Mapping[str, int | None]] = {
    "minimal": None,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
}
"""OpenAI's ``reasoning_effort`` as Anthropic's thinking budget (``minimal``: no thinking;
1024 is the smallest budget Anthropic takes)."""
_MIN_BUDGET: Final = 1024


def map_anthropic_stop_reason(reason: str) -> str:
    """Anthropic's ``stop_reason`` as a :class:`FinishReason` value (unknown ones pass through)."""
    return _STOP_REASONS.get(reason, reason)


def _usage(usage: object, previous: Usage | None = None) -> Usage | None:
    if not isinstance(usage, Mapping):
        return previous
    prompt = previous.prompt_tokens if previous is not None else 0
    cached = previous.cached_tokens if previous is not None else 0
    if "input_tokens" in usage:
        # Cached prompt tokens are prompt tokens too; Anthropic counts them apart.
        cached = int(usage.get("cache_read_input_tokens") or 0)
        prompt = (
            int(usage.get("input_tokens") or 0)
            + int(usage.get("cache_creation_input_tokens") or 0)
            + cached
        )
    completion = previous.completion_tokens if previous is not None else 0
    if "output_tokens" in usage:
        completion = int(usage.get("output_tokens") or 0)  # cumulative, not a delta
    return Usage(prompt, completion, cached)


class AnthropicStreamDecoder(StreamDecoder):
    """Messages-API stream events to stream events."""

    __slots__ = ("_opaque", "_tools", "_trim")
    terminal_frame = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

    def __init__(
        self,
        request: ChatRequest,
        state: AttemptState,
        trim: str = "",
        native: NativeBody | None = None,
    ) -> None:
        super().__init__(request, state, native)
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._opaque = False  # the last event was content other than text
        self._trim = trim  # whitespace cut from the prefill, to drop from the continuation

    def decode(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        try:
            data = loads(event.raw)
            kind = data.get("type") or event.event
            if kind == "content_block_delta":
                delta = data["delta"]
                delta_type = delta.get("type")
                if delta_type == "text_delta":
                    text = delta["text"]
                    if self._trim:
                        text = self._trim_front(text)
                    if text:
                        out.append(TextDelta(text))
                        self.has_content = True
                elif delta_type == "input_json_delta":
                    out.append(
                        ToolCallDelta(self._tools[data["index"]], None, None, delta["partial_json"])
                    )
                    self.has_content = True
                elif delta_type == "thinking_delta":
                    out.append(ReasoningDelta(delta["thinking"]))
                    self.has_content = True
                elif delta_type == "signature_delta":
                    out.append(ReasoningDelta("", delta["signature"]))
                    self.has_content = True
                else:  # citations and delta types added later: not text
                    self._opaque = True
            elif kind == "content_block_start":
                block = data["content_block"]
                block_type = block.get("type")
                self.blocks += 1
                self.open_text = block_type == "text"
                self._opaque = not self.open_text
                if block_type == "tool_use":
                    index = self._tools[data["index"]] = len(self._tools)
                    start = block.get("input")
                    arguments = dumps(start).decode() if start else ""
                    out.append(ToolCallDelta(index, block["id"], block["name"], arguments))
                    self.has_content = True
                elif block_type == "text" and block.get("text"):
                    out.append(TextDelta(block["text"]))
                    self.has_content = True
            elif kind == "content_block_stop":
                self.open_text = False
            elif kind == "message_delta":
                reason = data.get("delta", {}).get("stop_reason")
                if reason:
                    self.finish_reason = _STOP_REASONS.get(reason, reason)
                self.usage = _usage(data.get("usage"), self.usage)
            elif kind == "message_start":
                self.usage = _usage(data["message"].get("usage"), self.usage)
            elif kind == "message_stop":
                self.finished = True
                if self.finish_reason is None:
                    self.finish_reason = FinishReason.STOP
            elif kind == "error":
                state = self.state
                self.failure = classify_error_body(
                    data,
                    provider=state.provider,
                    model=state.model,
                    content_delivered=state.content_delivered,
                    secrets=state.secrets,
                )
            # ping and event types added later carry nothing for us.
        except (ValueError, AttributeError, TypeError, KeyError, IndexError) as exc:
            self.skip(event, exc)

    def native_content(self, event: SSEEvent, produced: bool) -> bool:
        # Every block is content (a thinking block is streamed to the client as it comes).
        return event.event.startswith("content_block")

    def native_opaque(self, event: SSEEvent, produced: bool) -> bool:
        opaque, self._opaque = self._opaque, False
        return opaque

    def _trim_front(self, text: str) -> str:
        trim = self._trim
        common = 0
        while common < min(len(trim), len(text)) and trim[common] == text[common]:
            common += 1
        if common == len(text):
            self._trim = trim[common:]  # the piece was all trimmed whitespace; keep going
            return ""
        self._trim = ""
        return text[common:]


class AnthropicOptions(ProviderOptions, frozen=True):
    """The keys of ``type: anthropic`` beside the common ones."""

    anthropic_version: Annotated[str, Meta(min_length=1)] = DEFAULT_VERSION
    """Sent as ``anthropic-version``."""
    anthropic_beta: str | None = None
    """Sent as ``anthropic-beta`` (comma-separated beta names)."""
    max_tokens: Count = DEFAULT_MAX_TOKENS
    """The token limit sent when a request names none (Anthropic requires one)."""


class AnthropicProvider(HttpProvider):
    """Anthropic (``type: anthropic``).

    Options: ``anthropic_version`` (default 2023-06-01), ``anthropic_beta``,
    ``max_tokens`` (default when the request gives none: the model's
    ``max_output_tokens`` or 4096).
    """

    type_name = "anthropic"
    wires = frozenset({WireFormat.ANTHROPIC_MESSAGES})
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com"
    chat_path = "/v1/messages"
    count_tokens_path = "/v1/messages/count_tokens"
    counts_tokens = True
    models_path = "/v1/models"
    requires_api_key = True
    options_type = AnthropicOptions

    def __init__(self, settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.options = cast(AnthropicOptions, self.read_options(settings))
        super().__init__(settings, clock=clock)

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.options.anthropic_version}
        if self.options.anthropic_beta:
            headers["anthropic-beta"] = self.options.anthropic_beta
        if self.settings.api_key:
            headers["x-api-key"] = self.settings.api_key.reveal()
        return headers

    def native_headers(self, native: NativeBody | None) -> Mapping[str, str] | None:
        """The client's ``anthropic-version`` and ``anthropic-beta``, its betas after the
        configured ones."""
        if native is None or not native.headers:
            return None
        headers = dict(native.headers)
        beta = headers.get("anthropic-beta")
        configured = self.options.anthropic_beta
        if beta and configured:
            names = [n.strip() for n in f"{configured},{beta}".split(",") if n.strip()]
            headers["anthropic-beta"] = ",".join(dict.fromkeys(names))
        return headers

    # ---- request

    def encode_request(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body, _ = self._encode(request, stream=stream)
        return body

    def _encode(self, request: ChatRequest, *, stream: bool) -> tuple[dict[str, Any], str]:
        system: list[dict[str, Any]] = []
        turns: list[dict[str, Any]] = []
        last = len(request.messages) - 1
        trim = ""
        for i, message in enumerate(request.messages):
            role = message.role
            if role is Role.SYSTEM or role is Role.DEVELOPER:
                if message.text:
                    system.append({"type": "text", "text": message.text})
            elif role is Role.TOOL:
                result = {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id,
                    "content": message.text,
                }
                previous = turns[-1] if turns else None
                if previous is not None and previous.get("tool_results"):
                    previous["content"].append(result)
                else:
                    turns.append({"role": "user", "content": [result], "tool_results": True})
            elif role is Role.USER:
                turns.append({"role": "user", "content": self._user_content(message, i)})
            else:
                content: Any
                if i == last and not message.tool_calls:
                    text = message.text
                    content = text.rstrip()
                    trim = text[len(content) :]
                else:
                    content = self._assistant_content(message, i)
                turns.append({"role": "assistant", "content": content})
        for turn in turns:
            turn.pop("tool_results", None)
        body: dict[str, Any] = {
            key: value for key, value in request.extra.items() if key in _PASSTHROUGH
        }
        body["model"] = request.model
        body["messages"] = turns
        body["max_tokens"] = request.max_tokens or self._default_max_tokens(request.model)
        body["stream"] = stream
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = [
                {
                    "name": tool.name,
                    "description": tool.description or "",
                    "input_schema": dict(tool.parameters)
                    if tool.parameters is not None
                    else {"type": "object", "properties": {}},
                }
                for tool in request.tools
            ]
        choice = self._tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.user is not None:
            body["metadata"] = {"user_id": request.user}
        effort = request.extra.get("reasoning_effort")
        if effort is not None and "thinking" not in body:
            self._think(body, effort, explicit_max=request.max_tokens is not None)
        return body, trim

    def _think(self, body: dict[str, Any], effort: object, *, explicit_max: bool) -> None:
        """Map ``reasoning_effort`` onto a thinking budget, or refuse it naming the field."""
        if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
            raise BadRequestError(
                f"reasoning_effort: expected one of {', '.join(THINKING_BUDGETS)}, got {effort!r}",
                provider=self.name,
                model=body["model"],
            )
        budget = THINKING_BUDGETS[effort]
        if budget is None:
            return
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1.0:
            raise BadRequestError(
                "temperature: Anthropic takes none while thinking (reasoning_effort="
                f"{effort!r}); leave it out",
                provider=self.name,
                model=body["model"],
            )
        max_tokens = body["max_tokens"]
        if explicit_max:
            # The answer's limit is the caller's: the thinking fits under it, or is refused.
            if max_tokens <= _MIN_BUDGET:
                raise BadRequestError(
                    f"reasoning_effort: thinking needs max_tokens above {_MIN_BUDGET} on "
                    f"Anthropic, got max_tokens={max_tokens}",
                    provider=self.name,
                    model=body["model"],
                )
            budget = min(budget, max_tokens - 1)
        else:
            body["max_tokens"] = max_tokens + budget  # room for the answer after thinking
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}

    def _default_max_tokens(self, model: str) -> int:
        info = self.settings.models.get(model)
        if info is not None and info.max_output_tokens:
            return info.max_output_tokens
        return self.options.max_tokens

    def _tool_choice(self, request: ChatRequest) -> dict[str, Any] | None:
        choice = request.tool_choice
        parallel = request.extra.get("parallel_tool_calls")
        if choice is None and parallel is not False:
            return None
        out: dict[str, Any]
        if choice is None or choice.mode is ToolChoiceMode.AUTO:
            out = {"type": "auto"}
        elif choice.mode is ToolChoiceMode.REQUIRED:
            out = {"type": "any"}
        elif choice.mode is ToolChoiceMode.NONE:
            return {"type": "none"}
        else:
            out = {"type": "tool", "name": choice.name}
        if parallel is False:
            out["disable_parallel_tool_use"] = True
        return out

    def _user_content(self, message: Message, index: int) -> str | list[dict[str, Any]]:
        content = message.content
        if content is None or isinstance(content, str):
            return content or ""
        blocks: list[dict[str, Any]] = []
        for k, part in enumerate(content):
            if isinstance(part, TextPart):
                blocks.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                blocks.append(self._image(part, f"messages[{index}].content[{k}]"))
            elif isinstance(part, RawPart):
                raise BadRequestError(
                    f"messages[{index}].content[{k}]: Anthropic takes no {part.type!r} parts",
                    provider=self.name,
                )
        return blocks

    def _image(self, part: ImagePart, where: str) -> dict[str, Any]:
        url = part.url
        if url.startswith("data:"):
            header, sep, data = url.partition(",")
            media_type = header[5:].split(";")[0]
            if not sep or ";base64" not in header or not media_type:
                raise BadRequestError(
                    f"{where}: expected a data:<media type>;base64,<data> URL", provider=self.name
                )
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }
        return {"type": "image", "source": {"type": "url", "url": url}}

    def _assistant_content(self, message: Message, index: int) -> str | list[dict[str, Any]]:
        if not message.tool_calls:
            return message.text
        blocks: list[dict[str, Any]] = []
        if message.text:
            blocks.append({"type": "text", "text": message.text})
        for j, call in enumerate(message.tool_calls):
            try:
                arguments = loads(call.arguments or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                raise BadRequestError(
                    f"messages[{index}].tool_calls[{j}].function.arguments: "
                    "Anthropic needs a JSON object",
                    provider=self.name,
                )
            blocks.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}
            )
        return blocks

    # ---- response

    async def count_tokens(self, body: Mapping[str, Any], model: str) -> int:
        """``POST /v1/messages/count_tokens`` with ``body`` as the client sent it, for
        ``model``."""
        answer = await self.post_json(self.count_tokens_path, {**body, "model": model}, model)
        tokens = answer.get("input_tokens") if isinstance(answer, Mapping) else None
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise MalformedResponseError(
                f"count_tokens answered without a token count: {str(answer)[:200]}",
                provider=self.name,
                model=model,
            )
        return tokens

    def new_decoder(self, request: ChatRequest, state: AttemptState) -> StreamDecoder:
        native = self.native_body(request)
        trim = ""
        if native is None and request.ends_with_assistant and not request.messages[-1].tool_calls:
            text = request.messages[-1].text
            trim = text[len(text.rstrip()) :]
        return AnthropicStreamDecoder(request, state, trim, native)

    def decode_completion(self, data: Any, request: ChatRequest, state: AttemptState) -> Completion:
        if data.get("type") == "error":
            raise ValueError("an error object where a message was expected")
        texts: list[str] = []
        thoughts: list[str] = []
        signature: str | None = None
        calls: list[ToolCall] = []
        for block in data["content"]:
            kind = block.get("type")
            if kind == "text":
                texts.append(block["text"])
            elif kind == "thinking":
                thoughts.append(block.get("thinking") or "")
                signature = block.get("signature") or signature
            elif kind == "tool_use":
                calls.append(ToolCall(block["id"], block["name"], dumps(block["input"]).decode()))
        text = "".join(texts)
        if (
            request.native is None
            and request.ends_with_assistant
            and not request.messages[-1].tool_calls
        ):
            prefill = request.messages[-1].text
            trim = prefill[len(prefill.rstrip()) :]
            if trim and text.startswith(trim):
                text = text[len(trim) :]
        reason = data.get("stop_reason") or "end_turn"
        return Completion(
            text=text,
            tool_calls=tuple(calls),
            finish_reason=map_anthropic_stop_reason(reason),
            usage=_usage(data.get("usage")),
            provider=self.name,
            model=request.model,
            reasoning="".join(thoughts),
            signature=signature,
        )
