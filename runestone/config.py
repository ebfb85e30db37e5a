"""The one configuration file: read, expand ``${VAR}``, validate, map the legacy shape.

:func:`load_config` turns a YAML file (or a mapping, or a :class:`Config`) into
a frozen :class:`Config` (ARCHITECTURE §7). A bad file gets one
:class:`ConfigError` naming the key path and what was expected — never a
traceback::

    pool.max_in_flight: expected an integer >= 1, got 'lots'
    routing.aliases.fast[1]: unknown model 'openai/gpt-5'; configured: openai/gpt-4o-mini

Rules worth knowing:

- ``${VAR}`` and ``${VAR:-default}`` are expanded in every string value (``$${``
  is a literal ``${``); an unset ``${VAR}`` with no default is ``""``. A value
  that is exactly one reference takes the type its text spells (``port:
  ${PORT:-4003}`` is the integer 4003), except where a string is expected
  (``api_key``, ``key``, ``base_url``, ``headers`` …).
- A provider whose type needs an API key and has none is *skipped* with a
  warning, never an error; alias and fallback entries naming its models are
  dropped. No usable provider at all is an error: there is no silent "mock".
- The legacy shape (``default_model``/``api_key_env`` blocks plus a top-level
  ``cost_table``) is mapped onto this one; see :func:`_map_legacy`.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import structlog
import yaml

from runestone.exceptions import ConfigError
from runestone.providers.base import ProbeMethod, Provider
from runestone.providers.registry import provider_type, provider_types
from runestone.providers.settings import Capability, ModelInfo, ProviderSettings, Secret
from runestone.resilience import CircuitBreakerPolicy, RetryPolicy
from runestone.routing.policies import POLICIES
from runestone.suggest import unknown_key
from runestone.supervisors.intensity import IntensityPolicy

__all__ = [
    "BUNDLED_CONFIG",
    "LOG_LEVELS",
    "ROUTING_POLICIES",
    "ApiKey",
    "AuthConfig",
    "Config",
    "LoggingConfig",
    "PoolConfig",
    "ProviderConfig",
    "ResumeConfig",
    "RoutingConfig",
    "ServerConfig",
    "SkippedProvider",
    "describe",
    "expand_env",
    "is_loopback",
    "load_config",
]

log = structlog.get_logger(__name__)

BUNDLED_CONFIG: Final = Path(__file__).resolve().parent / "defaults" / "runestone.yaml"
"""The config shipped inside the package: answers on a fresh machine through ``simulated``
(``runestone init`` writes a copy to edit)."""

ROUTING_POLICIES: Final[tuple[str, ...]] = tuple(POLICIES)
"""The routing policy names ``routing.policy`` accepts: those :mod:`runestone.routing` knows."""

LOG_LEVELS: Final[tuple[str, ...]] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class ResumeConfig:
    """How a stream cut after content may be continued (ARCHITECTURE §3)."""

    prefill: bool = True
    replay: bool = True


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


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Admission bound and the per-request deadline (seconds)."""

    max_in_flight: int = 1000
    request_timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where ``runestone serve`` listens; ``port`` 0 takes any free port.

    ``admin_port`` (same host), when set, is the only port that serves ``/health``
    and ``/metrics``; the main port then answers them with a 404.
    """

    host: str = "127.0.0.1"
    port: int = 4003
    max_body_bytes: int = 1_048_576
    shutdown_grace: float = 30.0
    admin_port: int | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One client key of the HTTP server, with its optional limits."""

    key: Secret = field(repr=False)
    name: str
    rpm: int | None = None
    max_streams: int | None = None


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


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Log level (a stdlib level name) and whether to render JSON lines."""

    level: str = "INFO"
    json: bool = False


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


# ---------------------------------------------------------------------------
# Loading


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | Config,
    *,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Read and validate a config: a YAML file path, a mapping, or a :class:`Config`.

    ``env`` supplies the ``${VAR}`` values (default: ``os.environ``). Any
    problem raises :class:`ConfigError` naming the key path (or the file and
    line for YAML syntax).
    """
    if isinstance(source, Config):
        return source
    environ: Mapping[str, str] = os.environ if env is None else env
    if isinstance(source, Mapping):
        return _build(source, environ, origin=None)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return _build(_read_yaml(path), environ, origin=str(path))
    raise TypeError(f"load_config takes a path, a mapping or a Config, not {type(source).__name__}")


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a file: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        # _StrictLoader is a SafeLoader: no arbitrary Python objects.
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or "syntax error"
        if exc.context:
            context = exc.context
            started = exc.context_mark
            if started is not None and mark is not None and started.line != mark.line:
                context += f" that started at line {started.line + 1}"
            problem += f" ({context})"
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc


# libyaml's parser when PyYAML was built with it: ten times faster than the pure-Python one.
_SafeLoader: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[valid-type, misc]
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if earlier is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} appears twice (first at line {earlier.start_mark.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


# ---------------------------------------------------------------------------
# ${VAR} expansion

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Values that stay strings even when they are exactly one ${VAR} reference.
_STRING_KEYS: Final = frozenset(
    {
        "api_key",
        "key",
        "name",
        "base_url",
        "host",
        "type",
        "text",
        "organization",
        "project",
        "anthropic_version",
        "anthropic_beta",
        "default_model",
        "api_key_env",
        "level",
        "model",
        "provider",
        "policy",
    }
)


def expand_env(text: str, env: Mapping[str, str], *, path: str = "") -> str:
    """``text`` with ``${VAR}`` and ``${VAR:-default}`` replaced from ``env``.

    ``${VAR:-default}`` takes the default when VAR is unset or empty (as in a
    shell); defaults may hold references. ``$${`` is a literal ``${``. A
    malformed reference raises :class:`ConfigError` at ``path``.
    """
    return _expand(text, env, path)[0]


def _expand(text: str, env: Mapping[str, str], path: str) -> tuple[str, tuple[str, ...]]:
    """The expansion and the variable names referenced, in order."""
    out, names, end = _expand_until(text, 0, env, path, closing=False)
    assert end == len(text)
    return out, tuple(dict.fromkeys(names))


def _expand_until(
    text: str, start: int, env: Mapping[str, str], path: str, *, closing: bool
) -> tuple[str, list[str], int]:
    out: list[str] = []
    names: list[str] = []
    i = start
    while i < len(text):
        if closing and text[i] == "}":
            return "".join(out), names, i
        if text.startswith("$${", i):
            out.append("${")
            i += 3
        elif text.startswith("${", i):
            match = _NAME.match(text, i + 2)
            if match is None:
                raise _bad_reference(text, i, path)
            name = match.group()
            names.append(name)
            i = match.end()
            value = env.get(name, "")
            if text.startswith("}", i):
                out.append(value)
                i += 1
            elif text.startswith(":-", i):
                default, inner, i = _expand_until(text, i + 2, env, path, closing=True)
                if i >= len(text):
                    raise _bad_reference(text, match.start() - 2, path)
                names.extend(inner)
                out.append(value or default)
                i += 1
            else:
                raise _bad_reference(text, match.start() - 2, path)
        else:
            out.append(text[i])
            i += 1
    return "".join(out), names, i


def _bad_reference(text: str, at: int, path: str) -> ConfigError:
    return ConfigError(
        f"malformed reference at {text[at : at + 24]!r}: expected ${{VAR}} or "
        "${VAR:-default} (write $${ for a literal ${)",
        path=path,
    )


def _is_whole_reference(text: str) -> bool:
    if not (text.startswith("${") and text.endswith("}")):
        return False
    depth = 0
    for i, char in enumerate(text):
        if text.startswith("${", i):
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
    return True


def _typed(text: str) -> object:
    """What YAML would have read for ``text`` written plainly, if a bool or number."""
    try:
        value = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError:
        return text
    if isinstance(value, bool | int | float):
        return value
    return text


class _Expansion:
    """Walks the raw tree, expanding strings; remembers the variables behind each path."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.references: dict[str, tuple[str, ...]] = {}
        self._open: set[int] = set()  # containers being walked: a YAML alias can loop

    def walk(self, value: object, path: str, key: str = "", parent: str = "") -> object:
        if isinstance(value, str):
            if "$" not in value:
                return value
            expanded, names = _expand(value, self.env, path)
            if names:
                self.references[path] = names
            if (
                names
                and expanded
                and key not in _STRING_KEYS
                and parent != "headers"
                and _is_whole_reference(value)
            ):
                return _typed(expanded)
            return expanded
        if not isinstance(value, Mapping | list | tuple):
            return value
        if id(value) in self._open:
            raise ConfigError("a YAML alias refers to a value that contains it", path=path)
        self._open.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {k: self.walk(v, _join(path, k), str(k), key) for k, v in value.items()}
            return [self.walk(v, f"{path}[{i}]", key, parent) for i, v in enumerate(value)]
        finally:
            self._open.discard(id(value))


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# ---------------------------------------------------------------------------
# Small typed readers: every failure names its key path and what was expected.


def _mapping(value: object, path: str, *, what: str = "a mapping") -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected {what}, got {_shown(value)}", path=path)
    return value


def _check_keys(data: Mapping[Any, Any], allowed: Sequence[str], path: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(unknown_key(key, allowed), path=_join(path, key))


def _integer(value: object, path: str, *, minimum: int, maximum: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"expected an integer {bound}, got {_shown(value)}", path=path)
    return value


def _number(value: object, path: str, *, minimum: float, exclusive: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
        or (exclusive and value == minimum)
    ):
        bound = f"{'>' if exclusive else '>='} {minimum:g}"
        raise ConfigError(f"expected a number {bound}, got {_shown(value)}", path=path)
    return float(value)


def _boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {_shown(value)}", path=path)
    return value


def _string(value: object, path: str, *, what: str = "a non-empty string") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected {what}, got {_shown(value)}", path=path)
    return value


def _shown(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


def _read(
    data: Mapping[str, Any],
    key: str,
    default: Any,
    path: str,
    read: Callable[..., Any],
    **kwargs: Any,
) -> Any:
    if key not in data or data[key] is None:
        return default
    return read(data[key], _join(path, key), **kwargs)


# ---------------------------------------------------------------------------
# The whole file

_TOP_KEYS: Final = (
    "providers",
    "routing",
    "supervision",
    "pool",
    "server",
    "auth",
    "logging",
    "defaults",
    "cost_table",
)
_PROVIDER_KEYS: Final = (
    "type",
    "enabled",
    "api_key",
    "base_url",
    "headers",
    "timeouts",
    "max_connections",
    "models",
    "retry",
    "circuit_breaker",
    "health_probe",
    "options",
)
_LEGACY_PROVIDER_KEYS: Final = ("type", "default_model", "api_key_env", "base_url", "enabled")
_DEFAULTS_KEYS: Final = ("timeouts", "retry", "circuit_breaker")


@dataclass(slots=True)
class _Candidate:
    """One provider block on its way to a ProviderConfig or a SkippedProvider."""

    config: ProviderConfig
    skip_reason: str | None


def _build(raw: object, env: Mapping[str, str], *, origin: str | None) -> Config:
    if raw is None:
        raise ConfigError(
            "the config is empty; expected a mapping with at least `providers`"
            + (f" ({origin})" if origin else "")
        )
    top = _mapping(raw, "", what="a mapping of sections (providers, routing, …)")
    _check_keys(top, _TOP_KEYS, "")
    expansion = _Expansion(env)
    data = expansion.walk(top, "")
    assert isinstance(data, Mapping)
    try:
        return _build_expanded(data, env, expansion.references, origin)
    except ConfigError as exc:
        variables = expansion.references.get(exc.path)
        if not variables:
            raise
        # The bad value came from the environment: say from where.
        message = str(exc).removeprefix(f"{exc.path}: ")
        raise ConfigError(
            f"{message} (from {', '.join('$' + name for name in variables)})", path=exc.path
        ) from exc


def _build_expanded(
    data: Mapping[str, Any],
    env: Mapping[str, str],
    references: Mapping[str, tuple[str, ...]],
    origin: str | None,
) -> Config:
    providers_raw = data.get("providers")
    if providers_raw is None:
        raise ConfigError(
            "required: a mapping of provider names to provider blocks", path="providers"
        )
    providers_raw = _mapping(providers_raw, "providers", what="a mapping of provider names")
    defaults = _defaults(data.get("defaults"))
    cost_table = _cost_table(data.get("cost_table"), providers_raw)

    candidates: dict[str, _Candidate] = {}
    legacy_defaults: list[str] = []
    for name, block in providers_raw.items():
        path = _join("providers", name)
        if not isinstance(name, str) or not name or "/" in name or name != name.strip():
            raise ConfigError(
                "expected a provider name: a non-empty string without '/' or surrounding spaces",
                path=path,
            )
        block = _mapping(block, path, what="a provider block (a mapping)")
        reason = None
        if _is_legacy(block):
            block, reason, default_model = _map_legacy(
                name, block, cost_table.get(name, []), env, path
            )
            if default_model is not None:
                legacy_defaults.append(f"{name}/{default_model}")
        candidates[name] = _provider(name, block, defaults, references, reason, path)

    for name, candidate in candidates.items():
        if candidate.skip_reason is not None:
            log.warning("provider_skipped", provider=name, reason=candidate.skip_reason)
    live = {n: c.config for n, c in candidates.items() if c.skip_reason is None}
    skipped = tuple(
        SkippedProvider(n, c.skip_reason)
        for n, c in candidates.items()
        if c.skip_reason is not None
    )
    if not live:
        if not candidates:
            raise ConfigError(
                "no usable provider: none is configured (for a first run, add one of "
                "type: simulated)",
                path="providers",
            )
        listed = "; ".join(f"{s.name} ({s.reason})" for s in skipped)
        raise ConfigError(f"no usable provider: {listed}", path="providers")

    models = {n: c.config.settings.models for n, c in candidates.items()}
    routing = _routing(data.get("routing"), models, set(live), legacy_defaults)
    server = _server(data.get("server"))
    auth = _auth(data.get("auth"))
    if not auth.keys and not is_loopback(server.host):
        raise ConfigError(
            f"binding {server.host!r} with no auth.keys would serve anyone who can reach it; "
            "add auth.keys or bind a loopback address (127.0.0.1)",
            path="server.host",
        )
    return Config(
        providers=MappingProxyType(live),
        skipped=skipped,
        routing=routing,
        supervision=_supervision(data.get("supervision")),
        pool=_pool(data.get("pool")),
        server=server,
        auth=auth,
        logging=_logging(data.get("logging")),
        source=origin,
    )


def _defaults(value: object) -> Mapping[str, Mapping[str, Any]]:
    defaults = _mapping(value, "defaults")
    _check_keys(defaults, _DEFAULTS_KEYS, "defaults")
    return {
        key: _mapping(defaults[key], f"defaults.{key}")
        for key in _DEFAULTS_KEYS
        if defaults.get(key) is not None
    }


def _provider(
    name: str,
    block: Mapping[str, Any],
    defaults: Mapping[str, Mapping[str, Any]],
    references: Mapping[str, tuple[str, ...]],
    skip_reason: str | None,
    path: str,
) -> _Candidate:
    kind = block.get("type")
    if not isinstance(kind, str) or not kind:
        raise ConfigError(
            f"required: the provider type; one of: {', '.join(provider_types())}",
            path=f"{path}.type",
        )
    try:
        cls = provider_type(kind)
    except ConfigError as exc:
        raise ConfigError(str(exc), path=f"{path}.type") from None
    allowed = (*_PROVIDER_KEYS, *sorted(cls.options_schema))
    _check_keys(block, allowed, path)
    enabled = _read(block, "enabled", True, path, _boolean)

    probe = _mapping(block.get("health_probe") or {}, f"{path}.health_probe")
    _check_keys(probe, ("interval", "method", "model"), f"{path}.health_probe")
    probe_interval = (
        None
        if probe.get("interval") is None
        else _number(probe["interval"], f"{path}.health_probe.interval", minimum=0, exclusive=True)
    )
    probe_method: ProbeMethod | None = None
    if probe.get("method") is not None:
        methods = [m.value for m in ProbeMethod]
        if probe["method"] not in methods:
            raise ConfigError(
                f"expected one of {methods}, got {probe['method']!r}",
                path=f"{path}.health_probe.method",
            )
        probe_method = ProbeMethod(probe["method"])
    probe_model = probe.get("model")
    if probe_model is not None and (not isinstance(probe_model, str) or not probe_model):
        raise ConfigError(
            f"expected a model name, got {probe_model!r}", path=f"{path}.health_probe.model"
        )
    merged = {k: v for k, v in block.items() if k not in ("enabled", "health_probe")}
    for key, base in defaults.items():
        own = merged.get(key)
        if own is None:
            merged[key] = dict(base)
        elif isinstance(own, Mapping):
            merged[key] = {**base, **own}
    settings = ProviderSettings.from_dict(name, merged, path=path)
    if not settings.models:
        raise ConfigError(
            "expected at least one model, e.g. models: {gpt-4o-mini: {context_window: 128000}}",
            path=f"{path}.models",
        )
    _validate_type(cls, settings)
    retry = RetryPolicy.from_mapping(settings.retry, path=f"{path}.retry")
    breaker = CircuitBreakerPolicy.from_mapping(
        settings.circuit_breaker, path=f"{path}.circuit_breaker"
    )
    if probe_model is not None and probe_model not in settings.models:
        raise ConfigError(
            f"expected one of this provider's models {sorted(settings.models)}, "
            f"got {probe_model!r}",
            path=f"{path}.health_probe.model",
        )
    config = ProviderConfig(
        settings=settings,
        retry=retry,
        circuit_breaker=breaker,
        probe_interval=probe_interval,
        probe_method=probe_method,
        probe_model=probe_model,
    )
    if skip_reason is None and not enabled:
        skip_reason = "disabled (enabled: false)"
    if skip_reason is None and cls.requires_api_key and not settings.api_key:
        skip_reason = _missing_key_reason(block, references.get(f"{path}.api_key", ()))
    return _Candidate(config, skip_reason)


def _validate_type(cls: type[Provider], settings: ProviderSettings) -> None:
    """The type's own checks; a provider about to be skipped for its key is checked too."""
    if cls.requires_api_key and not settings.api_key:
        # A stand-in key, so a typo elsewhere surfaces now and not when the key is set.
        settings = dataclasses.replace(settings, api_key=Secret("stand-in"))
    cls.validate_config(settings)


def _missing_key_reason(block: Mapping[str, Any], variables: tuple[str, ...]) -> str:
    if variables:
        return f"api_key is empty: set {' or '.join(variables)}"
    if "api_key" in block:
        return "api_key is empty"
    return "api_key is missing"


# ---------------------------------------------------------------------------
# The legacy shape


def _is_legacy(block: Mapping[str, Any]) -> bool:
    return "default_model" in block or "api_key_env" in block


@dataclass(frozen=True, slots=True)
class _CostRow:
    model: str
    input_per_1m: float
    output_per_1m: float
    capabilities: frozenset[Capability]


_LEGACY_CAPABILITIES: Final[Mapping[str, Capability | None]] = {
    "tools": Capability.TOOLS,
    "tool_use": Capability.TOOLS,
    "function_calling": Capability.TOOLS,
    "functions": Capability.TOOLS,
    "vision": Capability.VISION,
    "images": Capability.VISION,
    "json": Capability.JSON,
    "json_mode": Capability.JSON,
    "prefill": Capability.PREFILL,
    # Every model chats and streams; the old table listed it anyway.
    "chat": None,
    "text": None,
    "streaming": None,
    "completion": None,
}


def _cost_table(value: object, providers: Mapping[str, Any]) -> dict[str, list[_CostRow]]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ConfigError(
            f"expected a list of {{provider, model, cost_per_1k_tokens, capabilities}}, "
            f"got {_shown(value)}",
            path="cost_table",
        )
    rows: dict[str, list[_CostRow]] = {}
    for index, row in enumerate(value):
        path = f"cost_table[{index}]"
        row = _mapping(row, path)
        _check_keys(row, ("provider", "model", "cost_per_1k_tokens", "capabilities"), path)
        provider = _string(row.get("provider"), f"{path}.provider", what="a provider name")
        if provider not in providers:
            raise ConfigError(
                f"unknown provider {provider!r}; configured: {', '.join(map(str, providers))}",
                path=f"{path}.provider",
            )
        block = providers[provider]
        if isinstance(block, Mapping) and not _is_legacy(block):
            raise ConfigError(
                f"{provider!r} is a current-shape provider block (no default_model or "
                f"api_key_env); list its models under providers.{provider}.models instead",
                path=f"{path}.provider",
            )
        model = _string(row.get("model"), f"{path}.model", what="a model name")
        cost = row.get("cost_per_1k_tokens", 0)
        if isinstance(cost, Mapping):
            _check_keys(cost, ("input", "output"), f"{path}.cost_per_1k_tokens")
            prices = [
                _number(
                    cost.get(k, 0), f"{path}.cost_per_1k_tokens.{k}", minimum=0, exclusive=False
                )
                for k in ("input", "output")
            ]
        else:
            price = _number(cost, f"{path}.cost_per_1k_tokens", minimum=0, exclusive=False)
            prices = [price, price]
        rows.setdefault(provider, []).append(
            _CostRow(
                model=model,
                input_per_1m=prices[0] * 1000,
                output_per_1m=prices[1] * 1000,
                capabilities=_legacy_capabilities(row.get("capabilities"), path),
            )
        )
    return rows


def _legacy_capabilities(value: object, path: str) -> frozenset[Capability]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise ConfigError(
            f"expected a list of capabilities, got {_shown(value)}", path=f"{path}.capabilities"
        )
    found = set()
    for i, item in enumerate(value):
        key = str(item).strip().lower()
        if key not in _LEGACY_CAPABILITIES:
            raise ConfigError(
                f"unknown capability {item!r}; expected one of: {', '.join(_LEGACY_CAPABILITIES)}",
                path=f"{path}.capabilities[{i}]",
            )
        capability = _LEGACY_CAPABILITIES[key]
        if capability is not None:
            found.add(capability)
    return frozenset(found)


def _map_legacy(
    name: str,
    block: Mapping[str, Any],
    rows: list[_CostRow],
    env: Mapping[str, str],
    path: str,
) -> tuple[dict[str, Any], str | None, str | None]:
    """A legacy block as a new-shape block, the skip reason if its key is unset, its default model.

    ``type`` is the provider's name when that is a registered type, else
    ``openai_compatible``; the key comes from the variable ``api_key_env`` names;
    the models are the provider's ``cost_table`` rows plus ``default_model``.
    """
    _check_keys(block, _LEGACY_PROVIDER_KEYS, path)
    kind = block.get("type")
    if kind is None:
        kind = name if name in provider_types() else "openai_compatible"
    mapped: dict[str, Any] = {"type": kind}
    if block.get("base_url") is not None:
        mapped["base_url"] = block["base_url"]
    if "enabled" in block:
        mapped["enabled"] = block["enabled"]
    reason = None
    variable = block.get("api_key_env")
    if variable is not None:
        variable = _string(variable, f"{path}.api_key_env", what="an environment variable name")
        if _NAME.fullmatch(variable) is None:
            raise ConfigError(
                f"expected an environment variable name, got {variable!r}",
                path=f"{path}.api_key_env",
            )
        key = env.get(variable, "")
        if key:
            mapped["api_key"] = key
        else:
            reason = f"api_key is empty: set {variable}"
    models: dict[str, Any] = {}
    for row in rows:
        models[row.model] = {
            "input_per_1m": row.input_per_1m,
            "output_per_1m": row.output_per_1m,
            "capabilities": sorted(row.capabilities),
        }
    default_model = block.get("default_model")
    if default_model is not None:
        default_model = _string(default_model, f"{path}.default_model", what="a model name")
        models.setdefault(default_model, {})
    mapped["models"] = models
    return mapped, reason, default_model


# ---------------------------------------------------------------------------
# Routing


class _Refs:
    """Checks ``"provider/model"`` references against every configured provider."""

    def __init__(self, models: Mapping[str, Mapping[str, ModelInfo]], live: set[str]) -> None:
        self.models = models
        self.live = live

    def configured(self) -> str:
        refs = [f"{p}/{m}" for p, models in self.models.items() if p in self.live for m in models]
        return ", ".join(refs)

    def check(
        self,
        value: object,
        path: str,
        *,
        what: str = "a 'provider/model' reference",
        aliases: Mapping[str, Any] | None = None,
    ) -> str | None:
        """The reference if it is live; ``None`` if its provider is skipped; else an error.

        Passing ``aliases`` says an alias name would do too (and names them in the error).
        """
        if not isinstance(value, str) or "/" not in value:
            if aliases is not None:
                what += " or an alias"
            hint = ""
            if isinstance(value, str):
                matches = [f"{p}/{value}" for p, models in self.models.items() if value in models]
                if len(matches) == 1:
                    hint = f" (did you mean {matches[0]!r}?)"
                elif aliases:
                    hint = f"; aliases: {', '.join(map(str, aliases))}"
            raise ConfigError(f"expected {what}, got {_shown(value)}{hint}", path=path)
        provider, _, model = value.partition("/")
        if provider not in self.models:
            raise ConfigError(
                f"unknown provider {provider!r} in {value!r}; configured providers: "
                f"{', '.join(self.models)}",
                path=path,
            )
        if model not in self.models[provider]:
            raise ConfigError(
                f"unknown model {value!r}; configured: "
                f"{', '.join(f'{provider}/{m}' for m in self.models[provider])}",
                path=path,
            )
        if provider not in self.live:
            log.debug("route_dropped", ref=value, path=path, reason="provider skipped")
            return None
        return value

    def targets(self, value: object, path: str, *, source: str | None = None) -> tuple[str, ...]:
        items: list[object]
        if isinstance(value, str):
            items, paths = [value], [path]
        elif isinstance(value, list):
            items, paths = list(value), [f"{path}[{i}]" for i in range(len(value))]
        else:
            raise ConfigError(
                f"expected a list of 'provider/model' references, got {_shown(value)}", path=path
            )
        if not items:
            raise ConfigError("expected at least one 'provider/model' reference", path=path)
        found: list[str] = []
        seen: set[str] = set()
        for item, item_path in zip(items, paths, strict=True):
            if isinstance(item, str):
                if item in seen:
                    raise ConfigError(f"{item!r} is listed twice", path=item_path)
                seen.add(item)
            if source is not None and item == source:
                raise ConfigError(f"{item!r} cannot fall back to itself", path=item_path)
            ref = self.check(item, item_path)
            if ref is not None:
                found.append(ref)
        return tuple(found)


_ROUTING_KEYS: Final = (
    "policy",
    "aliases",
    "fallbacks",
    "context_window_fallbacks",
    "resume",
    "weights",
)


def _routing(
    value: object,
    models: Mapping[str, Mapping[str, ModelInfo]],
    live: set[str],
    legacy_defaults: list[str],
) -> RoutingConfig:
    data = _mapping(value, "routing")
    _check_keys(data, _ROUTING_KEYS, "routing")
    policy = data.get("policy", "priority")
    if policy not in ROUTING_POLICIES:
        raise ConfigError(
            f"unknown routing policy {_shown(policy)}; expected one of: "
            f"{', '.join(ROUTING_POLICIES)}",
            path="routing.policy",
        )
    refs = _Refs(models, live)

    aliases: dict[str, tuple[str, ...]] = {}
    raw_aliases = _mapping(data.get("aliases"), "routing.aliases", what="a mapping of names")
    for alias, targets in raw_aliases.items():
        path = _join("routing.aliases", alias)
        if not isinstance(alias, str) or not alias.strip() or "/" in alias:
            raise ConfigError(
                "expected an alias name: a non-empty string without '/' "
                "('provider/model' names a model itself)",
                path=path,
            )
        found = refs.targets(targets, path)
        if found:
            aliases[alias] = found
        else:
            log.debug("alias_dropped", alias=alias, reason="every target's provider is skipped")
    if legacy_defaults and "default" not in raw_aliases:
        found = tuple(ref for ref in legacy_defaults if ref.partition("/")[0] in live)
        if found:
            aliases["default"] = found

    tables: dict[str, dict[str, tuple[str, ...]]] = {}
    for key in ("fallbacks", "context_window_fallbacks"):
        table: dict[str, tuple[str, ...]] = {}
        raw = _mapping(data.get(key), f"routing.{key}", what="a mapping of 'provider/model' keys")
        for source, targets in raw.items():
            path = _join(f"routing.{key}", source)
            if isinstance(source, str) and source in raw_aliases:
                # An alias as the key: the fallbacks of whatever it resolves to.
                name: str | None = source if source in aliases else None
            else:
                name = refs.check(source, path, aliases=raw_aliases)
            found = refs.targets(targets, path, source=source)
            if name is not None and found:
                table[name] = found
        tables[key] = table

    resume = _mapping(data.get("resume"), "routing.resume")
    _check_keys(resume, ("prefill", "replay"), "routing.resume")
    return RoutingConfig(
        policy=policy,
        aliases=MappingProxyType(aliases),
        fallbacks=MappingProxyType(tables["fallbacks"]),
        context_window_fallbacks=MappingProxyType(tables["context_window_fallbacks"]),
        resume=ResumeConfig(
            prefill=_read(resume, "prefill", True, "routing.resume", _boolean),
            replay=_read(resume, "replay", True, "routing.resume", _boolean),
        ),
        weights=MappingProxyType(_weights(data.get("weights"), refs)),
    )


def _weights(value: object, refs: _Refs) -> dict[str, float]:
    """``{"provider/model" | provider: weight}``; a model's own weight beats its provider's."""
    data = _mapping(value, "routing.weights", what="a mapping of 'provider/model' or provider")
    by_provider: dict[str, float] = {}
    by_model: dict[str, float] = {}
    for key, raw in data.items():
        path = _join("routing.weights", key)
        weight = _number(raw, path, minimum=0, exclusive=False)
        if isinstance(key, str) and "/" not in key and key in refs.models:
            if key in refs.live:
                by_provider[key] = weight
            continue
        ref = refs.check(key, path, what="a 'provider/model' reference or a provider name")
        if ref is not None:
            by_model[ref] = weight
    weights = {
        f"{provider}/{model}": weight
        for provider, weight in by_provider.items()
        for model in refs.models[provider]
    }
    weights.update(by_model)
    return weights


# ---------------------------------------------------------------------------
# The other sections


def _supervision(value: object) -> IntensityPolicy:
    data = _mapping(value, "supervision")
    _check_keys(data, ("max_restarts", "max_seconds"), "supervision")
    default = IntensityPolicy()
    return IntensityPolicy(
        max_restarts=_read(
            data, "max_restarts", default.max_restarts, "supervision", _integer, minimum=0
        ),
        max_seconds=_read(
            data,
            "max_seconds",
            default.max_seconds,
            "supervision",
            _number,
            minimum=0,
            exclusive=True,
        ),
    )


def _pool(value: object) -> PoolConfig:
    data = _mapping(value, "pool")
    _check_keys(data, ("max_in_flight", "request_timeout"), "pool")
    default = PoolConfig()
    return PoolConfig(
        max_in_flight=_read(
            data, "max_in_flight", default.max_in_flight, "pool", _integer, minimum=1
        ),
        request_timeout=_read(
            data,
            "request_timeout",
            default.request_timeout,
            "pool",
            _number,
            minimum=0,
            exclusive=True,
        ),
    )


def _server(value: object) -> ServerConfig:
    data = _mapping(value, "server")
    _check_keys(data, ("host", "port", "max_body_bytes", "shutdown_grace", "admin_port"), "server")
    default = ServerConfig()
    port = _read(data, "port", default.port, "server", _integer, minimum=0, maximum=65535)
    admin_port = _read(data, "admin_port", None, "server", _integer, minimum=0, maximum=65535)
    if admin_port is not None and admin_port == port and port != 0:
        raise ConfigError(
            f"must differ from server.port ({port}): the admin routes get a port of their own",
            path="server.admin_port",
        )
    return ServerConfig(
        host=_read(data, "host", default.host, "server", _string, what="a host name or address"),
        port=port,
        admin_port=admin_port,
        max_body_bytes=_read(
            data, "max_body_bytes", default.max_body_bytes, "server", _integer, minimum=1
        ),
        shutdown_grace=_read(
            data,
            "shutdown_grace",
            default.shutdown_grace,
            "server",
            _number,
            minimum=0,
            exclusive=False,
        ),
    )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth(value: object) -> AuthConfig:
    data = _mapping(value, "auth")
    _check_keys(data, ("keys", "admin_keys"), "auth")
    keys = _keys(data.get("keys"), "auth.keys", ("key", "name", "rpm", "max_streams"), ())
    admin_keys = _keys(data.get("admin_keys"), "auth.admin_keys", ("key", "name"), keys)
    return AuthConfig(keys=keys, admin_keys=admin_keys)


def _keys(
    raw_keys: object, where: str, allowed: tuple[str, ...], others: tuple[ApiKey, ...]
) -> tuple[ApiKey, ...]:
    """The keys listed at ``where``; none may repeat a name or a key of ``others``."""
    if raw_keys is None:
        return ()
    shape = "{" + ", ".join(allowed) + "}"
    if not isinstance(raw_keys, list):
        raise ConfigError(f"expected a list of {shape}, got {_shown(raw_keys)}", path=where)
    keys: list[ApiKey] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(raw_keys):
        path = f"{where}[{index}]"
        entry = _mapping(entry, path, what=f"a mapping {shape}")
        _check_keys(entry, allowed, path)
        secret = entry.get("key")
        if not isinstance(secret, str) or not secret:
            # Never echo the value: it is (meant to be) a credential.
            raise ConfigError(
                "required: a non-empty key (is its variable set?)", path=f"{path}.key"
            )
        name = _string(entry.get("name"), f"{path}.name", what="a non-empty name")
        if name in names:
            raise ConfigError(
                f"duplicate key name {name!r} (also {where}[{names[name]}])",
                path=f"{path}.name",
            )
        names[name] = index
        for other in keys:
            if hmac.compare_digest(other.key.reveal().encode(), secret.encode()):
                raise ConfigError(
                    f"the same key is given twice (also for {other.name!r})", path=f"{path}.key"
                )
        for other in others:
            if hmac.compare_digest(other.key.reveal().encode(), secret.encode()):
                # An admin key that is also a client key would make every client an admin.
                raise ConfigError(
                    f"this admin key is also the client key {other.name!r} in auth.keys; "
                    "give admins keys of their own",
                    path=f"{path}.key",
                )
        keys.append(
            ApiKey(
                key=Secret(secret),
                name=name,
                rpm=_read(entry, "rpm", None, path, _integer, minimum=1),
                max_streams=_read(entry, "max_streams", None, path, _integer, minimum=1),
            )
        )
    return tuple(keys)


def _logging(value: object) -> LoggingConfig:
    data = _mapping(value, "logging")
    _check_keys(data, ("level", "json"), "logging")
    level = data.get("level", "INFO")
    if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"expected one of: {', '.join(LOG_LEVELS)}, got {_shown(level)}", path="logging.level"
        )
    return LoggingConfig(level=level.upper(), json=_read(data, "json", False, "logging", _boolean))


# ---------------------------------------------------------------------------
# describe


def describe(config: Config) -> str:
    """A human-readable summary for ``runestone check-config``. Shows no secrets."""
    return "\n".join(_describe_lines(config))


def _describe_lines(config: Config) -> Iterator[str]:
    yield f"config: {config.source or '(given in code)'}"
    yield (f"providers: {len(config.providers)} live, {len(config.skipped)} skipped")
    for name, provider in config.providers.items():
        settings = provider.settings
        where = f" at {settings.base_url}" if settings.base_url else ""
        yield f"  {name}: live (type {settings.type}{where})"
        for model in settings.models.values():
            yield f"    {name}/{model.name}: {_describe_model(model)}"
    for skipped in config.skipped:
        yield f"  {skipped.name}: skipped: {skipped.reason}"
    routing = config.routing
    yield f"routing policy: {routing.policy}"
    yield from _describe_table("aliases", routing.aliases)
    yield from _describe_table("fallbacks", routing.fallbacks)
    yield from _describe_table("context-window fallbacks", routing.context_window_fallbacks)
    if routing.weights:
        weights = ", ".join(f"{ref} {weight:g}" for ref, weight in routing.weights.items())
        yield f"weights (others 1): {weights}"
    resume = routing.resume
    yield (
        f"resume after a cut: prefill {'on' if resume.prefill else 'off'}, "
        f"replay {'on' if resume.replay else 'off'}"
    )
    yield (
        f"pool: at most {config.pool.max_in_flight} in flight, "
        f"request timeout {config.pool.request_timeout:g}s"
    )
    supervision = config.supervision
    yield (
        f"supervision: at most {supervision.max_restarts} restarts in {supervision.max_seconds:g}s"
    )
    server = config.server
    if config.auth.keys:
        auth = "keys: " + ", ".join(key.name for key in config.auth.keys)
    else:
        auth = "open (no keys; loopback only)"
    if config.auth.admin_keys:
        auth += "; admin keys: " + ", ".join(key.name for key in config.auth.admin_keys)
    yield f"server: {server.host}:{server.port}, auth {auth}"
    if server.admin_port is not None:
        yield f"admin port (/health, /metrics): {server.host}:{server.admin_port}"
    yield f"logging: {config.logging.level}{' as JSON' if config.logging.json else ''}"


def _describe_model(model: ModelInfo) -> str:
    parts = [f"${model.input_per_1m:g} in / ${model.output_per_1m:g} out per 1M tokens"]
    if model.context_window is not None:
        parts.append(f"context {model.context_window:,}")
    if model.capabilities:
        parts.append(", ".join(sorted(model.capabilities)))
    return "; ".join(parts)


def _describe_table(title: str, table: Mapping[str, tuple[str, ...]]) -> Iterator[str]:
    if not table:
        yield f"{title}: none"
        return
    yield f"{title}:"
    for name, targets in table.items():
        yield f"  {name} -> {', '.join(targets)}"
