"""``runestone check-config``: a configuration summarised for a reader, with no secrets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from runestone.config.model import Config
from runestone.providers.settings import ModelInfo

__all__ = ["describe"]


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
