"""The validated configuration: what :func:`~runestone.config.load_config` returns.

The sections a file spells out as they are (``pool``, ``server``, ``logging``,
``routing.resume``) are :class:`~runestone.schema.Shape` types whose fields carry
their constraints; the rest are built from the file once every reference in it
has been checked (live providers only, aliases resolved).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from runestone.providers.base import ProbeMethod
from runestone.providers.settings import ModelInfo, ProviderSettings, Secret
from runestone.resilience import CircuitBreakerPolicy, RetryPolicy
from runestone.schema import FINITE, FieldError, Positive, Shape
from runestone.supervisors.intensity import IntensityPolicy

__all__ = [
    "BUNDLED_CONFIG",
    "BUNDLED_SCHEMA",
    "LOG_LEVELS",
    "SCHEMA_COMMENT",
    "ApiKey",
    "AuthConfig",
    "ClusterConfig",
    "Config",
    "LoggingConfig",
    "PoolConfig",
    "Port",
    "ProviderConfig",
    "ResumeConfig",
    "RoutingConfig",
    "ServerConfig",
    "SkippedProvider",
]

BUNDLED_CONFIG: Final = Path(__file__).resolve().parent.parent / "defaults" / "runestone.yaml"
"""The config shipped inside the package: answers on a fresh machine through ``simulated``
(``runestone init`` writes a copy to edit)."""

BUNDLED_SCHEMA: Final = BUNDLED_CONFIG.with_name("runestone.schema.json")
"""The config's JSON Schema, shipped beside the bundled config (``runestone config schema``)."""

SCHEMA_COMMENT: Final = "# yaml-language-server: $schema=runestone.schema.json"
"""The first line of the bundled config: editors complete and check it against the schema."""

LOG_LEVELS: Final[tuple[str, ...]] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Port = Annotated[int, Meta(ge=0, le=65535)]


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


class ResumeConfig(Shape, frozen=True):
    """How a stream cut after content may be continued (ARCHITECTURE §3)."""

    prefill: bool = True
    """Continue by asking the same model to go on from the text already sent."""
    replay: bool = True
    """Continue by asking for the whole answer again and skipping what was sent."""


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The routing policy and the name tables the Router reads.

    Every target is a live ``"provider/model"`` reference; entries naming a
    skipped provider were dropped at load time. A key of ``fallbacks`` and
    ``context_window_fallbacks`` is a ``"provider/model"`` reference or an alias.
    ``weights`` (for the ``weighted`` policy) holds every weight given, per
    ``"provider/model"``; read one with :meth:`weight`.
    """

    policy: str = "priority"
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)
    resume: ResumeConfig = field(default_factory=ResumeConfig)
    weights: Mapping[str, float] = field(default_factory=_frozen)

    def weight(self, ref: str) -> float:
        """The weight of ``"provider/model"`` (1.0 unless configured)."""
        return self.weights.get(ref, 1.0)


class PoolConfig(Shape, frozen=True):
    """Admission bound and the per-request deadline (seconds)."""

    max_in_flight: Annotated[int, Meta(ge=1)] = 1000
    """Requests admitted at once; one more is refused as overloaded."""
    request_timeout: Annotated[float, Meta(gt=0, le=FINITE)] = 600.0
    """Seconds a request may take, all attempts and continuations included."""


class ServerConfig(Shape, frozen=True):
    """Where ``runestone serve`` listens; ``port`` 0 takes any free port.

    ``admin_port`` (same host), when set, is the only port that serves ``/health``
    and ``/metrics``; the main port then answers them with a 404.
    """

    host: Annotated[str, Meta(min_length=1, extra={"expected": "a host name or address"})] = (
        "127.0.0.1"
    )
    """The address to bind; anything but a loopback address needs ``auth.keys``."""
    port: Port = 4003
    """The port of the API (0: any free port)."""
    max_body_bytes: Annotated[int, Meta(ge=1)] = 1_048_576
    """The largest request body accepted; a larger one is a 413."""
    shutdown_grace: Annotated[float, Meta(ge=0, le=FINITE)] = 30.0
    """Seconds requests in flight get to finish when the server stops."""
    admin_port: Port | None = None
    """A port of its own for ``/health`` and ``/metrics`` (same host)."""
    include_usage: bool = False
    """Add the usage chunk to every streamed OpenAI chat answer, whether the client asked
    for it (``stream_options.include_usage``) or not: many clients never ask, and a
    gateway that bills needs the counts anyway."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.admin_port is not None and self.admin_port == self.port and self.port != 0:
            raise FieldError(
                f"must differ from server.port ({self.port}): the admin routes get a port of "
                "their own",
                path="admin_port",
            )


class ClusterConfig(Shape, frozen=True):
    """``cluster``: replicas that are one gateway, sharing circuits, health, key limits and
    an instance registry through Redis (:mod:`runestone.cluster`). Absent: one process.

    Every Redis call has ``deadline`` seconds; past it (or with Redis down) the replica
    runs on its own state until Redis answers again, and no request fails for it.
    """

    redis_url: Annotated[
        str,
        Meta(
            pattern=r"^(redis|rediss|unix)://",
            extra={"expected": "a redis://, rediss:// or unix:// URL"},
        ),
    ]
    """Where Redis is, e.g. ``redis://redis.internal:6379/0`` (usually ``${REDIS_URL}``)."""
    namespace: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]+$")] = "runestone"
    """The prefix of every Redis key: replicas of one gateway share it, others do not."""
    instance: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]+$")] | None = None
    """This replica's name in the registry (default: host name and process id)."""
    secret: Annotated[str, Meta(min_length=1)] | None = None
    """The server-side key client key names are hashed with before they reach Redis
    (required with ``auth.keys``); usually ``${VAR}``."""
    heartbeat: Positive = 1.0
    """Seconds between heartbeats; a replica silent for three of them leaves the view."""
    deadline: Positive = 0.1
    """Seconds any one Redis call may take before the replica falls back to local state."""
    lease_ttl: Positive | None = None
    """Seconds a stream slot outlives its replica's last heartbeat (default: three
    heartbeats), so a crashed replica never keeps capacity."""

    def __repr__(self) -> str:
        # Neither the secret nor a password in the URL is ever shown.
        url = re.sub(r"//[^@/]*@", "//***@", self.redis_url)
        secret = None if self.secret is None else "'**********'"
        return (
            f"ClusterConfig(redis_url={url!r}, namespace={self.namespace!r}, "
            f"instance={self.instance!r}, secret={secret})"
        )

    @property
    def lease_seconds(self) -> float:
        """How long a lease lasts without renewal."""
        return 3 * self.heartbeat if self.lease_ttl is None else self.lease_ttl


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One client key of the HTTP server, with its optional limits."""

    key: Secret = field(repr=False)
    name: str
    rpm: int | None = None
    max_streams: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Client keys; none means the server is open (allowed only on a loopback bind).

    ``admin_keys``, when set, are the only keys ``/health`` and ``/metrics`` take;
    they are not client keys (they reach no ``/v1`` route).
    """

    keys: tuple[ApiKey, ...] = ()
    admin_keys: tuple[ApiKey, ...] = ()

    def lookup(self, presented: str) -> ApiKey | None:
        """The client key ``presented`` matches, compared in constant time, or ``None``."""
        return _lookup(self.keys, presented)

    def lookup_admin(self, presented: str) -> ApiKey | None:
        """The admin key ``presented`` matches, compared in constant time, or ``None``."""
        return _lookup(self.admin_keys, presented)


def _lookup(keys: tuple[ApiKey, ...], presented: str) -> ApiKey | None:
    found = None
    wanted = presented.encode()
    for entry in keys:
        # Compare against every key so the time taken does not say which one matched.
        if hmac.compare_digest(entry.key.reveal().encode(), wanted):
            found = entry
    return found


class LoggingConfig(Shape, frozen=True):
    """Log level (a stdlib level name, any case) and whether to render JSON lines."""

    level: Annotated[
        str,
        Meta(
            pattern=f"(?i)^({'|'.join(LOG_LEVELS)})$",
            extra={"invalid": "expected one of: " + ", ".join(LOG_LEVELS) + ", got {got}"},
        ),
    ] = "INFO"
    """The least severe level written: DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    json: bool = False
    """Write one JSON object a line instead of aligned text."""

    def __post_init__(self) -> None:
        super().__post_init__()
        msgspec.structs.force_setattr(self, "level", self.level.upper())


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One usable provider: its settings and the resilience policies built from them."""

    settings: ProviderSettings
    retry: RetryPolicy
    circuit_breaker: CircuitBreakerPolicy
    probe_interval: float | None = None
    """Seconds between active health probes (``health_probe: {interval: …}``); None: none."""
    probe_method: ProbeMethod | None = None
    """How a probe asks the upstream (``health_probe.method``); None: the type's default.
    The same probe checks an open circuit (``circuit_breaker.probe_interval``)."""
    probe_model: str | None = None
    """The model a ``request`` probe asks (``health_probe.model``); None: the first one."""

    @property
    def name(self) -> str:
        return self.settings.name


@dataclass(frozen=True, slots=True)
class SkippedProvider:
    """A configured provider that was left out, and why (e.g. its API key is unset)."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Config:
    """A whole validated configuration. Build it with :func:`load_config`."""

    providers: Mapping[str, ProviderConfig]
    skipped: tuple[SkippedProvider, ...] = ()
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    supervision: IntensityPolicy = field(default_factory=IntensityPolicy)
    pool: PoolConfig = field(default_factory=PoolConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cluster: ClusterConfig | None = None
    source: str | None = None

    def model_refs(self) -> tuple[str, ...]:
        """Every ``"provider/model"`` of the live providers, in file order."""
        return tuple(
            f"{name}/{model}"
            for name, provider in self.providers.items()
            for model in provider.settings.models
        )

    def model(self, ref: str) -> ModelInfo | None:
        """The model a ``"provider/model"`` reference names, if it is live."""
        provider, _, model = ref.partition("/")
        entry = self.providers.get(provider)
        return entry.settings.models.get(model) if entry is not None else None
