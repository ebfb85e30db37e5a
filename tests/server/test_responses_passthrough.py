"""``POST /v1/responses`` through a real ``runestone serve``, passed through to upstreams
that speak the Responses API: the body goes as the client wrote it (but its model and
``stream``), the answer comes back as the upstream wrote it; what only such an upstream
can carry (``previous_response_id`` …) goes to it alone, or is a 400 naming it; failover
happens before the first content, a cut after it ends the stream with an error, never a
continuation. Other upstreams still get the translation onto chat completions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from runestone.testing.upstream import KNOWN_TEXT, KNOWN_TOOL_ARGUMENTS, FakeUpstream
from tests.server.serving import RunningServer, raw

TIMEOUTS = {"connect": 2, "first_token": 5, "idle": 5, "total": 20}
LENIENT = {"consecutive_failures": 1000, "min_calls": 1000}
TOOLS = {"capabilities": ["tools"]}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}


def _block(kind: str, base_url: str, models: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "base_url": base_url,
        "api_key": f"sk-test-{kind}",
        "timeouts": TIMEOUTS,
        "retry": {"max_attempts": 1},
        "circuit_breaker": LENIENT,
        "models": models,
        **extra,
    }


def _config(up: FakeUpstream) -> dict[str, Any]:
    return {
        "providers": {
            "gpt": _block(
                "openai",
                up.openai_base_url,
                {
                    "healthy": {"capabilities": ["tools", "thinking"]},
                    "unavailable": {},
                    "cut-after:5": {},
                    "tool-call": TOOLS,
                },
            ),
            # A 429 cools its whole provider down: this one fails on its own.
            "limited": _block(
                "openai",
                up.openai_base_url,
                {"rate-limit": {}},
                circuit_breaker={**LENIENT, "rate_limit_cooldown": 0.01},
            ),
            "compat": _block("openai_compatible", up.openai_base_url, {"healthy": TOOLS}),
            "native-compat": _block(
                "openai_compatible", up.openai_base_url, {"healthy": {}}, responses=True
            ),
            "claude": _block("anthropic", up.anthropic_base_url, {"healthy": TOOLS}),
        },
        "routing": {
            "policy": "priority",
            "aliases": {
                "native": ["gpt/healthy"],
                "native-compat": ["native-compat/healthy"],
                "translated": ["compat/healthy"],
                "rate-limited-first": ["limited/rate-limit", "gpt/healthy"],
                "unavailable-first": ["gpt/unavailable", "gpt/healthy"],
                "others-first": ["claude/healthy", "compat/healthy", "gpt/healthy"],
                "none-native": ["claude/healthy", "compat/healthy"],
                "cut": ["gpt/cut-after:5", "gpt/healthy"],
            },
            "resume": {"prefill": True, "replay": True},
        },
        "logging": {"level": "WARNING"},
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with RunningServer(_config(upstream), tmp_path_factory.mktemp("responses")) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(upstream: FakeUpstream) -> None:
    upstream.reset()


@pytest.fixture
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def direct(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    """The fake upstream itself, with no gateway in between."""
    with openai.OpenAI(base_url=upstream.openai_base_url, api_key="k", max_retries=0) as sdk:
        yield sdk


_VARYING = frozenset({"id", "item_id", "created_at", "completed_at"})


def _without_ids(value: Any) -> Any:
    """``value`` with what differs between two answers (ids, times) left out."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in _VARYING}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in body.decode().split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


# --------------------------------------------------------------------------- the answer


@pytest.mark.parametrize("model", ["native", "native-compat"])
def test_a_whole_response_is_the_upstreams_own(
    client: openai.OpenAI, direct: openai.OpenAI, upstream: FakeUpstream, model: str
) -> None:
    answered = client.responses.with_raw_response.create(model=model, input="Say it.")
    response = answered.parse()
    assert response.output_text == KNOWN_TEXT
    assert answered.headers["x-runestone-provider"] == {"native": "gpt"}.get(model, model)
    (attempt,) = upstream.attempts
    assert attempt.api == "openai_responses"
    # Passed through: the upstream's answer as it wrote it (its name for the model too).
    assert response.model == "healthy"
    mine = direct.responses.create(model="healthy", input="Say it.")
    assert _without_ids(response.model_dump()) == _without_ids(mine.model_dump())


def test_a_streamed_response_is_the_upstreams_events(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {"model": "native", "input": "Say it.", "stream": True}
    through = raw(server, "POST", "/v1/responses", body)
    assert through.status == 200
    upstream.reset()
    own = raw_upstream(upstream, {**body, "model": "healthy"})
    passed, written = _events(through.body), _events(own)
    assert [kind for kind, _ in passed] == [kind for kind, _ in written]
    assert _without_ids([data for _, data in passed]) == _without_ids([d for _, d in written])
    (attempt,) = upstream.attempts
    assert attempt.stream


def raw_upstream(upstream: FakeUpstream, body: dict[str, Any]) -> bytes:
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(upstream.openai_base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
    try:
        connection.request(
            "POST", "/v1/responses", json.dumps(body), {"Content-Type": "application/json"}
        )
        return connection.getresponse().read()
    finally:
        connection.close()


def test_the_sdk_streams_a_passed_through_response(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with client.responses.stream(model="native", input="Say it.") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert final.output_text == KNOWN_TEXT
    assert final.usage is not None
    assert final.usage.output_tokens == len(KNOWN_TEXT.split(" "))
    assert [a.api for a in upstream.attempts] == ["openai_responses"]


def test_a_tool_call_comes_back_as_the_upstreams_function_call(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    response = client.responses.create(model="gpt/tool-call", input="Weather?", tools=[WEATHER])
    (call,) = response.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.arguments == KNOWN_TOOL_ARGUMENTS
    assert [a.api for a in upstream.attempts] == ["openai_responses"]


# --------------------------------------------------------------------------- the request

EVERY_FIELD: dict[str, Any] = {
    "model": "native",
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "b64=="},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "The weather?"},
    ],
    "tools": [WEATHER, {"type": "web_search"}],
    "tool_choice": "auto",
    "include": ["reasoning.encrypted_content"],
    "store": True,
    "metadata": {"k": "v"},
    "temperature": 0.5,
    "top_p": 0.9,
    "max_output_tokens": 100,
    "reasoning": {"effort": "low", "summary": "auto"},
    "text": {"format": {"type": "text"}, "verbosity": "low"},
    "parallel_tool_calls": False,
    "truncation": "auto",
    "service_tier": "auto",
    "prompt_cache_key": "pc",
    "safety_identifier": "si",
    "a_field_from_next_year": {"nested": [1, 2, {"deep": True}]},
}


@pytest.mark.parametrize("stream", [False, True])
def test_the_upstream_receives_every_field_the_client_sent(
    server: RunningServer, upstream: FakeUpstream, stream: bool
) -> None:
    body = {**EVERY_FIELD, "stream": stream}
    response = raw(server, "POST", "/v1/responses", body)
    assert response.status == 200, response.body
    (attempt,) = upstream.attempts
    assert attempt.api == "openai_responses"
    assert attempt.body == {**body, "model": "healthy", "stream": stream}


def test_a_plain_body_keeps_its_store_and_nothing_is_added(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    client.responses.create(model="native", input="Hi", store=False)
    (attempt,) = upstream.attempts
    assert attempt.body == {"model": "healthy", "input": "Hi", "store": False, "stream": False}


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize("stream", [False, True])
def test_previous_response_id_goes_to_the_native_candidate_alone(
    server: RunningServer, upstream: FakeUpstream, stream: bool
) -> None:
    body = {
        "model": "others-first",
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "Sunny"}],
        "previous_response_id": "resp_123",
        "stream": stream,
    }
    response = raw(server, "POST", "/v1/responses", body)
    assert response.status == 200, response.body
    assert response.headers["x-runestone-provider"] == "gpt"
    (attempt,) = upstream.attempts  # claude and compat skipped: they could not carry it
    assert attempt.api == "openai_responses"
    assert attempt.body["previous_response_id"] == "resp_123"


@pytest.mark.parametrize("stream", [False, True])
def test_previous_response_id_with_no_native_candidate_is_a_400_naming_it(
    client: openai.OpenAI, upstream: FakeUpstream, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="none-native", input="Hi", previous_response_id="resp_123", stream=stream
        )
    assert caught.value.param == "previous_response_id"
    message = caught.value.message
    assert "stateless" in message
    assert "claude/healthy: cannot carry previous_response_id" in message
    assert "compat/healthy: cannot carry previous_response_id" in message
    assert upstream.attempts == []


def test_a_built_in_tool_with_no_native_candidate_is_a_400_naming_it(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="none-native", input="Hi", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type"
    assert "only function tools" in caught.value.message
    assert upstream.attempts == []


def test_a_plain_body_is_still_translated_for_the_other_upstreams(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    assert client.responses.create(model="others-first", input="Hi").output_text == KNOWN_TEXT
    assert [a.api for a in upstream.attempts] == ["anthropic"]
    upstream.reset()
    # openai_compatible without responses: true: its chat completions.
    assert client.responses.create(model="translated", input="Hi").output_text == KNOWN_TEXT
    assert [a.api for a in upstream.attempts] == ["openai"]


# --------------------------------------------------------------------------- failover, cuts


@pytest.mark.parametrize(
    ("model", "first"), [("rate-limited-first", "rate-limit"), ("unavailable-first", "unavailable")]
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_failure_before_content_fails_over_to_the_next_candidate(
    client: openai.OpenAI, upstream: FakeUpstream, model: str, first: str, stream: bool
) -> None:
    if stream:
        with client.responses.stream(model=model, input="Hi") as events:
            text = events.get_final_response().output_text
    else:
        text = client.responses.create(model=model, input="Hi").output_text
    assert text == KNOWN_TEXT
    assert [a.model for a in upstream.attempts] == [first, "healthy"]
    assert {a.api for a in upstream.attempts} == {"openai_responses"}


def test_a_stream_cut_after_content_ends_with_an_error_and_is_not_continued(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {"model": "cut", "input": "Hi", "stream": True}
    response = raw(server, "POST", "/v1/responses", body)
    assert response.status == 200
    events = _events(response.body)
    kinds = [kind for kind, _ in events]
    assert "response.completed" not in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    deltas = [data["delta"] for kind, data in events if kind == "response.output_text.delta"]
    assert "".join(deltas) == "".join(KNOWN_TEXT.split(" ")[i] + " " for i in range(5))
    # The gateway's own events go on from the upstream's numbering.
    numbers = [data["sequence_number"] for _, data in events]
    assert numbers == list(range(len(numbers)))
    assert [a.model for a in upstream.attempts] == ["cut-after:5"]


def test_the_sdk_raises_on_a_cut_stream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        list(client.responses.create(model="cut", input="Hi", stream=True))
