"""uvicorn's HTTP protocols, answering a request they cannot parse with our JSON error body.

uvicorn answers bytes that are not HTTP (a bare LF line ending, a garbage request
line, both ``Content-Length`` and ``Transfer-Encoding``, a bad chunk size …) with
a plain-text ``400 Invalid HTTP request received.`` from ``send_400_response``,
before any ASGI app is involved. Each protocol here overrides that one method to
send the same status as a JSON error in OpenAI's shape (Anthropic's when the
parser got as far as a ``/v1/messages`` path), with an ``x-request-id``, and then
closes the connection as uvicorn does: after a parse error the stream cannot be
trusted to hold another request.

:func:`http_protocol` picks the parser ``"auto"`` would: httptools where it is
installed, h11 otherwise.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from runestone import jsonio
from runestone.server.errors import ApiError

__all__ = ["JsonH11Protocol", "http_protocol", "malformed_request_body"]

_MESSAGE: Final = (
    "the request is not valid HTTP/1.1 (a bad request line, header or framing: for example "
    "a bare LF line ending, or both Content-Length and Transfer-Encoding); the connection "
    "is closed"
)


def malformed_request_body(path: bytes = b"") -> bytes:
    """The JSON body answering a request that cannot be parsed (``path`` if known)."""
    error = ApiError(400, _MESSAGE, code="invalid_http_request")
    if path.startswith(b"/v1/messages"):
        return jsonio.dumps(error.anthropic_body())
    return jsonio.dumps(error.openai_body())


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"x-request-id", ("req_" + uuid.uuid4().hex[:24]).encode("ascii")),
        (b"connection", b"close"),
    ]


class JsonH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a JSON 400 for a request h11 cannot parse."""

    def send_400_response(self, msg: str) -> None:
        body = malformed_request_body()
        # h11 lets a server answer a request it refused to parse; uvicorn does the same.
        event = h11.Response(status_code=400, headers=_headers(body), reason=b"Bad Request")
        self.transport.write(self.conn.send(event) or b"")
        self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
        self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - depends on the environment
        return None

    class JsonHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a JSON 400 for a request llhttp cannot parse."""

        def send_400_response(self, msg: str) -> None:
            # The path, when the parser got that far in this request (reset per message).
            body = malformed_request_body(getattr(self, "url", b"") or b"")
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in _headers(body):
                head += [name, b": ", value, b"\r\n"]
            self.transport.write(b"".join([*head, b"\r\n", body]))
            self.transport.close()

    return JsonHttpToolsProtocol


JsonHttpToolsProtocol: Final = _httptools_protocol()
"""uvicorn's httptools protocol with a JSON 400, or ``None`` where httptools is missing."""


def http_protocol() -> type[asyncio.Protocol]:
    """The protocol class ``runestone serve`` gives uvicorn: httptools where installed."""
    return JsonHttpToolsProtocol or JsonH11Protocol
