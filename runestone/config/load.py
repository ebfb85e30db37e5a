"""Loading a config: read, expand ``${VAR}``, check against the schema, resolve references.

The checking of shapes and values is msgspec's, against :mod:`runestone.config.schema`;
what is left here is what a schema cannot say: which providers are live (a
provider whose type needs a key and has none is skipped, and routes to it are
dropped), whether each ``provider/model`` reference names a configured model, and
that no key is given twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import msgspec
import structlog

from runestone.config.env import Expansion
from runestone.config.legacy import cost_table, is_legacy, map_legacy
from runestone.config.model import (
    ApiKey,
    AuthConfig,
    Config,
    ProviderConfig,
    RoutingConfig,
    SkippedProvider,
)
from runestone.config.schema import (
    AdminKey,
    ClientKey,
    CostTable,
    Defaults,
    RoutingSection,
    file_schema,
)
from runestone.config.yaml_file import read_yaml
from runestone.exceptions import ConfigError
from runestone.providers.base import Provider
from runestone.providers.registry import provider_type
from runestone.providers.settings import ModelInfo, ProviderSettings, Secret
from runestone.schema import convert, shown, without_nulls
from runestone.suggest import unknown_key

__all__ = ["is_loopback", "key_fingerprint", "load_config"]

log = structlog.get_logger("runestone.config")

_TOP_KEYS: Final = (
    "providers",
    "routing",
    "supervision",
    "pool",
    "server",
    "auth",
    "logging",
    "cluster",
    "defaults",
    "cost_table",
)


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
        return _build(read_yaml(path), environ, origin=str(path))
    raise TypeError(f"load_config takes a path, a mapping or a Config, not {type(source).__name__}")


def _build(raw: object, env: Mapping[str, str], *, origin: str | None) -> Config:
    if raw is None:
        raise ConfigError(
            "the config is empty; expected a mapping with at least `providers`"
            + (f" ({origin})" if origin else "")
        )
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"expected a mapping of sections (providers, routing, …), got {shown(raw)}"
        )
    for key in raw:
        # Before expansion: a misspelt section is the likelier mistake than a bad ${VAR}.
        if key not in _TOP_KEYS:
            raise ConfigError(unknown_key(key, _TOP_KEYS), path=str(key))
    expansion = Expansion(env)
    data = expansion.walk(raw, "")
    assert isinstance(data, Mapping)
    try:
        return _Builder(data, env, expansion.references, origin).build()
    except ConfigError as exc:
        variables = expansion.references.get(exc.path)
        if not variables:
            raise
        # The bad value came from the environment: say from where.
        message = str(exc).removeprefix(f"{exc.path}: ")
        raise ConfigError(
            f"{message} (from {', '.join('$' + name for name in variables)})", path=exc.path
        ) from exc


@dataclass(slots=True)
class _Candidate:
    """One provider block on its way to a ProviderConfig or a SkippedProvider."""

    config: ProviderConfig
    skip_reason: str | None


class _Builder:
    """One load: the expanded file, checked against the schema, then resolved."""

    def __init__(
        self,
        data: Mapping[str, Any],
        env: Mapping[str, str],
        references: Mapping[str, tuple[str, ...]],
        origin: str | None,
    ) -> None:
        self.env = env
        self.references = references
        self.origin = origin
        self.legacy_defaults: list[str] = []
        self.skip_reasons: dict[str, str] = {}
        self.data = self._current_shape(dict(data))

    def _current_shape(self, data: dict[str, Any]) -> dict[str, Any]:
        """The file with legacy blocks mapped and ``defaults`` laid under every block."""
        providers = data.get("providers")
        if not isinstance(providers, Mapping):
            return data  # the schema check says what is wrong with it
        rows = convert(
            without_nulls(data.get("cost_table") or [], CostTable), CostTable, path="cost_table"
        )
        by_provider = cost_table(rows, providers)
        defaults_raw = data.get("defaults") or {}
        # Checked before it is laid under the blocks, so a bad default is named where it
        # is written, not in the first provider block it reaches.
        convert(without_nulls(defaults_raw, Defaults), Defaults, path="defaults")
        mapped: dict[str, Any] = {}
        for name, block in providers.items():
            if is_legacy(block):
                path = f"providers.{name}"
                legacy = map_legacy(name, block, by_provider.get(name, []), self.env, path)
                block = legacy.block
                if legacy.skip_reason is not None:
                    self.skip_reasons[name] = legacy.skip_reason
                if legacy.default_model is not None:
                    self.legacy_defaults.append(f"{name}/{legacy.default_model}")
            if isinstance(block, Mapping) and isinstance(defaults_raw, Mapping):
                block = dict(block)
                for key, base in defaults_raw.items():
                    if not isinstance(base, Mapping):
                        continue
                    own = block.get(key)
                    if own is None:
                        block[key] = dict(base)
                    elif isinstance(own, Mapping):
                        block[key] = {**base, **own}
            mapped[name] = block
        data["providers"] = mapped
        data.pop("cost_table", None)
        return data

    def build(self) -> Config:
        schema = file_schema()
        checked = convert(without_nulls(self.data, schema), schema)
        file = msgspec.structs.asdict(checked)
        candidates: dict[str, _Candidate] = {}
        for name, block in file["providers"].items():
            path = f"providers.{name}"
            if not name or "/" in name or name != name.strip():
                raise ConfigError(
                    "expected a provider name: a non-empty string without '/' or "
                    "surrounding spaces",
                    path=path,
                )
            candidates[name] = self._provider(name, block, path)
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
        routing = _Routing(models, set(live)).resolve(file["routing"], self.legacy_defaults)
        server = file["server"]
        auth = _auth(file["auth"])
        if not auth.keys and not is_loopback(server.host):
            raise ConfigError(
                f"binding {server.host!r} with no auth.keys would serve anyone who can reach "
                "it; add auth.keys or bind a loopback address (127.0.0.1)",
                path="server.host",
            )
        cluster = file["cluster"]
        if cluster is not None and auth.keys and cluster.secret is None:
            raise ConfigError(
                "required with auth.keys: the server-side key that client key names are "
                "hashed with before they reach Redis (e.g. secret: ${RUNESTONE_CLUSTER_SECRET})",
                path="cluster.secret",
            )
        return Config(
            providers=MappingProxyType(live),
            skipped=skipped,
            routing=routing,
            supervision=file["supervision"],
            pool=file["pool"],
            server=server,
            auth=auth,
            logging=file["logging"],
            cluster=cluster,
            source=self.origin,
        )

    def _provider(self, name: str, block: Any, path: str) -> _Candidate:
        cls = provider_type(str(type(block).__struct_config__.tag))
        raw = self.data["providers"][name]
        written = {k: v for k, v in raw.items() if k not in ("enabled", "health_probe")}
        settings = ProviderSettings.from_checked(name, block, written)
        if not settings.models:
            raise ConfigError(
                "expected at least one model, e.g. models: {gpt-4o-mini: {context_window: 128000}}",
                path=f"{path}.models",
            )
        _validate_type(cls, settings)
        probe = block.health_probe
        if probe.model is not None and probe.model not in settings.models:
            raise ConfigError(
                f"expected one of this provider's models {sorted(settings.models)}, "
                f"got {probe.model!r}",
                path=f"{path}.health_probe.model",
            )
        config = ProviderConfig(
            settings=settings,
            retry=block.retry,
            circuit_breaker=block.circuit_breaker,
            probe_interval=probe.interval,
            probe_method=probe.method,
            probe_model=probe.model,
        )
        skip_reason = self.skip_reasons.get(name)
        if skip_reason is None and not block.enabled:
            skip_reason = "disabled (enabled: false)"
        if skip_reason is None and cls.requires_api_key and not settings.api_key:
            skip_reason = _missing_key_reason(raw, self.references.get(f"{path}.api_key", ()))
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
# Routing: every reference checked against the configured models


class _Routing:
    """Resolves the routing section against every configured provider's models."""

    def __init__(self, models: Mapping[str, Mapping[str, ModelInfo]], live: set[str]) -> None:
        self.models = models
        self.live = live

    def resolve(self, section: RoutingSection, legacy_defaults: list[str]) -> RoutingConfig:
        aliases: dict[str, tuple[str, ...]] = {}
        for alias, targets in section.aliases.items():
            path = f"routing.aliases.{alias}"
            if not alias.strip() or "/" in alias:
                raise ConfigError(
                    "expected an alias name: a non-empty string without '/' "
                    "('provider/model' names a model itself)",
                    path=path,
                )
            found = self.targets(targets, path)
            if found:
                aliases[alias] = found
            else:
                log.debug("alias_dropped", alias=alias, reason="every target's provider is skipped")
        if legacy_defaults and "default" not in section.aliases:
            found = tuple(ref for ref in legacy_defaults if ref.partition("/")[0] in self.live)
            if found:
                aliases["default"] = found
        tables: dict[str, dict[str, tuple[str, ...]]] = {}
        for key in ("fallbacks", "context_window_fallbacks"):
            table: dict[str, tuple[str, ...]] = {}
            for source, targets in getattr(section, key).items():
                path = f"routing.{key}.{source}"
                if source in section.aliases:
                    # An alias as the key: the fallbacks of whatever it resolves to.
                    name: str | None = source if source in aliases else None
                else:
                    name = self.check(source, path, aliases=section.aliases)
                found = self.targets(targets, path, source=source)
                if name is not None and found:
                    table[name] = found
            tables[key] = table
        return RoutingConfig(
            policy=section.policy,
            aliases=MappingProxyType(aliases),
            fallbacks=MappingProxyType(tables["fallbacks"]),
            context_window_fallbacks=MappingProxyType(tables["context_window_fallbacks"]),
            resume=section.resume,
            weights=MappingProxyType(self.weights(section.weights)),
        )

    def check(
        self,
        value: str,
        path: str,
        *,
        what: str = "a 'provider/model' reference",
        aliases: Mapping[str, Any] | None = None,
    ) -> str | None:
        """The reference if it is live; ``None`` if its provider is skipped; else an error.

        Passing ``aliases`` says an alias name would do too (and names them in the error).
        """
        if "/" not in value:
            if aliases is not None:
                what += " or an alias"
            hint = ""
            matches = [f"{p}/{value}" for p, models in self.models.items() if value in models]
            if len(matches) == 1:
                hint = f" (did you mean {matches[0]!r}?)"
            elif aliases:
                hint = f"; aliases: {', '.join(map(str, aliases))}"
            raise ConfigError(f"expected {what}, got {value!r}{hint}", path=path)
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

    def targets(
        self, value: list[str] | str, path: str, *, source: str | None = None
    ) -> tuple[str, ...]:
        if isinstance(value, str):
            items, paths = [value], [path]
        else:
            items, paths = list(value), [f"{path}[{i}]" for i in range(len(value))]
        if not items:
            raise ConfigError("expected at least one 'provider/model' reference", path=path)
        found: list[str] = []
        seen: set[str] = set()
        for item, item_path in zip(items, paths, strict=True):
            if item in seen:
                raise ConfigError(f"{item!r} is listed twice", path=item_path)
            seen.add(item)
            if source is not None and item == source:
                raise ConfigError(f"{item!r} cannot fall back to itself", path=item_path)
            ref = self.check(item, item_path)
            if ref is not None:
                found.append(ref)
        return tuple(found)

    def weights(self, given: Mapping[str, float]) -> dict[str, float]:
        """``{"provider/model" | provider: weight}``; a model's own weight beats its provider's."""
        by_provider: dict[str, float] = {}
        by_model: dict[str, float] = {}
        for key, weight in given.items():
            if "/" not in key and key in self.models:
                if key in self.live:
                    by_provider[key] = weight
                continue
            ref = self.check(
                key,
                f"routing.weights.{key}",
                what="a 'provider/model' reference or a provider name",
            )
            if ref is not None:
                by_model[ref] = weight
        weights = {
            f"{provider}/{model}": weight
            for provider, weight in by_provider.items()
            for model in self.models[provider]
        }
        weights.update(by_model)
        return weights


# ---------------------------------------------------------------------------
# Auth keys


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_fingerprint(key: str) -> str:
    """A short name for a key that does not reveal it: ``key-`` and 10 hex digits of its SHA-256."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def _auth(section: Any) -> AuthConfig:
    keys = _keys(section.keys, "auth.keys", ())
    admin_keys = _keys(section.admin_keys, "auth.admin_keys", keys)
    return AuthConfig(keys=keys, admin_keys=admin_keys)


def _keys(
    entries: Sequence[ClientKey | AdminKey], where: str, others: tuple[ApiKey, ...]
) -> tuple[ApiKey, ...]:
    """The keys listed at ``where``; none may repeat a name or a key of ``others``."""
    keys: list[ApiKey] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(entries):
        path = f"{where}[{index}]"
        for other in keys:
            if hmac.compare_digest(other.key.reveal().encode(), entry.key.encode()):
                raise ConfigError(
                    f"the same key is given twice (also for {other.name!r})", path=f"{path}.key"
                )
        for other in others:
            if hmac.compare_digest(other.key.reveal().encode(), entry.key.encode()):
                # An admin key that is also a client key would make every client an admin.
                raise ConfigError(
                    f"this admin key is also the client key {other.name!r} in auth.keys; "
                    "give admins keys of their own",
                    path=f"{path}.key",
                )
        # After the key checks: one key given twice has one fingerprint twice.
        name = entry.name if entry.name is not None else key_fingerprint(entry.key)
        if name in names:
            raise ConfigError(
                f"duplicate key name {name!r} (also {where}[{names[name]}])",
                path=f"{path}.name",
            )
        names[name] = index
        keys.append(
            ApiKey(
                key=Secret(entry.key),
                name=name,
                rpm=getattr(entry, "rpm", None),
                max_streams=getattr(entry, "max_streams", None),
                tpm=getattr(entry, "tpm", None),
            )
        )
    return tuple(keys)
