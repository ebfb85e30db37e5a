"""The schemas' building blocks: the open union, decoding bytes, converting dicts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
import pytest

from runestone.exceptions import RequestValidationError
from runestone.messages import MAX_NESTING
from runestone.wire.schema import (
    BodyError,
    OpenUnion,
    Wire,
    convert,
    dec_hook,
    decoder,
    may_nest_deep,
)


class Text(Wire, tag_field="type", tag="text"):
    text: str


class Part(OpenUnion):
    __slots__ = ()
    MEMBERS: ClassVar[Mapping[str, type[msgspec.Struct]]] = {"text": Text}
    REFUSED: ClassVar[Mapping[str, str]] = {"image": "no images here"}


class Holder(Wire):
    parts: list[Part]


decode = decoder(Holder)


def test_an_open_union_decodes_a_known_tag_to_its_member() -> None:
    holder = decode(b'{"parts": [{"type": "text", "text": "hi"}]}')
    assert holder.parts[0].value == Text("hi")


def test_an_open_union_keeps_an_unknown_tag_as_the_object_it_was() -> None:
    part = {"type": "audio", "data": {"x": [1, 2]}}
    assert decode(json.dumps({"parts": [part]}).encode()).parts[0].value == part


@pytest.mark.parametrize(
    ("part", "field", "words"),
    [
        ({"type": "text", "text": 5}, "parts[0].text", "expected a string, got a number"),
        ({"type": "text"}, "parts[0].text", "required"),
        ({"text": "x"}, "parts[0].type", "required"),
        ({"type": 1}, "parts[0].type", "expected a string, got a number"),
        ({"type": ""}, "parts[0].type", "expected a non-empty string"),
        ({"type": "image"}, "parts[0].type", "no images here"),
        ("text", "parts[0]", "expected an object, got a string"),
    ],
)
def test_an_open_union_refuses_naming_the_field_inside_its_member(
    part: Any, field: str, words: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        decode(json.dumps({"parts": [part]}).encode())
    assert caught.value.field == field
    assert words in str(caught.value)


def test_convert_refuses_a_dict_alike() -> None:
    with pytest.raises(RequestValidationError) as caught:
        convert({"parts": [{"type": "text"}]}, Holder)
    assert caught.value.field == "parts[0].text"


def test_the_hook_decodes_only_the_schemas_custom_types() -> None:
    with pytest.raises(NotImplementedError):
        dec_hook(complex, 1)


@pytest.mark.parametrize("raw", [b"", b"{", b"nope", b"[]"])
def test_a_body_that_is_no_json_object_is_a_body_error(raw: bytes) -> None:
    with pytest.raises(BodyError):
        decode(raw)


def test_a_short_body_with_few_brackets_cannot_nest_too_deep() -> None:
    assert not may_nest_deep(b'{"a": [{"b": 1}]}')
    assert may_nest_deep(b"[" * (MAX_NESTING + 1))
    assert may_nest_deep(b'{"a": "' + b"x" * 5000 + b'"}')  # long: measured, not counted
