"""The wire formats of the requests the gateway serves, as declarative msgspec schemas.

- :mod:`runestone.wire.openai_chat`: OpenAI's chat-completions request;
- :mod:`runestone.wire.openai_responses`: OpenAI's Responses request, mapped onto a
  chat request (stateless);
- :mod:`runestone.wire.openai_completions`: OpenAI's legacy completions request (only
  ever passed through);
- :mod:`runestone.wire.anthropic_messages`: Anthropic's Messages request;
- :mod:`runestone.wire.schema`: what they are built from (the struct base, the open
  union, decoding bytes and converting dicts);
- :mod:`runestone.wire.refusals`: a schema's refusal as our error naming the field.
"""

from runestone.wire.anthropic_messages import (
    MessagesBody,
    convert_messages_body,
    decode_messages_body,
)
from runestone.wire.openai_chat import ChatBody, DecodedChat, convert_chat, decode_chat
from runestone.wire.openai_completions import (
    CompletionsBody,
    convert_completions_body,
    decode_completions_body,
)
from runestone.wire.openai_responses import (
    DecodedResponses,
    ResponsesBody,
    convert_responses,
    decode_responses,
)
from runestone.wire.refusals import refusal
from runestone.wire.schema import BodyError, OpenUnion, Wire, convert, decoder, may_nest_deep

__all__ = [
    "BodyError",
    "ChatBody",
    "CompletionsBody",
    "DecodedChat",
    "DecodedResponses",
    "MessagesBody",
    "OpenUnion",
    "ResponsesBody",
    "Wire",
    "convert",
    "convert_chat",
    "convert_completions_body",
    "convert_messages_body",
    "convert_responses",
    "decode_chat",
    "decode_completions_body",
    "decode_messages_body",
    "decode_responses",
    "decoder",
    "may_nest_deep",
    "refusal",
]
