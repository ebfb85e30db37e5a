"""Upstream providers: one asynchronous interface, several wire formats.

Built-in types: ``openai``, ``anthropic``, ``openai_compatible`` and
``simulated``; more come from :func:`register_provider_type` or the
``runestone.providers`` entry-point group.
"""

from __future__ import annotations

from runestone.providers.anthropic import AnthropicProvider
from runestone.providers.base import HealthCheck, Provider
from runestone.providers.errors import classify_response, parse_retry_after, redact
from runestone.providers.http import HttpProvider, StreamDecoder
from runestone.providers.openai import OpenAIProvider
from runestone.providers.openai_compatible import OpenAICompatibleProvider
from runestone.providers.registry import (
    ProviderRegistry,
    create_provider,
    provider_type,
    provider_types,
    register_provider_type,
)
from runestone.providers.settings import (
    Capability,
    ModelInfo,
    ProviderSettings,
    Secret,
    Timeouts,
)
from runestone.providers.simulated import SimulatedProvider
from runestone.providers.sse import SSEEvent, SSEParser

__all__ = [
    "AnthropicProvider",
    "Capability",
    "HealthCheck",
    "HttpProvider",
    "ModelInfo",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderRegistry",
    "ProviderSettings",
    "SSEEvent",
    "SSEParser",
    "Secret",
    "SimulatedProvider",
    "StreamDecoder",
    "Timeouts",
    "classify_response",
    "create_provider",
    "parse_retry_after",
    "provider_type",
    "provider_types",
    "redact",
    "register_provider_type",
]
