"""Did you mean …: a misspelt key is answered with the closest known one, and only a close one."""

from __future__ import annotations

from runestone.suggest import closest, unknown_key


def test_a_misspelt_name_is_matched_to_the_closest_known_one() -> None:
    assert closest("polcy", ["policy", "aliases", "fallbacks"]) == "policy"
    assert closest("modles", ["models", "retry"]) == "models"


def test_a_name_like_none_of_them_suggests_nothing() -> None:
    assert closest("address", ["host", "port"]) is None
    assert closest("anything", []) is None


def test_the_message_suggests_or_else_lists_what_is_allowed() -> None:
    assert unknown_key("polcy", ["policy", "aliases"]) == "unknown key; did you mean 'policy'?"
    assert unknown_key("zzz", ["host", "port"]) == "unknown key; expected one of: host, port"
    assert unknown_key("zzz", [], what="unknown option") == "unknown option"
