"""A loaded config dumps to the file's shape and loads again equal; secrets stay out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from runestone.config import BUNDLED_CONFIG, Config, load_config
from runestone.config.dump import dump_config, dump_yaml, secret_variable
from runestone.config.schema import file_schema
from runestone.schema import convert, without_nulls
from tests.test_config import EXAMPLE_ENV, EXAMPLES

CONFIGS = [BUNDLED_CONFIG, *sorted(EXAMPLES.glob("*.yaml"))]


def _same_source(reloaded: Config, original: Config) -> Config:
    return dataclasses.replace(reloaded, source=original.source)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_dumps_and_reloads_equal(path: Path) -> None:
    config = load_config(path, env=EXAMPLE_ENV)
    revealed = dump_config(config, reveal_secrets=True)
    assert _same_source(load_config(revealed, env={}), config) == config
    # Secrets as references: equal again once the variables it names hold the keys.
    referenced = yaml.safe_load(dump_yaml(config))
    assert _same_source(load_config(referenced, env=EXAMPLE_ENV), config) == config


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_dump_is_a_valid_file_by_the_schema(path: Path) -> None:
    data = yaml.safe_load(dump_yaml(load_config(path, env=EXAMPLE_ENV)))
    convert(without_nulls(data, file_schema()), file_schema())


def test_a_dump_never_holds_a_secret_in_clear() -> None:
    config = load_config(EXAMPLES / "team-gateway.yaml", env=EXAMPLE_ENV)
    secrets = [
        *(p.settings.api_key.reveal() for p in config.providers.values() if p.settings.api_key),
        *(key.key.reveal() for key in (*config.auth.keys, *config.auth.admin_keys)),
    ]
    assert len(secrets) >= 3
    text = dump_yaml(config)
    assert not [secret for secret in secrets if secret in text]
    assert "api_key: ${OPENAI_API_KEY}" in text
    assert "${RUNESTONE_KEY_TEAM_A}" in text
    revealed = dump_yaml(config, reveal_secrets=True)
    assert all(secret in revealed for secret in secrets)


def test_a_dump_loaded_without_its_variables_skips_the_provider_and_says_which_to_set() -> None:
    config = load_config(
        {
            "providers": {
                "sim": {"type": "simulated", "models": {"s": {}}},
                "openai": {"type": "openai", "api_key": "sk-real", "models": {"m": {}}},
            }
        },
        env={},
    )
    reloaded = load_config(dump_config(config), env={})
    assert [(s.name, s.reason) for s in reloaded.skipped] == [
        ("openai", "api_key is empty: set OPENAI_API_KEY")
    ]


def test_a_dump_spells_out_the_defaults() -> None:
    dumped = dump_config(
        load_config({"providers": {"s": {"type": "simulated", "models": {"m": {}}}}})
    )
    assert dumped["pool"] == {"max_in_flight": 1000, "request_timeout": 600.0}
    assert dumped["providers"]["s"]["timeouts"]["connect"] == 10.0
    assert dumped["routing"]["policy"] == "priority"


@pytest.mark.parametrize(
    ("parts", "variable"),
    [
        (("openai", "api_key"), "OPENAI_API_KEY"),
        (("my-local.llm", "api_key"), "MY_LOCAL_LLM_API_KEY"),
        (("runestone_key", "team a"), "RUNESTONE_KEY_TEAM_A"),
    ],
)
def test_secret_variables_are_upper_case_words_joined_by_underscores(
    parts: tuple[str, ...], variable: str
) -> None:
    assert secret_variable(*parts) == variable
