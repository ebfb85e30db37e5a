"""The shape of the config file, as types: msgspec checks a file against them.

Every section is a :class:`~runestone.schema.Shape`; a provider block is a union
tagged by ``type``, one member per registered provider type (its own keys come
from the type's :attr:`~runestone.providers.base.Provider.options_type`), so a
plugin's keys are checked and documented like the built-in ones.
:func:`json_schema` is what ``runestone config schema`` prints and what editors
read through the ``yaml-language-server`` comment at the top of a config file.
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import json
import textwrap
import typing
from typing import Annotated, Any, Final, Literal, Union

import msgspec
from msgspec import Meta

from runestone.config.model import (
    ClusterConfig,
    LoggingConfig,
    PoolConfig,
    ResumeConfig,
    ServerConfig,
)
from runestone.providers.base import ProbeMethod, Provider
from runestone.providers.registry import provider_type, provider_types
from runestone.providers.settings import ProviderBlock, Timeouts, Url
from runestone.resilience import CircuitBreakerPolicy, RetryPolicy
from runestone.routing.policies import POLICIES
from runestone.schema import Count, NonNegative, Positive, Shape
from runestone.supervisors.intensity import IntensityPolicy

__all__ = [
    "ENV_NAME",
    "ROUTING_POLICIES",
    "SCHEMA_ID",
    "VAR_REFERENCE",
    "AuthSection",
    "ClientKey",
    "CostRow",
    "CostTable",
    "Defaults",
    "HealthProbe",
    "LegacyProvider",
    "RoutingSection",
    "field_docs",
    "file_schema",
    "json_schema",
    "provider_block",
    "schema_text",
]

ROUTING_POLICIES: Final[tuple[str, ...]] = tuple(POLICIES)
"""The routing policy names ``routing.policy`` accepts: those :mod:`runestone.routing` knows."""

ENV_NAME: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"

SCHEMA_ID: Final = "https://runestone.dev/schema/runestone.schema.json"

_Name = Annotated[str, Meta(pattern=r"\S", extra={"expected": "a model name"})]
_Ref = Annotated[str, Meta(extra={"expected": "a 'provider/model' reference"})]
_Targets = Annotated[
    list[_Ref] | _Ref, Meta(extra={"expected": "a list of 'provider/model' references"})
]
_PolicyName = Annotated[
    Literal[ROUTING_POLICIES],  # type: ignore[valid-type]  # the registry's names, at import
    Meta(extra={"invalid": "unknown routing policy {got}; expected one of: {choices}"}),
]


class HealthProbe(Shape, frozen=True):
    """``providers.<name>.health_probe``: active probes of a provider's health."""

    interval: Positive | None = None
    """Seconds between probes while the circuit is closed (null: none)."""
    method: ProbeMethod | None = None
    """``models`` (list the models) or ``request`` (a one-token chat); default: the type's."""
    model: _Name | None = None
    """The model a ``request`` probe asks (default: the provider's first)."""


class LegacyProvider(Shape, frozen=True):
    """A provider block of the legacy shape (``default_model``, ``api_key_env``)."""

    type: str | None = None
    """The provider type (default: the block's name if a type has it, else openai_compatible)."""
    default_model: _Name | None = None
    """The model the ``default`` alias goes to."""
    api_key_env: (
        Annotated[str, Meta(pattern=ENV_NAME, extra={"expected": "an environment variable name"})]
        | None
    ) = None
    """The environment variable holding the API key."""
    base_url: Url | None = None
    """The upstream's URL."""
    enabled: bool = True
    """false: leave the provider out."""


class _Prices(Shape, frozen=True):
    input: NonNegative = 0.0
    """Per 1,000 prompt tokens."""
    output: NonNegative = 0.0
    """Per 1,000 completion tokens."""

    def pair(self) -> tuple[float, float]:
        return self.input, self.output


class CostRow(Shape, frozen=True):
    """One row of the legacy top-level ``cost_table``."""

    provider: Annotated[str, Meta(pattern=r"\S", extra={"expected": "a provider name"})]
    """The legacy provider block the row prices."""
    model: _Name
    """The model."""
    cost_per_1k_tokens: NonNegative | _Prices = 0.0
    """One price per 1,000 tokens, or ``{input, output}``."""
    capabilities: list[str] = []
    """Capability names of the old table (tools, vision, json, …)."""


CostTable = Annotated[
    list[CostRow],
    Meta(extra={"expected": "a list of {provider, model, cost_per_1k_tokens, capabilities}"}),
]
"""The legacy top-level ``cost_table``."""


class Defaults(Shape, frozen=True):
    """``defaults``: settings every provider block starts from (its own keys win)."""

    timeouts: Timeouts | None = None
    """Upstream time limits."""
    retry: RetryPolicy | None = None
    """Retry settings."""
    circuit_breaker: CircuitBreakerPolicy | None = None
    """Circuit breaker settings."""


class RoutingSection(Shape, frozen=True):
    """``routing``: the policy and the name tables every request is resolved through."""

    policy: _PolicyName = "priority"
    """How candidates are ordered: priority, cost, latency, health, round_robin, …"""
    aliases: Annotated[dict[str, _Targets], Meta(extra={"expected": "a mapping of names"})] = {}
    """Names clients may ask for, each a list of 'provider/model' targets in order."""
    fallbacks: Annotated[
        dict[str, _Targets], Meta(extra={"expected": "a mapping of 'provider/model' keys"})
    ] = {}
    """Where a model (or an alias) fails over to, in order."""
    context_window_fallbacks: Annotated[
        dict[str, _Targets], Meta(extra={"expected": "a mapping of 'provider/model' keys"})
    ] = {}
    """Where a request too long for a model goes instead."""
    resume: ResumeConfig = ResumeConfig()
    """How a stream cut after content is continued."""
    weights: Annotated[
        dict[str, NonNegative],
        Meta(extra={"expected": "a mapping of 'provider/model' or provider"}),
    ] = {}
    """Weights of the weighted policy, per 'provider/model' or per provider (default 1)."""


_SECRET_REQUIRED: Final = "a non-empty key (is its variable set?)"
_Secret = Annotated[
    str,
    Meta(
        min_length=1,
        # Never echo the value: it is (meant to be) a credential.
        extra={"invalid": f"required: {_SECRET_REQUIRED}", "required": _SECRET_REQUIRED},
    ),
]
_KeyName = Annotated[str, Meta(pattern=r"\S", extra={"expected": "a non-empty name"})]


class ClientKey(Shape, frozen=True):
    """One entry of ``auth.keys``."""

    key: _Secret
    """The key clients send (Authorization: Bearer, or x-api-key); usually ``${VAR}``."""
    name: _KeyName | None = None
    """What logs, metrics and health call it (default: a short fingerprint of the key)."""
    rpm: Count | None = None
    """Requests a minute it may make."""
    max_streams: Count | None = None
    """Requests it may have in flight at once."""
    tpm: Count | None = None
    """Tokens a minute it may use, booked from each answer's usage (prompt and output)."""


class AdminKey(Shape, frozen=True):
    """One entry of ``auth.admin_keys``."""

    key: _Secret
    """The key that opens /health, /metrics and /admin routes."""
    name: _KeyName | None = None
    """What logs call it (default: a short fingerprint of the key)."""


class AuthSection(Shape, frozen=True):
    """``auth``: client keys and admin keys of the HTTP server."""

    keys: Annotated[
        list[ClientKey], Meta(extra={"expected": "a list of {key, name, rpm, max_streams, tpm}"})
    ] = []
    """Client keys; none means the server is open (allowed only on a loopback bind)."""
    admin_keys: Annotated[list[AdminKey], Meta(extra={"expected": "a list of {key, name}"})] = []
    """The only keys /health, /metrics and /admin take; they reach no /v1 route."""


# ---------------------------------------------------------------------------
# Provider blocks, one shape per registered type


def provider_block(name: str, cls: type[Provider]) -> type[msgspec.Struct]:
    """The shape of a ``providers.<x>`` block of ``type: name``: common keys, then the type's."""
    common = _fields(ProviderBlock)
    before_options = [f for f in common if f[0] != "options"]
    own = sorted(_fields(cls.options_type), key=lambda f: f[0])
    fields = [
        ("enabled", bool, True),
        *before_options,
        ("health_probe", HealthProbe, HealthProbe()),
        ("options", cls.options_type | None, None),
        *own,
    ]
    block = msgspec.defstruct(
        f"{''.join(part.title() for part in name.split('_'))}Block",
        fields,
        bases=(Shape,),
        module=__name__,
        frozen=True,
        kw_only=True,
        forbid_unknown_fields=True,
        tag_field="type",
        tag=name,
    )
    docs = {**field_docs(ProviderBlock), **field_docs(cls.options_type)}
    docs["enabled"] = "false: leave the provider out (it is reported as skipped)."
    docs["health_probe"] = "Active probes of its health."
    docs["options"] = "The type's own keys, if not written beside the others."
    _GENERATED_DOCS[block] = docs
    block.__doc__ = f"A provider block of ``type: {name}``."
    return block


def _fields(cls: type[msgspec.Struct]) -> list[tuple[str, Any, Any]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: list[tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(cls):
        if field.default_factory is not msgspec.NODEFAULT:
            default: Any = msgspec.field(default_factory=field.default_factory)
        elif field.default is not msgspec.NODEFAULT:
            default = field.default
        else:
            fields.append((field.encode_name, hints[field.name]))  # type: ignore[arg-type]
            continue
        fields.append((field.encode_name, hints[field.name], default))
    return fields


_GENERATED_DOCS: dict[type, dict[str, str]] = {}


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a shape's fields (its bases' first), by field name."""
    if cls in _GENERATED_DOCS:
        return _GENERATED_DOCS[cls]
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass in (object, msgspec.Struct, Shape) or not isinstance(klass, type):
            continue
        docs.update(_class_docs(klass))
    return docs


@functools.cache
def _class_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


@functools.cache
def _file_schema(types: tuple[tuple[str, type[Provider]], ...]) -> type[msgspec.Struct]:
    blocks = tuple(provider_block(name, cls) for name, cls in types)
    entry = Annotated[
        Union[blocks],  # type: ignore[valid-type]  # noqa: UP007  (a tuple of members at run time)
        Meta(
            extra={
                "expected": "a provider block (a mapping)",
                "unknown_tag": "unknown provider type {got}; known types: {tags}",
                "missing_tag": "required: the provider type; one of: {tags}",
            }
        ),
    ]
    providers = Annotated[
        dict[str, entry],
        Meta(
            extra={
                "expected": "a mapping of provider names",
                "required": "a mapping of provider names to provider blocks",
            }
        ),
    ]
    schema = msgspec.defstruct(
        "RunestoneConfig",
        [
            ("providers", providers),
            ("routing", RoutingSection, RoutingSection()),
            ("supervision", IntensityPolicy, IntensityPolicy()),
            ("pool", PoolConfig, PoolConfig()),
            ("server", ServerConfig, ServerConfig()),
            ("auth", AuthSection, AuthSection()),
            ("logging", LoggingConfig, LoggingConfig()),
            ("cluster", ClusterConfig | None, None),
            ("defaults", Defaults, Defaults()),
            ("cost_table", CostTable, msgspec.field(default_factory=list)),
        ],
        bases=(Shape,),
        module=__name__,
        frozen=True,
        kw_only=True,
        forbid_unknown_fields=True,
    )
    _GENERATED_DOCS[schema] = {
        "providers": "The upstreams, by a name of your choosing; each block has a `type`.",
        "routing": "The routing policy, aliases, fallbacks and how cut streams resume.",
        "supervision": "Restart intensity of every supervisor in the tree.",
        "pool": "Admission: how many requests at once, and each one's deadline.",
        "server": "Where `runestone serve` listens.",
        "auth": "Client keys (with limits) and admin keys.",
        "logging": "Log level and format.",
        "cluster": "Replicas sharing circuits, health, key limits and a registry via Redis.",
        "defaults": "Settings every provider block starts from.",
        "cost_table": "Legacy: per-model prices and capabilities of legacy provider blocks.",
    }
    schema.__doc__ = "A Runestone configuration file."
    return schema


def file_schema() -> type[msgspec.Struct]:
    """The shape of a whole config file, for the provider types registered now."""
    return _file_schema(tuple((name, provider_type(name)) for name in provider_types()))


def json_schema() -> dict[str, Any]:
    """The config file's JSON Schema (draft 2020-12), descriptions included."""
    schema: dict[str, Any] = msgspec.json.schema(file_schema())
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    # The legacy provider shape has no tag, so it is offered beside the tagged union.
    legacy = msgspec.json.schema_components([LegacyProvider])[1]
    defs.update(legacy)
    root = defs["RunestoneConfig"]
    tagged = root["properties"]["providers"]["additionalProperties"]
    root["properties"]["providers"]["additionalProperties"] = {
        "anyOf": [tagged, {"$ref": "#/$defs/LegacyProvider"}]
    }
    for entry in defs.values():
        for name, prop in entry.get("properties", {}).items():
            entry["properties"][name] = _or_reference(prop)
    for shape in _shapes():
        entry = defs.get(shape.__name__)
        if entry is None:
            continue
        for name, doc in field_docs(shape).items():
            prop = entry.get("properties", {}).get(name)
            if prop is not None:
                prop.setdefault("description", doc)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Runestone configuration",
        **schema,
    }


VAR_REFERENCE: Final = {"type": "string", "pattern": r"^\$\{.+\}$"}
"""What a number, boolean or patterned string may also be in the JSON Schema: ``${VAR}``."""


def _or_reference(prop: dict[str, Any]) -> dict[str, Any]:
    """A number or boolean property that also takes one ``${VAR}`` reference, as written.

    The loader gives such a value the type its expanded text spells; without this an
    editor would flag ``port: ${PORT:-4003}``.
    """
    if prop.get("type") in ("integer", "number", "boolean") or (
        prop.get("type") == "string" and "pattern" in prop
    ):
        described: dict[str, Any] = {
            k: prop.pop(k) for k in ("default", "description") if k in prop
        }
        return {"anyOf": [prop, VAR_REFERENCE], **described}
    members = prop.get("anyOf")
    if isinstance(members, list) and any(
        m.get("type") in ("integer", "number", "boolean") or "pattern" in m for m in members
    ):
        prop["anyOf"] = [*members, VAR_REFERENCE]
    return prop


def schema_text() -> str:
    """:func:`json_schema` as the text of ``runestone.schema.json`` (what is committed)."""
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def _shapes() -> list[type]:
    found: list[type] = []
    todo: list[object] = [file_schema(), LegacyProvider]
    while todo:
        tp = todo.pop()
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            if tp in found:
                continue
            found.append(tp)
            hints = typing.get_type_hints(tp, include_extras=True)
            todo.extend(hints.values())
        else:
            todo.extend(typing.get_args(tp))
    return found
