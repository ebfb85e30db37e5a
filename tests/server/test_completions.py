"""``POST /v1/completions`` through a real ``runestone serve``: OpenAI's legacy completions go,
as the client wrote them, only to OpenAI-format models listing the ``completions``
capability, and their answers come back as the upstream wrote them; failover happens
before the first token, a cut after it ends the stream with an error, never a
continuation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.server.serving import RunningServer, raw, sse_data

TIMEOUTS = {"connect": 2, "first_token": 5, "idle": 5, "total": 20}
LENIENT = {"consecutive_failures": 1000, "min_calls": 1000}
COMPLETES = {"capabilities": ["completions"]}


def _block(kind: str, base_url: str, models: dict[str, Any], **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": kind,
        "base_url": base_url,
        "timeouts": TIMEOUTS,
        "retry": {"max_attempts": 1},
        "circuit_breaker": LENIENT,
        "models": models,
        **extra,
    }
    if kind != "simulated":
        block["api_key"] = f"sk-test-{kind}"
    else:
        del block["base_url"], block["timeouts"]
    return block


def _config(up: FakeUpstream) -> dict[str, Any]:
    return {
        "providers": {
            "gpt": _block(
                "openai",
                up.openai_base_url,
                {
                    "healthy": COMPLETES,
                    "unavailable": COMPLETES,
                    "cut-after:5": COMPLETES,
                    "gpt-chat": {"capabilities": ["tools"]},  # chat only
                },
            ),
            # A 429 cools its whole provider down: this one fails on its own.
            "limited": _block(
                "openai",
                up.openai_base_url,
                {"rate-limit": COMPLETES},
                circuit_breaker={**LENIENT, "rate_limit_cooldown": 0.01},
            ),
            "compat": _block("openai_compatible", up.openai_base_url, {"healthy": COMPLETES}),
            "claude": _block("anthropic", up.anthropic_base_url, {"healthy": COMPLETES}),
            "sim": _block("simulated", "", {"sim-fast": COMPLETES}),
        },
        "routing": {
            "policy": "priority",
            "aliases": {
                "instruct": ["gpt/healthy"],
                "compat": ["compat/healthy"],
                "rate-limited-first": ["limited/rate-limit", "gpt/healthy"],
                "unavailable-first": ["gpt/unavailable", "gpt/healthy"],
                "others-first": ["claude/healthy", "sim/sim-fast", "gpt/gpt-chat", "gpt/healthy"],
                "none-capable": ["claude/healthy", "sim/sim-fast", "gpt/gpt-chat"],
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
    with RunningServer(_config(upstream), tmp_path_factory.mktemp("completions")) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(upstream: FakeUpstream) -> None:
    upstream.reset()


@pytest.fixture
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


# --------------------------------------------------------------------------- the answer


@pytest.mark.parametrize("model", ["instruct", "compat"])
def test_a_whole_completion_is_the_upstreams_answer(
    client: openai.OpenAI, upstream: FakeUpstream, model: str
) -> None:
    response = client.completions.with_raw_response.create(model=model, prompt="Say it.")
    completion = response.parse()
    assert completion.object == "text_completion"
    (choice,) = completion.choices
    assert choice.text == KNOWN_TEXT
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(KNOWN_TEXT.split(" "))
    # Passed through: the upstream's own body (its id, its name for the model).
    assert completion.id.startswith("cmpl-")
    assert completion.model == "healthy"
    assert completion.system_fingerprint == "fp_runestone"
    assert response.headers["x-runestone-provider"] == model.replace("instruct", "gpt")
    (attempt,) = upstream.attempts
    assert attempt.api == "openai_completions"


def test_a_streamed_completion_is_the_upstreams_frames_with_usage(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    chunks = list(
        client.completions.create(
            model="instruct",
            prompt=["Say the paragraph."],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {chunk.object for chunk in chunks} == {"text_completion"}
    assert "".join(c.choices[0].text for c in chunks if c.choices) == KNOWN_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == len(KNOWN_TEXT.split(" "))
    assert [a.api for a in upstream.attempts] == ["openai_completions"]


def test_a_stream_that_did_not_ask_for_usage_gets_no_usage_chunk(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {"model": "instruct", "prompt": "Hi", "stream": True}
    response = raw(server, "POST", "/v1/completions", body)
    assert response.status == 200
    data = sse_data(response.body)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert all(chunk["choices"] for chunk in chunks)
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == KNOWN_TEXT
    # The gateway still asked for the usage, for its own books.
    (attempt,) = upstream.attempts
    assert attempt.body["stream_options"] == {"include_usage": True}


# --------------------------------------------------------------------------- the request

EVERY_FIELD: dict[str, Any] = {
    "model": "instruct",
    "prompt": [[1734, 318], [40, 588]],
    "max_tokens": 30,
    "n": 2,
    "best_of": 3,
    "echo": True,
    "logprobs": 2,
    "suffix": " The end.",
    "stop": ["\n\n"],
    "seed": 7,
    "temperature": 0.5,
    "top_p": 0.9,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.2,
    "logit_bias": {"50256": -100},
    "user": "u-1",
    "a_field_from_next_year": {"nested": [1, 2, {"deep": True}]},
}


@pytest.mark.parametrize("stream", [False, True])
def test_the_upstream_receives_every_field_the_client_sent(
    server: RunningServer, upstream: FakeUpstream, stream: bool
) -> None:
    body = {**EVERY_FIELD, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": False}
    response = raw(server, "POST", "/v1/completions", body)
    assert response.status == 200, response.body
    (attempt,) = upstream.attempts
    wanted = {**body, "model": "healthy", "stream": stream}
    if stream:
        wanted["stream_options"] = {"include_usage": True}  # the gateway's books need it
    assert attempt.body == wanted
    assert attempt.stream is stream


def test_the_sdk_sends_what_it_was_given_and_the_upstream_gets_it(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    client.completions.create(model="instruct", prompt="Hi", max_tokens=5, echo=True, n=1)
    (attempt,) = upstream.attempts
    assert attempt.body == {
        "model": "healthy",
        "prompt": "Hi",
        "max_tokens": 5,
        "echo": True,
        "n": 1,
        "stream": False,
    }


# --------------------------------------------------------------------------- failover, cuts


@pytest.mark.parametrize(
    ("model", "first"), [("rate-limited-first", "rate-limit"), ("unavailable-first", "unavailable")]
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_failure_before_content_fails_over_to_the_next_candidate(
    client: openai.OpenAI, upstream: FakeUpstream, model: str, first: str, stream: bool
) -> None:
    if stream:
        text = "".join(
            c.choices[0].text
            for c in client.completions.create(model=model, prompt="Hi", stream=True)
            if c.choices
        )
    else:
        text = client.completions.create(model=model, prompt="Hi").choices[0].text
    assert text == KNOWN_TEXT
    assert [a.model for a in upstream.attempts] == [first, "healthy"]
    assert {a.api for a in upstream.attempts} == {"openai_completions"}


def test_a_stream_cut_after_content_ends_with_an_error_and_is_not_continued(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    body = {"model": "cut", "prompt": "Hi", "stream": True}
    response = raw(server, "POST", "/v1/completions", body)
    assert response.status == 200
    data = sse_data(response.body)
    assert "[DONE]" not in data
    last = json.loads(data[-1])
    assert set(last) == {"error"}
    assert last["error"]["message"]
    texts = [json.loads(item)["choices"][0]["text"] for item in data[:-1]]
    assert "".join(texts) == "".join(KNOWN_TEXT.split(" ")[i] + " " for i in range(5))
    assert [a.model for a in upstream.attempts] == ["cut-after:5"]


def test_the_sdk_raises_on_a_cut_stream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        list(client.completions.create(model="cut", prompt="Hi", stream=True))


# --------------------------------------------------------------------------- routing


def test_candidates_that_cannot_take_a_completion_are_skipped(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    completion = client.completions.create(model="others-first", prompt="Hi")
    assert completion.choices[0].text == KNOWN_TEXT
    assert [(a.api, a.model) for a in upstream.attempts] == [("openai_completions", "healthy")]


@pytest.mark.parametrize("stream", [False, True])
def test_no_candidate_that_can_take_a_completion_is_a_400_naming_why(
    server: RunningServer, upstream: FakeUpstream, stream: bool
) -> None:
    response = raw(
        server,
        "POST",
        "/v1/completions",
        {"model": "none-capable", "prompt": "Hi", "stream": stream},
    )
    assert response.status == 400
    error = response.error
    message = error["message"]
    assert "claude/healthy: cannot carry prompt (only an upstream speaking openai_completions" in (
        message
    )
    assert "sim/sim-fast: cannot carry prompt" in message
    assert "gpt/gpt-chat: lacks completions" in message
    assert upstream.attempts == []


def test_a_chat_request_still_goes_to_a_chat_model(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    reply = client.chat.completions.create(
        model="gpt/gpt-chat", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.choices[0].message.content == KNOWN_TEXT
    assert [a.api for a in upstream.attempts] == ["openai"]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "Hi"}, "model"),
        ({"model": "instruct"}, "prompt"),
        ({"model": "instruct", "prompt": []}, "prompt"),
        ({"model": "instruct", "prompt": ["a", 1]}, "prompt[1]"),
        ({"model": "instruct", "prompt": "Hi", "max_tokens": -1}, "max_tokens"),
        ({"model": "instruct", "prompt": "Hi", "stream": "yes"}, "stream"),
    ],
)
def test_a_bad_body_is_a_400_naming_its_field_in_openais_shape(
    server: RunningServer, upstream: FakeUpstream, body: dict[str, Any], field: str
) -> None:
    response = raw(server, "POST", "/v1/completions", body)
    assert response.status == 400
    error = response.error
    assert error["param"] == field
    assert error["type"] == "invalid_request_error"
    assert upstream.attempts == []


def test_an_unknown_model_is_a_404(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/completions", {"model": "nope", "prompt": "Hi"})
    assert response.status == 404
    assert response.error["code"] == "model_not_found"
