"""The routing tables: validated, frozen copies of the config's name tables."""

from __future__ import annotations

import pytest

from runestone.exceptions import ConfigError
from runestone.routing import RoutingTable


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"aliases": ["a"]}, "routing.aliases"),
        ({"aliases": {"fast": "alpha/small"}}, "routing.aliases.fast"),
        ({"aliases": {"fast": ["alpha"]}}, "routing.aliases.fast[0]"),
        ({"fallbacks": {"a/b": ["c/d", 5]}}, "routing.fallbacks.a/b[1]"),
        ({"context_window_fallbacks": {"": ["c/d"]}}, "routing.context_window_fallbacks"),
    ],
)
def test_a_bad_routing_table_raises_a_config_error_naming_the_path(
    data: dict[str, object], path: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        RoutingTable.from_mapping(data)
    assert caught.value.path == path


def test_a_routing_table_is_a_frozen_copy() -> None:
    aliases = {"fast": ["alpha/small"]}
    table = RoutingTable.from_mapping({"aliases": aliases, "policy": "cost"})
    aliases["fast"].append("beta/small")
    assert table.aliases["fast"] == ("alpha/small",)
    with pytest.raises(TypeError):
        table.aliases["slow"] = ("x/y",)  # type: ignore[index]


def test_an_empty_section_gives_empty_tables() -> None:
    table = RoutingTable.from_mapping({})
    assert (dict(table.aliases), dict(table.fallbacks), dict(table.context_window_fallbacks)) == (
        {},
        {},
        {},
    )


def test_tables_given_directly_are_checked_too() -> None:
    with pytest.raises(ConfigError) as caught:
        RoutingTable(fallbacks={"a/b": ("nope",)})
    assert caught.value.path == "routing.fallbacks.a/b[0]"
