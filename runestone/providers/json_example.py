"""Deterministic example JSON for a JSON Schema: what the simulated provider writes.

:func:`example` gives a value valid against a schema, the same value every time;
:func:`example_json` gives it as JSON text. It covers what structured-output
clients send (pydantic's ``model_json_schema()``, OpenAI strict schemas, tool
``parameters``):

- ``type`` (one or a list; ``null`` last unless nothing else fits), ``const``,
  ``enum`` (its first value), ``default`` and ``examples`` (used as given);
- objects: ``properties`` (all of them; once recursing, only ``required``
  ones), ``required``, ``additionalProperties``, ``patternProperties``,
  ``minProperties``/``maxProperties``;
- arrays: ``items``, ``prefixItems`` (and draft-7 tuple ``items``),
  ``minItems``/``maxItems`` (one item unless more are required),
  ``uniqueItems``, ``contains``;
- strings: ``minLength``/``maxLength``, ``format`` (``date``, ``date-time``,
  ``time``, ``email``, ``uri``, ``uuid``, ``hostname``, ``ipv4``, ``ipv6``,
  ``duration`` …), a value that reads like its property (``name`` → "Ada
  Lovelace", ``city`` → "London"), and ``pattern`` (below);
- numbers: ``minimum``/``maximum``, ``exclusiveMinimum``/``exclusiveMaximum``
  (numbers, or draft-4 booleans), ``multipleOf``;
- ``anyOf`` and ``oneOf``: the first branch that can be satisfied (``oneOf``
  is read as ``anyOf``: the branches pydantic writes are disjoint);
  ``allOf``: its parts merged (properties and ``required`` joined, bounds
  tightened, types intersected);
- ``$ref`` to ``#``, ``#/$defs/…``, ``#/definitions/…`` or any other JSON
  pointer into the schema. A recursive reference is expanded once; inside it
  only what is required is written and ``anyOf`` prefers its cheapest branch
  (``null``, then scalars), so a tree or a linked list ends.

A ``pattern`` is met by trying the usual value, then a string built from the
pattern's parse (literals, classes, groups, alternations, repeats); the result
is checked with :func:`re.search`. A pattern it cannot meet that way (look-arounds,
syntax Python's :mod:`re` does not read) is left unmet: the string still meets
the other keywords. Keywords not listed (``not``, ``if``/``then``/``else``,
``dependentRequired``, ``propertyNames``, ``unevaluated*``) are ignored.
A schema nothing satisfies raises :class:`UnsatisfiableSchemaError`.
"""

from __future__ import annotations

import datetime
import importlib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Final, TypeAlias

__all__ = ["UnsatisfiableSchemaError", "example", "example_json"]


class UnsatisfiableSchemaError(ValueError):
    """No value the generator can write satisfies the schema."""


class _UnsatisfiableError(Exception):
    """This branch of the schema cannot be satisfied: the caller tries another."""


_MAX_DEPTH: Final = 48
"""Levels of nesting before a branch is given up (a recursion that never ends)."""
_MINIMAL_DEPTH: Final = 12
"""Levels of nesting past which only what the schema requires is written."""
_MAX_STEPS: Final = 20_000
"""Subschemas visited before the whole schema is given up (backtracking bound)."""
_MAX_REF_VISITS: Final = 3
"""How often one ``$ref`` may be open at once along a path."""


def example(schema: object) -> Any:
    """A JSON value valid against the JSON Schema ``schema``, the same every time.

    Raises :class:`UnsatisfiableSchemaError` when it finds none (see the module
    docstring for what is understood).
    """
    generator = _Generator(schema)
    try:
        return generator.value(schema, _At(refs=("#",)))  # "#" is open already: the root
    except (_UnsatisfiableError, _TooComplexError, RecursionError) as exc:
        raise UnsatisfiableSchemaError(f"no example satisfies the schema: {exc}") from None


def example_json(schema: object) -> str:
    """:func:`example` as JSON text (spaced, so that it streams word by word)."""
    return json.dumps(example(schema), ensure_ascii=False, allow_nan=False)


class _TooComplexError(Exception):
    """The step budget ran out: not a branch to backtrack from, the end of the search."""


@dataclass(frozen=True, slots=True)
class _At:
    """Where the generator is: the property's name, the item's index, the open refs."""

    name: str = ""
    variant: int = 0
    """Which of several values to give (array items differ by it, for ``uniqueItems``)."""
    refs: tuple[str, ...] = ()
    depth: int = 0
    minimal: bool = False
    """Only what is required: set inside a recursive reference and past a depth."""

    def child(self, name: str, variant: int = 0) -> _At:
        depth = self.depth + 1
        if depth > _MAX_DEPTH:
            raise _UnsatisfiableError("nested too deep")
        return replace(
            self,
            name=name,
            variant=variant,
            depth=depth,
            minimal=self.minimal or depth > _MINIMAL_DEPTH,
        )

    def enter(self, ref: str) -> _At:
        visits = self.refs.count(ref)
        if visits >= _MAX_REF_VISITS:
            raise _UnsatisfiableError(f"{ref} refers to itself with no way out")
        return replace(self, refs=(*self.refs, ref), minimal=self.minimal or visits > 0)


class _Generator:
    """One search for an example of ``root`` (which ``$ref`` pointers point into)."""

    def __init__(self, root: object) -> None:
        self.root = root
        self.steps = 0

    def value(self, schema: object, at: _At) -> Any:
        self.steps += 1
        if self.steps > _MAX_STEPS:
            raise _TooComplexError("the schema is too complex to search")
        node, at = self._flatten(schema, at)
        if "const" in node:
            if not _of_type(node["const"], node):
                raise _UnsatisfiableError("the const is not of the schema's type")
            return node["const"]
        if "enum" in node:
            return self._enum(node, at)
        given = _given(node, at)
        if given:
            return given[0]
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                return self._any_of(node, key, at)
        if isinstance(node.get("allOf"), list):
            return self._all_of(node, at)
        failures = []
        for kind in _types(node, at):
            try:
                return self._typed(kind, node, at)
            except _UnsatisfiableError as exc:
                failures.append(str(exc))
        raise _UnsatisfiableError("; ".join(failures) or "no type fits")

    # ---- combinators

    def _flatten(self, schema: object, at: _At) -> tuple[Mapping[str, Any], _At]:
        """``schema`` as a mapping with its ``$ref`` (and its target's) resolved."""
        node = _node(schema)
        while "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str):
                raise _UnsatisfiableError("$ref is not a string")
            at = at.enter(ref)
            rest = {k: v for k, v in node.items() if k != "$ref"}
            node = _merge(_node(self._resolve(ref)), rest)
        return node, at

    def _resolve(self, ref: str) -> object:
        if not ref.startswith("#"):
            raise _UnsatisfiableError(f"cannot follow {ref!r}: only references into the schema")
        target: object = self.root
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise _UnsatisfiableError(f"cannot follow {ref!r}: not a JSON pointer")
        for raw in pointer.split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise _UnsatisfiableError(f"{ref!r} points at nothing")
        return target

    def _any_of(self, node: Mapping[str, Any], key: str, at: _At) -> Any:
        rest = {k: v for k, v in node.items() if k != key}
        branches = list(node[key])
        if at.minimal:
            branches.sort(key=_cost)  # stable: the first of the cheapest
        failures = []
        for branch in branches:
            try:
                return self.value(_merge(rest, _node(branch)), at)
            except _UnsatisfiableError as exc:
                failures.append(str(exc))
        raise _UnsatisfiableError(f"no branch of {key} fits: " + "; ".join(failures))

    def _all_of(self, node: Mapping[str, Any], at: _At) -> Any:
        merged: Mapping[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"]:
            flat, at = self._flatten(part, at)
            merged = _merge(merged, flat)
        return self.value(merged, at)

    def _enum(self, node: Mapping[str, Any], at: _At) -> Any:
        values = node["enum"]
        if not isinstance(values, list):
            raise _UnsatisfiableError("enum is not a list")
        values = [v for v in values if _of_type(v, node)]
        if not values:
            raise _UnsatisfiableError("no enum value has the schema's type")
        return values[at.variant % len(values)]

    # ---- the types

    def _typed(self, kind: str, node: Mapping[str, Any], at: _At) -> Any:
        if kind == "null":
            return None
        if kind == "boolean":
            return at.variant % 2 == 0
        if kind in ("integer", "number"):
            return _number(node, at, integer=kind == "integer")
        if kind == "string":
            return _string(node, at)
        if kind == "array":
            return self._array(node, at)
        if kind == "object":
            return self._object(node, at)
        raise _UnsatisfiableError(f"unknown type {kind!r}")

    def _object(self, node: Mapping[str, Any], at: _At) -> dict[str, Any]:
        properties = node.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = [n for n in node.get("required") or () if isinstance(n, str)]
        out: dict[str, Any] = {}
        names = [n for n in properties if not at.minimal or n in required]
        for name in names:
            try:
                out[name] = self.value(properties[name], at.child(name))
            except _UnsatisfiableError:
                if name in required:
                    raise
        for name in required:
            if name not in out and name not in properties:
                out[name] = self.value(self._extra_schema(node, name), at.child(name))
        optional = [n for n in reversed(out) if n not in required]
        limit = node.get("maxProperties")
        while isinstance(limit, int) and len(out) > limit:
            if not optional:
                raise _UnsatisfiableError("more required properties than maxProperties")
            del out[optional.pop(0)]
        least = node.get("minProperties")
        index = 0
        while isinstance(least, int) and len(out) < least:
            index += 1
            key = f"key_{index}"
            if key not in out:
                out[key] = self.value(self._extra_schema(node, key), at.child(key))
        return out

    @staticmethod
    def _extra_schema(node: Mapping[str, Any], name: str) -> object:
        """The schema of a property ``properties`` does not name."""
        patterns = node.get("patternProperties")
        if isinstance(patterns, Mapping):
            for pattern, schema in patterns.items():
                if _matches(pattern, name):
                    return schema
        additional = node.get("additionalProperties", True)
        if additional is False:
            raise _UnsatisfiableError(f"property {name!r} is required but not allowed")
        return additional

    def _array(self, node: Mapping[str, Any], at: _At) -> list[Any]:
        items: object = node.get("items", True)
        prefix: object = node.get("prefixItems", ())
        if isinstance(items, list):  # draft 4-7: a tuple
            prefix, items = items, node.get("additionalItems", True)
        prefix = list(prefix) if isinstance(prefix, list) else []
        least = _int(node.get("minItems"), 0)
        most = node.get("maxItems")
        contains = node.get("contains")
        count = least if at.minimal else max(least, len(prefix), 1)
        if contains is not None:
            count = max(count, 1)
        if items is False:
            count = min(count, len(prefix))
        if isinstance(most, int):
            count = min(count, most)
        if count < least or (contains is not None and count < 1):
            raise _UnsatisfiableError("the array cannot hold the items it needs")
        out = []
        for i in range(count):
            schema: object = prefix[i] if i < len(prefix) else items
            if i == 0 and contains is not None:
                schema = {"allOf": [_node(schema), _node(contains)]}
            variant = 0 if i < len(prefix) else i - len(prefix)  # differ among like items
            out.append(self.value(schema, at.child(at.name, variant)))
        if node.get("uniqueItems") is True and not _distinct(out):
            raise _UnsatisfiableError("no distinct items")
        return out


# --------------------------------------------------------------------------- helpers


def _node(schema: object) -> Mapping[str, Any]:
    """A schema as a mapping: ``true`` is ``{}``; ``false`` satisfies nothing."""
    if schema is False:
        raise _UnsatisfiableError("the schema is false")
    return schema if isinstance(schema, Mapping) else {}


_TIGHTER_LOW: Final = ("minimum", "minLength", "minItems", "minProperties")
_TIGHTER_HIGH: Final = ("maximum", "maxLength", "maxItems", "maxProperties")


def _merge(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Both schemas as one, as ``allOf`` means them for object schemas (see the module
    docstring); where two values cannot be combined the first one's stays."""
    out = dict(first)
    for key, value in second.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if key == "properties" and isinstance(mine, Mapping) and isinstance(value, Mapping):
            props = dict(mine)
            for name, schema in value.items():
                props[name] = {"allOf": [props[name], schema]} if name in props else schema
            out[key] = props
        elif key == "required" and isinstance(mine, list) and isinstance(value, list):
            out[key] = [*mine, *(n for n in value if n not in mine)]
        elif key == "type":
            out[key] = _intersect_types(mine, value)
        elif key in _TIGHTER_LOW and _is_number(mine) and _is_number(value):
            out[key] = max(mine, value)
        elif key in _TIGHTER_HIGH and _is_number(mine) and _is_number(value):
            out[key] = min(mine, value)
        elif key == "enum" and isinstance(mine, list) and isinstance(value, list):
            out[key] = [v for v in mine if v in value]
        elif key == "allOf" and isinstance(mine, list) and isinstance(value, list):
            out[key] = [*mine, *value]
        elif key in ("anyOf", "oneOf", "$ref"):
            # Both must hold: the second waits in allOf until the first is resolved.
            out["allOf"] = [*out.get("allOf", ()), {key: value}]
        elif key in ("items", "additionalProperties", "contains") and (
            isinstance(mine, Mapping) and isinstance(value, Mapping)
        ):
            out[key] = {"allOf": [mine, value]}
        elif key == "additionalProperties" and value is False:
            out[key] = False
    return out


def _intersect_types(first: object, second: object) -> list[str]:
    a = [first] if isinstance(first, str) else list(first) if isinstance(first, list) else []
    b = [second] if isinstance(second, str) else list(second) if isinstance(second, list) else []
    out = [t for t in a if t in b]
    if "integer" in a and "number" in b and "integer" not in out:
        out.append("integer")
    if "number" in a and "integer" in b and "integer" not in out:
        out.append("integer")
    if not out:
        raise _UnsatisfiableError(f"no type is both {first!r} and {second!r}")
    return out


_INFERRED: Final = (
    ("object", ("properties", "required", "additionalProperties", "minProperties")),
    ("array", ("items", "prefixItems", "minItems", "maxItems", "contains")),
    ("string", ("minLength", "maxLength", "pattern", "format")),
    ("number", ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")),
)
_CHEAP_FIRST: Final = ("null", "boolean", "integer", "number", "string", "array", "object")


def _types(node: Mapping[str, Any], at: _At) -> list[str]:
    """The types to try, in order: as written with ``null`` last, or cheapest first."""
    declared = node.get("type")
    if isinstance(declared, str):
        kinds = [declared]
    elif isinstance(declared, list):
        kinds = [k for k in declared if isinstance(k, str)]
    else:
        kinds = [kind for kind, keys in _INFERRED if any(k in node for k in keys)] or ["string"]
    if at.minimal:
        return sorted(kinds, key=lambda k: _CHEAP_FIRST.index(k) if k in _CHEAP_FIRST else 99)
    return sorted(kinds, key=lambda k: k == "null")


def _cost(branch: object) -> int:
    """How much a branch costs to write: the cheapest ends a recursion soonest."""
    if not isinstance(branch, Mapping):
        return 0 if branch is True else 99
    if "$ref" in branch:
        return 50
    kind = branch.get("type")
    if isinstance(kind, str) and kind in _CHEAP_FIRST:
        return _CHEAP_FIRST.index(kind)
    return 10


def _kinds_of(value: object) -> set[str]:
    """The JSON Schema types ``value`` has."""
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if value.is_integer() else {"number"}
    if isinstance(value, str):
        return {"string"}
    if isinstance(value, list):
        return {"array"}
    if isinstance(value, Mapping):
        return {"object"}
    return set()


def _of_type(value: object, node: Mapping[str, Any]) -> bool:
    """``value`` has the type ``node`` declares (any, if it declares none)."""
    kinds = node.get("type")
    if isinstance(kinds, str):
        return kinds in _kinds_of(value)
    if isinstance(kinds, list):
        return bool(set(kinds) & _kinds_of(value))
    return True


def _given(node: Mapping[str, Any], at: _At) -> list[Any]:
    """The value the schema gives, as ``default`` or from ``examples`` (if of its type)."""
    if at.variant == 0 and "default" in node and _of_type(node["default"], node):
        return [node["default"]]
    examples = node.get("examples")
    if isinstance(examples, list):
        fitting = [v for v in examples if _of_type(v, node)]
        if fitting:
            return [fitting[at.variant % len(fitting)]]
    return []


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _distinct(values: Sequence[Any]) -> bool:
    seen = [json.dumps(v, sort_keys=True) for v in values]
    return len(set(seen)) == len(seen)


# --------------------------------------------------------------------------- numbers


def _fraction(value: object) -> Fraction | None:
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return Fraction(str(value))  # str: 0.1 is one tenth, not its binary neighbour


_Number: TypeAlias = int | float


def _bound(node: Mapping[str, Any], inclusive: str, exclusive: str) -> tuple[_Number | None, bool]:
    """One side's bound as written, and whether it is open (``exclusive*`` a number, or a
    draft-4 flag on the inclusive one)."""
    closed = node.get(inclusive) if _is_number(node.get(inclusive)) else None
    flag = node.get(exclusive)
    if isinstance(flag, bool):
        return closed, flag and closed is not None
    opened = flag if _is_number(flag) else None
    if opened is None:
        return closed, False
    if closed is None:
        return opened, True
    tighter = opened >= closed if inclusive == "minimum" else opened <= closed
    return (opened, True) if tighter else (closed, False)


def _multiple_ok(value: _Number, multiple: _Number | None) -> bool:
    """``value`` is a multiple as validators compute it (floats divide, integers take %)."""
    if multiple is None:
        return True
    if isinstance(multiple, float):
        quotient = value / multiple
        return math.isfinite(quotient) and int(quotient) == quotient
    return value % multiple == 0


def _number(node: Mapping[str, Any], at: _At, *, integer: bool) -> _Number:
    low, low_open = _bound(node, "minimum", "exclusiveMinimum")
    high, high_open = _bound(node, "maximum", "exclusiveMaximum")
    raw_multiple = node.get("multipleOf")
    multiple: _Number | None = None
    if isinstance(raw_multiple, int | float) and not isinstance(raw_multiple, bool):
        multiple = raw_multiple if raw_multiple > 0 else None

    def fits_bounds(value: _Number) -> bool:
        if low is not None and (value < low or (low_open and value == low)):
            return False
        return high is None or not (value > high or (high_open and value == high))

    def fits(value: _Number) -> bool:
        return fits_bounds(value) and _multiple_ok(value, multiple)

    target = Fraction(1 + at.variant) if integer else Fraction(3, 2) + at.variant
    bounds = (_fraction(low), _fraction(high))
    try:
        if integer or multiple is not None:
            step = _fraction(multiple) or Fraction(1)
            # Whole numbers first: they read well and survive float division in validators.
            for multiple_of_step in _grid(Fraction(step.numerator), target, *bounds):
                whole = int(multiple_of_step)
                if fits(whole):
                    return whole if integer else float(whole)
            if integer:
                raise _UnsatisfiableError("no integer within the bounds")
            exact = _grid(step, target, *bounds)
            for number in map(float, exact):
                if fits(number):
                    return number
            # Float division may miss a true multiple (0.7 / 0.1): give the true one then.
            for fraction in exact:
                number = float(fraction)
                if fraction == _fraction(number) and fits_bounds(number):
                    return number
            raise _UnsatisfiableError("no multiple within the bounds")
        between = _between(target, bounds[0], low_open, bounds[1], high_open)
        if between is None or not fits(float(between)):
            raise _UnsatisfiableError("no number within the bounds")
        return float(between)
    except (OverflowError, ZeroDivisionError):
        raise _UnsatisfiableError("the bounds are out of range") from None


def _grid(
    step: Fraction, target: Fraction, low: Fraction | None, high: Fraction | None
) -> list[Fraction]:
    """A few multiples of ``step`` within the bounds, those nearest ``target`` first."""
    k = math.ceil(target / step)
    if low is not None:
        k = max(k, math.ceil(low / step))
    if high is not None:
        k = min(k, math.floor(high / step))
    return [n * step for n in (k, k + 1, k - 1, k + 2, k - 2, k + 3, k - 3)]


def _between(
    target: Fraction,
    low: Fraction | None,
    low_open: bool,
    high: Fraction | None,
    high_open: bool,
) -> Fraction | None:
    """A number within the bounds: ``target`` if it is within them."""
    if low is not None and high is not None:
        if low > high or (low == high and (low_open or high_open)):
            return None
        if low == high:
            return low
        if not low < target < high:
            return (low + high) / 2
        return target
    if low is not None and target <= low:
        return low + 1 if low_open else low
    if high is not None and target >= high:
        return high - 1 if high_open else high
    return target


# --------------------------------------------------------------------------- strings

_EPOCH: Final = datetime.date(2026, 1, 15)

_FORMATS: Final[Mapping[str, Callable[[int], str]]] = {
    "date": lambda v: (_EPOCH + datetime.timedelta(days=v)).isoformat(),
    "date-time": lambda v: f"{(_EPOCH + datetime.timedelta(days=v)).isoformat()}T09:30:00Z",
    "time": lambda v: f"{9 + v % 12:02d}:30:00Z",
    "email": lambda v: f"ada{v or ''}@example.com",
    "idn-email": lambda v: f"ada{v or ''}@example.com",
    "uri": lambda v: f"https://example.com/{v or ''}",
    "iri": lambda v: f"https://example.com/{v or ''}",
    "uri-reference": lambda v: f"/example/{v or ''}",
    "iri-reference": lambda v: f"/example/{v or ''}",
    "uri-template": lambda v: "https://example.com/{id}" + ("/" * v),
    "uuid": lambda v: str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://example.com/{v}")),
    "hostname": lambda v: f"host{v or ''}.example.com",
    "idn-hostname": lambda v: f"host{v or ''}.example.com",
    "ipv4": lambda v: f"192.0.2.{1 + v % 254}",
    "ipv6": lambda v: f"2001:db8::{v + 1:x}",
    "duration": lambda v: f"P{v + 1}D",
    "json-pointer": lambda v: f"/example/{v}",
    "relative-json-pointer": lambda v: str(v),
    "regex": lambda v: "^example" + "x" * v,
}

_NAMED: Final[Mapping[str, tuple[str, ...]]] = {
    "name": ("Ada Lovelace", "Alan Turing", "Grace Hopper"),
    "full_name": ("Ada Lovelace", "Alan Turing", "Grace Hopper"),
    "author": ("Ada Lovelace", "Alan Turing", "Grace Hopper"),
    "first_name": ("Ada", "Alan", "Grace"),
    "given_name": ("Ada", "Alan", "Grace"),
    "last_name": ("Lovelace", "Turing", "Hopper"),
    "family_name": ("Lovelace", "Turing", "Hopper"),
    "surname": ("Lovelace", "Turing", "Hopper"),
    "username": ("ada", "alan", "grace"),
    "email": ("ada@example.com", "alan@example.com", "grace@example.com"),
    "url": ("https://example.com/",),
    "city": ("London", "Paris", "Tokyo"),
    "location": ("London", "Paris", "Tokyo"),
    "country": ("United Kingdom", "France", "Japan"),
    "address": ("12 St James's Square, London",),
    "street": ("12 St James's Square",),
    "phone": ("+44 20 7946 0000",),
    "title": ("Notes on the Analytical Engine",),
    "description": ("A short example description.",),
    "summary": ("A short example summary.",),
    "language": ("English", "French", "Japanese"),
    "currency": ("GBP", "EUR", "JPY"),
    "color": ("blue", "green", "red"),
    "colour": ("blue", "green", "red"),
    "unit": ("celsius", "fahrenheit"),
    "status": ("active", "pending", "done"),
    "date": ("2026-01-15",),
    "query": ("example query",),
}


def _named(name: str, variant: int) -> str:
    """A string that reads like the property ``name`` (``cityName`` → a city)."""
    key = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("-", "_")
    for candidate in (key, key.rsplit("_", 1)[-1], key.removesuffix("s")):
        values = _NAMED.get(candidate)
        if values:
            base = values[variant % len(values)]
            return base if variant < len(values) else f"{base} {variant + 1}"
    words = key.replace("_", " ").strip()
    base = f"example {words}" if words else "example"
    return f"{base} {variant + 1}" if variant else base


def _fit(text: str, least: int, most: int | None) -> str:
    if len(text) < least:
        text = (text + " ") * (least // (len(text) + 1) + 1) if text else "x" * least
        text = text[:least]
    if most is not None and len(text) > most:
        text = text[:most]
    return text


def _string(node: Mapping[str, Any], at: _At) -> str:
    least = max(_int(node.get("minLength"), 0), 0)
    most_raw = node.get("maxLength")
    most = most_raw if isinstance(most_raw, int) and not isinstance(most_raw, bool) else None
    if most is not None and most < least:
        raise _UnsatisfiableError("maxLength is below minLength")
    fmt = node.get("format")
    make = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    base = make(at.variant) if make is not None else _named(at.name, at.variant)
    fitted = _fit(base, least, most)
    pattern = node.get("pattern")
    if not isinstance(pattern, str):
        return fitted
    for candidate in _pattern_candidates(pattern, fitted, least, most, at.variant):
        fits = least <= len(candidate) and (most is None or len(candidate) <= most)
        if fits and _matches(pattern, candidate):
            return candidate
    return fitted  # a pattern it cannot meet is left unmet (module docstring)


def _pattern_candidates(
    pattern: str, fitted: str, least: int, most: int | None, variant: int
) -> list[str]:
    out = [fitted]
    for repeat in dict.fromkeys((1 + variant, least, most or 1, 0)):
        built = _from_regex(pattern, repeat)
        if built is None:
            continue
        out.append(built)
        if len(built) < least:
            out += [built + "x" * (least - len(built)), "x" * (least - len(built)) + built]
    return out


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _sre() -> Any:
    """The standard library's regular-expression parser (private: used if it is there)."""
    try:
        return importlib.import_module("re._parser")
    except ImportError:  # pragma: no cover - another Python
        return None


_REPRESENTATIVE: Final = {
    "CATEGORY_DIGIT": "0",
    "CATEGORY_NOT_DIGIT": "a",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": "a",
    "CATEGORY_WORD": "a",
    "CATEGORY_NOT_WORD": "-",
}
_CATEGORY_TEST: Final[Mapping[str, Callable[[str], bool]]] = {
    "CATEGORY_DIGIT": str.isdigit,
    "CATEGORY_NOT_DIGIT": lambda c: not c.isdigit(),
    "CATEGORY_SPACE": str.isspace,
    "CATEGORY_NOT_SPACE": lambda c: not c.isspace(),
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_",
    "CATEGORY_NOT_WORD": lambda c: not (c.isalnum() or c == "_"),
}
_SPARE_CHARACTERS: Final = "aA0x_- .z9Z"


def _from_regex(pattern: str, repeat: int) -> str | None:
    """A string the pattern should match (checked by the caller), repeats ``repeat`` times
    where the pattern allows; None when the pattern uses what this does not build."""
    parser = _sre()
    if parser is None:
        return None
    try:
        parsed = parser.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return None
    groups: dict[int, str] = {}
    try:
        return _emit(list(parsed), repeat, groups)
    except (_NoRegexExampleError, RecursionError):
        return None


class _NoRegexExampleError(Exception):
    """The pattern uses something the builder does not build."""


def _emit(items: list[tuple[Any, Any]], repeat: int, groups: dict[int, str]) -> str:
    out: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if arg != ord("a") else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_class_character(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            count = max(low, min(high, repeat))
            out.append("".join(_emit(list(sub), repeat, groups) for _ in range(count)))
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            group, sub = (arg[0], arg[-1]) if name == "SUBPATTERN" else (None, arg)
            text = _emit(list(sub), repeat, groups)
            if group is not None:
                groups[group] = text
            out.append(text)
        elif name == "BRANCH":
            out.append(_emit(list(arg[1][0]), repeat, groups))
        elif name == "GROUPREF":
            out.append(groups.get(arg, ""))
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue  # anchors and look-arounds add no characters (re.search checks them)
        else:
            raise _NoRegexExampleError(name)
    return "".join(out)


def _class_character(items: list[tuple[Any, Any]]) -> str:
    """A character in the class ``items`` (``[a-z]``, ``[^0-9]``, ``\\d`` …)."""
    if items and str(items[0][0]) == "NEGATE":
        rest = items[1:]
        for char in _SPARE_CHARACTERS:
            if not _in_class(char, rest):
                return char
        raise _NoRegexExampleError("negated class")
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY" and str(arg) in _REPRESENTATIVE:
            return _REPRESENTATIVE[str(arg)]
    raise _NoRegexExampleError("class")


def _in_class(char: str, items: list[tuple[Any, Any]]) -> bool:
    for op, arg in items:
        name = str(op)
        if name == "LITERAL" and char == chr(arg):
            return True
        if name == "RANGE" and arg[0] <= ord(char) <= arg[1]:
            return True
        if name == "CATEGORY":
            test = _CATEGORY_TEST.get(str(arg))
            if test is None or test(char):
                return True  # an unknown category: assume the worst, try another character
    return False
