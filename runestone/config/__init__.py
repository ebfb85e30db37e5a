"""The one configuration file: read, expand ``${VAR}``, check against its schema, resolve.

:func:`load_config` turns a YAML file (or a mapping, or a :class:`Config`) into
a frozen :class:`Config` (ARCHITECTURE §7). The file's shape is a set of types
(:mod:`runestone.config.schema`) that msgspec checks; a bad file gets one
:class:`~runestone.exceptions.ConfigError` naming the key path and what was
expected — never a traceback::

    pool.max_in_flight: expected an integer >= 1, got 'lots'
    routing.aliases.fast[1]: unknown model 'openai/gpt-5'; configured: openai/gpt-4o-mini

Rules worth knowing:

- ``${VAR}`` and ``${VAR:-default}`` are expanded in every string value (``$${``
  is a literal ``${``); an unset ``${VAR}`` with no default is ``""``. A value
  that is exactly one reference takes the type its text spells (``port:
  ${PORT:-4003}`` is the integer 4003), except where a string is expected
  (``api_key``, ``key``, ``base_url``, ``headers`` …).
- A key written with no value takes its default.
- A provider whose type needs an API key and has none is *skipped* with a
  warning, never an error; alias and fallback entries naming its models are
  dropped. No usable provider at all is an error: there is no silent "mock".
- The legacy shape (``default_model``/``api_key_env`` blocks plus a top-level
  ``cost_table``) is mapped onto this one (:mod:`runestone.config.legacy`).
- An auth key without a ``name`` is named by a short fingerprint of the key.
"""

from runestone.config.describe import describe
from runestone.config.env import expand_env
from runestone.config.load import is_loopback, key_fingerprint, load_config
from runestone.config.model import (
    BUNDLED_CONFIG,
    BUNDLED_SCHEMA,
    LOG_LEVELS,
    SCHEMA_COMMENT,
    ApiKey,
    AuthConfig,
    ClusterConfig,
    Config,
    LoggingConfig,
    PoolConfig,
    ProviderConfig,
    ResumeConfig,
    RoutingConfig,
    ServerConfig,
    SkippedProvider,
)
from runestone.config.schema import ROUTING_POLICIES, json_schema

__all__ = [
    "BUNDLED_CONFIG",
    "BUNDLED_SCHEMA",
    "LOG_LEVELS",
    "ROUTING_POLICIES",
    "SCHEMA_COMMENT",
    "ApiKey",
    "AuthConfig",
    "ClusterConfig",
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
    "json_schema",
    "key_fingerprint",
    "load_config",
]
