"""A client that leaves cancels its upstream request, streamed or whole; nothing stays in flight."""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

from tests.server.conftest import NARROW_KEY, OPEN_KEY
from tests.server.serving import HoldingUpstream, RunningServer

USER = [{"role": "user", "content": "Hold on."}]


def open_request(
    server: RunningServer,
    body: dict[str, object],
    key: str = OPEN_KEY,
    request_id: str | None = None,
) -> socket.socket:
    url = urlsplit(server.url)
    sock = socket.create_connection((url.hostname or "", url.port or 0), timeout=10)
    payload = json.dumps(body).encode()
    extra = f"x-request-id: {request_id}\r\n".encode() if request_id else b""
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
        + extra
        + f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n".encode()
        + f"content-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        piece = sock.recv(65536)
        assert piece, f"the connection closed before {marker!r}; got {received!r}"
        received += piece
    return received


def in_flight(server: RunningServer) -> int:
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        connection.request("GET", "/health", headers={"authorization": f"Bearer {OPEN_KEY}"})
        report = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    count: int = report["pool"]["in_flight"]
    return count


def settle_in_flight(server: RunningServer, timeout: float = 5.0) -> int:
    """Ask /health until the pool holds nothing (each ask is a round trip: no sleeping)."""
    deadline = time.monotonic() + timeout
    count = in_flight(server)
    while count and time.monotonic() < deadline:
        count = in_flight(server)
    return count


def test_a_client_leaving_mid_stream_cancels_the_upstream_request(
    server: RunningServer, holding_upstream: HoldingUpstream
) -> None:
    closed = holding_upstream.closed
    sock = open_request(server, {"model": "hold", "messages": USER, "stream": True})
    with sock:
        head = read_until(sock, b"Held ")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"x-runestone-provider: hold" in head
    # The upstream would hold this answer for ever: only a cancelled request closes it.
    holding_upstream.wait_closed(closed + 1, timeout=5)
    assert settle_in_flight(server) == 0


def test_a_client_leaving_a_whole_answer_cancels_the_upstream_request(
    server: RunningServer, holding_upstream: HoldingUpstream
) -> None:
    closed, seen = holding_upstream.closed, len(holding_upstream.requests)
    with open_request(server, {"model": "hold", "messages": USER}):
        holding_upstream.wait_requests(seen + 1)
    holding_upstream.wait_closed(closed + 1, timeout=5)
    assert settle_in_flight(server) == 0


def test_a_keys_stream_limit_refuses_a_second_request_and_frees_the_slot_when_one_ends(
    server: RunningServer, holding_upstream: HoldingUpstream
) -> None:
    closed = holding_upstream.closed
    first = open_request(server, {"model": "hold", "messages": USER, "stream": True}, NARROW_KEY)
    with first:
        read_until(first, b"Held ")
        second = open_request(server, {"model": "fast", "messages": USER}, NARROW_KEY)
        with second:
            refusal = read_until(second, b"}}")
        assert refusal.startswith(b"HTTP/1.1 429")
        assert b"retry-after: 1" in refusal
        assert b"concurrency_limit_exceeded" in refusal
    holding_upstream.wait_closed(closed + 1, timeout=5)
    # The slot comes back once the server has seen the first client go.
    deadline = time.monotonic() + 5
    while True:
        with open_request(server, {"model": "fast", "messages": USER}, NARROW_KEY) as third:
            status = read_until(third, b"\r\n")
        if status.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
            break
    assert status.startswith(b"HTTP/1.1 200")


def test_two_requests_in_flight_with_the_same_client_id_both_run(
    server: RunningServer, holding_upstream: HoldingUpstream
) -> None:
    closed = holding_upstream.closed
    body = {"model": "hold", "messages": USER, "stream": True}
    with (
        open_request(server, body, request_id="same-id") as first,
        open_request(server, body, request_id="same-id") as second,
    ):
        heads = [read_until(first, b"Held "), read_until(second, b"Held ")]
    for head in heads:
        assert head.startswith(b"HTTP/1.1 200")
        assert b"x-request-id: same-id\r\n" in head
    holding_upstream.wait_closed(closed + 2, timeout=5)
    assert settle_in_flight(server) == 0
