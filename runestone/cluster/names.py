"""Where things live in Redis: one namespace per gateway, client key names hashed.

A client key's name identifies a client, so it never reaches Redis in clear:
it is replaced by an HMAC-SHA256 of it under the server-side ``cluster.secret``.
Replicas with the same secret find the same key; Redis (or whoever reads it)
learns nothing about who the clients are.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["KeySpace"]


class KeySpace:
    """Key names under ``namespace``; ``secret`` hashes client key names."""

    __slots__ = ("_secret", "namespace")

    def __init__(self, namespace: str, secret: str | None) -> None:
        self.namespace = namespace
        self._secret = None if secret is None else secret.encode()

    def key(self, *parts: str) -> str:
        """``namespace:part:part…``."""
        return ":".join((self.namespace, *parts))

    def client(self, name: str) -> str:
        """The stand-in for client key ``name`` (hex), never the name itself."""
        if self._secret is None:
            raise ValueError("hashing a client key needs cluster.secret")
        return hmac.new(self._secret, name.encode(), hashlib.sha256).hexdigest()[:40]

    def __repr__(self) -> str:
        return f"<KeySpace {self.namespace!r}>"
