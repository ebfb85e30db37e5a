"""OpenAI's embeddings request (``POST /v1/embeddings``), as a declarative msgspec schema.

Text inputs only: a string or a list of strings. Token arrays (lists of integers) are
refused naming ``input``: the gateway routes across providers, and token ids mean
nothing outside the tokenizer that made them.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import Meta

from runestone.messages import EmbeddingRequest
from runestone.wire.schema import Wire, decoder

__all__ = ["EmbeddingsBody", "decode_embeddings_body"]

_TEXT: Final = "a non-empty string or a non-empty list of strings (token arrays are not taken)"
_Text = Annotated[str, Meta(min_length=1)]


class EmbeddingsBody(Wire, forbid_unknown_fields=True):
    """An embeddings request body."""

    model: Annotated[
        str, Meta(pattern=r"\S", extra={"expected": "the model (or alias), a non-empty string"})
    ]
    input: Annotated[
        _Text | Annotated[list[_Text], Meta(min_length=1)], Meta(extra={"expected": _TEXT})
    ]
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None

    def to_request(self) -> EmbeddingRequest:
        inputs = (self.input,) if isinstance(self.input, str) else tuple(self.input)
        return EmbeddingRequest(self.model, inputs, self.dimensions, self.user)


_decode: Final = decoder(EmbeddingsBody)


def decode_embeddings_body(body: bytes) -> EmbeddingsBody:
    """A request body as :class:`EmbeddingsBody`: :class:`~runestone.wire.schema.BodyError`
    for one that is no JSON object, ``RequestValidationError`` naming the first bad field."""
    return _decode(body)
