"""``runestone import-litellm``: a LiteLLM proxy config turned into a Runestone config.

What maps (each LiteLLM key path is reported with where it went):

* ``model_list``: each deployment's ``litellm_params.model`` (``openai/…``,
  ``anthropic/…``, an OpenAI-compatible server's ``hosted_vllm/…`` or
  ``ollama/…`` with its ``api_base``; a bare ``gpt-…``/``o1…``/``claude-…``
  name as LiteLLM infers it) becomes a model of a provider, one provider per
  distinct type, endpoint and key; ``api_key`` and ``api_base`` (with
  ``os.environ/VAR`` as ``${VAR}``), ``timeout``, ``max_retries``, ``weight``
  and ``model_info``'s context window and prices come along. Each
  ``model_name`` becomes an alias listing its deployments.
* ``router_settings`` (and ``litellm_settings``): ``routing_strategy``,
  ``num_retries``, ``timeout``/``request_timeout``, ``fallbacks``,
  ``context_window_fallbacks``, ``allowed_fails`` and ``cooldown_time``.
* ``general_settings.master_key``: the one client key of ``auth.keys``.

Everything else is reported as not mapped, with the reason; nothing is dropped
silently. A literal API key is copied (it is what the file says) with a warning
to move it into the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlparse

__all__ = ["ImportReport", "check_environment", "import_litellm", "render"]

_ENV: Final = re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$")
_REFERENCE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""A ``${VAR}`` in the imported config (what :func:`_value` writes)."""

# LiteLLM's routing strategies and ours; usage-based routing has no exact counterpart.
_STRATEGIES: Final = {
    "simple-shuffle": ("weighted", None),
    "least-busy": ("least_loaded", None),
    "latency-based-routing": ("latency", None),
    "cost-based-routing": ("cost", None),
    "usage-based-routing": ("least_loaded", "routes by requests in flight, not by TPM/RPM used"),
    "usage-based-routing-v2": ("least_loaded", "routes by requests in flight, not by TPM/RPM used"),
}
_OPENAI_COMPATIBLE: Final = {"hosted_vllm", "vllm", "openai_like", "ollama", "ollama_chat"}
_DEFAULT_KEY_ENV: Final = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_PROVIDER_WIDE: Final = {
    "num_retries": "retry.max_attempts (num_retries + 1)",
    "timeout": "timeouts.total",
    "request_timeout": "timeouts.total",
    "allowed_fails": "circuit_breaker.consecutive_failures",
    "cooldown_time": "circuit_breaker.recovery",
}
"""Router settings that become every provider's, and where each goes."""
_MAPPED_SETTINGS: Final = (
    "routing_strategy",
    "fallbacks",
    "context_window_fallbacks",
    *_PROVIDER_WIDE,
)


@dataclass
class ImportReport:
    """The Runestone config (a plain mapping, ready to dump as YAML) and what became of
    each LiteLLM key: ``mapped`` (path, where it went) and ``unmapped`` (path, why)."""

    config: dict[str, Any] = field(default_factory=dict)
    mapped: list[tuple[str, str]] = field(default_factory=list)
    unmapped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Deployment:
    path: str
    alias: str
    kind: str
    model: str
    base_url: str | None
    api_key: str
    params: Mapping[str, Any]
    info: Mapping[str, Any]


def _value(value: Any) -> Any:
    """``os.environ/VAR`` as ``${VAR}``; anything else as it is."""
    if isinstance(value, str):
        match = _ENV.match(value.strip())
        if match:
            return "${" + match.group(1) + "}"
    return value


def _warn_if_literal(key: object, path: str, report: ImportReport) -> None:
    """A key written out in the file is copied as it is, and flagged."""
    if not _ENV.match(str(key).strip()):
        report.warnings.append(
            f"{path} is a literal key: move it into an environment variable and write "
            "${VAR} instead"
        )


def _kind(model: str, api_base: str | None) -> tuple[str, str] | str:
    """The provider type and upstream model of a LiteLLM ``model`` string, or why not."""
    prefix, slash, rest = model.partition("/")
    if not slash:
        if re.match(r"^(gpt-|o\d|chatgpt-)", model):
            return "openai", model
        if model.startswith("claude"):
            return "anthropic", model
        return f"LiteLLM infers the provider of {model!r}; name it as 'provider/model'"
    if prefix in ("openai", "anthropic"):
        if prefix == "openai" and api_base and "api.openai.com" not in api_base:
            return "openai_compatible", rest
        return prefix, rest
    if prefix in _OPENAI_COMPATIBLE:
        if not api_base:
            return f"{prefix!r} needs an api_base for an OpenAI-compatible provider"
        return "openai_compatible", rest
    return (
        f"no Runestone provider type for LiteLLM's {prefix!r} "
        "(openai, anthropic and OpenAI-compatible servers only)"
    )


def _base_url(prefix: str, api_base: str | None) -> str | None:
    if api_base is None:
        return None
    base = str(_value(api_base)).rstrip("/")
    if prefix.startswith("ollama") and not base.endswith("/v1"):
        base += "/v1"  # Ollama's OpenAI-compatible API
    return base


def _provider_name(kind: str, base_url: str | None, taken: set[str]) -> str:
    stem = kind if kind != "openai_compatible" else "compatible"
    if kind == "openai_compatible" and base_url and not base_url.startswith("$"):
        host = urlparse(base_url).hostname or ""
        stem = re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-") or stem
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    return name


def import_litellm(data: Mapping[str, Any]) -> ImportReport:
    """Map a parsed LiteLLM proxy config (see the module docstring)."""
    report = ImportReport()
    if not isinstance(data, Mapping):
        raise ValueError(f"a LiteLLM config is a mapping, not {type(data).__name__}")
    for key in data:
        if key not in ("model_list", "router_settings", "litellm_settings", "general_settings"):
            why = (
                "set these in the environment"
                if key == "environment_variables"
                else "no counterpart"
            )
            report.unmapped.append((str(key), why))
    deployments = _deployments(data.get("model_list"), report)
    router: dict[str, Any] = {}
    where: dict[str, str] = {}
    for section in ("litellm_settings", "router_settings"):  # the router's own win
        settings = data.get(section) or {}
        if not isinstance(settings, Mapping):
            raise ValueError(f"{section}: expected a mapping")
        for key, value in settings.items():
            if key in where:
                report.unmapped.append(
                    (where[key], f"{section}.{key} is used instead (the router's own setting wins)")
                )
            router[str(key)] = value
            where[str(key)] = f"{section}.{key}"
    providers, refs, weights = _providers(deployments, router, report)
    config: dict[str, Any] = {"providers": providers}
    # LiteLLM's default strategy (simple-shuffle) spreads by weight.
    routing: dict[str, Any] = {"policy": "weighted", "aliases": dict(refs)}
    if weights:
        routing["weights"] = weights
    _routing(router, where, refs, routing, report, deployments)
    config["routing"] = routing
    general = data.get("general_settings") or {}
    master = general.get("master_key")
    for key in general:
        if key != "master_key":
            report.unmapped.append(
                (f"general_settings.{key}", "no counterpart (Runestone keeps no database)")
            )
    if master is not None:
        config["auth"] = {"keys": [{"key": _value(master), "name": "master"}]}
        report.mapped.append(("general_settings.master_key", "auth.keys[0] (name: master)"))
        _warn_if_literal(master, "general_settings.master_key", report)
    report.config = config
    return report


def _deployments(model_list: Any, report: ImportReport) -> list[_Deployment]:
    if not isinstance(model_list, list):
        raise ValueError("model_list: expected a list of deployments")
    found = []
    for i, row in enumerate(model_list):
        path = f"model_list[{i}]"
        if not isinstance(row, Mapping) or not isinstance(row.get("litellm_params"), Mapping):
            report.unmapped.append((path, "expected model_name and litellm_params"))
            continue
        alias = row.get("model_name")
        params = row["litellm_params"]
        model = params.get("model")
        if not isinstance(alias, str) or not isinstance(model, str):
            report.unmapped.append((path, "expected model_name and litellm_params.model"))
            continue
        api_base = params.get("api_base") or params.get("base_url")
        kind = _kind(model, api_base)
        if isinstance(kind, str):
            report.unmapped.append((f"{path}.litellm_params.model", kind))
            continue
        provider_type, upstream = kind
        api_key = params.get("api_key")
        if api_key is None:
            env = _DEFAULT_KEY_ENV.get(provider_type)
            api_key = "${" + env + "}" if env else ""
        else:
            _warn_if_literal(api_key, f"{path}.litellm_params.api_key", report)
        info = row.get("model_info") if isinstance(row.get("model_info"), Mapping) else {}
        found.append(
            _Deployment(
                path,
                alias,
                provider_type,
                upstream,
                _base_url(model.partition("/")[0], api_base),
                str(_value(api_key)),
                params,
                info or {},
            )
        )
    return found


_PARAMS_MAPPED: Final = ("model", "api_key", "api_base", "base_url", "timeout", "max_retries")


def _providers(
    deployments: list[_Deployment], router: Mapping[str, Any], report: ImportReport
) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, float]]:
    providers: dict[str, Any] = {}
    by_endpoint: dict[tuple[str, str | None, str], str] = {}
    refs: dict[str, list[str]] = {}
    weights: dict[str, float] = {}
    for d in deployments:
        endpoint = (d.kind, d.base_url, d.api_key)
        name = by_endpoint.get(endpoint)
        if name is None:
            name = _provider_name(d.kind, d.base_url, set(providers))
            by_endpoint[endpoint] = name
            block: dict[str, Any] = {"type": d.kind, "api_key": d.api_key}
            if d.base_url is not None:
                block["base_url"] = d.base_url
            block["models"] = {}
            retries = d.params.get("max_retries", router.get("num_retries"))
            if isinstance(retries, int) and retries >= 0:
                block["retry"] = {"max_attempts": retries + 1}
            timeout = d.params.get("timeout", router.get("timeout", router.get("request_timeout")))
            if isinstance(timeout, int | float) and timeout > 0:
                block["timeouts"] = {"total": timeout}
            breaker: dict[str, Any] = {}
            if isinstance(router.get("allowed_fails"), int):
                breaker["consecutive_failures"] = max(1, router["allowed_fails"])
            if isinstance(router.get("cooldown_time"), int | float):
                breaker["recovery"] = router["cooldown_time"]
            if breaker:
                block["circuit_breaker"] = breaker
            providers[name] = block
        block = providers[name]
        for key, ours, value in (
            ("timeout", ("timeouts", "total"), d.params.get("timeout")),
            ("max_retries", ("retry", "max_attempts"), d.params.get("max_retries")),
        ):
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            wanted = value + 1 if key == "max_retries" else value
            held = block.get(ours[0], {}).get(ours[1])
            if held != wanted:
                report.unmapped.append(
                    (
                        f"{d.path}.litellm_params.{key}",
                        f"provider {name} already has {'.'.join(ours)}: {held} "
                        "(settings are per provider, not per deployment)",
                    )
                )
        model = _model_settings(d, report)
        block["models"][d.model] = model
        ref = f"{name}/{d.model}"
        alias_refs = refs.setdefault(d.alias, [])
        if ref not in alias_refs:
            alias_refs.append(ref)
        report.mapped.append((d.path, f"providers.{name}.models.{d.model}, alias {d.alias}"))
        weight = d.params.get("weight")
        if isinstance(weight, int | float) and weight > 0:
            weights[ref] = weight
        for key in d.params:
            if key not in (*_PARAMS_MAPPED, "weight"):
                why = (
                    "per-deployment limits have no counterpart (Runestone limits per client key)"
                    if key in ("rpm", "tpm")
                    else "no counterpart"
                )
                report.unmapped.append((f"{d.path}.litellm_params.{key}", why))
    return providers, refs, weights


def _model_settings(d: _Deployment, report: ImportReport) -> dict[str, Any]:
    out: dict[str, Any] = {}
    info = d.info
    window = info.get("max_input_tokens") or info.get("max_tokens")
    if isinstance(window, int) and window > 0:
        out["context_window"] = window
    for ours, theirs in (
        ("input_per_1m", "input_cost_per_token"),
        ("output_per_1m", "output_cost_per_token"),
    ):
        cost = info.get(theirs, d.params.get(theirs))
        if isinstance(cost, int | float) and cost >= 0:
            out[ours] = round(cost * 1_000_000, 6)
    for key in info:
        if key not in (
            "max_input_tokens",
            "max_tokens",
            "input_cost_per_token",
            "output_cost_per_token",
            "id",
        ):
            report.unmapped.append((f"{d.path}.model_info.{key}", "no counterpart"))
    return out


def _routing(
    router: Mapping[str, Any],
    where: Mapping[str, str],
    refs: Mapping[str, list[str]],
    routing: dict[str, Any],
    report: ImportReport,
    deployments: list[_Deployment],
) -> None:
    strategy = router.get("routing_strategy")
    if strategy is not None:
        mapped = _STRATEGIES.get(str(strategy))
        if mapped is None:
            report.unmapped.append(
                (where["routing_strategy"], f"unknown strategy {strategy!r}; weighted kept")
            )
        else:
            routing["policy"] = mapped[0]
            note = f"routing.policy: {mapped[0]}" + (f" ({mapped[1]})" if mapped[1] else "")
            report.mapped.append((where["routing_strategy"], note))
    for key in ("fallbacks", "context_window_fallbacks"):
        table: dict[str, list[str]] = {}
        for i, entry in enumerate(router.get(key) or []):
            path = f"{where[key]}[{i}]"
            if not isinstance(entry, Mapping):
                report.unmapped.append((path, "expected {model_name: [fallback model_names]}"))
                continue
            for source, targets in entry.items():
                if source not in refs:
                    report.unmapped.append(
                        (f"{path}.{source}", "no deployment has this model_name")
                    )
                    continue
                found: list[str] = []
                for target in targets if isinstance(targets, list) else [targets]:
                    if target not in refs:
                        report.unmapped.append(
                            (
                                f"{path}.{source}",
                                f"fallback {target!r}: no deployment has this model_name",
                            )
                        )
                        continue
                    found += [r for r in refs[target] if r not in found and r not in refs[source]]
                if found:
                    table[source] = found
                    report.mapped.append((f"{path}.{source}", f"routing.{key}.{source}"))
        if table:
            routing[key] = table
    for key, ours in _PROVIDER_WIDE.items():
        if key in router and deployments:
            report.mapped.append((where[key], f"every provider's {ours}"))
    for key in router:
        if key not in _MAPPED_SETTINGS:
            report.unmapped.append((where[key], "no counterpart"))


def check_environment(config: Mapping[str, Any]) -> dict[str, str]:
    """Stand-in values for every ``${VAR}`` the imported config reads, so that it can be
    validated where those variables are not set: a URL where a URL goes, a key elsewhere."""
    env: dict[str, str] = {}
    for block in config.get("providers", {}).values():
        for key in ("api_key", "base_url"):
            for name in _REFERENCE.findall(str(block.get(key, ""))):
                env[name] = "https://example.invalid/v1" if key == "base_url" else "sk-check-0000"
    for entry in config.get("auth", {}).get("keys", []):
        for name in _REFERENCE.findall(str(entry.get("key", ""))):
            env[name] = "sk-check-master-0000"
    return env


def render(report: ImportReport, source: str) -> str:
    """The imported config as YAML, under a header saying where it came from."""
    import yaml

    header = (
        f"# Imported from the LiteLLM config {source} by `runestone import-litellm`.\n"
        "# Check it with `runestone check-config PATH`; what could not be mapped was\n"
        "# printed when it was imported.\n"
    )
    return header + yaml.safe_dump(report.config, sort_keys=False, allow_unicode=True)
