"""Shapes checked by msgspec, errors said our way: key path, what was expected, what was given."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import Meta

from runestone.exceptions import ConfigError
from runestone.schema import (
    FINITE,
    Count,
    FieldError,
    Positive,
    Shape,
    check,
    convert,
    not_below,
    without_nulls,
)


class Inner(Shape, frozen=True):
    limit: Count = 1
    """How many."""
    low: Positive = 1.0
    high: Positive = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        not_below("high", self.high, self.low)


class Outer(Shape, frozen=True):
    name: Annotated[str, Meta(min_length=1, extra={"expected": "a name"})] = "x"
    mode: Literal["fast", "slow"] = "fast"
    inner: Inner = Inner()
    table: dict[str, Inner] = {}
    rate: Annotated[float, Meta(gt=0, le=1)] = 0.5
    port: Annotated[int, Meta(ge=0, le=65535)] = 1


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"inner": {"limit": 0}}, "inner.limit: expected an integer >= 1, got 0"),
        ({"inner": {"limit": "lots"}}, "inner.limit: expected an integer >= 1, got 'lots'"),
        ({"inner": {"limt": 3}}, "inner.limt: unknown key; did you mean 'limit'?"),
        ({"inner": {"zzz": 3}}, "inner.zzz: unknown key; expected one of: limit, low, high"),
        ({"inner": {"low": 3, "high": 1}}, "inner.high: expected a number >= 3, got 1"),
        (
            {"table": {"a": {}, "b": {"limit": -1}}},
            "table.b.limit: expected an integer >= 1, got -1",
        ),
        ({"name": ""}, "name: expected a name, got ''"),
        ({"mode": "medium"}, "mode: expected one of: fast, slow, got 'medium'"),
        ({"rate": 2}, "rate: expected a fraction <= 1, got 2"),
        ({"rate": 0}, "rate: expected a number > 0, got 0"),
        ({"port": True}, "port: expected an integer from 0 to 65535, got True"),
        ({"inner": [1]}, "inner: expected a mapping, got a list"),
        ({"inner": {"low": float("inf")}}, "inner.low: expected a finite number > 0, got inf"),
    ],
)
def test_a_bad_value_is_one_error_naming_its_path(data: object, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        convert(data, Outer, path="")
    assert str(caught.value) == expected
    assert caught.value.path == expected.split(": ", 1)[0]


def test_the_path_given_is_prefixed() -> None:
    with pytest.raises(ConfigError) as caught:
        convert({"limit": 0}, Inner, path="providers.x.retry")
    assert caught.value.path == "providers.x.retry.limit"


def test_a_shape_built_in_python_is_checked_like_a_decoded_one() -> None:
    with pytest.raises(FieldError) as caught:
        Inner(limit=0)
    assert caught.value.path == "limit"
    assert isinstance(caught.value, ValueError)
    with pytest.raises(FieldError, match=r"^high: expected a number >= 5, got 1$"):
        Inner(low=5, high=1)


def test_nulls_in_a_shape_take_their_defaults_and_free_keys_keep_them() -> None:
    data = {"inner": None, "table": {"a": None}, "name": None}
    assert without_nulls(data, Outer) == {"table": {"a": None}}


def test_finite_bounds_are_not_shown_as_numbers() -> None:
    with pytest.raises(ConfigError) as caught:
        convert({"low": "soon"}, Inner)
    assert str(caught.value) == "low: expected a number > 0, got 'soon'"
    assert str(FINITE) not in str(caught.value)


@given(st.integers(min_value=1, max_value=10**9), st.floats(min_value=0.001, max_value=1e6))
def test_any_valid_value_converts_to_what_python_builds(limit: int, low: float) -> None:
    converted = convert({"limit": limit, "low": low, "high": low * 2}, Inner)
    assert converted == Inner(limit=limit, low=low, high=low * 2)


class Mode(enum.StrEnum):
    ON = "on"
    OFF = "off"


class Switch(Shape, frozen=True):
    mode: Mode = Mode.ON


def test_a_shape_built_with_an_enums_value_holds_its_member() -> None:
    assert Switch(mode="off").mode is Mode.OFF  # type: ignore[arg-type]
    with pytest.raises(FieldError, match=r"^mode: expected one of: on, off, got 'dim'$"):
        Switch(mode="dim")  # type: ignore[arg-type]


def test_check_gives_an_argument_as_its_type_or_a_field_error_naming_it() -> None:
    assert check(3, Count | None, "max_children") == 3
    assert check(None, Count | None, "max_children") is None
    with pytest.raises(FieldError) as caught:
        check(0, Count | None, "max_children")
    assert caught.value.path == "max_children"
    assert str(caught.value) == "max_children: expected an integer >= 1, got 0"
