"""Provider types by name: built-ins, registered classes and entry-point plugins."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runestone.exceptions import ConfigError
from runestone.messages import ChatRequest, Done, StreamEvent
from runestone.providers import (
    AnthropicProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    Provider,
    ProviderRegistry,
    ProviderSettings,
    SimulatedProvider,
    provider_type,
    provider_types,
)


class EchoProvider(Provider):
    type_name = "echo"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        yield Done("stop", self.name, request.model)


def test_the_built_in_types_are_there_by_name() -> None:
    assert provider_type("openai") is OpenAIProvider
    assert provider_type("anthropic") is AnthropicProvider
    assert provider_type("openai_compatible") is OpenAICompatibleProvider
    assert provider_type("simulated") is SimulatedProvider
    assert {"openai", "anthropic", "openai_compatible", "simulated"} <= set(provider_types())


def test_a_registered_type_builds_from_settings() -> None:
    registry = ProviderRegistry(group=None)
    registry.register("echo", EchoProvider)
    provider = registry.create(ProviderSettings.from_dict("e", {"type": "echo"}))
    assert isinstance(provider, EchoProvider)
    assert "echo" in registry.names()


def test_an_unknown_type_is_a_config_error_listing_the_known_ones() -> None:
    registry = ProviderRegistry(group=None)
    with pytest.raises(ConfigError) as caught:
        registry.create(ProviderSettings.from_dict("x", {"type": "gemini"}))
    assert caught.value.path == "providers.x.type"
    assert "'gemini'" in str(caught.value)
    assert "openai" in str(caught.value)


def test_a_name_is_not_silently_taken_over() -> None:
    registry = ProviderRegistry(group=None)
    registry.register("echo", EchoProvider)
    registry.register("echo", EchoProvider)  # the same class again is fine
    with pytest.raises(ValueError, match="already"):
        registry.register("echo", SimulatedProvider)
    registry.register("echo", SimulatedProvider, replace=True)
    assert registry.get("echo") is SimulatedProvider


def test_only_provider_classes_can_be_registered() -> None:
    registry = ProviderRegistry(group=None)
    with pytest.raises(TypeError, match="Provider subclass"):
        registry.register("bad", dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty name"):
        registry.register(" ", EchoProvider)


def _install_plugin(root: Path, group: str, entries: dict[str, str]) -> None:
    (root / "rs_plugin_mod.py").write_text(
        textwrap.dedent(
            """
            from runestone.messages import Done
            from runestone.providers import Provider

            class PluginProvider(Provider):
                type_name = "plugged"

                async def stream(self, request):
                    yield Done("stop", self.name, request.model)
            """
        )
    )
    dist = root / "rs_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rs-plugin\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
    (dist / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")


def test_entry_point_plugins_are_found_and_a_broken_one_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = "runestone.providers.test"
    _install_plugin(
        tmp_path,
        group,
        {"plugged": "rs_plugin_mod:PluginProvider", "broken": "rs_plugin_missing:Nothing"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ProviderRegistry(group=group)
    cls = registry.get("plugged")
    assert cls.__name__ == "PluginProvider"
    assert "plugged" in registry.names()
    with pytest.raises(ConfigError, match="plugin that failed to load: ModuleNotFoundError"):
        registry.get("broken")
