"""Example JSON for a JSON Schema: valid against it, the same every time, readable."""

from __future__ import annotations

import datetime
import ipaddress
import json
import uuid
from typing import Any, Literal

import jsonschema
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.providers.json_example import UnsatisfiableSchemaError, example, example_json


def check(schema: Any, validator: type[Any] = jsonschema.Draft202012Validator) -> Any:
    """``example(schema)``, checked valid (formats too) and deterministic; the value."""
    validator.check_schema(schema)
    value = example(schema)
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(value)
    text = example_json(schema)
    assert json.loads(text) == value
    assert example_json(schema) == text
    return value


# --------------------------------------------------------------------------- generated schemas

NAMES = st.sampled_from(
    ["name", "city", "email", "title", "count", "value", "tags", "id", "note", "firstName", "x"]
)
FORMATS = st.sampled_from(
    ["date", "date-time", "time", "email", "uri", "uuid", "hostname", "ipv4", "ipv6", "duration"]
)
# Patterns the builder meets: classes, repeats, groups, alternations, anchors, escapes.
PATTERNS = st.sampled_from(
    [
        r"^[a-z]+$",
        r"^\d{3}-\d{4}$",
        r"^[A-Z]{2,3}[0-9]*$",
        r"abc",
        r"^(foo|bar)_\w+$",
        r"^[^0-9\s]+$",
        r"^[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}$",
        r"^(?:\+\d{1,3} )?\d{4,}$",
        r"^#[0-9a-fA-F]{6}$",
        r"^v\d+\.\d+\.\d+$",
        r"^(ab)+\1$",
    ]
)
SCALARS = st.none() | st.booleans() | st.integers(-50, 50) | st.text(max_size=8)


@st.composite
def strings(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    kind = draw(st.sampled_from(["plain", "format", "pattern"]))
    if kind == "format":
        schema["format"] = draw(FORMATS)
    elif kind == "pattern":
        schema["pattern"] = draw(PATTERNS)
    else:
        least = draw(st.integers(0, 30))
        if draw(st.booleans()):
            schema["minLength"] = least
        if draw(st.booleans()):
            schema["maxLength"] = least + draw(st.integers(0, 30))
    return schema


@st.composite
def integers(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    multiple = draw(st.sampled_from([None, 1, 2, 3, 5, 10]))
    if multiple is not None:
        schema["multipleOf"] = multiple
    low = draw(st.none() | st.integers(-1000, 1000))
    width = draw(st.integers((multiple or 1) + 2, 500))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        high = (low if low is not None else draw(st.integers(-1000, 1000))) + width
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    return schema


@st.composite
def numbers(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    multiple = draw(st.sampled_from([None, 0.5, 0.25, 2.5, 0.1, 0.01]))
    if multiple is not None:
        schema["multipleOf"] = multiple
    finite = st.floats(-1e4, 1e4, allow_nan=False).map(lambda f: round(f, 3))
    low = draw(st.none() | finite)
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        width = draw(st.floats(0.01, 1e3)) + 2 * (multiple or 0)
        high = round((low if low is not None else draw(finite)) + width + 0.001, 3)
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    return schema


LEAVES = (
    st.just({"type": "null"})
    | st.just({"type": "boolean"})
    | st.just({})
    | strings()
    | integers()
    | numbers()
    | st.lists(SCALARS, min_size=1, max_size=4, unique_by=json.dumps).map(lambda v: {"enum": v})
    | SCALARS.map(lambda v: {"const": v})
    | st.sampled_from(["string", "integer", "boolean"]).map(lambda t: {"type": [t, "null"]})
    | st.sampled_from([{"type": "string", "default": "a default"}, {"examples": [3, 4]}])
)
TYPED = {
    "null": st.just({"type": "null"}),
    "boolean": st.just({"type": "boolean"}),
    "string": strings(),
    "integer": integers(),
    "array": st.just({"type": "array", "items": {"type": "string"}}),
    "object": st.just({"type": "object", "properties": {"name": {"type": "string"}}}),
}


@st.composite
def objects(draw: st.DrawFn, children: st.SearchStrategy[Any], *, closed: bool = True) -> Any:
    properties = draw(st.dictionaries(NAMES, children, max_size=4))
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = (
        draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []
    )
    if required:
        schema["required"] = required
    extra = draw(st.sampled_from(["open", "closed", "schema"]) if closed else st.just("open"))
    if extra == "closed":
        schema["additionalProperties"] = False
    elif extra == "schema":
        schema["additionalProperties"] = draw(children)
        schema["minProperties"] = len(properties) + draw(st.integers(0, 2))
    return schema


@st.composite
def arrays(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> Any:
    least = draw(st.integers(0, 3))
    schema: dict[str, Any] = {"type": "array", "items": draw(children)}
    if least:
        schema["minItems"] = least
    if draw(st.booleans()):
        schema["maxItems"] = least + draw(st.integers(0, 3))
    return schema


@st.composite
def one_of(draw: st.DrawFn) -> Any:
    kinds = draw(st.lists(st.sampled_from(sorted(TYPED)), min_size=1, max_size=3, unique=True))
    return {"oneOf": [draw(TYPED[kind]) for kind in kinds]}


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        objects(children)
        | arrays(children)
        | st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b})
        | one_of()
        | st.lists(objects(children, closed=False), min_size=2, max_size=3).map(disjoint)
    )


def disjoint(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """``allOf`` the object schemas ``parts``, their property names made distinct (a property
    in two parts would ask for a value both allow, which may not exist)."""
    renamed = []
    for i, part in enumerate(parts):
        part = dict(part)
        part["properties"] = {f"{k}_{i}": v for k, v in part["properties"].items()}
        if "required" in part:
            part["required"] = [f"{k}_{i}" for k in part["required"]]
        renamed.append(part)
    return {"allOf": renamed}


@st.composite
def schemas(draw: st.DrawFn) -> Any:
    """A schema tree, some subschemas moved into ``$defs``/``definitions`` and referred to."""
    tree = draw(st.recursive(LEAVES, extend, max_leaves=12))
    defs: dict[str, Any] = {}
    definitions: dict[str, Any] = {}

    def hoist(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = dict(node)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                node[key] = hoist(node[key])
        if "properties" in node:
            node["properties"] = {k: hoist(v) for k, v in node["properties"].items()}
        for key in ("anyOf", "oneOf", "allOf"):
            if key in node:
                node[key] = [hoist(branch) for branch in node[key]]
        if draw(st.integers(0, 4)) == 0:
            table, where = (defs, "$defs") if draw(st.booleans()) else (definitions, "definitions")
            name = f"D{len(defs) + len(definitions)}"
            table[name] = node
            return {"$ref": f"#/{where}/{name}"}
        return node

    root = hoist(tree) if isinstance(tree, dict) else tree
    if not (defs or definitions) or not isinstance(root, dict) or "$ref" in root:
        root = {"allOf": [root]} if defs or definitions else root
    if defs:
        root["$defs"] = defs
    if definitions:
        root["definitions"] = definitions
    return root


@settings(max_examples=300, deadline=None)
@given(schemas())
def test_the_example_of_a_generated_schema_is_valid_against_it(schema: Any) -> None:
    check(schema)


# --------------------------------------------------------------------------- keywords


def test_an_object_gets_every_property_with_readable_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "city": {"type": "string"},
            "email": {"type": "string", "format": "email"},
            "firstName": {"type": "string"},
            "reason": {"type": "string"},
            "age": {"type": "integer", "minimum": 18},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "nothing": {"type": "null"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    assert check(schema) == {
        "name": "Ada Lovelace",
        "city": "London",
        "email": "ada@example.com",
        "firstName": "Ada",
        "reason": "example reason",
        "age": 18,
        "score": 1.5,
        "ok": True,
        "nothing": None,
    }


def test_a_required_property_outside_properties_follows_additional_properties() -> None:
    schema = {
        "type": "object",
        "required": ["extra", "n_1"],
        "patternProperties": {"^n_": {"type": "integer", "maximum": -3}},
        "additionalProperties": {"type": "boolean"},
        "minProperties": 3,
    }
    assert check(schema) == {"extra": True, "n_1": -3, "key_1": True}
    with pytest.raises(UnsatisfiableSchemaError):
        example({"type": "object", "required": ["a"], "additionalProperties": False})


def test_max_properties_drops_optional_properties() -> None:
    props = {name: {"type": "integer"} for name in "abcd"}
    schema = {"type": "object", "properties": props, "required": ["c"], "maxProperties": 2}
    assert check(schema) == {"a": 1, "c": 1}


def test_array_lengths_tuples_uniqueness_and_contains() -> None:
    assert check({"type": "array", "items": {"type": "integer"}}) == [1]
    assert check({"type": "array", "items": {"type": "integer"}, "maxItems": 0}) == []
    assert check({"type": "array", "items": {"type": "string"}, "minItems": 3}) == [
        "example",
        "example 2",
        "example 3",
    ]
    unique = {
        "type": "array",
        "items": {"enum": ["x", "y", "z"]},
        "minItems": 3,
        "uniqueItems": True,
    }
    assert check(unique) == ["x", "y", "z"]
    tuple_2020 = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}
    assert check(tuple_2020) == ["example", 1]
    tuple_7 = {
        "type": "array",
        "items": [{"type": "boolean"}, {"const": 7}],
        "additionalItems": False,
    }
    assert check(tuple_7, jsonschema.Draft7Validator) == [True, 7]
    contains = {"type": "array", "contains": {"type": "integer", "minimum": 10}}
    assert check(contains) == [10]
    with pytest.raises(UnsatisfiableSchemaError):
        example({"type": "array", "items": {"type": "null"}, "minItems": 2, "uniqueItems": True})


@pytest.mark.parametrize(
    ("fmt", "parse"),
    [
        ("date", datetime.date.fromisoformat),
        ("date-time", datetime.datetime.fromisoformat),
        ("time", datetime.time.fromisoformat),
        ("email", lambda v: v.split("@")[1]),
        ("uri", lambda v: v.startswith("https://") or int("x")),
        ("uuid", uuid.UUID),
        ("ipv4", ipaddress.IPv4Address),
        ("ipv6", ipaddress.IPv6Address),
    ],
)
def test_a_string_format_is_a_value_of_that_format(fmt: str, parse: Any) -> None:
    value = check({"type": "string", "format": fmt})
    parse(value)


def test_string_lengths_are_met_by_padding_and_cutting() -> None:
    assert check({"type": "string", "minLength": 10}) == "example ex"
    assert check({"type": "string", "maxLength": 3}) == "exa"
    assert check({"type": "string", "maxLength": 0}) == ""
    with pytest.raises(UnsatisfiableSchemaError):
        example({"type": "string", "minLength": 3, "maxLength": 2})


def test_a_pattern_is_met_by_a_string_built_from_it() -> None:
    assert check({"type": "string", "pattern": r"^\d{3}-\d{4}$"}) == "000-0000"
    assert check({"type": "string", "pattern": "^[a-z]+$"}) == "example"  # the usual value fits
    assert check({"type": "string", "pattern": "^x[0-9]+$", "minLength": 5}) == "x00000"


def test_a_pattern_it_cannot_build_is_left_unmet_and_the_other_keywords_kept() -> None:
    schema = {"type": "string", "pattern": "^(?=.*[0-9])(?=.*[A-Z]).{8}$", "maxLength": 8}
    value = example(schema)
    assert value == "example"
    assert not jsonschema.Draft202012Validator(schema).is_valid(value)  # documented: unmet


def test_numbers_meet_bounds_exclusive_bounds_and_multiples() -> None:
    assert check({"type": "integer", "minimum": 5, "maximum": 9}) == 5
    assert check({"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7}) == 6
    assert check({"type": "integer", "maximum": -10}) == -10
    assert check({"type": "integer", "multipleOf": 7, "minimum": 20}) == 21
    assert check({"type": "integer", "multipleOf": 0.5}) == 1
    assert check({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}) == 0.5
    assert check({"type": "number", "multipleOf": 0.25, "minimum": 0.3, "maximum": 0.6}) == 0.5
    assert check({"type": "number", "minimum": 0.1, "maximum": 0.1}) == 0.1
    draft4 = {"type": "integer", "minimum": 3, "exclusiveMinimum": True}
    assert check(draft4, jsonschema.Draft4Validator) == 4
    with pytest.raises(UnsatisfiableSchemaError):
        example({"type": "integer", "minimum": 1.2, "maximum": 1.8})


def test_types_enums_consts_defaults_and_examples() -> None:
    assert check({"type": ["string", "null"]}) == "example"
    assert check({"type": ["null", "integer"]}) == 1
    assert check({"enum": ["red", "green"]}) == "red"
    assert check({"type": "integer", "enum": ["one", 2]}) == 2
    assert check({"const": {"a": [1]}}) == {"a": [1]}
    assert check({"type": "integer", "default": 42}) == 42
    assert check({"type": "string", "examples": ["Paris", "Rome"]}) == "Paris"
    assert check(True) == "example"
    with pytest.raises(UnsatisfiableSchemaError):
        example(False)


def test_any_of_and_one_of_take_the_first_branch_that_fits() -> None:
    schema = {"anyOf": [{"type": "string", "minLength": 5, "maxLength": 2}, {"type": "integer"}]}
    assert check(schema) == 1
    assert check({"oneOf": [{"type": "boolean"}, {"type": "null"}]}) is True
    branches = {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
    branches["properties"] = {"a": {"type": "integer"}}
    assert check({**branches, "additionalProperties": False}) == {"a": 1}


def test_all_of_merges_its_parts() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"a": {"minimum": 5}, "b": {"type": "string"}}, "required": ["b"]},
            {"type": ["object", "null"], "maxProperties": 2},
        ]
    }
    assert check(schema) == {"a": 5, "b": "example b"}
    with pytest.raises(UnsatisfiableSchemaError):
        example({"allOf": [{"type": "string"}, {"type": "integer"}]})


def test_refs_into_defs_definitions_and_json_pointers_are_followed() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/Name"},
            "b": {"$ref": "#/definitions/Count"},
            "c": {"$ref": "#/properties/b"},
            "d": {"$ref": "#/$defs/with~1slash"},
        },
        "$defs": {"Name": {"type": "string", "maxLength": 3}, "with/slash": {"const": 1}},
        "definitions": {"Count": {"type": "integer", "minimum": 4}},
    }
    assert check(schema) == {"a": "exa", "b": 4, "c": 4, "d": 1}
    with pytest.raises(UnsatisfiableSchemaError):
        example({"$ref": "https://example.com/schema.json"})
    with pytest.raises(UnsatisfiableSchemaError):
        example({"$ref": "#/$defs/missing"})


def test_a_recursive_schema_is_expanded_once_and_ends() -> None:
    tree = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["label", "children", "parent"],
            }
        },
    }
    value = check(tree)
    assert value["children"] == [{"label": "example label", "children": [], "parent": None}]
    linked = {
        "type": "object",
        "properties": {"value": {"type": "integer"}, "next": {"$ref": "#"}},
        "required": ["value"],
    }
    assert check(linked) == {"value": 1, "next": {"value": 1}}  # once
    with pytest.raises(UnsatisfiableSchemaError):
        example({"type": "object", "properties": {"me": {"$ref": "#"}}, "required": ["me"]})


# --------------------------------------------------------------------------- pydantic


class Address(pydantic.BaseModel):
    street: str
    city: str
    postcode: str = pydantic.Field(pattern=r"^[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}$")


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=18, le=130)
    email: str
    birthday: datetime.date
    id: uuid.UUID
    score: float = pydantic.Field(gt=0, lt=1, multiple_of=0.1)
    tags: list[str] = pydantic.Field(min_length=2, max_length=4)
    address: Address
    nickname: str | None = None
    kind: Literal["admin", "member"]
    friends: list[Person] = []
    best_friend: Person | None
    scores: dict[str, int]
    pair: tuple[int, str]


class Cat(pydantic.BaseModel):
    pet_type: Literal["cat"]
    meows: int


class Dog(pydantic.BaseModel):
    pet_type: Literal["dog"]
    barks: float


class Owner(pydantic.BaseModel):
    pet: Cat | Dog = pydantic.Field(discriminator="pet_type")
    pets: list[Cat | Dog]


@pytest.mark.parametrize("model", [Address, Person, Owner])
def test_the_example_of_a_pydantic_schema_parses_as_the_model(
    model: type[pydantic.BaseModel],
) -> None:
    schema = model.model_json_schema()
    check(schema)
    model.model_validate_json(example_json(schema))


def test_a_pydantic_person_reads_like_one() -> None:
    person = Person.model_validate_json(example_json(Person.model_json_schema()))
    assert person.name == "Ada Lovelace"
    assert person.address.city == "London"
    assert person.tags == ["example tags", "example tags 2"]
    assert person.best_friend is not None
    assert person.best_friend.best_friend is None  # the recursion ended
