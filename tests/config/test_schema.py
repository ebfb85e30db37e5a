"""The config file's schema: JSON Schema for editors, the committed copy, round trips."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
import yaml

from runestone.config import BUNDLED_CONFIG, BUNDLED_SCHEMA, SCHEMA_COMMENT, json_schema
from runestone.config.env import Expansion
from runestone.config.load import _Builder
from runestone.config.schema import file_schema, schema_text
from runestone.schema import convert, without_nulls
from tests.test_config import BAD_CONFIGS, EXAMPLE_ENV, EXAMPLES

CONFIGS = [BUNDLED_CONFIG, *sorted(EXAMPLES.glob("*.yaml"))]

# What a schema cannot say: references between keys, what is live, keys given twice.
ONLY_THE_LOADER_KNOWS = {
    "client keys in a cluster without a secret to hash them with",
    "health probe model the provider does not serve",
    "circuit probe cap below the probe interval",
    "provider name with a slash",
    "provider without models",
    "compatible server without a URL",
    "alias to an unknown model",
    "alias to an unknown provider",
    "alias to a bare model name",
    "alias to nothing",
    "alias listing a model twice",
    "alias named like a model reference",
    "fallback from an unknown model",
    "fallback from a name that is neither a model nor an alias",
    "weight for an unknown name",
    "fallback to itself",
    "context-window fallback to an unknown model",
    "open server on every interface",
    "admin port the same as the main port",
    "two client keys with one name",
    "one client key given twice",
    "one nameless client key given twice",
    "admin key given twice",
    "admin key that is also a client key",
    "cost table row for an unknown provider",
    "cost table row for a current-shape provider",
    "cost table with an unknown capability",
}


def _expanded(path: Path, env: Mapping[str, str]) -> Any:
    return Expansion(env).walk(yaml.safe_load(path.read_text(encoding="utf-8")), "")


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_what_the_code_says() -> None:
    # Regenerate with: runestone config schema > runestone/defaults/runestone.schema.json
    assert BUNDLED_SCHEMA.read_text(encoding="utf-8") == schema_text()
    assert json.loads(schema_text()) == json_schema()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_names_the_schema_and_validates_against_it(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = first.split("$schema=", 1)[1]
    assert (path.parent / target).resolve() == BUNDLED_SCHEMA.resolve()
    assert path != BUNDLED_CONFIG or first == SCHEMA_COMMENT
    errors = list(_validator().iter_errors(_expanded(path, EXAMPLE_ENV)))
    assert errors == []
    # As written, too: an editor sees `port: ${PORT:-4003}` before any expansion.
    written = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(_validator().iter_errors(written)) == []


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(build, id=name)
        for name, build, _ in BAD_CONFIGS
        if name not in ONLY_THE_LOADER_KNOWS
    ],
)
def test_the_json_schema_rejects_every_bad_shape(build: Callable[[], Mapping[str, Any]]) -> None:
    assert not _validator().is_valid(build())


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(build, id=name)
        for name, build, _ in BAD_CONFIGS
        if name in ONLY_THE_LOADER_KNOWS
    ],
)
def test_what_only_the_loader_knows_is_a_valid_shape(
    build: Callable[[], Mapping[str, Any]],
) -> None:
    # Should one of these become a shape error, move it out of ONLY_THE_LOADER_KNOWS.
    assert _validator().is_valid(build())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_config_round_trips_through_its_schema(path: Path) -> None:
    schema = file_schema()
    # The loader's first step: legacy blocks mapped onto the current shape.
    data = _Builder(_expanded(path, EXAMPLE_ENV), EXAMPLE_ENV, {}, None).data
    checked = convert(without_nulls(data, schema), schema)
    dumped = msgspec.to_builtins(checked)
    again = convert(dumped, schema)
    assert again == checked
    # (Not the dumps themselves: a set of capabilities may list in another order.)
    assert convert(msgspec.to_builtins(again), schema) == checked


def test_a_registered_plugin_type_is_in_the_schema_with_its_own_keys() -> None:
    blocks = json_schema()["$defs"]
    assert {"SimulatedBlock", "OpenaiBlock", "AnthropicBlock", "OpenaiCompatibleBlock"} <= set(
        blocks
    )
    simulated = blocks["SimulatedBlock"]["properties"]
    number, reference = simulated["token_rate"]["anyOf"]
    assert number == {"type": "number", "minimum": 0, "maximum": number["maximum"]}
    assert reference["pattern"].startswith("^")
    assert simulated["type"] == {"enum": ["simulated"]}
    assert "description" in simulated["token_rate"]
    assert blocks["SimulatedBlock"]["additionalProperties"] is False
