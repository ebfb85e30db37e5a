"""Provider settings from config: validation naming the key path, and a key that never shows."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from runestone.exceptions import ConfigError
from runestone.messages import Usage
from runestone.providers.settings import (
    Capability,
    ModelInfo,
    ProviderSettings,
    Secret,
    Timeouts,
    is_sensitive_header,
)

KEY = "sk-live-abcdef0123456789"


def full_config() -> dict[str, Any]:
    return {
        "type": "openai",
        "api_key": KEY,
        "base_url": "https://api.openai.com/v1/",
        "headers": {"X-Title": "runestone", "Authorization": "Bearer other-secret-0000"},
        "timeouts": {"connect": 5, "first_token": 20, "idle": 30, "total": 600},
        "max_connections": 500,
        "retry": {"max_attempts": 2},
        "circuit_breaker": {"consecutive_failures": 5},
        "models": {
            "gpt-4o-mini": {
                "input_per_1m": 0.15,
                "output_per_1m": 0.6,
                "context_window": 128000,
                "capabilities": ["tools", "vision"],
            }
        },
        "organization": "org-1",
    }


def test_a_full_block_reads_into_frozen_settings() -> None:
    settings = ProviderSettings.from_dict("openai", full_config())
    assert settings.type == "openai"
    assert settings.base_url == "https://api.openai.com/v1"
    assert settings.api_key == Secret(KEY)
    assert settings.timeouts == Timeouts(connect=5, first_token=20, idle=30, total=600)
    assert settings.max_connections == 500
    model = settings.models["gpt-4o-mini"]
    assert model.capabilities == frozenset({Capability.TOOLS, Capability.VISION})
    assert model.context_window == 128000
    assert settings.retry == {"max_attempts": 2}
    assert settings.circuit_breaker == {"consecutive_failures": 5}
    assert settings.options == {"organization": "org-1"}
    with pytest.raises(AttributeError):
        settings.name = "other"  # type: ignore[misc]


def test_defaults_are_sane() -> None:
    settings = ProviderSettings.from_dict("sim", {"type": "simulated"})
    assert settings.api_key is None
    assert settings.timeouts.headers_limit == settings.timeouts.first_token
    assert settings.max_connections >= 100
    assert settings.models == {}


def test_the_api_key_never_shows_in_repr_str_or_format() -> None:
    settings = ProviderSettings.from_dict("openai", full_config())
    for text in (repr(settings), str(settings), f"{settings}", f"{settings.api_key}"):
        assert KEY not in text
        assert "other-secret-0000" not in text
    assert "X-Title" in repr(settings)
    assert settings.api_key is not None
    assert settings.api_key.reveal() == KEY


def test_the_api_key_never_shows_in_logs() -> None:
    settings = ProviderSettings.from_dict("openai", full_config())
    with capture_logs() as logs:
        structlog.get_logger("test").info("configured", settings=settings, key=settings.api_key)
    assert KEY not in repr(logs)
    assert KEY not in logging.Formatter().format(
        logging.makeLogRecord({"msg": "%s", "args": (settings,)})
    )


def test_a_secret_cannot_be_pickled_out() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(KEY))


def test_secrets_lists_the_key_and_credential_headers() -> None:
    settings = ProviderSettings.from_dict("openai", full_config())
    assert set(settings.secrets()) == {KEY, "Bearer other-secret-0000"}


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("Authorization", True),
        ("x-api-key", True),
        ("api-key", True),
        ("Cookie", True),
        ("X-Title", False),
        ("HTTP-Referer", False),
    ],
)
def test_credential_headers_are_recognised(name: str, sensitive: bool) -> None:
    assert is_sensitive_header(name) is sensitive


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"type": None}, "providers.p.type"),
        ({"base_url": "ftp://x"}, "providers.p.base_url"),
        ({"base_url": "not a url"}, "providers.p.base_url"),
        ({"api_key": 42}, "providers.p.api_key"),
        ({"headers": {"X": 1}}, "providers.p.headers.X"),
        ({"timeouts": {"connect": -1}}, "providers.p.timeouts.connect"),
        ({"timeouts": {"idle": "soon"}}, "providers.p.timeouts.idle"),
        ({"timeouts": {"forever": 1}}, "providers.p.timeouts.forever"),
        ({"timeouts": 5}, "providers.p.timeouts"),
        ({"max_connections": 0}, "providers.p.max_connections"),
        ({"max_connections": True}, "providers.p.max_connections"),
        ({"models": ["a"]}, "providers.p.models"),
        ({"models": {"m": {"input_per_1m": -1}}}, "providers.p.models.m.input_per_1m"),
        ({"models": {"m": {"context_window": 0}}}, "providers.p.models.m.context_window"),
        (
            {"models": {"m": {"capabilities": ["telepathy"]}}},
            "providers.p.models.m.capabilities[0]",
        ),
        ({"models": {"m": {"capabilities": "tools"}}}, "providers.p.models.m.capabilities"),
        ({"models": {"m": {"price": 1}}}, "providers.p.models.m.price"),
        ({"retry": 3}, "providers.p.retry"),
        ({"options": []}, "providers.p.options"),
    ],
)
def test_a_bad_value_names_its_key_path(change: dict[str, Any], path: str) -> None:
    config = {"type": "openai", **change}
    with pytest.raises(ConfigError) as caught:
        ProviderSettings.from_dict("p", config)
    assert caught.value.path == path
    assert str(caught.value).startswith(path + ": ")


def test_a_block_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"providers\.p: expected a mapping"):
        ProviderSettings.from_dict("p", ["type", "openai"])


def test_a_model_prices_usage_per_million_tokens() -> None:
    model = ModelInfo.from_dict("m", {"input_per_1m": 2.0, "output_per_1m": 8.0})
    assert model.cost(Usage(prompt_tokens=500_000, completion_tokens=250_000)) == pytest.approx(3.0)
    assert model.supports("json") is False
