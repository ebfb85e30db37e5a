"""The wire formats of the requests the gateway serves, as declarative msgspec schemas.

- :mod:`runestone.wire.openai_chat`: OpenAI's chat-completions request;
- :mod:`runestone.wire.anthropic_messages`: Anthropic's Messages request;
- :mod:`runestone.wire.schema`: what they are built from (the struct base, the open
  union, decoding bytes and converting dicts);
- :mod:`runestone.wire.refusals`: a schema's refusal as our error naming the field.
"""

from runestone.wire.refusals import refusal
from runestone.wire.schema import BodyError, OpenUnion, Wire, convert, decoder

__all__ = ["BodyError", "OpenUnion", "Wire", "convert", "decoder", "refusal"]
