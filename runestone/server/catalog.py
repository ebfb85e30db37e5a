"""The model names a request may use, from the config: aliases, ``provider/model``, bare names.

The same three forms the router resolves (an alias, a ``"provider/model"``
reference, or a model name that a live provider serves), listed for
``GET /v1/models`` in that order.
"""

from __future__ import annotations

from typing import Any

from runestone.config import Config

__all__ = ["ModelCatalog"]


class ModelCatalog:
    """Every name a request's ``model`` may take, with who owns it."""

    def __init__(self, config: Config, *, created: int) -> None:
        self.created = created
        owners: dict[str, str] = {}
        for alias in config.routing.aliases:
            owners.setdefault(alias, "runestone")
        for name, provider in config.providers.items():
            for model in provider.settings.models:
                owners.setdefault(f"{name}/{model}", name)
        for name, provider in config.providers.items():
            for model in provider.settings.models:
                owners.setdefault(model, name)
        self._owners = owners

    def __contains__(self, name: object) -> bool:
        return name in self._owners

    def entry(self, name: str) -> dict[str, Any] | None:
        """The ``model`` object for ``name``, or ``None`` when it is unknown."""
        owner = self._owners.get(name)
        if owner is None:
            return None
        return {"id": name, "object": "model", "created": self.created, "owned_by": owner}

    def listing(self) -> dict[str, Any]:
        """The ``GET /v1/models`` body."""
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": self.created, "owned_by": owner}
                for name, owner in self._owners.items()
            ],
        }
