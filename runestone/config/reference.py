"""The config reference (every key, its type, default and meaning), generated from the schema.

``runestone config reference`` prints it; ``docs/config-reference.md`` is its
output, committed, and a test fails when the two differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from runestone.config.schema import VAR_REFERENCE, json_schema

__all__ = ["reference"]

_HEADER = """\
# Configuration reference

Generated from the config schema by `runestone config reference`; do not edit by
hand. `runestone config schema` prints the same schema as JSON Schema, which
editors read through the comment at the top of a config file:

    # yaml-language-server: $schema=<path or URL of runestone.schema.json>

`<name>` stands for a key of your choosing (a provider, a model, an alias).
A key written with no value takes its default. Strings may hold `${VAR}` and
`${VAR:-default}`.
"""


def reference() -> str:
    """The whole reference as Markdown."""
    schema = json_schema()
    defs: Mapping[str, Any] = schema["$defs"]
    lines = [_HEADER]
    root = defs["RunestoneConfig"]
    for section, prop in root["properties"].items():
        lines.append(f"## `{section}`\n")
        if "description" in prop:
            lines.append(prop["description"] + "\n")
        if section == "providers":
            lines.extend(_providers(prop, defs))
        else:
            lines.extend(_table(list(_rows(section, prop, defs, set()))))
    return "\n".join(lines).rstrip() + "\n"


def _providers(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> Iterator[str]:
    """The keys every type takes once, then each type's own keys and the legacy shape."""
    path = "providers.<name>"
    blocks = list(_objects(prop["additionalProperties"], defs))
    tagged = [(name, body) for name, body in blocks if name.endswith("Block")]
    per_type = {
        name: [
            r
            for r in _rows(path, {"$ref": f"#/$defs/{name}"}, defs, set())
            if r[0] != f"{path}.type"
        ]
        for name, _ in tagged
    }
    common = [
        row
        for row in next(iter(per_type.values()))
        if all(row in rows for rows in per_type.values())
    ]
    types = ", ".join(f"`{body['properties']['type']['enum'][0]}`" for _, body in tagged)
    yield from _table([(f"{path}.type", types, "required", "The provider type."), *common])
    for name, body in tagged:
        own = [row for row in per_type[name] if row not in common]
        if own:
            yield f"### `type: {body['properties']['type']['enum'][0]}`\n"
            yield from _table(own)
    for name, _ in blocks:
        if not name.endswith("Block"):
            yield f"### The legacy shape (`{name}`)\n"
            yield from _table(list(_rows(path, {"$ref": f"#/$defs/{name}"}, defs, set())))


def _table(rows: list[tuple[str, str, str, str]]) -> Iterator[str]:
    if not rows:
        return
    yield "| key | type | default | meaning |"
    yield "|---|---|---|---|"
    for key, kind, default, meaning in rows:
        yield f"| `{key}` | {kind} | {default} | {meaning} |"
    yield ""


def _rows(
    path: str, prop: Mapping[str, Any], defs: Mapping[str, Any], seen: set[str]
) -> Iterator[tuple[str, str, str, str]]:
    for target in _objects(prop, defs):
        name, body = target
        if name in seen:
            continue
        for key, sub in body.get("properties", {}).items():
            if key == "type" and name.endswith("Block"):
                continue
            here = f"{path}.{key}"
            required = key in body.get("required", ())
            default = "required" if required else _default(sub)
            yield (here, _kind(sub, defs), default, _cell(sub.get("description", "")))
            yield from _rows(here, sub, defs, seen | {name})
    extra = prop.get("additionalProperties")
    if isinstance(extra, Mapping):
        yield from _rows(f"{path}.<name>", extra, defs, seen)
    items = prop.get("items")
    if isinstance(items, Mapping):
        yield from _rows(f"{path}[]", items, defs, seen)


def _objects(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The named object shapes ``prop`` may be (a reference, or each member of a union)."""
    ref = prop.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        body = defs[name]
        if "anyOf" in body:
            yield from _objects(body, defs)
        elif body.get("type") == "object":
            yield name, body
    for member in prop.get("anyOf", ()):
        yield from _objects(member, defs)


def _kind(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        body = defs[name]
        if "enum" in body:
            return " \\| ".join(f"`{v}`" for v in body["enum"])
        return "mapping" if "anyOf" not in body else "provider block"
    if "anyOf" in prop:
        kinds = [
            _kind(m, defs) for m in prop["anyOf"] if m.get("type") != "null" and m != VAR_REFERENCE
        ]
        return " or ".join(dict.fromkeys(kinds))
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type")
    if kind == "object":
        return "mapping"
    if kind == "array":
        return "list"
    bounds = []
    for word, op in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if word in prop and prop[word] < 1e300:
            bounds.append(f"{op} {prop[word]:g}")
    text = {"integer": "integer", "number": "number", "boolean": "boolean"}.get(str(kind), "string")
    return text + (" " + ", ".join(bounds) if bounds else "")


def _default(prop: Mapping[str, Any]) -> str:
    if "default" not in prop:
        return "—"
    value = prop["default"]
    if isinstance(value, dict | list) and value:
        return "see below"
    text = json.dumps(value)
    return f"`{text}`" if len(text) <= 40 else "(long; see the type's docs)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
