"""Counting a prompt's tokens: by an upstream that counts them, or estimated, and said so.

``POST /v1/messages/count_tokens`` (Anthropic's route; Claude Code asks it before
each turn) is answered by the first candidate of the request's model whose provider
type counts tokens (:attr:`~runestone.providers.Provider.counts_tokens`, Anthropic's),
with the body as the client sent it; when none is routable or every one fails, by
the gateway's own estimate, labelled as one (:attr:`TokenCount.estimated`).

The estimate follows :mod:`runestone.routing.requirements`: four characters a token
of the prompt's JSON (system, messages, tools), a few tokens of framing per message
and a fixed allowance per image. It over-counts ordinary text rather than under-counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from runestone import jsonio
from runestone.directory import Directory
from runestone.exceptions import ProviderError
from runestone.routing.requirements import estimate_from_size
from runestone.routing.routes import Route

__all__ = ["TokenCount", "count_tokens", "estimate_tokens"]

log = structlog.get_logger(__name__)

_COUNTED: Final = ("system", "messages", "tools")


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A prompt's input tokens, and who counted them."""

    input_tokens: int
    estimated: bool
    """True: the gateway's estimate; False: counted by ``provider``'s upstream."""
    provider: str = ""
    model: str = ""


async def count_tokens(
    body: Mapping[str, Any], routes: Iterable[Route], directory: Directory
) -> TokenCount:
    """Count ``body``'s input tokens (an Anthropic messages body) on the first of
    ``routes`` whose provider counts tokens; the estimate when none does or all fail."""
    for route in routes:
        entry = directory.get(route.provider)
        if entry is None or not entry.provider.counts_tokens:
            continue
        try:
            tokens = await entry.provider.count_tokens(body, route.model)
        except ProviderError as exc:
            log.info(
                "count_tokens_failed",
                provider=route.provider,
                model=route.model,
                error_class=exc.error_class.value,
            )
            continue
        return TokenCount(tokens, estimated=False, provider=route.provider, model=route.model)
    return TokenCount(estimate_tokens(body), estimated=True)


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """The gateway's estimate of an Anthropic messages body's input tokens."""
    messages = body.get("messages")
    count = len(messages) if isinstance(messages, list) else 0
    counted = [body.get(key) for key in _COUNTED]
    return estimate_from_size(len(jsonio.dumps(counted)), count, _images(messages))


def _images(value: object) -> int:
    if isinstance(value, list):
        return sum(_images(item) for item in value)
    if isinstance(value, Mapping):
        own = 1 if value.get("type") == "image" else 0
        return own + sum(_images(item) for item in value.values())
    return 0
