"""LiteLLM as a client library (``litellm.completion(model="openai/<alias>", api_base=...)``)
against the gateway: whole, streamed, async, tools, and ``litellm.responses``.

(conftest sets ``LITELLM_LOCAL_MODEL_COST_MAP`` before this module imports litellm, so it
reads its bundled price list instead of fetching one.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

from tests.clients.conftest import DUMMY_KEY, QUESTION, TIMEOUT, Gateway

pytestmark = pytest.mark.timeout(30)

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather at a location.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(autouse=True)
def event_loop_for_litellm() -> Iterator[None]:
    """A current event loop for the test's thread, closed after it.

    LiteLLM's sync calls ask ``asyncio.get_event_loop()``, which on Python 3.11 makes one
    and leaves it set, open, when there is none; that loop's ``ResourceWarning`` then
    surfaces in whichever later test drops it. Given one, LiteLLM uses it and we close it.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture(autouse=True)
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """One request per call: a failure shows at once."""
    monkeypatch.setattr(litellm, "num_retries", 0)


def options(gateway: Gateway, model: str) -> dict[str, Any]:
    return {
        "model": f"openai/{model}",
        "api_base": gateway.base_url,
        "api_key": DUMMY_KEY,
        "timeout": TIMEOUT,
        "max_retries": 0,
    }


def test_completion_returns_the_whole_answer(gateway: Gateway) -> None:
    response: Any = litellm.completion(messages=HELLO, **options(gateway, gateway.text_model))
    [choice] = response.choices
    assert choice.message.content == gateway.text
    assert choice.finish_reason == "stop"
    assert response.usage.completion_tokens > 0


def test_a_streamed_completion_adds_up_to_the_whole_answer(gateway: Gateway) -> None:
    stream: Any = litellm.completion(
        messages=HELLO, stream=True, **options(gateway, gateway.text_model)
    )
    chunks = list(stream)
    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices[0].delta.content]
    assert len(pieces) > 5
    assert "".join(pieces) == gateway.text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_acompletion_returns_the_whole_answer(gateway: Gateway) -> None:
    async def main() -> Any:
        try:
            return await litellm.acompletion(messages=HELLO, **options(gateway, gateway.text_model))
        finally:
            # LiteLLM logs success on a worker task of the running loop: let it finish here,
            # not on a loop that no longer exists.
            await GLOBAL_LOGGING_WORKER.flush()
            await GLOBAL_LOGGING_WORKER.stop()

    response = asyncio.run(main())
    assert response.choices[0].message.content == gateway.text


def test_a_completion_with_tools_gets_a_call_with_schema_valid_arguments(
    gateway: Gateway,
) -> None:
    response: Any = litellm.completion(
        messages=[{"role": "user", "content": QUESTION}],
        tools=[WEATHER],
        **options(gateway, gateway.tool_model),
    )
    [choice] = response.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": gateway.location}


def test_responses_returns_the_whole_answer(gateway: Gateway) -> None:
    response: Any = litellm.responses(input="Hello", **options(gateway, gateway.text_model))
    assert response.status == "completed"
    [message] = [item for item in response.output if item.type == "message"]
    assert "".join(part.text for part in message.content) == gateway.text
    assert response.usage.output_tokens > 0


# LiteLLM's streaming iterator prices the terminal event on a copy of the response whose usage
# it swaps for a chat-shaped dict (completion_tokens, ...: stamp_responses_usage_cost), and
# pydantic warns when that copy is serialized. The gateway's response.completed usage is in
# the Responses shape (input_tokens, output_tokens, ...); the warning is LiteLLM's own.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_a_streamed_responses_call_ends_with_the_completed_response(gateway: Gateway) -> None:
    stream: Any = litellm.responses(
        input="Hello", stream=True, **options(gateway, gateway.text_model)
    )
    events = list(stream)
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == gateway.text
    assert events[-1].type == "response.completed"
    assert events[-1].response.status == "completed"


def anthropic_options(gateway: Gateway) -> dict[str, Any]:
    return {
        "model": f"anthropic/{gateway.claude_text_model}",
        "api_base": gateway.url,
        "api_key": DUMMY_KEY,
        "timeout": TIMEOUT,
        "max_retries": 0,
    }


def test_the_anthropic_provider_on_messages_returns_the_whole_answer(gateway: Gateway) -> None:
    response: Any = litellm.completion(
        messages=HELLO, max_tokens=1024, **anthropic_options(gateway)
    )
    assert response.choices[0].message.content == gateway.text
    assert response.choices[0].finish_reason == "stop"


def test_the_anthropic_providers_default_max_tokens_goes_to_the_larger_model(
    bundled: Gateway,
) -> None:
    # LiteLLM sends max_tokens=128000 for an Anthropic model it does not know. That does not
    # fit sim-fast's 16000-token window, but the bundled config names sim-smart (200000) as
    # sim-fast's context-window fallback ("tried when a prompt does not fit the model's
    # context window"); the gateway answers 400 "nothing can serve 'fast'" instead.
    response: Any = litellm.completion(messages=HELLO, **anthropic_options(bundled))
    assert response.choices[0].message.content == bundled.text
    assert response.model == "sim-smart"
