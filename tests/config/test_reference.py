"""The generated config reference: committed, current, and complete."""

from __future__ import annotations

import re
from pathlib import Path

from runestone.config import json_schema
from runestone.config.reference import reference

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config-reference.md"


def test_the_committed_reference_is_current() -> None:
    # Regenerate with: runestone config reference > docs/config-reference.md
    assert DOCS.read_text(encoding="utf-8") == reference()


def test_every_key_of_every_section_is_in_the_reference() -> None:
    text = reference()
    listed = set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))
    defs = json_schema()["$defs"]
    for section in defs["RunestoneConfig"]["properties"]:
        assert f"## `{section}`" in text
    for key in ("pool.max_in_flight", "server.admin_port", "auth.keys[].name"):
        assert key in listed
    for key in defs["SimulatedBlock"]["properties"]:
        assert f"providers.<name>.{key}" in listed, key
    for name, body in defs.items():
        for key, prop in body.get("properties", {}).items():
            if key != "type" or not name.endswith("Block"):
                assert prop.get("description"), f"{name}.{key} has no description"
