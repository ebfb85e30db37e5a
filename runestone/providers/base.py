"""The provider interface: plain asyncio objects that run on the data-plane loop.

A provider turns one :class:`ChatRequest` into one upstream attempt. It does no
retrying, failover or circuit breaking — the actors decide those from the
error class it raises (ARCHITECTURE §2 to §4)::

    async for event in provider.stream(request):  # TextDelta | ToolCallDelta | Passthrough
                                                  # | Usage, then Done
        ...                                       # or a ProviderError, content_delivered set

Every method is called on the data-plane loop; nothing in a provider blocks it.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from runestone.clock import SYSTEM_CLOCK, Clock
from runestone.exceptions import ConfigError, ErrorClass
from runestone.messages import (
    ChatRequest,
    Completion,
    CompletionBuilder,
    EmbeddingAnswer,
    EmbeddingRequest,
    StreamEvent,
    Usage,
    WireFormat,
)
from runestone.providers.settings import ModelInfo, ProviderSettings
from runestone.schema import Shape, convert

__all__ = ["HealthCheck", "ProbeMethod", "Provider", "ProviderOptions"]


class ProbeMethod(enum.StrEnum):
    """How :meth:`Provider.check_health` asks the upstream (``health_probe.method``)."""

    MODELS = "models"
    """List the models: free, and answered by the same servers as chat."""
    REQUEST = "request"
    """A one-token chat request: proves the chat path itself, at the price of one token."""


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """The result of one active health probe."""

    healthy: bool
    latency: float
    error_class: ErrorClass | None = None
    message: str = ""


class ProviderOptions(Shape, frozen=True):
    """A provider type's own config keys, as a shape: subclass it with typed fields.

    They are written in the provider block beside the common keys, or under
    ``options``; :meth:`Provider.validate_config` checks them against this shape.
    """


class Provider(abc.ABC):
    """One configured upstream. Subclasses implement :meth:`stream` (and usually more).

    ``options_type`` is the shape of the type's own config keys (``token_rate`` …);
    :meth:`validate_config` refuses any other key with a :class:`ConfigError`, and
    :meth:`options` reads them typed.
    """

    type_name: ClassVar[str] = ""
    options_type: ClassVar[type[ProviderOptions]] = ProviderOptions
    requires_api_key: ClassVar[bool] = False
    requires_base_url: ClassVar[bool] = False
    has_health_probe: ClassVar[bool] = False
    """True when :meth:`check_health` really asks the upstream; only then is an open
    circuit probed out of band (an always-healthy answer would reopen it at once)."""
    counts_tokens: ClassVar[bool] = False
    """It implements :meth:`count_tokens` (its upstream counts a prompt's tokens)."""
    embeds: ClassVar[bool] = False
    """It implements :meth:`embed` (for the models configured with ``embeddings``)."""
    wires: frozenset[WireFormat] = frozenset()
    """The wire formats its upstream speaks natively: a request written in one of them is
    passed through losslessly (:class:`runestone.messages.NativeBody`); empty: it takes
    only the one request model. A class's own set, which an instance may narrow from its
    options (``openai_compatible`` speaks the Responses API only when told it does)."""
    default_probe_method: ClassVar[ProbeMethod] = ProbeMethod.MODELS

    def __init__(self, settings: ProviderSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.validate_config(settings)
        self.settings = settings
        self.clock = clock

    @property
    def name(self) -> str:
        return self.settings.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.settings.name!r}>"

    @classmethod
    def validate_config(cls, settings: ProviderSettings) -> None:
        """Raise :class:`ConfigError` (naming the key path) if ``settings`` cannot work."""
        path = f"providers.{settings.name}"
        if cls.requires_api_key and not settings.api_key:
            raise ConfigError(f"required for a {settings.type} provider", path=f"{path}.api_key")
        if cls.requires_base_url and not settings.base_url:
            raise ConfigError(
                f"required for a {settings.type} provider: the server's URL",
                path=f"{path}.base_url",
            )
        cls.read_options(settings)

    @classmethod
    def read_options(cls, settings: ProviderSettings) -> ProviderOptions:
        """``settings.options`` as this type's :attr:`options_type`; bad ones name their path."""
        return convert(settings.options, cls.options_type, path=f"providers.{settings.name}")

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream one answer: content and usage events, then exactly one ``Done``.

        On failure it raises a :class:`runestone.exceptions.ProviderError` whose
        ``content_delivered`` says whether a content event was already yielded.
        Closing the iterator early (``aclose``) releases the upstream connection.
        """

    async def complete(self, request: ChatRequest) -> Completion:
        """The whole answer; the default collects :meth:`stream`."""
        builder = CompletionBuilder()
        stream = self.stream(request)
        try:
            async for event in stream:
                builder.add(event)
        finally:
            await _aclose(stream)
        return builder.build()

    async def count_tokens(self, body: Mapping[str, Any], model: str) -> int:
        """The input tokens of ``body`` (a request in this provider's own wire format) on
        ``model``, counted by the upstream. Only types with :attr:`counts_tokens` do;
        a failure raises a :class:`~runestone.exceptions.ProviderError`."""
        raise NotImplementedError(f"provider type {self.type_name!r} cannot count tokens")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingAnswer:
        """Embed ``request.inputs`` on ``request.model`` (this provider's own name for it).
        Only types with :attr:`embeds` do; a failure raises a ``ProviderError``."""
        raise NotImplementedError(f"provider type {self.type_name!r} has no embeddings")

    def list_models(self) -> tuple[ModelInfo, ...]:
        """The configured models, by name."""
        return tuple(self.settings.models[name] for name in sorted(self.settings.models))

    def estimate_cost(self, model: str, usage: Usage) -> float | None:
        """What ``usage`` cost on ``model`` by the configured price table; None if unpriced."""
        info = self.settings.models.get(model)
        return None if info is None else info.cost(usage)

    async def check_health(
        self, method: ProbeMethod | None = None, model: str | None = None
    ) -> HealthCheck:
        """Probe the upstream once, cheaply, by ``method`` (None: the type's default) and,
        for a request probe, on ``model`` (None: the first configured one).

        The default has nothing to probe and says healthy.
        """
        return HealthCheck(healthy=True, latency=0.0)

    async def aclose(self) -> None:  # noqa: B027 - a no-op default; HTTP providers close sessions
        """Release connections and sessions; the provider is unusable afterwards."""


async def _aclose(stream: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
