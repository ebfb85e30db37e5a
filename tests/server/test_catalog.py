"""The names a request may use: aliases, provider/model references, bare model names."""

from __future__ import annotations

from runestone.config import load_config
from runestone.server.catalog import ModelCatalog

CONFIG = {
    "providers": {
        "sim": {"type": "simulated", "models": {"a": {}, "b": {}}},
        "other": {"type": "simulated", "models": {"b": {}}},
    },
    "routing": {"aliases": {"fast": ["sim/a"]}},
}


def test_the_catalog_lists_aliases_then_references_then_names_once_each() -> None:
    catalog = ModelCatalog(load_config(CONFIG), created=123)
    listing = catalog.listing()
    assert listing["object"] == "list"
    ids = [entry["id"] for entry in listing["data"]]
    assert ids == ["fast", "sim/a", "sim/b", "other/b", "a", "b"]
    assert catalog.entry("b") == {"id": "b", "object": "model", "created": 123, "owned_by": "sim"}
    assert catalog.entry("fast") is not None
    assert "other/b" in catalog
    assert "c" not in catalog
    assert catalog.entry("c") is None
