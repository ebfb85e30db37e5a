"""The legacy config shape, mapped onto the current one before the file is checked.

A legacy provider block names ``default_model`` and ``api_key_env``; its models
and prices come from a top-level ``cost_table``. :func:`map_legacy` turns such a
block into a current one: ``type`` is the block's name when that is a
registered type, else ``openai_compatible``; the key comes from the variable
``api_key_env`` names; the models are the provider's rows plus ``default_model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from runestone.config.schema import CostRow, LegacyProvider
from runestone.exceptions import ConfigError
from runestone.providers.registry import provider_types
from runestone.providers.settings import Capability
from runestone.schema import convert

__all__ = ["LegacyBlock", "cost_table", "is_legacy", "map_legacy"]

_CAPABILITIES: Final[Mapping[str, Capability | None]] = {
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


def is_legacy(block: object) -> bool:
    """Whether a provider block has the legacy shape."""
    return isinstance(block, Mapping) and ("default_model" in block or "api_key_env" in block)


@dataclass(frozen=True, slots=True)
class LegacyBlock:
    """A legacy block as a current one, why it is skipped (its key is unset), its default."""

    block: dict[str, Any]
    skip_reason: str | None
    default_model: str | None


def cost_table(rows: list[CostRow], providers: Mapping[str, Any]) -> dict[str, list[CostRow]]:
    """The checked rows of ``cost_table``, by the (legacy) provider each prices."""
    by_provider: dict[str, list[CostRow]] = {}
    for index, row in enumerate(rows):
        path = f"cost_table[{index}]"
        if row.provider not in providers:
            raise ConfigError(
                f"unknown provider {row.provider!r}; configured: {', '.join(map(str, providers))}",
                path=f"{path}.provider",
            )
        if not is_legacy(providers[row.provider]):
            raise ConfigError(
                f"{row.provider!r} is a current-shape provider block (no default_model or "
                f"api_key_env); list its models under providers.{row.provider}.models instead",
                path=f"{path}.provider",
            )
        for i, item in enumerate(row.capabilities):
            if item.strip().lower() not in _CAPABILITIES:
                raise ConfigError(
                    f"unknown capability {item!r}; expected one of: {', '.join(_CAPABILITIES)}",
                    path=f"{path}.capabilities[{i}]",
                )
        by_provider.setdefault(row.provider, []).append(row)
    return by_provider


def map_legacy(
    name: str, raw: Mapping[str, Any], rows: list[CostRow], env: Mapping[str, str], path: str
) -> LegacyBlock:
    """The legacy block ``raw`` (at ``path``) as a current-shape block."""
    legacy = convert(raw, LegacyProvider, path=path)
    kind = legacy.type
    if kind is None:
        kind = name if name in provider_types() else "openai_compatible"
    block: dict[str, Any] = {"type": kind, "enabled": legacy.enabled}
    if legacy.base_url is not None:
        block["base_url"] = legacy.base_url
    reason = None
    if legacy.api_key_env is not None:
        key = env.get(legacy.api_key_env, "")
        if key:
            block["api_key"] = key
        else:
            reason = f"api_key is empty: set {legacy.api_key_env}"
    models: dict[str, Any] = {}
    for row in rows:
        prices = row.cost_per_1k_tokens
        price_in, price_out = (prices, prices) if isinstance(prices, float) else prices.pair()
        capabilities = {_CAPABILITIES[c.strip().lower()] for c in row.capabilities}
        models[row.model] = {
            "input_per_1m": price_in * 1000,
            "output_per_1m": price_out * 1000,
            "capabilities": sorted(c for c in capabilities if c is not None),
        }
    if legacy.default_model is not None:
        models.setdefault(legacy.default_model, {})
    block["models"] = models
    return LegacyBlock(block, reason, legacy.default_model)
