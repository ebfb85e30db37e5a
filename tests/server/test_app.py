"""The gateway through the official OpenAI SDK and raw HTTP: a real ``runestone serve`` process
in front of the fake upstream (see conftest.py for its providers, models and keys)."""

from __future__ import annotations

import functools
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

from runestone.testing.upstream import KNOWN_TEXT, KNOWN_TOOL_ARGUMENTS, FakeUpstream
from tests.server.conftest import MAX_BODY, OPEN_KEY
from tests.server.serving import RunningServer, sse_data
from tests.server.serving import raw as raw_with

# Every exchange here carries the unlimited key unless a test says otherwise.
raw = functools.partial(raw_with, key=OPEN_KEY)

USER = [{"role": "user", "content": "Tell me the known text."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


@pytest.fixture
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=OPEN_KEY, max_retries=0) as sdk:
        yield sdk


# --------------------------------------------------------------------------- answers


def test_a_plain_chat_is_the_known_text_named_for_the_model_and_provider_that_answered(
    client: openai.OpenAI,
) -> None:
    raw_response = client.chat.completions.with_raw_response.create(model="fast", messages=USER)
    completion = raw_response.parse()
    assert completion.choices[0].message.content == KNOWN_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "healthy"  # the model that answered, not the alias asked for
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert raw_response.headers["x-runestone-provider"] == "main"
    assert raw_response.headers["x-runestone-model"] == "healthy"
    assert raw_response.headers["x-runestone-attempts"] == "1"
    assert raw_response.headers["x-request-id"].startswith("req_")


def test_the_clients_own_request_id_comes_back_and_reaches_the_system(
    client: openai.OpenAI,
) -> None:
    raw_response = client.chat.completions.with_raw_response.create(
        model="fast", messages=USER, extra_headers={"x-request-id": "client-id-42"}
    )
    assert raw_response.headers["x-request-id"] == "client-id-42"
    assert raw_response.parse().choices[0].message.content == KNOWN_TEXT


def test_a_failover_names_the_backup_that_answered_and_counts_every_attempt(
    client: openai.OpenAI,
) -> None:
    raw_response = client.chat.completions.with_raw_response.create(model="failover", messages=USER)
    assert raw_response.parse().choices[0].message.content == KNOWN_TEXT
    assert raw_response.parse().model == "healthy"
    assert raw_response.headers["x-runestone-provider"] == "backup"
    assert raw_response.headers["x-runestone-attempts"] == "3"  # two on main, then backup


def test_a_stream_is_the_known_text_in_order_with_usage_when_asked(
    client: openai.OpenAI,
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="fast",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == KNOWN_TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(reason is None for reason in finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.model for c in chunks} == {"healthy"}
    assert len({c.id for c in chunks}) == 1


def test_a_stream_on_the_wire_is_openai_exact(server: RunningServer) -> None:
    response = raw(
        server,
        "POST",
        "/v1/chat/completions",
        {"model": "fast", "messages": USER, "stream": True},
    )
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-runestone-provider"] == "main"
    assert response.headers["x-runestone-attempts"] == "1"
    frames = sse_data(response.body)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        # Passed through as the upstream wrote it: the gateway asks for the usage chunk to
        # book it, so the chunks say "usage": null; the usage chunk itself is held back.
        assert set(chunk) == {
            "id",
            "object",
            "created",
            "model",
            "system_fingerprint",
            "choices",
            "usage",
        }
        assert chunk["usage"] is None
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == KNOWN_TEXT


def test_a_streamed_failover_names_the_backup_in_headers_and_chunks(
    server: RunningServer,
) -> None:
    response = raw(
        server,
        "POST",
        "/v1/chat/completions",
        {"model": "failover", "messages": USER, "stream": True},
    )
    assert response.status == 200
    assert response.headers["x-runestone-provider"] == "backup"
    assert response.headers["x-runestone-attempts"] == "3"
    chunks = [json.loads(frame) for frame in sse_data(response.body)[:-1]]
    assert {chunk["model"] for chunk in chunks} == {"healthy"}


def test_a_tool_call_round_trip_in_openai_shape(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    first = client.chat.completions.create(model="tool-call", messages=USER, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == json.loads(KNOWN_TOOL_ARGUMENTS)
    assert choice.message.content is None

    follow_up: list[Any] = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    second = client.chat.completions.create(model="tool-call", messages=follow_up)
    assert second.choices[0].message.content == KNOWN_TEXT
    sent = upstream.attempts[-1].body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}
    assert sent[-2]["tool_calls"][0]["id"] == call.id


@pytest.mark.parametrize("model", ["main/tool-call", "backup/tool-call"])
def test_a_streamed_tool_call_arrives_in_openai_shape_whichever_provider_answered(
    client: openai.OpenAI, model: str
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model, messages=USER, tools=[WEATHER_TOOL], stream=True
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas, "no tool-call deltas"
    assert deltas[0].index == 0
    assert deltas[0].id
    assert deltas[0].type == "function"
    assert deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert all(d.id is None for d in deltas[1:])
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    assert arguments == KNOWN_TOOL_ARGUMENTS
    assert len(deltas) > 1  # the pieces are streamed, not buffered into one
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# --------------------------------------------------------------------------- typed errors


def test_an_unknown_model_is_a_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nonexistent", messages=USER)
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert "gpt-nonexistent" in caught.value.message


def test_an_unknown_model_on_a_stream_is_a_404_not_a_200(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-nonexistent", messages=USER, stream=True)


def test_a_prompt_too_long_is_a_400_context_length_exceeded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="context-length", messages=USER)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"


def test_a_content_refusal_is_a_400_with_the_providers_reason(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="content-policy", messages=USER)
    assert caught.value.code == "content_policy_violation"
    assert "main/content-policy" in caught.value.message


def test_every_upstream_failing_is_a_502_naming_the_last_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="main/unavailable", messages=USER)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_error"
    assert "main/unavailable" in caught.value.message
    assert "503" in caught.value.message  # what the upstream said


def test_every_upstream_rate_limited_is_a_429(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="rate-limit", messages=USER, stream=True)
    assert caught.value.status_code == 429
    assert caught.value.code == "upstream_rate_limited"


def test_an_upstreams_retry_after_passes_through(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="rate-limit-once:45", messages=USER)
    assert caught.value.response.headers["retry-after"] == "45"


def test_an_upstream_that_never_answers_is_a_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="blackhole", messages=USER)
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"


def test_a_cut_after_content_reaches_the_sdk_as_an_error_not_a_short_answer(
    client: openai.OpenAI,
) -> None:
    received: list[str] = []

    def read_all() -> None:
        stream = client.chat.completions.create(model="cut-after:3", messages=USER, stream=True)
        received.extend(c.choices[0].delta.content or "" for c in stream if c.choices)

    with pytest.raises(openai.APIError) as caught:
        read_all()
    assert "".join(received) == "Runestone keeps answering "
    assert "stream_cut" in caught.value.message
    assert "broke off" in caught.value.message


def test_an_error_event_after_content_has_no_done(server: RunningServer) -> None:
    response = raw(
        server,
        "POST",
        "/v1/chat/completions",
        {"model": "error-event-after:2", "messages": USER, "stream": True},
    )
    assert response.status == 200
    frames = sse_data(response.body)
    assert "[DONE]" not in frames
    last = json.loads(frames[-1])
    assert set(last) == {"error"}
    assert last["error"]["code"] == "upstream_error"
    assert all("finish_reason" not in frame or '"finish_reason":null' in frame for frame in frames)


# --------------------------------------------------------------------------- bad input


def test_malformed_json_is_a_400_that_says_so(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/chat/completions", b'{"model": "fast", "messages": [')
    assert response.status == 400
    assert response.error["code"] == "invalid_json"
    assert "not valid JSON" in response.error["message"]
    assert response.headers["x-request-id"]


def test_a_body_that_is_not_an_object_is_a_400(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/chat/completions", b"[1, 2]")
    assert response.status == 400
    assert "must be a JSON object, got a list" in response.error["message"]


def test_an_empty_body_is_a_400(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/chat/completions", b"")
    assert response.status == 400
    assert "empty" in response.error["message"]


def test_missing_messages_is_a_400_naming_the_field(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/chat/completions", {"model": "fast"})
    assert response.status == 400
    assert response.error["param"] == "messages"
    assert response.error["code"] == "missing_required_parameter"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("temperature", "hot", "expected a number"),
        ("stream", "yes", "expected true or false"),
        ("messages", "hello", "non-empty list of messages"),
        ("max_tokens", 0, "at least 1"),
        ("model", 7, "non-empty string"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_400_naming_it(
    server: RunningServer, field: str, value: Any, words: str
) -> None:
    body: dict[str, Any] = {"model": "fast", "messages": USER, field: value}
    response = raw(server, "POST", "/v1/chat/completions", body)
    assert response.status == 400
    assert response.error["param"] == field
    assert response.error["code"] == "invalid_value"
    assert words in response.error["message"]


def test_a_bad_message_names_its_index(server: RunningServer) -> None:
    body = {"model": "fast", "messages": [*USER, {"role": "wizard", "content": "x"}]}
    response = raw(server, "POST", "/v1/chat/completions", body)
    assert response.status == 400
    assert response.error["param"] == "messages[1].role"


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": [value]}
    return value


@pytest.mark.parametrize("depth", [25, 150])  # 50 and 300 levels
def test_a_body_nested_too_deep_is_a_400_at_the_edge_not_an_upstream_failure(
    server: RunningServer, upstream: FakeUpstream, depth: int
) -> None:
    before = len(upstream.attempts)
    body = {"model": "fast", "messages": USER, "metadata_blob": _nested(depth)}
    response = raw(server, "POST", "/v1/chat/completions", body)
    assert response.status == 400, response.body
    assert response.error["param"] == "metadata_blob"
    assert "nested more than" in response.error["message"]
    assert len(upstream.attempts) == before  # it never reached a provider


def test_an_anthropic_body_nested_too_deep_is_a_400_in_anthropics_shape(
    server: RunningServer,
) -> None:
    block = {"type": "tool_use", "id": "t1", "name": "f", "input": _nested(150)}
    body = {
        "model": "backup/tool-call",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [block]}],
    }
    response = raw(server, "POST", "/v1/messages", body)
    assert response.status == 400, response.body
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("messages.1.content.0.input: nested more than")


def test_stream_options_without_stream_is_a_400(server: RunningServer) -> None:
    body = {"model": "fast", "messages": USER, "stream_options": {"include_usage": True}}
    response = raw(server, "POST", "/v1/chat/completions", body)
    assert response.status == 400
    assert response.error["param"] == "stream_options"


def test_an_oversize_body_is_a_413_from_its_declared_length(server: RunningServer) -> None:
    body = {"model": "fast", "messages": [{"role": "user", "content": "x" * MAX_BODY}]}
    response = raw(server, "POST", "/v1/chat/completions", body)
    assert response.status == 413
    assert response.error["code"] == "request_too_large"
    assert str(MAX_BODY) in response.error["message"]


def test_an_oversize_chunked_body_is_a_413_once_it_passes_the_limit(
    server: RunningServer,
) -> None:
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
    try:
        pieces = (b"x" * 16384 for _ in range(8))  # 128 KiB, no Content-Length
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=pieces,
            headers={"authorization": f"Bearer {OPEN_KEY}"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"]["code"] == "request_too_large"
    finally:
        connection.close()


def test_a_missing_key_is_a_401(server: RunningServer) -> None:
    response = raw(server, "POST", "/v1/chat/completions", {"model": "fast"}, key=None)
    assert response.status == 401
    assert response.error["code"] == "missing_api_key"


def test_a_wrong_key_is_a_401_through_the_sdk(server: RunningServer) -> None:
    with (
        openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        sdk.chat.completions.create(model="fast", messages=USER)
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong" not in caught.value.message


def test_a_non_bearer_authorization_is_a_401(server: RunningServer) -> None:
    response = raw(
        server,
        "POST",
        "/v1/chat/completions",
        {"model": "fast", "messages": USER},
        headers={"authorization": "Basic dXNlcjpwYXNz"},
    )
    assert response.status == 401
    assert "Bearer" in response.error["message"]


def test_a_bad_key_is_refused_before_the_body_is_read(server: RunningServer) -> None:
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=10) as sock:
        # A body of a gigabyte is announced and never sent: the answer cannot wait for it.
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b"authorization: Bearer sk-wrong\r\ncontent-length: 1000000000\r\n\r\n{"
        )
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 401")


def test_an_unknown_route_is_a_json_404(server: RunningServer) -> None:
    response = raw(server, "GET", "/v1/engines")
    assert response.status == 404
    assert response.error["code"] == "unknown_route"
    assert response.headers["x-request-id"]


def test_a_wrong_method_is_a_json_405_with_allow(server: RunningServer) -> None:
    response = raw(server, "GET", "/v1/chat/completions")
    assert response.status == 405
    assert response.error["code"] == "method_not_allowed"
    assert "POST" in response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/fast"),
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/v1/engines"),
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1/messages"),
    ],
)
def test_with_auth_on_every_route_but_the_probes_needs_a_key(
    server: RunningServer, method: str, path: str
) -> None:
    response = raw(server, method, path, key=None)
    assert response.status == 401
    if path == "/v1/messages":
        assert response.json()["error"]["type"] == "authentication_error"
    else:
        assert response.error["code"] == "missing_api_key"
    assert b"providers" not in response.body
    wrong = raw(server, method, path, key="sk-wrong-key-0000")
    assert wrong.status == 401
    assert b"sk-wrong-key-0000" not in wrong.body


def test_the_probes_answer_without_a_key_and_say_nothing_of_the_providers(
    server: RunningServer,
) -> None:
    live = raw(server, "GET", "/health/live", key=None)
    ready = raw(server, "GET", "/health/ready", key=None)
    assert (live.status, ready.status) == (200, 200)
    assert b"main" not in live.body + ready.body


# --------------------------------------------------------------------------- models, health


def test_models_list_aliases_references_and_names(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids[:2] == ["fast", "failover"]
    assert {"main/healthy", "backup/healthy", "healthy", "tool-call"} <= set(ids)
    assert len(ids) == len(set(ids))
    assert client.models.retrieve("main/tool-call").owned_by == "main"
    assert client.models.retrieve("fast").owned_by == "runestone"


def test_an_unknown_model_id_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nonexistent")


def test_health_is_the_whole_tree_and_200_when_serving(server: RunningServer) -> None:
    response = raw(server, "GET", "/health")
    assert response.status == 200
    report = response.json()
    assert report["status"] == "ok"
    assert report["tree"]["id"] == "root"
    assert {"main", "backup", "limited", "slow", "hold"} <= set(report["providers"])
    assert report["draining"] is False
    assert raw(server, "GET", "/health/live", key=None).json() == {"status": "alive"}
    ready = raw(server, "GET", "/health/ready", key=None)
    assert (ready.status, ready.json()["status"]) == (200, "ready")


def test_metrics_are_prometheus_text(server: RunningServer, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="fast", messages=USER)
    response = raw(server, "GET", "/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.body.decode()
    assert 'runestone_requests_total{model="healthy",outcome="ok",provider="main"}' in text
    assert 'runestone_http_responses_total{route="/v1/chat/completions",status="200"}' in text


def test_server_include_usage_adds_the_usage_chunk_to_every_stream(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = {
        "providers": {
            "sim": {
                "type": "simulated",
                "token_rate": 0,
                "first_token_delay": 0,
                "models": {"m": {}},
            }
        },
        "server": {"include_usage": True},
    }
    with (
        RunningServer(config, tmp_path_factory.mktemp("usage")) as running,
        openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0) as sdk,
    ):
        chunks = list(sdk.chat.completions.create(model="sim/m", messages=USER, stream=True))
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == sum(1 for c in chunks if c.choices) - 2
    assert all(c.usage is None for c in chunks[:-1])
