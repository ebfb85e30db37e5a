"""instructor on the OpenAI SDK against the gateway: ``response_model=`` in its default mode
(``Mode.TOOLS``, a forced tool call whose arguments are the model's fields)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Literal

import instructor
import pydantic
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.clients.conftest import DUMMY_KEY, TIMEOUT, Gateway, Location

pytestmark = pytest.mark.timeout(30)


class Forecast(pydantic.BaseModel):
    city: str
    unit: Literal["celsius", "fahrenheit"]
    temperature: int = pydantic.Field(ge=-50, le=60)
    tags: list[str] = pydantic.Field(min_length=2)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[instructor.Instructor]:
    with OpenAI(
        base_url=gateway.base_url, api_key=DUMMY_KEY, max_retries=0, timeout=TIMEOUT
    ) as sdk:
        yield instructor.from_openai(sdk)


ASK = [{"role": "user", "content": "Where is it?"}]


def test_the_default_mode_is_a_forced_tool_call(client: instructor.Instructor) -> None:
    assert client.mode is instructor.Mode.TOOLS


def test_a_response_model_comes_back_as_a_valid_instance(
    gateway: Gateway, client: instructor.Instructor
) -> None:
    location = client.chat.completions.create(
        model=gateway.tool_model, response_model=Location, messages=ASK
    )
    # Compared field by field: instructor keeps the raw completion on the instance.
    assert isinstance(location, Location)
    assert location.model_dump() == {"location": gateway.location}


def test_the_raw_completion_behind_it_is_a_tool_call(
    gateway: Gateway, client: instructor.Instructor
) -> None:
    location, completion = client.chat.completions.create_with_completion(
        model=gateway.tool_model, response_model=Location, messages=ASK
    )
    assert location.location == gateway.location
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "Location"
    assert completion.choices[0].finish_reason in ("tool_calls", "stop")


def test_a_richer_model_is_filled_with_values_valid_for_its_schema(bundled: Gateway) -> None:
    with OpenAI(base_url=bundled.base_url, api_key=DUMMY_KEY, max_retries=0) as sdk:
        forecast = instructor.from_openai(sdk).chat.completions.create(
            model=bundled.tool_model, response_model=Forecast, messages=ASK
        )
    assert forecast.city == "London"
    assert forecast.unit == "celsius"
    assert -50 <= forecast.temperature <= 60
    assert len(forecast.tags) >= 2


def test_a_partial_stream_ends_with_the_whole_instance(
    gateway: Gateway, client: instructor.Instructor
) -> None:
    partials = list(
        client.chat.completions.create_partial(
            model=gateway.tool_model, response_model=Location, messages=ASK
        )
    )
    assert partials
    assert partials[-1].location == gateway.location


def test_the_async_client_gets_the_same_instance(gateway: Gateway) -> None:
    async def main() -> Location:
        async with AsyncOpenAI(
            base_url=gateway.base_url, api_key=DUMMY_KEY, max_retries=0, timeout=TIMEOUT
        ) as sdk:
            return await instructor.from_openai(sdk).chat.completions.create(
                model=gateway.tool_model, response_model=Location, messages=ASK
            )

    location = asyncio.run(main())
    assert isinstance(location, Location)
    assert location.model_dump() == {"location": gateway.location}
