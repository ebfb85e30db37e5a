"""Hypothesis against a real ``runestone serve``: bodies, parameters, headers, framing,
sizes and keys. Whatever arrives: never a 5xx of ours, never a traceback or a key in a
body or a log line, never a hang, the server alive after each batch, and every error in
the dialect's shape.

Each test is derandomized (the same inputs every run) and bounded by ``max_examples``;
``COUNTS`` records how many inputs each one ran (``-s`` prints them).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import (
    ADMIN_KEY,
    CLIENT_KEY,
    MAX_BODY,
    check_clean,
    check_error_body,
    check_log,
)
from tests.server.serving import RunningServer

pytestmark = pytest.mark.timeout(int(os.environ.get("RUNESTONE_FUZZ_TIMEOUT", "60")))

COUNTS: Counter[str] = Counter()
# RUNESTONE_FUZZ_EXAMPLES / RUNESTONE_FUZZ_RANDOM=1: a longer, random hunt by hand.
FUZZ = settings(
    max_examples=int(os.environ.get("RUNESTONE_FUZZ_EXAMPLES", "120")),
    derandomize=os.environ.get("RUNESTONE_FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_TIMEOUT: Final = 15.0
CHAT_ROUTES: Final = ("/v1/chat/completions", "/v1/messages")
COMPLETIONS: Final = "/v1/completions"
MODELS: Final = ("main/healthy", "backup/healthy", "sim/m", "healthy", "m")


@pytest.fixture(autouse=True)
def _server_alive_and_log_clean(fuzz_server: RunningServer) -> Iterator[None]:
    """After each batch: the server still answers, and its log is clean."""
    yield
    assert fuzz_server.process.poll() is None, fuzz_server.log()
    status, _, _ = request(fuzz_server, "GET", "/health/live", key=None)
    assert status == 200
    check_log(fuzz_server)


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    yield
    print("\nfuzz inputs per test:", dict(COUNTS))


def request(
    server: RunningServer,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    key: str | None = CLIENT_KEY,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=_TIMEOUT)
    try:
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("authorization", f"Bearer {key}")
        if body is not None:
            sent.setdefault("content-type", "application/json")
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return (
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def check_answer(path: str, status: int, headers: dict[str, str], body: bytes) -> None:
    """The invariants every answer keeps."""
    check_clean(body)
    assert status < 500, (status, body[:500])
    assert headers.get("x-request-id")
    if status >= 400:
        check_error_body(path, status, body)
    elif headers.get("content-type", "").startswith("text/event-stream"):
        # Healthy upstreams: a stream that started ends complete, never in an error frame.
        assert b"event: error" not in body
        assert b'data: {"error"' not in body
    elif path in CHAT_ROUTES or path == COMPLETIONS or path.startswith(("/v1/models", "/health")):
        json.loads(body)


# --------------------------------------------------------------------------- strategies

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
role = st.sampled_from(["user", "assistant", "system", "developer", "tool", "wizard", ""])
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=30) | json_value}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries(
                {"url": st.sampled_from(["https://x/y.png", "data:image/png;base64,AAAA", "ftp:x"])}
            )
            | json_value,
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["image", "tool_use", "tool_result", "input_audio", "document"])},
        optional={
            "source": json_value,
            "id": st.text(max_size=5),
            "name": st.text(max_size=5),
            "input": json_value,
            "tool_use_id": st.text(max_size=5),
            "content": json_value,
        },
    ),
    json_value,
)
message = st.fixed_dictionaries(
    {"role": role},
    optional={
        "content": st.text(max_size=40) | st.lists(part, max_size=3) | json_value,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.text(max_size=5),
                    "type": st.just("function"),
                    "function": st.fixed_dictionaries(
                        {"name": st.text(max_size=8), "arguments": st.text(max_size=30)}
                    ),
                }
            ),
            max_size=2,
        )
        | json_value,
        "tool_call_id": st.text(max_size=5) | json_value,
        "name": st.text(max_size=5) | json_value,
    },
)
tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["f", "get_weather", "bad name", ""])},
            optional={"parameters": json_value, "description": json_value},
        ),
    }
) | st.fixed_dictionaries(
    {"name": st.sampled_from(["f", "g"])}, optional={"input_schema": json_value}
)
chat_body = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS) | json_value, "messages": st.lists(message, max_size=3)},
    optional={
        "stream": st.booleans() | json_value,
        "max_tokens": st.integers(min_value=-5, max_value=2**65) | json_value,
        "temperature": st.floats(min_value=-1, max_value=3) | json_value,
        "top_p": json_value,
        "top_k": json_value,
        "stop": json_value,
        "stop_sequences": json_value,
        "tools": st.lists(tool, max_size=2) | json_value,
        "tool_choice": st.sampled_from(["auto", "none", "required", "any"]) | json_value,
        "response_format": json_value,
        "stream_options": json_value,
        "system": st.text(max_size=20) | json_value,
        "metadata": json_value,
        "user": json_value,
        "n": json_value,
        "seed": json_value,
        "extra_field": json_value,
    },
)


token_ids = st.lists(st.integers(min_value=-3, max_value=2**40), max_size=4)
completion_body = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS) | json_value,
        "prompt": st.text(max_size=30)
        | st.lists(st.text(max_size=10), max_size=3)
        | token_ids
        | st.lists(token_ids, max_size=3)
        | st.lists(json_value, max_size=3)
        | json_value,
    },
    optional={
        "stream": st.booleans() | json_value,
        "max_tokens": st.integers(min_value=-5, max_value=2**65) | json_value,
        "stream_options": json_value,
        "n": json_value,
        "best_of": json_value,
        "echo": json_value,
        "logprobs": json_value,
        "suffix": json_value,
        "extra_field": json_value,
    },
)


def _valid_message(model: str) -> dict[str, Any]:
    return {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}


# --------------------------------------------------------------------------- bodies


@FUZZ
@given(route=st.sampled_from(CHAT_ROUTES), body=chat_body)
def test_any_request_shaped_body_on_either_chat_route_keeps_every_invariant(
    fuzz_server: RunningServer, route: str, body: dict[str, Any]
) -> None:
    COUNTS["request-shaped bodies"] += 1
    data = json.dumps(body).encode()
    status, headers, answer = request(fuzz_server, "POST", route, data)
    check_answer(route, status, headers, answer)


@FUZZ
@given(body=completion_body)
def test_any_completions_shaped_body_keeps_every_invariant(
    fuzz_server: RunningServer, body: dict[str, Any]
) -> None:
    COUNTS["completions-shaped bodies"] += 1
    status, headers, answer = request(fuzz_server, "POST", COMPLETIONS, json.dumps(body).encode())
    check_answer(COMPLETIONS, status, headers, answer)


@FUZZ
@given(route=st.sampled_from(CHAT_ROUTES), body=json_value)
def test_any_json_value_as_a_body_keeps_every_invariant(
    fuzz_server: RunningServer, route: str, body: object
) -> None:
    COUNTS["any JSON value"] += 1
    status, headers, answer = request(fuzz_server, "POST", route, json.dumps(body).encode())
    check_answer(route, status, headers, answer)
    assert status < 300 or status in (400, 404, 413, 422), status


@FUZZ
@given(
    route=st.sampled_from(CHAT_ROUTES),
    body=st.binary(max_size=300)
    | st.text(max_size=300).map(str.encode)
    | st.integers(min_value=1, max_value=400).map(lambda depth: b"[" * depth + b"]" * depth),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www"]),
)
def test_any_bytes_as_a_body_are_a_json_error_never_a_crash(
    fuzz_server: RunningServer, route: str, body: bytes, content_type: str
) -> None:
    COUNTS["any bytes as a body"] += 1
    status, headers, answer = request(
        fuzz_server, "POST", route, body, headers={"content-type": content_type}
    )
    check_answer(route, status, headers, answer)


@FUZZ
@given(
    route=st.sampled_from(CHAT_ROUTES),
    model=st.sampled_from(MODELS),
    depth=st.integers(min_value=1, max_value=300),
    where=st.sampled_from(["extra", "tool_input", "parameters", "part", "arguments"]),
)
def test_nesting_at_any_depth_anywhere_is_an_answer_or_a_400_naming_it(
    fuzz_server: RunningServer, route: str, model: str, depth: int, where: str
) -> None:
    COUNTS["nesting"] += 1
    deep: Any = "x"
    for _ in range(depth):
        deep = {"k": [deep]}
    body = _valid_message(model)
    if where == "extra":
        body["metadata" if route == "/v1/messages" else "extra_field"] = deep
    elif where == "parameters":
        spec = {"name": "f", "input_schema": deep} if route == "/v1/messages" else None
        body["tools"] = [
            spec or {"type": "function", "function": {"name": "f", "parameters": deep}}
        ]
    elif where == "part":
        block = {"type": "input_audio", "data": deep}
        body["messages"] = [{"role": "user", "content": [block]}]
    else:
        call: dict[str, Any]
        if route == "/v1/messages":
            call = {"type": "tool_use", "id": "t", "name": "f", "input": deep}
            assistant: dict[str, Any] = {"role": "assistant", "content": [call]}
        else:
            call = {"id": "t", "function": {"name": "f", "arguments": json.dumps(deep)}}
            assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
        body["messages"] = [*body["messages"], assistant]
    status, headers, answer = request(fuzz_server, "POST", route, json.dumps(body).encode())
    check_answer(route, status, headers, answer)


# --------------------------------------------------------------------------- sizes


@FUZZ
@given(
    route=st.sampled_from(CHAT_ROUTES),
    size=st.integers(min_value=MAX_BODY - 64, max_value=MAX_BODY * 3),
    chunked=st.booleans(),
)
def test_a_body_about_the_size_limit_is_an_answer_or_a_413(
    fuzz_server: RunningServer, route: str, size: int, chunked: bool
) -> None:
    COUNTS["sizes"] += 1
    # Padded in a field each dialect takes: a string of any length.
    opening = ', "metadata": {"user_id": "' if route == "/v1/messages" else ', "user": "'
    closing = '"}}' if route == "/v1/messages" else '"}'
    head = json.dumps(_valid_message("sim/m"))[:-1] + opening
    body = (head + "x" * max(0, size - len(head) - len(closing)) + closing).encode()
    url = urlsplit(fuzz_server.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=_TIMEOUT)
    try:
        pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        connection.request(
            "POST",
            route,
            body=iter(pieces) if chunked else body,
            headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
            encode_chunked=chunked,
        )
        response = connection.getresponse()
        status, answer = response.status, response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
    except (ConnectionResetError, BrokenPipeError):
        return  # refused mid-upload: the server stopped reading, as it should past the limit
    finally:
        connection.close()
    check_answer(route, status, headers, answer)
    assert status == (413 if len(body) > MAX_BODY else 200), (len(body), status)


# --------------------------------------------------------------------------- headers, keys


header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)
key_text = st.sampled_from([CLIENT_KEY, ADMIN_KEY, "", " ", CLIENT_KEY + "x"]) | header_text


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.sampled_from(
        [
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/models",
            "/health",
            "/health/live",
            "/health/ready",
            "/metrics",
            "/",
            "/v1",
        ]
    )
    | st.text(max_size=30).map(lambda text: "/v1/models/" + quote(text, safe=""))
    | st.text(max_size=30).map(lambda text: "/" + quote(text, safe="/")),
    query=st.text(max_size=20).map(lambda text: quote(text, safe="=&")),
    scheme=st.sampled_from(["Bearer ", "bearer ", "Basic ", "", "Bearer  "]),
    key=key_text,
    use_x_api_key=st.booleans(),
    request_id=header_text,
    content_type=header_text,
)
def test_any_route_headers_and_key_keep_every_invariant(
    fuzz_server: RunningServer,
    method: str,
    path: str,
    query: str,
    scheme: str,
    key: str,
    use_x_api_key: bool,
    request_id: str,
    content_type: str,
) -> None:
    COUNTS["routes, headers and keys"] += 1
    headers = {"x-request-id": request_id, "content-type": content_type}
    if use_x_api_key:
        headers["x-api-key"] = key
    else:
        headers["authorization"] = scheme + key
    body = json.dumps(_valid_message("sim/m")).encode() if method == "POST" else None
    target = path + ("?" + query if query else "")
    try:
        status, got, answer = request(fuzz_server, method, target, body, key=None, headers=headers)
    except (http.client.InvalidURL, ValueError):
        return  # http.client refuses to send it: nothing reached the server
    if method == "HEAD":
        assert status < 500
        return
    check_answer(urlsplit(target).path, status, got, answer)
    bearer = use_x_api_key or scheme.strip().lower() == "bearer"
    authorised = key.strip() == CLIENT_KEY and bearer
    admin = key.strip() == ADMIN_KEY and bearer
    route = urlsplit(target).path
    if route in ("/health/live", "/health/ready"):
        assert status in (200, 405)
    elif route in ("/health", "/metrics"):
        assert (status in (200, 405)) == admin, (status, answer[:200])
    elif not authorised:
        assert status in (401, 403), (route, status)
    if len(key.strip()) >= 8 and key.strip() not in (CLIENT_KEY, ADMIN_KEY):
        assert key.strip().encode("latin-1") not in answer  # a wrong key is never echoed


# --------------------------------------------------------------------------- framing


_VALID_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: fuzz\r\n"
    b"Authorization: Bearer " + CLIENT_KEY.encode() + b"\r\n"
    b"Content-Type: application/json\r\n"
)


def _valid_request() -> bytes:
    body = json.dumps(_valid_message("sim/m")).encode()
    return _VALID_HEAD + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace"]),
            st.integers(min_value=0, max_value=400),
            st.binary(min_size=1, max_size=4)
            | st.sampled_from([b"\n", b"\r", b"\r\n", b":", b" ", b"\x00", b"\r\n\r\n"]),
        ),
        min_size=1,
        max_size=4,
    ),
    extra_header=st.sampled_from(
        [
            b"",
            b"Transfer-Encoding: chunked\r\n",
            b"Content-Length: 3\r\n",
            b"Transfer-Encoding: chunked, gzip\r\n",
            b"Expect: 100-continue\r\n",
        ]
    ),
)
def test_mangled_framing_is_answered_or_closed_never_a_hang(
    fuzz_server: RunningServer, edits: list[tuple[str, int, bytes]], extra_header: bytes
) -> None:
    COUNTS["framing"] += 1
    data = bytearray(_valid_request().replace(b"Host: fuzz\r\n", b"Host: fuzz\r\n" + extra_header))
    for kind, at, piece in edits:
        at = min(at, len(data))
        if kind == "insert":
            data[at:at] = piece
        elif kind == "delete":
            del data[at : at + len(piece)]
        else:
            data[at : at + len(piece)] = piece
    url = urlsplit(fuzz_server.url)
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=_TIMEOUT) as sock:
        sock.sendall(bytes(data))
        # All we will send: a server waiting for more sees the end instead of hanging.
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # closed on us: refusing to read more is an answer too
    check_clean(answer)
    if not answer:
        return
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
    status = int(status_line.split()[1])
    assert status < 500, answer[:500]
    lower = head.lower()
    if status >= 400 and b"content-type: application/json" in lower:
        if b"transfer-encoding: chunked" in lower:
            return  # chunk-framed error bodies are checked by the route tests
        path = "/v1/messages" if b"/v1/messages" in bytes(data[:60]) else "/v1/chat/completions"
        check_error_body(path, status, body)
    elif status >= 400:
        pytest.fail(f"an error answer that is not JSON: {answer[:300]!r}")
