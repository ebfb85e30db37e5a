"""A loaded :class:`Config` written back in the file's shape, its defaults spelled out.

:func:`dump_config` gives the plain data a config file holds; loading it again gives an
equal :class:`Config` (the round trip the tests check for every shipped config). A
provider's ``retry`` and ``circuit_breaker`` are written as the file gave them (with
``defaults`` laid under), as its settings keep them.
:func:`dump_yaml` gives it as YAML, for ``runestone config dump``: what the gateway
actually runs, defaults and resolved references included.

Secrets are never written. In their place stands a ``${VAR}`` reference named after
where the secret belongs (``providers.openai.api_key`` → ``${OPENAI_API_KEY}``,
the auth key ``team-a`` → ``${RUNESTONE_KEY_TEAM_A}``), so a dumped file loads only
once those variables are set, never with a made-up key. ``reveal_secrets=True``
writes them as they are.

What the dump does not hold: skipped providers (it is the live config) and the file's
own conveniences (``defaults``, legacy blocks, ``${VAR}`` references), which are
resolved by the time a :class:`Config` exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import msgspec
import yaml

from runestone.config.model import ApiKey, Config, ProviderConfig
from runestone.providers.settings import Secret

__all__ = ["dump_config", "dump_yaml", "secret_variable"]

_NOT_A_NAME: Final = re.compile(r"[^A-Za-z0-9]+")


def secret_variable(*parts: str) -> str:
    """The environment variable a dump names for a secret: ``parts`` upper-cased and
    joined by ``_`` (``secret_variable("openai", "api_key")`` is ``OPENAI_API_KEY``)."""
    return "_".join(_NOT_A_NAME.sub("_", part).strip("_").upper() for part in parts if part)


def dump_config(config: Config, *, reveal_secrets: bool = False) -> dict[str, Any]:
    """``config`` as the plain data of a config file (see the module docstring)."""

    def secret(value: Secret | None, *where: str) -> str | None:
        if value is None:
            return None
        return value.reveal() if reveal_secrets else "${" + secret_variable(*where) + "}"

    routing = config.routing
    return {
        "providers": {
            name: _provider(provider, secret(provider.settings.api_key, name, "api_key"))
            for name, provider in config.providers.items()
        },
        "routing": {
            "policy": routing.policy,
            "aliases": _lists(routing.aliases),
            "fallbacks": _lists(routing.fallbacks),
            "context_window_fallbacks": _lists(routing.context_window_fallbacks),
            "resume": _plain(routing.resume),
            "weights": dict(routing.weights),
        },
        "supervision": _plain(config.supervision),
        "pool": _plain(config.pool),
        "server": _plain(config.server),
        "auth": {
            "keys": [
                _key(key, secret(key.key, "runestone_key", key.name), limits=True)
                for key in config.auth.keys
            ],
            "admin_keys": [
                _key(key, secret(key.key, "runestone_admin_key", key.name), limits=False)
                for key in config.auth.admin_keys
            ],
        },
        "logging": _plain(config.logging),
    }


def dump_yaml(config: Config, *, reveal_secrets: bool = False) -> str:
    """``config`` as a YAML config file (see :func:`dump_config`)."""
    return yaml.safe_dump(
        dump_config(config, reveal_secrets=reveal_secrets), sort_keys=False, allow_unicode=True
    )


def _provider(provider: ProviderConfig, api_key: str | None) -> dict[str, Any]:
    settings = provider.settings
    block: dict[str, Any] = {"type": settings.type}
    if settings.base_url is not None:
        block["base_url"] = settings.base_url
    if api_key is not None:
        block["api_key"] = api_key
    if settings.headers:
        block["headers"] = dict(settings.headers)
    block["timeouts"] = _plain(settings.timeouts)
    block["max_connections"] = settings.max_connections
    # As written (defaults laid under): the settings keep them so, and the policies
    # are made from them again on load.
    if settings.retry:
        block["retry"] = _plain(dict(settings.retry))
    if settings.circuit_breaker:
        block["circuit_breaker"] = _plain(dict(settings.circuit_breaker))
    probe = {
        "interval": provider.probe_interval,
        "method": None if provider.probe_method is None else provider.probe_method.value,
        "model": provider.probe_model,
    }
    if any(value is not None for value in probe.values()):
        block["health_probe"] = {k: v for k, v in probe.items() if v is not None}
    block.update(_plain(dict(settings.options)))
    block["models"] = {
        name: {k: v for k, v in _plain(model).items() if k != "name"}
        for name, model in settings.models.items()
    }
    return block


def _key(key: ApiKey, value: str | None, *, limits: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": value, "name": key.name}
    if limits:
        entry["rpm"] = key.rpm
        entry["max_streams"] = key.max_streams
    return entry


def _lists(table: Mapping[str, tuple[str, ...]]) -> dict[str, list[str]]:
    return {name: list(targets) for name, targets in table.items()}


def _plain(value: object) -> Any:
    return msgspec.to_builtins(value, enc_hook=_unfamiliar, order="deterministic")


def _unfamiliar(value: object) -> object:
    if isinstance(value, MappingProxyType):
        return dict(value)
    if isinstance(value, frozenset):
        return sorted(value)
    raise NotImplementedError(f"cannot dump a {type(value).__name__}")
