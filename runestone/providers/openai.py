"""OpenAI's Chat Completions API: ``POST {base_url}/chat/completions``.

Streams ask for ``stream_options.include_usage`` so the last chunk carries the
usage; tool calls arrive as ``delta.tool_calls`` pieces (index, then id and
name, then argument fragments) and are passed on as ``ToolCallDelta`` events
in the same shape. ``data: [DONE]`` is the terminal sentinel.

A legacy completions request (``POST /v1/completions``, a raw prompt) is only
ever passed through, as the client wrote it, to ``POST {base_url}/completions``;
its ``text_completion`` chunks are read for the books the same way (the text in
``choices[0].text``).

A Responses request (``POST /v1/responses``) is passed through the same way to
``POST {base_url}/responses`` (:mod:`runestone.providers.openai_responses` reads its
events); ``openai_compatible`` servers take it only with the option ``responses: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal, cast

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import MalformedResponseError
from runestone.messages import (
    ChatRequest,
    Completion,
    EmbeddingAnswer,
    EmbeddingRequest,
    FinishReason,
    NativeBody,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    WireFormat,
)
from runestone.providers.base import ProviderOptions
from runestone.providers.errors import AttemptState, classify_error_body
from runestone.providers.http import HttpProvider, StreamDecoder, loads
from runestone.providers.openai_responses import OpenAIResponsesStreamDecoder, decode_response
from runestone.providers.openai_usage import read_usage
from runestone.providers.settings import ProviderSettings
from runestone.providers.sse import SSEEvent

__all__ = [
    "OpenAICompletionsStreamDecoder",
    "OpenAIProvider",
    "OpenAIStreamDecoder",
    "map_openai_finish_reason",
]

_FINISH_REASONS: Final[Mapping[str, str]] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    # Spellings some OpenAI-compatible servers use.
    "eos": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
}
_DONE: Final = b"[DONE]"


def map_openai_finish_reason(reason: str) -> str:
    """OpenAI's finish reason as a :class:`FinishReason` value (unknown ones pass through)."""
    return _FINISH_REASONS.get(reason, reason)


class OpenAIStreamDecoder(StreamDecoder):
    """``chat.completion.chunk`` events to stream events."""

    __slots__ = ("_bare_usage",)
    terminal_frame = b"data: [DONE]\n\n"

    def __init__(
        self, request: ChatRequest, state: AttemptState, native: NativeBody | None = None
    ) -> None:
        super().__init__(request, state, native)
        self._bare_usage = False  # the last chunk held the usage and no choices

    def passes(self, event: SSEEvent, produced: bool) -> bool:
        # The usage chunk is asked for on every stream (the gateway books it); the client
        # sees it only if it asked for it as well.
        native = self.native
        if native is None or native.usage_chunk or not self._bare_usage:
            return True
        self._bare_usage = False
        return False

    def decode(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        raw = event.raw
        if raw == _DONE:
            self.finished = True
            return
        try:
            chunk = loads(raw)
            choices = chunk.get("choices")
            if choices:
                choice = choices[0]
                self.content(choice, out)
                reason = choice.get("finish_reason")
                if reason:
                    self.finish_reason = _FINISH_REASONS.get(reason, reason)
            usage = chunk.get("usage")
            if usage:
                self.usage = read_usage(usage)
                self._bare_usage = not choices
            elif chunk.get("error"):
                state = self.state
                self.failure = classify_error_body(
                    chunk,
                    provider=state.provider,
                    model=state.model,
                    content_delivered=state.content_delivered,
                    secrets=state.secrets,
                )
        except (ValueError, AttributeError, TypeError, KeyError, IndexError) as exc:
            self.skip(event, exc)

    def content(self, choice: Any, out: list[StreamEvent]) -> None:
        """Append what ``choice`` (a chunk's first) carries: ``delta``'s text, tool-call
        pieces and refusal."""
        delta = choice.get("delta")
        if not delta:
            return
        content = delta.get("content")
        if content:
            out.append(TextDelta(content))
            self.has_content = True
        calls = delta.get("tool_calls")
        if calls:
            for call in calls:
                function = call.get("function") or {}
                out.append(
                    ToolCallDelta(
                        call.get("index", 0),
                        call.get("id"),
                        function.get("name"),
                        function.get("arguments") or "",
                    )
                )
            self.has_content = True
        refusal = delta.get("refusal")
        if refusal:
            out.append(TextDelta(refusal))
            self.has_content = True
        # Compatible reasoning servers (vLLM, DeepSeek …) stream their reasoning.
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if thought and isinstance(thought, str):
            out.append(ReasoningDelta(thought))
            self.has_content = True


class OpenAICompletionsStreamDecoder(OpenAIStreamDecoder):
    """Legacy ``text_completion`` chunks to stream events: each choice carries ``text``
    (no delta, no tool calls); the finish reason, the usage chunk, errors and
    ``data: [DONE]`` are read as for chat."""

    __slots__ = ()

    def content(self, choice: Any, out: list[StreamEvent]) -> None:
        text = choice.get("text")
        if text:
            out.append(TextDelta(text))
            self.has_content = True

    # A completion has no reasoning fields: its text alone is content (and never opaque;
    # the chat decoder's byte test could be fooled by a prompt's own words).

    def native_content(self, event: SSEEvent, produced: bool) -> bool:
        return produced

    def native_opaque(self, event: SSEEvent, produced: bool) -> bool:
        return False


class OpenAIOptions(ProviderOptions, frozen=True):
    """The keys of ``type: openai`` and ``openai_compatible`` beside the common ones."""

    organization: str | None = None
    """Sent as ``OpenAI-Organization``."""
    project: str | None = None
    """Sent as ``OpenAI-Project``."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    """The request field the token limit goes in (default: the type's own)."""
    stream_usage: bool = True
    """Ask for usage in streams (``stream_options``); false for servers that refuse it."""
    responses: bool | None = None
    """The server speaks OpenAI's Responses API (``POST {base_url}/responses``), so
    ``/v1/responses`` requests are passed through to it as written (default: true for
    ``openai``, false for ``openai_compatible``, since few compatible servers do)."""


class OpenAIProvider(HttpProvider):
    """OpenAI (``type: openai``).

    Options: ``organization``, ``project``; ``max_tokens_field`` (``max_completion_tokens``
    by default, or ``max_tokens``); ``stream_usage: false`` to leave out ``stream_options``.
    Legacy completions bodies go to ``completions_path`` (for the models listing the
    ``completions`` capability), Responses bodies to ``responses_path`` (unless
    ``responses: false``).
    """

    type_name = "openai"
    wires = frozenset(
        {WireFormat.OPENAI_CHAT, WireFormat.OPENAI_COMPLETIONS, WireFormat.OPENAI_RESPONSES}
    )
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    chat_path = "/chat/completions"
    completions_path: ClassVar[str] = "/completions"
    responses_path: ClassVar[str] = "/responses"
    default_responses: ClassVar[bool] = True
    """Whether the type speaks the Responses API unless its ``responses`` option says."""
    models_path = "/models"
    embeddings_path = "/embeddings"
    embeds = True
    requires_api_key = True
    options_type = OpenAIOptions
    # Current OpenAI models take max_completion_tokens; o-series models reject max_tokens.
    default_max_tokens_field: ClassVar[str] = "max_completion_tokens"

    def __init__(self, settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        # Read first: the base class may ask for the auth headers, which use them.
        self.options = cast(OpenAIOptions, self.read_options(settings))
        super().__init__(settings, clock=clock)
        self.max_tokens_field: str = self.options.max_tokens_field or self.default_max_tokens_field
        self.stream_usage = self.options.stream_usage
        self._completions_url = self.base_url + self.completions_path
        self._responses_url = self.base_url + self.responses_path
        responses = self.options.responses
        if not (self.default_responses if responses is None else responses):
            self.wires = self.wires - {WireFormat.OPENAI_RESPONSES}

    def endpoint(self, native: NativeBody | None) -> str:
        """``completions_path`` for a legacy completions body, ``responses_path`` for a
        Responses one, else the chat endpoint."""
        if native is not None:
            if native.wire is WireFormat.OPENAI_COMPLETIONS:
                return self._completions_url
            if native.wire is WireFormat.OPENAI_RESPONSES:
                return self._responses_url
        return self._chat_url

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.options.organization:
            headers["OpenAI-Organization"] = self.options.organization
        if self.options.project:
            headers["OpenAI-Project"] = self.options.project
        return headers

    async def embed(self, request: EmbeddingRequest) -> EmbeddingAnswer:
        """``POST {base_url}/embeddings``, floats asked for (the gateway re-encodes them)."""
        body: dict[str, Any] = {
            "model": request.model,
            "input": list(request.inputs),
            "encoding_format": "float",
        }
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        answer = await self.post_json(self.embeddings_path, body, request.model)
        try:
            rows = sorted(answer["data"], key=lambda row: row["index"])
            vectors = tuple(tuple(float(x) for x in row["embedding"]) for row in rows)
            usage = answer.get("usage") or {}
            tokens = int(usage.get("prompt_tokens") or 0)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponseError(
                f"unreadable embeddings answer ({type(exc).__name__}: {exc})",
                provider=self.name,
                model=request.model,
            ) from exc
        if len(vectors) != len(request.inputs):
            raise MalformedResponseError(
                f"{len(vectors)} embeddings for {len(request.inputs)} inputs",
                provider=self.name,
                model=request.model,
            )
        return EmbeddingAnswer(vectors, tokens, self.name, request.model)

    def encode_native(self, native: NativeBody, model: str, *, stream: bool) -> bytes:
        """The client's own body, for ``model``: every field as sent, but the usage chunk
        asked for on a stream (unless ``stream_usage`` is off) and, for chat, the token limit
        in the field this upstream takes (``max_tokens_field``; legacy completions have only
        ``max_tokens``). A Responses body changes in its model and ``stream`` alone (its
        usage always comes in ``response.completed``; ``store`` stays as the client sent
        it)."""
        changes: dict[str, Any] = {"model": model, "stream": stream}
        if native.wire is WireFormat.OPENAI_RESPONSES:
            return native.encode(changes)
        if stream and self.stream_usage:
            options = native.value("stream_options")
            changes["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        if native.wire is WireFormat.OPENAI_COMPLETIONS:
            return native.encode(changes)
        wanted = self.max_tokens_field
        other = "max_tokens" if wanted == "max_completion_tokens" else "max_completion_tokens"
        if other in native.fields:
            if wanted not in native.fields:
                changes[wanted] = native.fields[other]  # a Raw: written as it came
            return native.encode(changes, dropped=(other,))
        return native.encode(changes)

    def encode_request(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = dict(request.extra)
        body["model"] = request.model
        body["messages"] = [message.to_dict() for message in request.messages]
        body["stream"] = stream
        if stream and self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        if request.tools:
            body["tools"] = [tool.to_dict() for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice.to_wire()
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        if request.stop:
            body["stop"] = list(request.stop)
        if request.response_format is not None:
            body["response_format"] = dict(request.response_format)
        if request.user is not None:
            body["user"] = request.user
        if request.metadata is not None and body.get("store") is True:
            # OpenAI refuses metadata unless the completion is stored.
            body["metadata"] = dict(request.metadata)
        return body

    def new_decoder(self, request: ChatRequest, state: AttemptState) -> StreamDecoder:
        native = self.native_body(request)
        if native is not None and native.wire is WireFormat.OPENAI_COMPLETIONS:
            return OpenAICompletionsStreamDecoder(request, state, native)
        if native is not None and native.wire is WireFormat.OPENAI_RESPONSES:
            return OpenAIResponsesStreamDecoder(request, state, native)
        return OpenAIStreamDecoder(request, state, native)

    def decode_completion(self, data: Any, request: ChatRequest, state: AttemptState) -> Completion:
        native = self.native_body(request)  # None when it was translated for this upstream
        if native is not None and native.wire is WireFormat.OPENAI_COMPLETIONS:
            return self._decode_text_completion(data, request)
        if native is not None and native.wire is WireFormat.OPENAI_RESPONSES:
            return decode_response(data, request, self.name)
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content") or message.get("refusal") or ""
        if not isinstance(content, str):
            raise TypeError(f"message content is {type(content).__name__}, not a string")
        thought = message.get("reasoning_content") or message.get("reasoning") or ""
        calls = tuple(
            ToolCall(
                id=call["id"],
                name=call["function"]["name"],
                arguments=call["function"].get("arguments") or "",
            )
            for call in message.get("tool_calls") or ()
        )
        reason = choice.get("finish_reason") or (
            FinishReason.TOOL_CALLS if calls else FinishReason.STOP
        )
        return Completion(
            text=content,
            tool_calls=calls,
            finish_reason=map_openai_finish_reason(reason),
            usage=read_usage(data.get("usage")),
            provider=self.name,
            model=request.model,
            reasoning=thought if isinstance(thought, str) else "",
        )

    def _decode_text_completion(self, data: Any, request: ChatRequest) -> Completion:
        """A whole legacy ``text_completion``, read for the books (it is passed on as it came)."""
        choice = data["choices"][0]
        text = choice.get("text") or ""
        if not isinstance(text, str):
            raise TypeError(f"choice text is {type(text).__name__}, not a string")
        return Completion(
            text=text,
            finish_reason=map_openai_finish_reason(choice.get("finish_reason") or "stop"),
            usage=read_usage(data.get("usage")),
            provider=self.name,
            model=request.model,
        )
