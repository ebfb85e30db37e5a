"""What one configured provider is: frozen settings, its models and their prices.

``ProviderSettings.from_dict`` reads the ``providers.<name>`` block of the
config file (ARCHITECTURE §7) and raises :class:`ConfigError` naming the key
path of the first bad value. The API key is a :class:`Secret`: it never shows
in a repr, a str, a log line or an error message.
"""

from __future__ import annotations

import enum
import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from runestone.exceptions import ConfigError
from runestone.messages import Usage

__all__ = [
    "Capability",
    "ModelInfo",
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


@dataclass(frozen=True, slots=True)
class Timeouts:
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

    connect: float = 10.0
    first_token: float = 60.0
    idle: float = 60.0
    total: float = 600.0
    headers: float | None = None

    @property
    def headers_limit(self) -> float:
        return self.first_token if self.headers is None else self.headers

    @classmethod
    def from_dict(cls, data: object, *, path: str = "timeouts") -> Timeouts:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping, got {type(data).__name__}", path=path)
        known = ("connect", "first_token", "idle", "total", "headers")
        values: dict[str, float] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(
                    f"unknown timeout; expected one of {list(known)}", path=f"{path}.{key}"
                )
            values[key] = _positive_number(value, f"{path}.{key}")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model a provider serves: prices per million tokens, context window, capabilities."""

    name: str
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    context_window: int | None = None
    capabilities: frozenset[Capability] = frozenset()
    max_output_tokens: int | None = None

    def supports(self, capability: Capability | str) -> bool:
        return Capability(capability) in self.capabilities

    def cost(self, usage: Usage) -> float:
        """What ``usage`` costs on this model, in the price table's currency."""
        return (
            usage.prompt_tokens * self.input_per_1m + usage.completion_tokens * self.output_per_1m
        ) / 1_000_000

    @classmethod
    def from_dict(cls, name: str, data: object, *, path: str = "") -> ModelInfo:
        path = path or name
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping, got {type(data).__name__}", path=path)
        known = (
            "input_per_1m",
            "output_per_1m",
            "context_window",
            "capabilities",
            "max_output_tokens",
        )
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"unknown model key; expected one of {list(known)}", path=f"{path}.{key}"
                )
        prices = {
            key: _non_negative_number(data.get(key, 0.0), f"{path}.{key}")
            for key in ("input_per_1m", "output_per_1m")
        }
        return cls(
            name=name,
            input_per_1m=prices["input_per_1m"],
            output_per_1m=prices["output_per_1m"],
            context_window=_optional_positive_int(
                data.get("context_window"), path, "context_window"
            ),
            capabilities=_capabilities(data.get("capabilities"), f"{path}.capabilities"),
            max_output_tokens=_optional_positive_int(
                data.get("max_output_tokens"), path, "max_output_tokens"
            ),
        )


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
        """Read a ``providers.<name>`` config block; ``ConfigError`` names the bad key path."""
        path = path if path is not None else f"providers.{name}"
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping, got {type(data).__name__}", path=path)
        kind = data.get("type")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(
                "required: the provider type (openai, anthropic, openai_compatible, "
                "simulated or a registered plugin)",
                path=f"{path}.type",
            )
        base_url = data.get("base_url")
        if base_url is not None:
            base_url = _url(base_url, f"{path}.base_url")
        api_key = data.get("api_key")
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigError("expected a string", path=f"{path}.api_key")
        headers = _mapping_or_empty(data, "headers")
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConfigError(
                "expected a mapping of header names to strings", path=f"{path}.headers"
            )
        max_connections = data.get("max_connections", 1000)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigError("expected an integer", path=f"{path}.max_connections")
        if max_connections < 1:
            raise ConfigError("must be at least 1", path=f"{path}.max_connections")
        models_raw = _mapping_or_empty(data, "models")
        if not isinstance(models_raw, Mapping):
            raise ConfigError("expected a mapping of model names", path=f"{path}.models")
        models = {
            str(model): ModelInfo.from_dict(str(model), spec, path=f"{path}.models.{model}")
            for model, spec in models_raw.items()
        }
        policies: dict[str, Mapping[str, Any]] = {}
        for key in ("retry", "circuit_breaker"):
            value = _mapping_or_empty(data, key)
            if not isinstance(value, Mapping):
                raise ConfigError("expected a mapping", path=f"{path}.{key}")
            policies[key] = dict(value)
        modelled = {
            "type",
            "base_url",
            "api_key",
            "headers",
            "timeouts",
            "max_connections",
            "models",
            "retry",
            "circuit_breaker",
            "options",
        }
        options_raw = _mapping_or_empty(data, "options")
        if not isinstance(options_raw, Mapping):
            raise ConfigError("expected a mapping", path=f"{path}.options")
        options = dict(options_raw)
        options.update({k: v for k, v in data.items() if k not in modelled})
        return cls(
            name=name,
            type=kind,
            base_url=base_url,
            api_key=Secret(api_key) if api_key else None,
            headers=dict(headers),
            timeouts=Timeouts.from_dict(data.get("timeouts"), path=f"{path}.timeouts"),
            max_connections=max_connections,
            models=models,
            retry=policies["retry"],
            circuit_breaker=policies["circuit_breaker"],
            options=options,
        )


def _mapping_or_empty(data: Mapping[str, Any], key: str) -> object:
    value = data.get(key)
    return {} if value is None else value


def _positive_number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"expected a number of seconds, got {value!r}", path=path)
    if value <= 0:
        raise ConfigError(f"must be greater than 0, got {value!r}", path=path)
    return float(value)


def _non_negative_number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"expected a number, got {value!r}", path=path)
    if value < 0:
        raise ConfigError(f"must not be negative, got {value!r}", path=path)
    return float(value)


def _optional_positive_int(value: object, path: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"expected a positive integer, got {value!r}", path=f"{path}.{key}")
    return value


def _capabilities(value: object, path: str) -> frozenset[Capability]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError("expected a list of capabilities", path=path)
    found = set()
    for item in value:
        try:
            found.add(Capability(item))
        except ValueError:
            raise ConfigError(
                f"unknown capability {item!r}; expected one of {[c.value for c in Capability]}",
                path=path,
            ) from None
    return frozenset(found)


def _url(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"expected a URL string, got {value!r}", path=path)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"expected an http:// or https:// URL, got {value!r}", path=path)
    return value.rstrip("/")
