"""Keys: who is calling and what they may reach, checked from the headers before any body is read.

A key arrives as ``Authorization: Bearer <key>`` (OpenAI clients) or
``x-api-key: <key>`` (Anthropic clients). Every route has an :class:`Access`:

=============================  ============================================================
route                          what it takes
=============================  ============================================================
``/health/live``,              nothing, ever: probes of the process (no detail in them)
``/health/ready``
``/health``, ``/metrics``      an admin key (``auth.admin_keys``) when any is configured;
                               otherwise a client key when ``auth.keys`` is set; otherwise
                               nothing. A client key where an admin key is needed is a 403.
``/admin/reload``              the same, and it answers only with an admin key: with no
                               ``auth.admin_keys`` it is a 403.
everything else (``/v1/…``,    a client key (``auth.keys``) when any is configured;
unknown routes included)       otherwise nothing (the config allows that only on a loopback
                               bind). An admin key is not a client key.
=============================  ============================================================

With ``server.admin_port`` set, ``/health``, ``/metrics`` and ``/admin/reload`` are served on that
port only, and that port serves nothing but them and the two probes (see
:func:`served_on`); the key rules above hold on both ports.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from runestone.config import ApiKey, AuthConfig
from runestone.server.errors import ApiError

__all__ = ["Access", "access_for", "authenticate", "authorize", "presented_key", "served_on"]


class Access(enum.StrEnum):
    """What a route asks of the caller."""

    PUBLIC = "public"
    CLIENT = "client"
    ADMIN = "admin"


_PUBLIC: Final = frozenset({"/health/live", "/health/ready"})
_ADMIN: Final = frozenset({"/health", "/metrics", "/admin/reload"})


def access_for(path: str) -> Access:
    """The access ``path`` needs (unknown paths are client routes: no key, no 404)."""
    if path in _PUBLIC:
        return Access.PUBLIC
    if path in _ADMIN:
        return Access.ADMIN
    return Access.CLIENT


def served_on(access: Access, *, admin_port_set: bool, on_admin_port: bool) -> bool:
    """Whether a route of ``access`` is served on this port."""
    if not admin_port_set or access is Access.PUBLIC:
        return True
    return on_admin_port == (access is Access.ADMIN)


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


def _missing() -> ApiError:
    return ApiError(
        401,
        "missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key: <key>')",
        code="missing_api_key",
    )


def _invalid() -> ApiError:
    return ApiError(401, "the API key is not valid for this server", code="invalid_api_key")


def authenticate(auth: AuthConfig, headers: Mapping[str, str]) -> ApiKey | None:
    """The client key the request carries; ``None`` when the server is open.

    Raises a 401 :class:`ApiError` for a missing or unknown key (never echoing it).
    """
    if not auth.keys:
        return None
    presented = presented_key(headers)
    if presented is None:
        raise _missing()
    entry = auth.lookup(presented)
    if entry is None:
        raise _invalid()
    return entry


def authorize(auth: AuthConfig, access: Access, headers: Mapping[str, str]) -> ApiKey | None:
    """The key that lets the request reach a route of ``access`` (``None``: none was needed).

    Raises a 401 for a missing or unknown key, a 403 for a client key on an admin
    route that needs an admin key.
    """
    if access is Access.PUBLIC:
        return None
    if access is Access.CLIENT or not auth.admin_keys:
        return authenticate(auth, headers)
    presented = presented_key(headers)
    if presented is None:
        raise _missing()
    entry = auth.lookup_admin(presented)
    if entry is not None:
        return entry
    if auth.lookup(presented) is not None:
        raise ApiError(
            403,
            "this route needs an admin key (auth.admin_keys); a client key does not reach it",
            code="admin_key_required",
        )
    raise _invalid()
