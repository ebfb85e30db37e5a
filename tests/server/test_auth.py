"""Who is calling: a bearer token or an x-api-key, checked against the configured keys."""

from __future__ import annotations

import pytest

from runestone.config import ApiKey, AuthConfig
from runestone.providers.settings import Secret
from runestone.server.auth import authenticate, presented_key
from runestone.server.errors import ApiError

KEYS = AuthConfig(keys=(ApiKey(Secret("sk-team-a-0001"), "team-a"),))


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer sk-1"}, "sk-1"),
        ({"authorization": "bearer   sk-1 "}, "sk-1"),
        ({"x-api-key": "sk-2"}, "sk-2"),
        ({}, None),
        ({"authorization": "Bearer "}, None),
    ],
)
def test_the_presented_key_comes_from_either_header(
    headers: dict[str, str], key: str | None
) -> None:
    assert presented_key(headers) == key


def test_an_authorization_that_is_not_bearer_is_refused() -> None:
    with pytest.raises(ApiError) as caught:
        presented_key({"authorization": "Basic abc"})
    assert caught.value.status == 401


def test_a_configured_key_is_recognised_by_name() -> None:
    entry = authenticate(KEYS, {"authorization": "Bearer sk-team-a-0001"})
    assert entry is not None
    assert entry.name == "team-a"


def test_with_no_keys_everyone_is_anonymous() -> None:
    assert authenticate(AuthConfig(), {}) is None
    assert authenticate(AuthConfig(), {"authorization": "Bearer anything"}) is None


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "missing_api_key"), ({"x-api-key": "sk-guess-9999"}, "invalid_api_key")],
)
def test_a_missing_or_unknown_key_is_a_401_that_never_echoes_it(
    headers: dict[str, str], code: str
) -> None:
    with pytest.raises(ApiError) as caught:
        authenticate(KEYS, headers)
    assert (caught.value.status, caught.value.code) == (401, code)
    assert "sk-guess" not in caught.value.message
