"""Reading a request body: never more than the configured limit, then decoded by a schema.

An oversize body is refused from its ``Content-Length`` before a byte is read,
or as soon as a chunked body passes the limit (413). Text that is not JSON, or
JSON that is not an object, is a 400 that says so (``invalid_json``); a bad field is a
400 naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

from runestone import jsonio
from runestone.exceptions import RequestValidationError
from runestone.server.errors import ApiError, validation_error
from runestone.wire.schema import BodyError

__all__ = ["ClientGoneError", "decode_body", "read_body"]

T = TypeVar("T")


class ClientGoneError(Exception):
    """The client went away while its body was being read."""


def _too_large(size: str, limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is {size} bytes; the limit is {limit} bytes (server.max_body_bytes)",
        code="request_too_large",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(
                400, f"Content-Length is not a number: {declared[:40]!r}", code="invalid_header"
            ) from None
        if length > limit:
            raise _too_large(str(length), limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(f"more than {limit}", limit)
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ClientGoneError from exc
    return b"".join(chunks)


def decode_body(raw: bytes, decode: Callable[[bytes], T]) -> T:
    """``raw`` decoded by a dialect's schema (``decode``); its refusals as 400s.

    A body that is no JSON object is ``invalid_json``; a bad field is named by
    :func:`runestone.server.errors.validation_error`.
    """
    try:
        return decode(raw)
    except BodyError as exc:
        raise ApiError(400, str(exc), code="invalid_json") from None
    except RequestValidationError as exc:
        # The cold path: the body as values, to tell a missing field from a bad one.
        fields = jsonio.loads(raw)
        raise validation_error(exc, fields if isinstance(fields, dict) else None) from None
