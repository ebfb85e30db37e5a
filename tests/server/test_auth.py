"""Who is calling: a bearer token or an x-api-key, checked against the configured keys."""

from __future__ import annotations

import pytest

from runestone.config import ApiKey, AuthConfig
from runestone.providers.settings import Secret
from runestone.server.auth import (
    Access,
    access_for,
    authenticate,
    authorize,
    presented_key,
    served_on,
)
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


# --------------------------------------------------------------------------- which route takes what

ADMINS = AuthConfig(
    keys=(ApiKey(Secret("sk-team-a-0001"), "team-a"),),
    admin_keys=(ApiKey(Secret("sk-admin-0009"), "ops"),),
)


@pytest.mark.parametrize(
    ("path", "access"),
    [
        ("/health/live", Access.PUBLIC),
        ("/health/ready", Access.PUBLIC),
        ("/health", Access.ADMIN),
        ("/metrics", Access.ADMIN),
        ("/v1/models", Access.CLIENT),
        ("/v1/models/fast", Access.CLIENT),
        ("/v1/chat/completions", Access.CLIENT),
        ("/health/", Access.CLIENT),
        ("/no/such/route", Access.CLIENT),
    ],
)
def test_every_path_has_an_access_and_unknown_paths_are_client_routes(
    path: str, access: Access
) -> None:
    assert access_for(path) is access


def test_the_probes_take_no_key_even_with_admin_keys() -> None:
    assert authorize(ADMINS, Access.PUBLIC, {}) is None


def test_an_admin_route_takes_only_an_admin_key_when_admin_keys_are_set() -> None:
    entry = authorize(ADMINS, Access.ADMIN, {"x-api-key": "sk-admin-0009"})
    assert entry is not None
    assert entry.name == "ops"
    with pytest.raises(ApiError) as caught:
        authorize(ADMINS, Access.ADMIN, {"authorization": "Bearer sk-team-a-0001"})
    assert (caught.value.status, caught.value.code) == (403, "admin_key_required")
    with pytest.raises(ApiError) as caught:
        authorize(ADMINS, Access.ADMIN, {})
    assert (caught.value.status, caught.value.code) == (401, "missing_api_key")
    with pytest.raises(ApiError) as caught:
        authorize(ADMINS, Access.ADMIN, {"x-api-key": "sk-guess-9999"})
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")


def test_an_admin_key_is_not_a_client_key() -> None:
    with pytest.raises(ApiError) as caught:
        authorize(ADMINS, Access.CLIENT, {"x-api-key": "sk-admin-0009"})
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")


def test_without_admin_keys_an_admin_route_takes_a_client_key() -> None:
    entry = authorize(KEYS, Access.ADMIN, {"authorization": "Bearer sk-team-a-0001"})
    assert entry is not None
    assert entry.name == "team-a"
    with pytest.raises(ApiError) as caught:
        authorize(KEYS, Access.ADMIN, {})
    assert caught.value.status == 401


def test_with_no_keys_at_all_every_route_is_open() -> None:
    for access in Access:
        assert authorize(AuthConfig(), access, {}) is None


@pytest.mark.parametrize(
    ("access", "on_admin_port", "served"),
    [
        (Access.ADMIN, True, True),
        (Access.ADMIN, False, False),
        (Access.CLIENT, True, False),
        (Access.CLIENT, False, True),
        (Access.PUBLIC, True, True),
        (Access.PUBLIC, False, True),
    ],
)
def test_with_an_admin_port_the_admin_routes_live_there_and_nothing_else_does(
    access: Access, on_admin_port: bool, served: bool
) -> None:
    assert served_on(access, admin_port_set=True, on_admin_port=on_admin_port) is served
    assert served_on(access, admin_port_set=False, on_admin_port=False) is True
