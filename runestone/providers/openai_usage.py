"""OpenAI's ``usage`` object, read the same way for chat, legacy completions and the
Responses API (which names its counts ``input``/``output`` rather than
``prompt``/``completion``)."""

from __future__ import annotations

from collections.abc import Mapping

from runestone.messages import Usage

__all__ = ["read_usage"]


def read_usage(
    data: object, prompt: str = "prompt", completion: str = "completion"
) -> Usage | None:
    """An OpenAI ``usage`` object as :class:`Usage` (None when there is none): chat's
    ``prompt_tokens``/``completion_tokens`` and their ``…_tokens_details``, or, named
    ``input``/``output``, the Responses API's."""
    if not isinstance(data, Mapping):
        return None
    given = data.get(f"{prompt}_tokens_details")
    made = data.get(f"{completion}_tokens_details")
    return Usage(
        int(data.get(f"{prompt}_tokens") or 0),
        int(data.get(f"{completion}_tokens") or 0),
        int(given.get("cached_tokens") or 0) if isinstance(given, Mapping) else 0,
        int(made.get("reasoning_tokens") or 0) if isinstance(made, Mapping) else 0,
    )
