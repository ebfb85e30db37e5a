"""Any server that speaks OpenAI's Chat Completions: Groq, Together, vLLM, Ollama, OpenRouter …

``base_url`` is required (up to and including the version segment, e.g.
``http://localhost:11434/v1``); the API key is optional; configured ``headers``
go with every request (OpenRouter's ``HTTP-Referer``/``X-Title``, Azure's
``api-key`` …). Options as for OpenAI, except that ``max_tokens_field`` defaults
to ``max_tokens``, which more servers understand; ``stream_usage: false`` for
servers that reject ``stream_options``. A server that serves OpenAI's legacy
``/completions`` too (vLLM, llama.cpp …) takes ``/v1/completions`` requests for the
models listing the ``completions`` capability. One that serves OpenAI's Responses API
(``/responses``) takes ``/v1/responses`` requests as written with the option
``responses: true``; without it they are translated onto its chat completions.
"""

from __future__ import annotations

from typing import ClassVar

from runestone.providers.openai import OpenAIProvider

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible server at any ``base_url`` (``type: openai_compatible``)."""

    type_name = "openai_compatible"
    default_base_url: ClassVar[str | None] = None
    requires_api_key = False
    requires_base_url = True
    default_max_tokens_field: ClassVar[str] = "max_tokens"
    default_responses: ClassVar[bool] = False
