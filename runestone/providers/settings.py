"""What one configured provider is: frozen settings, its models and their prices.

``ProviderSettings.from_dict`` reads the ``providers.<name>`` block of the
config file (ARCHITECTURE §7) and raises :class:`ConfigError` naming the key
path of the first bad value. The API key is a :class:`Secret`: it never shows
in a repr, a str, a log line or an error message.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from runestone.exceptions import ConfigError
from runestone.messages import Usage
from runestone.resilience.circuit_breaker import CircuitBreakerPolicy
from runestone.resilience.retry import RetryPolicy
from runestone.schema import Count, NonNegative, Positive, Shape, convert, shown, without_nulls

__all__ = [
    "Capability",
    "ModelInfo",
    "ModelSpec",
    "ProviderBlock",
    "ProviderSettings",
    "Secret",
    "Timeouts",
    "is_sensitive_header",
]


class Capability(enum.StrEnum):
    """What a model can do beyond plain text chat."""

    TOOLS = "tools"
    VISION = "vision"
    JSON = "json"
    PREFILL = "prefill"
    EMBEDDINGS = "embeddings"
    """An embedding model: it serves ``/v1/embeddings`` (and no chat)."""
    THINKING = "thinking"
    """It reasons before answering when asked (Anthropic ``thinking``, OpenAI
    ``reasoning_effort``)."""
    PROMPT_CACHING = "prompt_caching"
    """It honours Anthropic's ``cache_control`` breakpoints."""
    SERVER_TOOLS = "server_tools"
    """It runs the provider's own tools (Anthropic's web search, code execution …)."""
    COMPLETIONS = "completions"
    """It serves the legacy completions endpoint (``/v1/completions``: a raw prompt)."""


class Secret:
    """A string that shows as ``'**********'`` everywhere except :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a string")
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for putting it on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        # Pickling would be a way to print it; there is no reason to ship keys around.
        raise TypeError("a Secret cannot be pickled")


_SENSITIVE_HEADER_PARTS: Final = ("auth", "key", "token", "secret", "cookie", "password")


def is_sensitive_header(name: str) -> bool:
    """Whether a header's value is a credential (Authorization, x-api-key, Cookie …)."""
    lowered = name.lower()
    return any(part in lowered for part in _SENSITIVE_HEADER_PARTS)


class Timeouts(Shape, frozen=True):
    """Upstream time limits in seconds; each one that fires has its own error class.

    - ``connect``: TCP (and TLS) connection set-up.
    - ``headers``: from the start of the attempt until the response headers arrive
      (defaults to ``first_token``).
    - ``first_token``: from the start of the attempt until the first content delta.
    - ``idle``: the longest silence between two reads once content flows (a stall).
    - ``total``: the whole attempt, enforced whenever it waits on the upstream (an
      answer already complete is not failed for a slow consumer). A non-streaming
      request is bounded by ``connect`` and ``total`` only: its headers arrive only
      once the whole answer is ready.
    """

    connect: Positive = 10.0
    """TCP (and TLS) connection set-up."""
    first_token: Positive = 60.0
    """From the start of an attempt until its first content."""
    idle: Positive = 60.0
    """The longest silence between two reads once content flows (a stall)."""
    total: Positive = 600.0
    """The whole attempt."""
    headers: Positive | None = None
    """Until the response headers arrive (default: ``first_token``)."""

    @property
    def headers_limit(self) -> float:
        return self.first_token if self.headers is None else self.headers


class ModelSpec(Shape, frozen=True):
    """One entry of a provider's ``models``: prices, context window, capabilities."""

    input_per_1m: NonNegative = 0.0
    """Price of a million prompt tokens (any currency, used alike everywhere)."""
    output_per_1m: NonNegative = 0.0
    """Price of a million completion tokens."""
    context_window: Count | None = None
    """Prompt plus completion tokens the model takes; a longer request goes elsewhere."""
    capabilities: frozenset[Capability] = frozenset()
    """What it can do beyond plain chat: tools, vision, json, prefill; embeddings for an
    embedding model; completions for one serving legacy ``/v1/completions``."""
    max_output_tokens: Count | None = None
    """The most completion tokens it writes."""
    dimensions: Count | None = None
    """An embedding model's vector length; a fallback goes only to one of the same."""


class ModelInfo(ModelSpec, frozen=True, kw_only=True):
    """One model a provider serves: its name and its :class:`ModelSpec`."""

    name: str

    def supports(self, capability: Capability | str) -> bool:
        return Capability(capability) in self.capabilities

    def cost(self, usage: Usage) -> float:
        """What ``usage`` costs on this model, in the price table's currency."""
        return (
            usage.prompt_tokens * self.input_per_1m + usage.completion_tokens * self.output_per_1m
        ) / 1_000_000

    @classmethod
    def from_dict(cls, name: str, data: object, *, path: str = "") -> ModelInfo:
        """A ``models.<name>`` entry (``None``: all defaults) as a model of that name."""
        spec = convert({} if data is None else data, ModelSpec, path=path or name)
        return cls(name=name, **msgspec.structs.asdict(spec))


_URL: Final = r"^https?://[^/\s]+"

Url = Annotated[str, Meta(pattern=_URL, extra={"expected": "an http:// or https:// URL"})]


class ProviderBlock(Shape, frozen=True):
    """The keys every ``providers.<name>`` block takes, whatever its type."""

    api_key: Annotated[str, Meta(extra={"invalid": "expected a string"})] | None = None
    """The upstream's API key; usually ``${VAR}``. A type that needs one is skipped without."""
    base_url: Url | None = None
    """The upstream's URL (the type's own by default; required for openai_compatible)."""
    headers: Annotated[
        dict[str, str], Meta(extra={"expected": "a mapping of header names to strings"})
    ] = {}
    """Headers sent with every request (credential headers are never logged)."""
    timeouts: Timeouts = Timeouts()
    """Upstream time limits, seconds."""
    max_connections: Count = 1000
    """Connections open to this upstream at once."""
    models: Annotated[
        dict[str, ModelSpec | None], Meta(extra={"expected": "a mapping of model names"})
    ] = {}
    """The models it serves, by the name the upstream knows them by."""
    retry: RetryPolicy = RetryPolicy()
    """Retries on the same route before failing over."""
    circuit_breaker: CircuitBreakerPolicy = CircuitBreakerPolicy()
    """When to stop sending it traffic, and how it is let back."""
    options: dict[str, Any] = {}
    """The type's own keys, if not written beside the others."""


class _TypedBlock(ProviderBlock, frozen=True, kw_only=True):
    type: Annotated[str, Meta(min_length=1, extra={"expected": "the provider type"})]


_EMPTY: Final[Mapping[str, Any]] = {}


@dataclass(frozen=True, slots=True, repr=False)
class ProviderSettings:
    """One configured provider.

    ``options`` holds type-specific keys (the simulated provider's ``token_rate``,
    Anthropic's ``anthropic_version`` …) and any key this class does not model;
    the provider type's ``validate_config`` checks them. ``retry`` and
    ``circuit_breaker`` are kept as given for the resilience layer to read.
    """

    name: str
    type: str
    base_url: str | None = None
    api_key: Secret | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_connections: int = 1000
    models: Mapping[str, ModelInfo] = field(default_factory=dict)
    retry: Mapping[str, Any] = field(default_factory=dict)
    circuit_breaker: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        headers = {k: ("***" if is_sensitive_header(k) else v) for k, v in self.headers.items()}
        return (
            f"ProviderSettings(name={self.name!r}, type={self.type!r}, "
            f"base_url={self.base_url!r}, api_key={'<set>' if self.api_key else None}, "
            f"headers={headers!r}, timeouts={self.timeouts!r}, "
            f"max_connections={self.max_connections}, models={sorted(self.models)!r}, "
            f"options={sorted(self.options)!r})"
        )

    __str__ = __repr__

    def secrets(self) -> tuple[str, ...]:
        """Every credential in these settings, for scrubbing text before it is shown."""
        found = [self.api_key.reveal()] if self.api_key else []
        found += [v for k, v in self.headers.items() if is_sensitive_header(k) and v]
        return tuple(s for s in found if s)

    def model(self, name: str) -> ModelInfo | None:
        return self.models.get(name)

    @classmethod
    def from_dict(cls, name: str, data: object, *, path: str | None = None) -> ProviderSettings:
        """Read a ``providers.<name>`` config block; ``ConfigError`` names the bad key path.

        Keys this class does not model are the type's options (its own class checks them).
        """
        path = path if path is not None else f"providers.{name}"
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping, got {shown(data)}", path=path)
        modelled = {k: v for k, v in data.items() if k in _MODELLED}
        block = convert(without_nulls(modelled, _TypedBlock), _TypedBlock, path=path)
        return cls.from_checked(name, block, data)

    @classmethod
    def from_checked(cls, name: str, block: Any, data: Mapping[str, Any]) -> ProviderSettings:
        """Settings from a block already checked against a :class:`ProviderBlock`-like shape.

        ``block`` has the common keys as attributes; ``data`` is the block as written,
        whose keys no shape of this class models are the type's options.
        """
        options = dict(data.get("options") or {})
        options.update({k: v for k, v in data.items() if k not in _MODELLED})
        return cls(
            name=name,
            type=str(data["type"]),
            base_url=block.base_url.rstrip("/") if block.base_url else None,
            api_key=Secret(block.api_key) if block.api_key else None,
            headers=dict(block.headers),
            timeouts=block.timeouts,
            max_connections=block.max_connections,
            models={
                name: ModelInfo(name=name, **msgspec.structs.asdict(spec or ModelSpec()))
                for name, spec in block.models.items()
            },
            retry=dict(data.get("retry") or {}),
            circuit_breaker=dict(data.get("circuit_breaker") or {}),
            options=options,
        )


_MODELLED: Final = frozenset(f.encode_name for f in msgspec.structs.fields(_TypedBlock))
