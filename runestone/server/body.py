"""Reading a request body: never more than the configured limit, then one JSON object.

An oversize body is refused from its ``Content-Length`` before a byte is read,
or as soon as a chunked body passes the limit (413). Text that is not JSON, or
JSON that is not an object, is a 400 that says so.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request

from runestone import jsonio
from runestone.jsonio import json_kind
from runestone.server.errors import ApiError

__all__ = ["ClientGoneError", "read_json"]


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


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object (see the module docstring for the errors)."""
    raw = await read_body(request, limit)
    if not raw.strip():
        raise ApiError(
            400, "the request body is empty; expected a JSON object", code="invalid_json"
        )
    try:
        data = jsonio.loads(raw)
    except (jsonio.JSONDecodeError, RecursionError) as exc:
        raise ApiError(
            400, f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            f"the request body must be a JSON object, got {json_kind(data)}",
            code="invalid_json",
        )
    return data
