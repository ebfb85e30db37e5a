"""What every provider shares: config validation, models, cost, health, complete()."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runestone.exceptions import ConfigError
from runestone.io import DataPlane
from runestone.messages import ChatRequest, Done, StreamEvent, TextDelta, ToolCallDelta, Usage
from runestone.providers import Provider, ProviderSettings
from runestone.providers.base import ProviderOptions
from tests.providers.helpers import request


class ScriptedOptions(ProviderOptions, frozen=True):
    flavour: str = "plain"


class Scripted(Provider):
    type_name = "scripted"
    options_type = ScriptedOptions

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("a")
        yield ToolCallDelta(0, "c1", "f", '{"x"')
        yield TextDelta("b")
        yield ToolCallDelta(0, None, None, ": 1}")
        usage = Usage(3, 2)
        yield usage
        yield Done("tool_calls", self.name, request.model, usage)


def settings(**extra: object) -> ProviderSettings:
    return ProviderSettings.from_dict(
        "s",
        {
            "type": "scripted",
            "models": {
                "cheap": {"input_per_1m": 1.0, "output_per_1m": 2.0},
                "alpha": {"capabilities": ["tools"]},
            },
            **extra,
        },
    )


def test_complete_assembles_text_and_tool_calls_from_the_stream(plane: DataPlane) -> None:
    completion = plane.run(Scripted(settings()).complete(request("cheap")))
    assert completion.text == "ab"
    assert [(c.id, c.name, c.arguments) for c in completion.tool_calls] == [("c1", "f", '{"x": 1}')]
    assert completion.finish_reason == "tool_calls"
    assert completion.usage == Usage(3, 2)


def test_models_are_listed_by_name_and_priced_from_the_table() -> None:
    provider = Scripted(settings())
    assert [m.name for m in provider.list_models()] == ["alpha", "cheap"]
    assert provider.estimate_cost("cheap", Usage(1_000_000, 500_000)) == pytest.approx(2.0)
    assert provider.estimate_cost("unpriced", Usage(10, 10)) is None


def test_unknown_options_are_refused_with_the_key_path() -> None:
    Scripted(settings(flavour="mint"))
    with pytest.raises(ConfigError) as caught:
        Scripted(settings(colour="red"))
    assert caught.value.path == "providers.s.colour"
    assert "flavour" in str(caught.value)


def test_a_provider_with_nothing_to_probe_is_healthy(plane: DataPlane) -> None:
    assert plane.run(Scripted(settings()).check_health()).healthy is True


def test_a_provider_repr_names_it_without_secrets() -> None:
    provider = Scripted(settings(api_key="sk-abcdefgh12345678"))
    assert repr(provider) == "<Scripted 's'>"
