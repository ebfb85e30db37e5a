"""Client keys: who is calling, checked from the headers before any body is read.

A key arrives as ``Authorization: Bearer <key>`` (OpenAI clients) or
``x-api-key: <key>`` (Anthropic clients). With no keys configured the server is
open (the config allows that only on a loopback bind) and every caller is anonymous.
"""

from __future__ import annotations

from collections.abc import Mapping

from runestone.config import ApiKey, AuthConfig
from runestone.server.errors import ApiError

__all__ = ["authenticate", "presented_key"]


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key the client sent, or ``None``; raises a 401 for an ``Authorization``
    header that is not a bearer token."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError(
                401,
                "the Authorization header must be 'Bearer <key>'",
                code="invalid_api_key",
            )
        token = token.strip()
        if token:
            return token
    key = headers.get("x-api-key")
    if key is not None and key.strip():
        return key.strip()
    return None


def authenticate(auth: AuthConfig, headers: Mapping[str, str]) -> ApiKey | None:
    """The configured key the request carries; ``None`` when the server is open.

    Raises a 401 :class:`ApiError` for a missing or unknown key (never echoing it).
    """
    if not auth.keys:
        return None
    presented = presented_key(headers)
    if presented is None:
        raise ApiError(
            401,
            "missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key: <key>')",
            code="missing_api_key",
        )
    entry = auth.lookup(presented)
    if entry is None:
        raise ApiError(401, "the API key is not valid for this server", code="invalid_api_key")
    return entry
