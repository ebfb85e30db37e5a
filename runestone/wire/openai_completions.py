"""OpenAI's legacy completions request (``POST /v1/completions``), as a msgspec schema.

Only what the gateway reads is modelled: ``model``, ``prompt`` (to route by its size),
``stream``, ``max_tokens`` and ``stream_options``. Every other field (``n``, ``best_of``,
``echo``, ``logprobs``, ``suffix``, ``stop``, ``seed``, ``logit_bias`` …) goes to the
upstream unread, as the client wrote it: a completions request is never translated
(no other format carries a raw prompt), only passed through.

``prompt`` is a string, a list of strings, a list of token ids or a list of token-id
lists; msgspec's unions take one list type only, so the list's items are checked here
(:meth:`CompletionsBody.check`), naming the first bad one (``prompt[2]``,
``prompt[1][0]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, NoReturn

import msgspec
from msgspec import Meta

from runestone.exceptions import RequestValidationError
from runestone.jsonio import json_kind
from runestone.messages import ChatRequest, Message, NativeBody, Role
from runestone.wire.openai_chat import StreamOptions
from runestone.wire.schema import Wire, convert, decoder

__all__ = ["PROMPT", "CompletionsBody", "convert_completions_body", "decode_completions_body"]

PROMPT: Final = (
    "a string, a list of strings, a list of token ids or a list of token-id lists (not empty)"
)
"""What ``prompt`` holds, as a refusal says it."""
_MODEL: Final = "the model (or alias) to answer with, a non-empty string"


class CompletionsBody(Wire, kw_only=True):
    """A legacy completions request body (the fields the gateway reads)."""

    model: Annotated[str, Meta(pattern=r"\S", extra={"expected": _MODEL})]
    prompt: Annotated[
        str | Annotated[list[Any], Meta(min_length=1)], Meta(extra={"expected": PROMPT})
    ]
    stream: bool | None = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    stream_options: (
        Annotated[StreamOptions, Meta(extra={"expected": "an object like {'include_usage': true}"})]
        | None
    ) = None

    def check(self) -> CompletionsBody:
        """This body, once ``prompt``'s list items are all of one kind (raises
        :class:`RequestValidationError` naming the first that is not)."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return self
        first = prompt[0]
        if isinstance(first, str):
            for i, item in enumerate(prompt):
                if not isinstance(item, str):
                    _refuse(f"prompt[{i}]", "a string, as prompt[0] is", item)
        elif isinstance(first, list):
            for i, item in enumerate(prompt):
                if not isinstance(item, list) or not item:
                    _refuse(f"prompt[{i}]", "a non-empty list of token ids, as prompt[0] is", item)
                for j, token in enumerate(item):
                    if not _is_token(token):
                        _refuse(f"prompt[{i}][{j}]", "a token id (an integer >= 0)", token)
        elif _is_token(first):
            for i, item in enumerate(prompt):
                if not _is_token(item):
                    _refuse(f"prompt[{i}]", "a token id (an integer >= 0), as prompt[0] is", item)
        else:
            _refuse("prompt[0]", "a string, a token id or a list of token ids", first)
        return self

    @property
    def include_usage(self) -> bool:
        """``stream_options.include_usage`` (a streamed answer ends with its usage)."""
        options = self.stream_options
        return options is not None and options.include_usage is True

    def to_request(self, native: NativeBody) -> ChatRequest:
        """The request routing sees: the longest prompt as one user message (a list holds
        one prompt per completion, and each must fit the context window alone),
        ``max_tokens`` and ``stream``; ``native`` carries the body itself."""
        return ChatRequest(
            model=self.model,
            messages=(Message(Role.USER, self._sizing_text()),),
            stream=bool(self.stream),
            # 0 (echo the prompt, write nothing) needs no room for an answer; the one
            # request model's limits start at 1.
            max_tokens=self.max_tokens or None,
            native=native,
        )

    def _sizing_text(self) -> str:
        """Text as long, to the prompt estimate, as the longest prompt: the prompt itself, or
        one estimated token's worth of characters per token id."""
        # Deferred: the routing package imports the wire schemas.
        from runestone.routing.requirements import CHARS_PER_TOKEN

        prompt = self.prompt
        if isinstance(prompt, str):
            return prompt
        first = prompt[0]
        if isinstance(first, str):
            return str(max(prompt, key=len))
        tokens = max(len(item) for item in prompt) if isinstance(first, list) else len(prompt)
        return " " * (CHARS_PER_TOKEN * tokens)


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _refuse(field: str, expected: str, value: object) -> NoReturn:
    if isinstance(value, int | float) and not isinstance(value, bool):
        shown = f"{value}"
    elif isinstance(value, list) and not value:
        shown = "an empty list"
    else:
        shown = json_kind(value)
    raise RequestValidationError(f"expected {expected}, got {shown}", field=field)


_decode: Final = decoder(CompletionsBody)
_keys: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])


def decode_completions_body(body: bytes) -> tuple[CompletionsBody, dict[str, msgspec.Raw]]:
    """A request body as :class:`CompletionsBody` and each of its top-level fields as the
    JSON text it was: :class:`~runestone.wire.schema.BodyError` for one that is no JSON
    object, ``RequestValidationError`` naming the first bad field."""
    return _decode(body).check(), _keys.decode(body)


def convert_completions_body(data: Mapping[str, Any]) -> CompletionsBody:
    """The same for a body given as a dict (its fields are the caller's to pass on)."""
    return convert(data, CompletionsBody).check()
