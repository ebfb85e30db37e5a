"""The simulated provider: no network, the same text every time, at a configured pace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runestone.exceptions import ConfigError
from runestone.io import DataPlane
from runestone.messages import ChatRequest, FinishReason, TextDelta, ToolCallDelta, Usage
from runestone.providers import ProviderSettings, SimulatedProvider, create_provider
from runestone.providers.simulated import DEFAULT_TEXT, split_tokens
from tests.providers.helpers import collect, request


def simulated(**options: Any) -> SimulatedProvider:
    provider = create_provider(
        ProviderSettings.from_dict("sim", {"type": "simulated", "options": options})
    )
    assert isinstance(provider, SimulatedProvider)
    return provider


def test_it_streams_the_default_text_word_by_word_then_usage_and_done(plane: DataPlane) -> None:
    outcome = collect(plane, simulated(token_rate=0, first_token_delay=0), request("any-model"))
    assert outcome.error is None
    assert outcome.text == DEFAULT_TEXT
    assert outcome.texts == list(split_tokens(DEFAULT_TEXT))
    assert len(outcome.texts) > 20
    assert outcome.usage == Usage(
        len(["Say", "the", "known", "text", "please"]), len(outcome.texts)
    )
    assert outcome.done is not None
    assert (outcome.done.finish_reason, outcome.done.provider, outcome.done.model) == (
        FinishReason.STOP,
        "sim",
        "any-model",
    )


def test_the_answer_is_the_same_every_time(plane: DataPlane) -> None:
    provider = simulated(token_rate=0, first_token_delay=0, text="one two three")
    first = collect(plane, provider, request("m"))
    second = collect(plane, provider, request("m", text="something else"))
    assert first.texts == second.texts == ["one ", "two ", "three"]


def test_the_pace_follows_the_token_rate_and_first_token_delay() -> None:
    provider = simulated(token_rate=100, first_token_delay=0.1, text="a b c d e f g h i j k")

    async def timed() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = None
        async for event in provider.stream(request("m")):
            if first is None and isinstance(event, TextDelta):
                first = loop.time() - start
        assert first is not None
        return first, loop.time() - start

    first, total = asyncio.run(timed())
    assert first >= 0.1
    assert total >= 0.1 + 10 * 0.01  # 11 tokens, 10 gaps of 1/100 s


def test_max_tokens_cuts_the_answer_with_finish_reason_length(plane: DataPlane) -> None:
    outcome = collect(
        plane, simulated(token_rate=0, first_token_delay=0), request("m", max_tokens=3)
    )
    assert len(outcome.texts) == 3
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.LENGTH


def test_a_prefill_of_the_text_gets_only_the_rest(plane: DataPlane) -> None:
    provider = simulated(token_rate=0, first_token_delay=0)
    start = "".join(split_tokens(DEFAULT_TEXT)[:4])
    chat = ChatRequest.from_dict(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": start},
            ],
        }
    )
    assert start + collect(plane, provider, chat).text == DEFAULT_TEXT


def test_a_required_tool_choice_yields_one_call(plane: DataPlane) -> None:
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    outcome = collect(
        plane,
        simulated(first_token_delay=0),
        request("m", tools=tools, tool_choice="required"),
    )
    assert outcome.tool_deltas == [ToolCallDelta(0, "call_simulated_0", "lookup", "{}")]
    assert outcome.done is not None
    assert outcome.done.finish_reason == FinishReason.TOOL_CALLS


def test_complete_assembles_the_stream(plane: DataPlane) -> None:
    completion = plane.run(simulated(token_rate=0, first_token_delay=0).complete(request("m")))
    assert completion.text == DEFAULT_TEXT
    assert completion.provider == "sim"


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"token_rate": -1}, "providers.sim.token_rate"),
        ({"first_token_delay": "soon"}, "providers.sim.first_token_delay"),
        ({"text": ""}, "providers.sim.text"),
        ({"speed": 3}, "providers.sim.speed"),
    ],
)
def test_bad_options_name_their_key_path(options: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        simulated(**options)
    assert caught.value.path == path
