"""A schema's refusal in the gateway's words: the field named as the API names it, the
wording read off the schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import pytest
from msgspec import Meta

from runestone.exceptions import RequestValidationError
from runestone.wire.refusals import field_name, refusal


class Inner(msgspec.Struct):
    name: Annotated[str, Meta(extra={"missing_at": "", "expected": "a name"})]


class Outer(msgspec.Struct):
    level: Annotated[int, Meta(ge=1, le=5)]
    mode: Annotated[Literal["a", "b", "c"], Meta(extra={"invalid": "no mode {value}"})] = "a"
    kind: Literal["x", "y"] = "x"
    labels: dict[str, int] = {}
    inner: Inner | None = None
    items: list[Annotated[str, Meta(min_length=1)]] = []


def refused(data: dict[str, Any], *, dotted: bool = False) -> RequestValidationError:
    try:
        msgspec.convert(data, Outer)
    except msgspec.ValidationError as exc:
        return refusal(exc, Outer, data, dotted=dotted)
    raise AssertionError("not refused")


def test_a_field_is_named_with_brackets_or_dots() -> None:
    assert field_name(["messages", 2, "content", 0], dotted=False) == "messages[2].content[0]"
    assert field_name(["messages", 2, "content", 0], dotted=True) == "messages.2.content.0"


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({}, "level", "level: required"),
        ({"level": 9}, "level", "level: must be between 1 and 5, got 9"),
        ({"level": "9"}, "level", "level: expected an integer, got a string"),
        ({"level": 1, "mode": "z"}, "mode", "mode: no mode 'z'"),
        ({"level": 1, "kind": "z"}, "kind", "kind: expected 'x' or 'y', got 'z'"),
        ({"level": 1, "labels": {"a": 1, "b": "2"}}, "labels.b", "expected an integer"),
        ({"level": 1, "inner": {}}, "inner", "inner: required: a name"),
        ({"level": 1, "items": ["a", ""]}, "items[1]", "expected a non-empty string, got ''"),
    ],
)
def test_a_refusal_names_the_field_in_words_read_off_the_schema(
    data: dict[str, Any], field: str, text: str
) -> None:
    error = refused(data)
    assert error.field == field
    assert text in str(error)


def test_an_anthropic_refusal_names_list_items_with_dots() -> None:
    assert refused({"level": 1, "items": [""]}, dotted=True).field == "items.0"


def test_a_value_that_is_no_object_is_refused_as_the_request() -> None:
    try:
        msgspec.convert([], Outer)
    except msgspec.ValidationError as exc:
        error = refusal(exc, Outer, [])
    assert (error.field, str(error)) == ("request", "request: expected an object, got a list")
