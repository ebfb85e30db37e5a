"""A schema's refusal, said as the gateway says it: a :class:`RequestValidationError` naming
the field the way the client's API names it, in words read off the schema.

msgspec reports the first bad value as ``Expected `int` >= 1 - at `$.max_tokens```. That
message and its path are all it gives, so :func:`refusal` parses them, walks the schema
(:func:`msgspec.inspect.type_info`) along the path beside the JSON that was refused, and
words the error from what it finds there:

- a missing field: ``required`` and the field's ``expected`` phrase;
- a value of the wrong type: ``expected <phrase or the types>, got <its JSON kind>``;
- a broken constraint: the bounds (``must be between 0 and 2, got 3``), the length, or
  the field's ``expected`` phrase;
- a value outside a literal or a tagged union: ``expected 'a' or 'b', got 'c'``;
- an unknown field of a closed object: ``not supported by this gateway``.

A field's wording lives in its schema, as ``msgspec.Meta(extra={...})``:

``expected``
    what the field holds, e.g. ``"a non-empty list of messages"``;
``invalid``
    the whole message for a value outside the allowed ones, with ``{value}`` and
    ``{allowed}`` filled in;
``missing_at``
    where a missing field is named instead, relative to the object that lacks it
    (``""``: the object itself; ``"function.name"``: deeper).

A message that is none of msgspec's (one an :class:`runestone.wire.schema.OpenUnion`
raises) is passed on as it is, at its path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

from runestone.exceptions import RequestValidationError
from runestone.jsonio import json_kind
from runestone.schema import ANY_KEY, report_steps, split_report

__all__ = ["Missing", "field_name", "refusal", "schema_of"]


class Missing:
    """The value at a path that is not in the JSON (a field the client left out)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = Missing()

_MISSING_FIELD: Final = re.compile(r"Object missing required field `(.+)`$")
_UNKNOWN_FIELD: Final = re.compile(r"Object contains unknown field `(.+)`$")
_WRONG_TYPE: Final = re.compile(r"Expected `([^`]+)`(?:, got `([^`]+)`)?$")
_CONSTRAINT: Final = re.compile(r"Expected `([^`]+)` (.+)$")
_INVALID: Final = re.compile(r"Invalid (?:enum )?value (.+)$")
_KEY: Final = re.compile(r"Expected `([^`]+)`$")

# msgspec's type names as a sentence says them; null is left out (it means "absent").
_TYPE_WORDS: Final[Mapping[str, str]] = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "a list",
}

Step = str | int
"""A field name or a list index on the way to a value."""


@functools.cache
def schema_of(schema: Any) -> mi.Type:
    """The inspected schema of ``schema`` (a type), computed once."""
    return mi.type_info(schema)


def field_name(steps: Sequence[Step], *, dotted: bool) -> str:
    """``steps`` as the API names a field: ``messages[2].content`` or, ``dotted``,
    Anthropic's ``messages.2.content``."""
    out = ""
    for step in steps:
        if isinstance(step, int):
            out += f".{step}" if dotted else f"[{step}]"
        else:
            out += f".{step}" if out else step
    return out


@dataclass(slots=True)
class _Found:
    """What the schema says at the end of a path."""

    node: mi.Type | None
    value: object
    extra: dict[str, Any]
    allowed: tuple[object, ...] = ()


def refusal(
    error: msgspec.ValidationError, schema: Any, data: object, *, dotted: bool = False
) -> RequestValidationError:
    """The :class:`RequestValidationError` for ``error``, raised decoding ``data`` (the
    refused JSON, as Python values) as ``schema``."""
    message, paths = split_report(str(error))
    steps: list[Step] = [step for path in paths for step in report_steps(path)]
    if _KEY.match(message) and paths and paths[-1].startswith("key` in `"):
        return RequestValidationError(
            "field names must be strings", field=field_name(steps, dotted=dotted) or "request"
        )
    text: str
    if (missing := _MISSING_FIELD.match(message)) is not None:
        resolved: list[Step] = []
        found = _walk(schema_of(schema), data, steps, resolved)
        name = missing.group(1)
        child = _field(found.node, name)
        extra = _extras(child)
        at = extra.get("missing_at")
        if at is None:
            resolved.append(name)
        elif at:
            resolved.extend(at.split("."))
        expected = extra.get("expected")
        text = f"required: {expected}" if expected else "required"
        return RequestValidationError(text, field=field_name(resolved, dotted=dotted))
    if (unknown := _UNKNOWN_FIELD.match(message)) is not None:
        resolved = []
        _walk(schema_of(schema), data, steps, resolved)
        resolved.append(unknown.group(1))
        return RequestValidationError(
            "not supported by this gateway", field=field_name(resolved, dotted=dotted)
        )
    resolved = []
    found = _walk(schema_of(schema), data, steps, resolved)
    value = found.value
    expected = found.extra.get("expected")
    if (wrong := _WRONG_TYPE.match(message)) is not None:
        kind = json_kind(value) if value is not _MISSING else wrong.group(2) or "another type"
        text = f"expected {expected or _say_types(wrong.group(1))}, got {kind}"
    elif (invalid := _INVALID.match(message)) is not None:
        shown = repr(value) if value is not _MISSING else invalid.group(1)
        template = found.extra.get("invalid")
        if template:
            text = template.format(value=shown, allowed=", ".join(str(v) for v in found.allowed))
        else:
            allowed = _say_choices(found.allowed)
            text = f"expected {allowed}, got {shown}" if allowed else f"invalid value {shown}"
    elif (constraint := _CONSTRAINT.match(message)) is not None:
        text = _say_constraint(
            found.node, value, expected, constraint.group(1), constraint.group(2)
        )
    else:
        text = message
    return RequestValidationError(text, field=field_name(resolved, dotted=dotted) or "request")


# --------------------------------------------------------------------------- the message


def _say_types(types: str) -> str:
    words = [_TYPE_WORDS.get(name.strip(), name.strip()) for name in types.split("|")]
    return " or ".join(word for word in words if word != "null") or "null"


def _say_choices(values: Sequence[object]) -> str:
    shown = [repr(v) for v in values]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _say_constraint(
    node: mi.Type | None, value: object, expected: str | None, kind: str, rule: str
) -> str:
    shown = repr(value) if isinstance(value, str) else json_kind(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        shown = f"{value}"
    elif isinstance(value, list) and not value:
        shown = "an empty list"
    if isinstance(node, mi.IntType | mi.FloatType):
        low = node.ge if node.ge is not None else node.gt
        high = node.le if node.le is not None else node.lt
        if low is not None and high is not None:
            return f"must be between {low:g} and {high:g}, got {shown}"
        if low is not None:
            return f"must be at least {low:g}, got {shown}"
        if high is not None:
            return f"must be at most {high:g}, got {shown}"
    if expected:
        return f"expected {expected}, got {shown}"
    if isinstance(node, mi.StrType | mi.ListType) and node.min_length:
        noun = "string" if isinstance(node, mi.StrType) else "list"
        return f"expected a non-empty {noun}, got {shown}"
    if isinstance(node, mi.StrType) and node.pattern is not None:
        return f"expected a string matching {node.pattern!r}, got {shown}"
    if rule == "of length >= 1":
        noun = "list" if kind == "array" else "string" if kind == "str" else "value"
        return f"expected a non-empty {noun}, got {shown}"
    return f"expected {_say_types(kind)} {_say_rule(rule)}, got {shown}"


def _say_rule(rule: str) -> str:
    """msgspec's wording of a constraint (``of length >= 1``) as a sentence says it."""
    for said, says in ((">=", "at least"), ("<=", "at most"), (">", "over"), ("<", "under")):
        rule = rule.replace(f" {said} ", f" {says} ").replace(f"{said} ", f"{says} ")
    return rule


# --------------------------------------------------------------------------- the walk


def _extras(node: mi.Type | None) -> dict[str, Any]:
    """The ``Meta(extra=...)`` wording on ``node`` and the wrappers around its branches."""
    out: dict[str, Any] = {}
    while isinstance(node, mi.Metadata):
        out = {**(node.extra or {}), **out}
        node = node.type
    if isinstance(node, mi.UnionType):
        for branch in node.types:
            if isinstance(branch, mi.Metadata):
                out = {**_extras(branch), **out}
    return out


def _field(node: mi.Type | None, name: str) -> mi.Type | None:
    node = _strip(node)[0]
    if isinstance(node, mi.StructType):
        for info in node.fields:
            if info.encode_name == name:
                return info.type
    return None


def _strip(node: mi.Type | None) -> tuple[mi.Type | None, dict[str, Any]]:
    extra: dict[str, Any] = {}
    while isinstance(node, mi.Metadata):
        extra = {**(node.extra or {}), **extra}
        node = node.type
    return node, extra


def _branch(node: mi.Type | None, value: object) -> tuple[mi.Type | None, dict[str, Any]]:
    """The part of ``node`` that ``value`` was decoded as: a union's matching branch, the
    member a tag picks, an :class:`~runestone.wire.schema.OpenUnion`'s member."""
    node, extra = _strip(node)
    if isinstance(node, mi.UnionType):
        picked = _pick(node.types, value)
        if picked is None:
            return node, extra
        inner, more = _branch(picked, value)
        return inner, {**extra, **more}  # the branch's own wording is the more precise
    if isinstance(node, mi.CustomType):
        member = getattr(node.cls, "member_for", None)
        if member is not None and isinstance(value, Mapping):
            chosen = member(value)
            if chosen is not None:
                inner, more = _branch(schema_of(chosen), value)
                return inner, {**extra, **more}
    return node, extra


def _pick(branches: Sequence[mi.Type], value: object) -> mi.Type | None:
    for branch in branches:
        if _matches(_strip(branch)[0], value):
            return branch
    return None


def _matches(node: mi.Type | None, value: object) -> bool:
    if isinstance(node, mi.UnionType):
        return any(_matches(_strip(branch)[0], value) for branch in node.types)
    if value is None:
        return isinstance(node, mi.NoneType)
    if isinstance(value, bool):
        return isinstance(node, mi.BoolType)
    if isinstance(value, str):
        return isinstance(node, mi.StrType) or (
            isinstance(node, mi.LiteralType) and value in node.values
        )
    if isinstance(node, mi.LiteralType):
        return value in node.values
    if isinstance(value, int):
        return isinstance(node, mi.IntType | mi.FloatType)
    if isinstance(value, float):
        return isinstance(node, mi.FloatType)
    if isinstance(value, list | tuple):
        return isinstance(node, mi.ListType | mi.TupleType | mi.VarTupleType)
    if isinstance(value, Mapping):
        if isinstance(node, mi.StructType) and node.tag_field is not None:
            return value.get(node.tag_field) == node.tag
        return isinstance(node, mi.StructType | mi.DictType | mi.CustomType)
    return False


def _tags(node: mi.Type | None) -> tuple[object, ...]:
    """The values a union's tag may take, in the schema's order."""
    node = _strip(node)[0]
    if isinstance(node, mi.UnionType):
        return tuple(
            tag
            for branch in node.types
            for tag in _tags(branch)
            if not isinstance(_strip(branch)[0], mi.NoneType)
        )
    if isinstance(node, mi.StructType) and node.tag is not None:
        return (node.tag,)
    if isinstance(node, mi.CustomType):
        members = getattr(node.cls, "MEMBERS", {})
        return tuple(members)
    return ()


def _tag_field(node: mi.Type | None) -> str | None:
    node = _strip(node)[0]
    if isinstance(node, mi.UnionType):
        for branch in node.types:
            if (name := _tag_field(branch)) is not None:
                return name
    if isinstance(node, mi.StructType):
        return node.tag_field
    if isinstance(node, mi.CustomType):
        return getattr(node.cls, "TAG", None)
    return None


def _walk(root: mi.Type, data: object, steps: Sequence[Step], resolved: list[Step]) -> _Found:
    """Follow ``steps`` through the schema and the JSON together; ``resolved`` gets the
    steps with each ``[...]`` (a mapping's value) replaced by the key that was refused."""
    node: mi.Type | None = root
    value: object = data
    for position, step in enumerate(steps):
        last = position == len(steps) - 1
        here, extra_here = _branch(node, value)
        if isinstance(step, str):
            if last and _tag_field(node) == step and isinstance(value, Mapping):
                # The tag itself was refused: what may it be?
                resolved.append(step)
                tag_extra = {**_extras(node), **extra_here}
                return _Found(None, value.get(step, _MISSING), tag_extra, _tags(node))
            resolved.append(step)
            node = _field(here, step)
            value = value.get(step, _MISSING) if isinstance(value, Mapping) else _MISSING
        elif step == ANY_KEY:  # a mapping's value: find the key whose value was refused
            here = _strip(here)[0]
            value_type = here.value_type if isinstance(here, mi.DictType) else None
            key, value = _refused_item(value, value_type)
            resolved.append(key)
            node = value_type
        else:
            resolved.append(step)
            here = _strip(here)[0]
            node = here.item_type if isinstance(here, mi.ListType | mi.VarTupleType) else None
            value = value[step] if isinstance(value, list) and step < len(value) else _MISSING
    here, more = _branch(node, value) if value is not _MISSING else _strip(node)
    # Every branch's wording, unless the value picked one: then that branch's.
    extra = {**_extras(node), **more}
    return _Found(here, value, extra, _literals(node))


def _literals(node: mi.Type | None) -> tuple[object, ...]:
    """The values the literals in ``node`` (and its union's branches) allow."""
    node = _strip(node)[0]
    if isinstance(node, mi.LiteralType):
        return tuple(node.values)
    if isinstance(node, mi.UnionType):
        return tuple(value for branch in node.types for value in _literals(branch))
    return ()


def _refused_item(value: object, value_type: mi.Type | None) -> tuple[str, object]:
    if not isinstance(value, Mapping):
        return "...", _MISSING
    for key, item in value.items():
        if not _fits(item, value_type):
            return str(key), item
    return "...", _MISSING


def _fits(item: object, node: mi.Type | None) -> bool:
    node = _strip(node)[0]
    if isinstance(node, mi.UnionType):
        return any(_fits(item, branch) for branch in node.types)
    if isinstance(node, mi.AnyType) or node is None:
        return True
    return _matches(node, item)
