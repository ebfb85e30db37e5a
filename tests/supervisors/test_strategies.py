"""Restart strategies pick exactly the children OTP would."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runestone.supervisors import ONE_FOR_ALL, ONE_FOR_ONE, REST_FOR_ONE, strategy_named


@given(st.lists(st.text(min_size=1), min_size=1, unique=True), st.data())
def test_each_strategy_returns_a_suffix_containing_the_failed_child(
    order: list[str], data: st.DataObject
) -> None:
    failed = data.draw(st.sampled_from(order))
    assert ONE_FOR_ONE.affected(order, failed) == [failed]
    assert ONE_FOR_ALL.affected(order, failed) == order
    rest = REST_FOR_ONE.affected(order, failed)
    assert rest[0] == failed
    assert order[len(order) - len(rest) :] == rest


def test_strategies_are_found_by_name() -> None:
    assert strategy_named("rest_for_one") is REST_FOR_ONE


def test_an_unknown_strategy_name_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown restart strategy 'one_for_some'; expected one of"
    ):
        strategy_named("one_for_some")
