"""The config file: bundled config, ${VAR}, the legacy shape, and one clear error per bad input."""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from runestone.config import (
    BUNDLED_CONFIG,
    ROUTING_POLICIES,
    ApiKey,
    Config,
    PoolConfig,
    ResumeConfig,
    ServerConfig,
    describe,
    expand_env,
    key_fingerprint,
    load_config,
)
from runestone.exceptions import ConfigError
from runestone.providers.base import ProbeMethod
from runestone.providers.settings import Capability, Secret
from runestone.resilience import CircuitBreakerPolicy, RetryPolicy
from runestone.supervisors.intensity import IntensityPolicy

EXAMPLES = Path(__file__).resolve().parent.parent / "config" / "examples"
EXAMPLE_ENV = {
    name: f"value-of-{name.lower()}"
    for name in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GROQ_API_KEY",
        "RUNESTONE_KEY_TEAM_A",
        "RUNESTONE_KEY_TEAM_B",
    )
}
OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"


def _base() -> dict[str, Any]:
    """A small valid config that each bad case below breaks in one place."""
    return {
        "providers": {
            "sim": {
                "type": "simulated",
                "models": {"m1": {"context_window": 1000}, "m2": {"capabilities": ["prefill"]}},
            },
            "openai": {"type": "openai", "api_key": OPENAI_KEY, "models": {"gpt-4o-mini": {}}},
        },
        "routing": {
            "aliases": {"fast": ["sim/m1", "openai/gpt-4o-mini"]},
            "fallbacks": {"sim/m1": ["sim/m2"]},
        },
    }


_DELETE = object()


def _with(path: str, value: object, *, legacy: bool = False) -> Callable[[], dict[str, Any]]:
    """The base config with the value at dotted ``path`` replaced (or deleted).

    ``legacy`` adds a legacy-shape provider block called ``legacy``.
    """

    def build() -> dict[str, Any]:
        data = _base()
        if legacy:
            data["providers"]["legacy"] = {"default_model": "m", "api_key_env": "LEGACY_KEY"}
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)
        return data

    return build


# --- the bundled config ------------------------------------------------------------------------


def test_the_bundled_config_answers_through_the_simulated_provider_with_no_keys_set() -> None:
    config = load_config(BUNDLED_CONFIG, env={})
    assert list(config.providers) == ["simulated"]
    assert [(s.name, s.reason) for s in config.skipped] == [
        ("openai", "api_key is empty: set OPENAI_API_KEY"),
        ("anthropic", "api_key is empty: set ANTHROPIC_API_KEY"),
    ]
    assert config.routing.aliases == {
        "default": ("simulated/sim-fast",),
        "fast": ("simulated/sim-fast",),
        "smart": ("simulated/sim-smart",),
        "embed": ("simulated/sim-embed",),
    }
    assert config.routing.fallbacks == {"simulated/sim-smart": ("simulated/sim-fast",)}
    assert config.routing.context_window_fallbacks == {
        "simulated/sim-fast": ("simulated/sim-smart",)
    }
    assert config.model_refs() == (
        "simulated/sim-fast",
        "simulated/sim-smart",
        "simulated/sim-embed",
    )
    smart = config.model("simulated/sim-smart")
    assert smart is not None
    assert {Capability.TOOLS, Capability.PREFILL} <= smart.capabilities
    assert config.server == ServerConfig(host="127.0.0.1", port=4003)
    assert config.auth.keys == ()
    assert config.source == str(BUNDLED_CONFIG)


def test_setting_the_keys_switches_openai_and_anthropic_on_and_puts_them_first() -> None:
    env = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    config = load_config(BUNDLED_CONFIG, env=env)
    assert list(config.providers) == ["simulated", "openai", "anthropic"]
    assert config.skipped == ()
    assert config.routing.aliases["fast"] == (
        "openai/gpt-5-mini",
        "anthropic/claude-haiku-4-5",
        "simulated/sim-fast",
    )
    assert config.routing.fallbacks["openai/gpt-5"] == ("anthropic/claude-sonnet-4-5",)
    openai = config.providers["openai"]
    assert openai.settings.api_key == Secret(OPENAI_KEY)
    assert openai.settings.base_url == "https://api.openai.com/v1"
    assert openai.retry == RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=8)
    assert openai.circuit_breaker.consecutive_failures == 5
    assert config.providers["anthropic"].settings.api_key == Secret(ANTHROPIC_KEY)


def test_a_skipped_provider_is_a_warning_naming_the_variable_and_never_the_key() -> None:
    with capture_logs() as logs:
        load_config(BUNDLED_CONFIG, env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings == [
        {
            "event": "provider_skipped",
            "log_level": "warning",
            "provider": "openai",
            "reason": "api_key is empty: set OPENAI_API_KEY",
        }
    ]
    assert ANTHROPIC_KEY not in repr(logs)


def test_the_bundled_environment_variables_change_pace_port_and_log_level() -> None:
    env = {
        "RUNESTONE_SIM_TOKEN_RATE": "0",
        "RUNESTONE_PORT": "8080",
        "RUNESTONE_LOG_LEVEL": "debug",
    }
    config = load_config(BUNDLED_CONFIG, env=env)
    assert config.providers["simulated"].settings.options["token_rate"] == 0
    assert config.server.port == 8080
    assert config.logging.level == "DEBUG"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_loads_once_its_variables_are_set(example: Path) -> None:
    config = load_config(example, env=EXAMPLE_ENV)
    assert config.skipped == ()
    assert config.model_refs()


# --- sources -----------------------------------------------------------------------------------


def test_a_config_loads_alike_from_a_path_a_str_a_mapping_and_a_config() -> None:
    from_path = load_config(BUNDLED_CONFIG, env={})
    from_str = load_config(str(BUNDLED_CONFIG), env={})
    assert from_str == from_path
    from_dict = load_config(_base(), env={})
    assert from_dict.source is None
    assert list(from_dict.providers) == ["sim", "openai"]
    assert load_config(from_dict) is from_dict


def test_a_config_without_env_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNESTONE_TEST_CONFIG_KEY", OPENAI_KEY)
    data = _base()
    data["providers"]["openai"]["api_key"] = "${RUNESTONE_TEST_CONFIG_KEY}"
    config = load_config(data)
    assert config.providers["openai"].settings.api_key == Secret(OPENAI_KEY)
    assert os.environ["RUNESTONE_TEST_CONFIG_KEY"] == OPENAI_KEY


def test_a_source_of_another_kind_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="a path, a mapping or a Config, not int"):
        load_config(42)  # type: ignore[arg-type]


def test_defaults_apply_to_every_section_that_is_left_out() -> None:
    config = load_config({"providers": {"sim": {"type": "simulated", "models": {"m": {}}}}})
    assert config.routing.policy == "priority"
    assert config.routing.aliases == {}
    assert config.routing.resume == ResumeConfig(prefill=True, replay=True)
    assert config.supervision == IntensityPolicy(max_restarts=3, max_seconds=5.0)
    assert config.pool == PoolConfig(max_in_flight=1000, request_timeout=600.0)
    assert config.server == ServerConfig()
    assert config.providers["sim"].retry == RetryPolicy()
    assert config.providers["sim"].circuit_breaker == CircuitBreakerPolicy()


def test_a_health_probe_and_the_open_circuit_probe_interval_are_read() -> None:
    data = _with("providers.sim.health_probe", {"method": "request", "model": "m2"})()
    data["providers"]["sim"]["circuit_breaker"] = {"probe_interval": 0.25, "probe_interval_max": 1}
    sim = load_config(data).providers["sim"]
    assert (sim.probe_method, sim.probe_model) == (ProbeMethod.REQUEST, "m2")
    assert (sim.circuit_breaker.probe_interval, sim.circuit_breaker.probe_cap) == (0.25, 1)


def test_every_section_is_read_into_its_dataclass() -> None:
    data = _base()
    data.update(
        {
            "supervision": {"max_restarts": 10, "max_seconds": 2.5},
            "pool": {"max_in_flight": 7, "request_timeout": 30},
            "server": {"host": "::1", "port": 0, "max_body_bytes": 2048, "shutdown_grace": 0},
            "auth": {"keys": [{"key": "k-a", "name": "team-a", "rpm": 60, "max_streams": 2}]},
            "logging": {"level": "warning", "json": True},
        }
    )
    data["routing"]["policy"] = "least_loaded"
    data["routing"]["resume"] = {"prefill": False}
    config = load_config(data, env={})
    assert config.supervision == IntensityPolicy(max_restarts=10, max_seconds=2.5)
    assert config.pool == PoolConfig(max_in_flight=7, request_timeout=30.0)
    assert config.server == ServerConfig(host="::1", port=0, max_body_bytes=2048, shutdown_grace=0)
    assert config.auth.keys == (ApiKey(Secret("k-a"), "team-a", rpm=60, max_streams=2),)
    assert config.logging.level == "WARNING"
    assert config.logging.json is True
    assert config.routing.policy == "least_loaded"
    assert config.routing.resume == ResumeConfig(prefill=False, replay=True)


def test_weights_are_per_model_with_a_provider_weight_for_the_rest() -> None:
    data = _base()
    data["routing"]["policy"] = "weighted"
    data["routing"]["weights"] = {"sim": 2, "sim/m2": 0.5, "openai/gpt-4o-mini": 3}
    routing = load_config(data, env={}).routing
    assert routing.weights == {"sim/m1": 2.0, "sim/m2": 0.5, "openai/gpt-4o-mini": 3.0}
    assert routing.weight("sim/m2") == 0.5
    assert routing.weight("elsewhere/m") == 1.0
    assert (
        "weights (others 1): sim/m1 2, sim/m2 0.5, openai/gpt-4o-mini 3"
        in describe(load_config(data, env={})).splitlines()
    )


def test_weights_of_a_skipped_provider_are_dropped() -> None:
    data = _base()
    data["providers"]["openai"]["api_key"] = "${UNSET}"
    data["routing"]["weights"] = {"openai": 2, "openai/gpt-4o-mini": 3, "sim/m1": 4}
    assert load_config(data, env={}).routing.weights == {"sim/m1": 4.0}


def test_an_alias_may_be_the_key_of_a_fallback_list() -> None:
    data = _base()
    data["providers"]["openai"]["api_key"] = "${KEY}"
    data["routing"]["aliases"]["gpt"] = ["openai/gpt-4o-mini"]
    data["routing"]["fallbacks"] = {"fast": ["sim/m2"], "gpt": ["sim/m1"]}
    data["routing"]["context_window_fallbacks"] = {"fast": ["sim/m2"]}
    live = load_config(data, env={"KEY": OPENAI_KEY}).routing
    assert live.fallbacks == {"fast": ("sim/m2",), "gpt": ("sim/m1",)}
    assert live.context_window_fallbacks == {"fast": ("sim/m2",)}
    # With openai skipped the alias `gpt` has no target left; its fallbacks go with it.
    assert load_config(data, env={}).routing.fallbacks == {"fast": ("sim/m2",)}


@pytest.mark.parametrize("policy", ROUTING_POLICIES)
def test_every_routing_policy_name_is_accepted(policy: str) -> None:
    data = _base()
    data["routing"]["policy"] = policy
    assert load_config(data, env={}).routing.policy == policy


def test_a_config_is_frozen_and_its_tables_are_read_only() -> None:
    config = load_config(_base(), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.source = "elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.providers["x"] = config.providers["sim"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.routing.aliases["x"] = ()  # type: ignore[index]


def test_top_level_defaults_lie_under_each_providers_own_settings() -> None:
    data = _base()
    data["defaults"] = {
        "timeouts": {"connect": 3, "idle": 9},
        "retry": {"max_attempts": 4},
        "circuit_breaker": {"recovery": 12},
    }
    data["providers"]["openai"]["timeouts"] = {"idle": 20}
    data["providers"]["openai"]["retry"] = {"base_delay": 1}
    config = load_config(data, env={})
    sim, openai = config.providers["sim"], config.providers["openai"]
    assert (sim.settings.timeouts.connect, sim.settings.timeouts.idle) == (3.0, 9.0)
    assert (openai.settings.timeouts.connect, openai.settings.timeouts.idle) == (3.0, 20.0)
    assert sim.retry.max_attempts == 4
    assert (openai.retry.max_attempts, openai.retry.base_delay) == (4, 1)
    assert openai.circuit_breaker.recovery == 12


# --- skipped providers and their routes --------------------------------------------------------


def test_routes_to_a_skipped_provider_are_dropped_and_an_alias_left_empty_goes() -> None:
    data = _base()
    data["providers"]["openai"]["api_key"] = "${NOT_SET}"
    data["routing"]["aliases"]["gpt"] = ["openai/gpt-4o-mini"]
    data["routing"]["fallbacks"]["openai/gpt-4o-mini"] = ["sim/m1"]
    data["routing"]["fallbacks"]["sim/m2"] = ["openai/gpt-4o-mini", "sim/m1"]
    config = load_config(data, env={})
    assert list(config.providers) == ["sim"]
    assert config.routing.aliases == {"fast": ("sim/m1",)}
    assert config.routing.fallbacks == {"sim/m1": ("sim/m2",), "sim/m2": ("sim/m1",)}


def test_a_provider_that_needs_no_key_is_live_without_one() -> None:
    data = _base()
    data["providers"]["local"] = {
        "type": "openai_compatible",
        "base_url": "http://127.0.0.1:11434/v1",
        "api_key": "${LOCAL_KEY}",
        "models": {"llama3.1:8b": {}},
    }
    config = load_config(data, env={})
    assert config.providers["local"].settings.api_key is None
    assert "local/llama3.1:8b" in config.model_refs()


def test_a_provider_with_no_api_key_entry_is_skipped_as_missing() -> None:
    data = _base()
    del data["providers"]["openai"]["api_key"]
    config = load_config(data, env={})
    assert [(s.name, s.reason) for s in config.skipped] == [("openai", "api_key is missing")]


def test_a_provider_switched_off_is_skipped_as_disabled() -> None:
    data = _base()
    data["providers"]["openai"]["enabled"] = False
    config = load_config(data, env={})
    assert [(s.name, s.reason) for s in config.skipped] == [("openai", "disabled (enabled: false)")]


def test_a_skipped_provider_is_still_checked_so_a_typo_shows_before_its_key_is_set() -> None:
    data = _base()
    data["providers"]["openai"]["api_key"] = "${NOT_SET}"
    data["providers"]["openai"]["max_tokens_field"] = "max_tokenz"
    with pytest.raises(ConfigError) as error:
        load_config(data, env={})
    assert error.value.path == "providers.openai.max_tokens_field"
    assert "got 'max_tokenz'" in str(error.value)


def test_no_usable_provider_is_an_error_listing_the_skipped_ones_never_a_mock() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(EXAMPLES / "legacy.yaml", env={})
    assert str(error.value) == (
        "providers: no usable provider: openai (api_key is empty: set OPENAI_API_KEY); "
        "anthropic (api_key is empty: set ANTHROPIC_API_KEY); "
        "groq (api_key is empty: set GROQ_API_KEY)"
    )


def test_an_empty_providers_section_is_an_error_saying_how_to_start() -> None:
    with pytest.raises(ConfigError) as error:
        load_config({"providers": {}}, env={})
    assert str(error.value) == (
        "providers: no usable provider: none is configured "
        "(for a first run, add one of type: simulated)"
    )


# --- ${VAR} ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "alpha"),
        ("x-${A}-y", "x-alpha-y"),
        ("${A}${B}", "alphabeta"),
        ("${UNSET}", ""),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${A:-fallback}", "alpha"),
        ("${UNSET:-}", ""),
        ("${UNSET:-${B}}", "beta"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-a:-b}", "a:-b"),
        ("$${A}", "${A}"),
        ("cost: $5", "cost: $5"),
        ("$A", "$A"),
        ("no references", "no references"),
    ],
)
def test_variables_expand_as_in_a_shell(text: str, expected: str) -> None:
    env = {"A": "alpha", "B": "beta", "EMPTY": ""}
    assert expand_env(text, env) == expected


@pytest.mark.parametrize("text", ["${1A}", "${A", "${A:-x", "${A-x}", "${}", "${A B}"])
def test_a_malformed_reference_is_an_error_at_its_key_path(text: str) -> None:
    data = _base()
    data["providers"]["openai"]["base_url"] = text
    with pytest.raises(ConfigError) as error:
        load_config(data, env={})
    assert error.value.path == "providers.openai.base_url"
    assert "malformed reference" in str(error.value)
    assert "expected ${VAR} or ${VAR:-default}" in str(error.value)


@given(
    text=st.text(alphabet=st.characters(exclude_characters="$")),
    value=st.text(alphabet=st.characters(exclude_characters="$")),
)
def test_text_without_a_reference_is_unchanged_and_a_reference_is_its_value(
    text: str, value: str
) -> None:
    env = {"V": value}
    assert expand_env(text, env) == text
    assert expand_env(f"{text}${{V}}{text}", env) == f"{text}{value}{text}"
    assert expand_env("${V:-d}", env) == (value or "d")


def test_a_value_that_is_one_reference_takes_the_type_its_text_spells() -> None:
    data = _base()
    data["pool"] = {"max_in_flight": "${MAX:-64}", "request_timeout": "${TIMEOUT}"}
    data["routing"]["resume"] = {"prefill": "${PREFILL}"}
    data["providers"]["sim"]["token_rate"] = "${RATE:-12.5}"
    config = load_config(data, env={"TIMEOUT": "90", "PREFILL": "false"})
    assert config.pool == PoolConfig(max_in_flight=64, request_timeout=90.0)
    assert config.routing.resume.prefill is False
    assert config.providers["sim"].settings.options["token_rate"] == 12.5


def test_strings_stay_strings_where_a_string_is_expected() -> None:
    data = _base()
    data["providers"]["openai"]["api_key"] = "${KEY}"
    data["providers"]["openai"]["headers"] = {"X-Team": "${TEAM}"}
    data["providers"]["sim"]["text"] = "${TEXT}"
    data["auth"] = {"keys": [{"key": "${KEY}", "name": "${TEAM}"}]}
    config = load_config(data, env={"KEY": "12345", "TEAM": "7", "TEXT": "true"})
    settings = config.providers["openai"].settings
    assert settings.api_key == Secret("12345")
    assert settings.headers == {"X-Team": "7"}
    assert config.providers["sim"].settings.options["text"] == "true"
    assert config.auth.keys[0].name == "7"


def test_a_number_written_with_more_text_around_it_stays_a_string_and_is_reported() -> None:
    data = _base()
    data["pool"] = {"max_in_flight": "${MAX} requests"}
    with pytest.raises(ConfigError) as error:
        load_config(data, env={"MAX": "5"})
    assert str(error.value) == (
        "pool.max_in_flight: expected an integer >= 1, got '5 requests' (from $MAX)"
    )


def test_a_bad_value_from_the_environment_names_its_variables() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(BUNDLED_CONFIG, env={"RUNESTONE_PORT": "http"})
    assert str(error.value) == (
        "server.port: expected an integer from 0 to 65535, got 'http' (from $RUNESTONE_PORT)"
    )
    assert error.value.path == "server.port"
    with pytest.raises(ConfigError) as error:
        load_config(BUNDLED_CONFIG, env={"OPENAI_BASE_URL": "localhost:8000"})
    assert str(error.value) == (
        "providers.openai.base_url: expected an http:// or https:// URL, got 'localhost:8000' "
        "(from $OPENAI_BASE_URL)"
    )


# --- the legacy shape --------------------------------------------------------------------------

LEGACY_ENV = {"OPENAI_API_KEY": OPENAI_KEY, "GROQ_API_KEY": "gsk-test"}


def test_the_legacy_shape_is_mapped_onto_the_current_one() -> None:
    config = load_config(EXAMPLES / "legacy.yaml", env=LEGACY_ENV)
    assert list(config.providers) == ["openai", "groq"]
    assert [(s.name, s.reason) for s in config.skipped] == [
        ("anthropic", "api_key is empty: set ANTHROPIC_API_KEY")
    ]
    openai = config.providers["openai"].settings
    assert openai.type == "openai"
    assert openai.api_key == Secret(OPENAI_KEY)
    assert openai.base_url == "https://api.openai.com/v1"
    assert list(openai.models) == ["gpt-4o-mini", "gpt-4o"]
    mini = openai.models["gpt-4o-mini"]
    assert mini.input_per_1m == pytest.approx(0.15)
    assert mini.output_per_1m == pytest.approx(0.15)
    assert mini.capabilities == {Capability.TOOLS, Capability.VISION}
    assert openai.models["gpt-4o"].capabilities == {
        Capability.TOOLS,
        Capability.VISION,
        Capability.JSON,
    }
    groq = config.providers["groq"].settings
    assert groq.type == "openai_compatible"
    assert groq.base_url == "https://api.groq.com/openai/v1"
    assert groq.api_key == Secret("gsk-test")
    assert groq.models["llama-3.1-70b-versatile"].input_per_1m == pytest.approx(0.59)
    assert config.routing.aliases == {
        "default": ("openai/gpt-4o-mini", "groq/llama-3.1-70b-versatile")
    }


def test_a_legacy_default_model_missing_from_the_cost_table_is_still_a_model() -> None:
    data = {
        "providers": {"openai": {"default_model": "gpt-4.1", "api_key_env": "OPENAI_API_KEY"}},
        "cost_table": [
            {
                "provider": "openai",
                "model": "gpt-4o",
                "cost_per_1k_tokens": {"input": 0.0025, "output": 0.01},
            }
        ],
    }
    config = load_config(data, env=LEGACY_ENV)
    models = config.providers["openai"].settings.models
    assert list(models) == ["gpt-4o", "gpt-4.1"]
    gpt_4o = models["gpt-4o"]
    assert (gpt_4o.input_per_1m, gpt_4o.output_per_1m) == pytest.approx((2.5, 10.0))
    assert config.routing.aliases == {"default": ("openai/gpt-4.1",)}


def test_a_legacy_file_may_name_its_own_default_alias_and_use_new_sections() -> None:
    data = {
        "providers": {
            "openai": {"default_model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
            "sim": {"type": "simulated", "models": {"m": {}}},
        },
        "routing": {"aliases": {"default": ["sim/m", "openai/gpt-4o-mini"]}},
        "pool": {"max_in_flight": 5},
    }
    config = load_config(data, env=LEGACY_ENV)
    assert config.routing.aliases == {"default": ("sim/m", "openai/gpt-4o-mini")}
    assert config.pool.max_in_flight == 5


# --- bad configs: one clear error each ---------------------------------------------------------

_KNOWN_TYPES = "anthropic, openai, openai_compatible, simulated"
_PROVIDER_KEYS = (
    "type, enabled, api_key, base_url, headers, timeouts, max_connections, models, retry, "
    "circuit_breaker, health_probe, options"
)

BAD_CONFIGS: list[tuple[str, Callable[[], Mapping[str, Any]], str]] = [
    (
        "health probe interval of zero",
        _with("providers.sim.health_probe", {"interval": 0}),
        "providers.sim.health_probe.interval: expected a number > 0, got 0",
    ),
    (
        "health probe with an unknown key",
        _with("providers.sim.health_probe", {"every": 5}),
        "providers.sim.health_probe.every: unknown key; expected one of: interval, method, model",
    ),
    (
        "health probe method that is not one",
        _with("providers.sim.health_probe", {"method": "ping"}),
        "providers.sim.health_probe.method: expected one of: models, request, got 'ping'",
    ),
    (
        "health probe model the provider does not serve",
        _with("providers.sim.health_probe", {"method": "request", "model": "m9"}),
        "providers.sim.health_probe.model: expected one of this provider's models "
        "['m1', 'm2'], got 'm9'",
    ),
    (
        "health probe model that is not a name",
        _with("providers.sim.health_probe", {"model": 3}),
        "providers.sim.health_probe.model: expected a model name, got 3",
    ),
    (
        "circuit probe interval of zero",
        _with("providers.sim.circuit_breaker", {"probe_interval": 0}),
        "providers.sim.circuit_breaker.probe_interval: expected a number > 0, got 0",
    ),
    (
        "circuit probe cap below the probe interval",
        _with("providers.sim.circuit_breaker", {"probe_interval": 2, "probe_interval_max": 1}),
        "providers.sim.circuit_breaker.probe_interval_max: expected a number >= 2, got 1",
    ),
    (
        "circuit probe multiplier below one",
        _with("providers.sim.circuit_breaker", {"probe_multiplier": 0.5}),
        "providers.sim.circuit_breaker.probe_multiplier: expected a number >= 1, got 0.5",
    ),
    (
        "unknown top-level key",
        _with("pools", {}),
        "pools: unknown key; did you mean 'pool'?",
    ),
    (
        "no providers section",
        _with("providers", _DELETE),
        "providers: required: a mapping of provider names to provider blocks",
    ),
    (
        "providers as a list",
        _with("providers", ["sim"]),
        "providers: expected a mapping of provider names, got a list",
    ),
    (
        "provider block not a mapping",
        _with("providers.sim", "simulated"),
        "providers.sim: expected a provider block (a mapping), got 'simulated'",
    ),
    (
        "provider name with a slash",
        _with("providers.a/b", {"type": "simulated", "models": {"m": {}}}),
        "providers.a/b: expected a provider name: a non-empty string without '/' or "
        "surrounding spaces",
    ),
    (
        "provider without a type",
        _with("providers.sim.type", _DELETE),
        f"providers.sim.type: required: the provider type; one of: {_KNOWN_TYPES}",
    ),
    (
        "unregistered provider type",
        _with("providers.sim.type", "gemini"),
        f"providers.sim.type: unknown provider type 'gemini'; known types: {_KNOWN_TYPES}",
    ),
    (
        "misspelt provider key",
        _with("providers.sim.modles", {}),
        "providers.sim.modles: unknown key; did you mean 'models'?",
    ),
    (
        "unknown provider key like none",
        _with("providers.sim.zzz", {}),
        f"providers.sim.zzz: unknown key; expected one of: {_PROVIDER_KEYS}, "
        "first_token_delay, text, token_rate",
    ),
    (
        "provider without models",
        _with("providers.sim.models", {}),
        "providers.sim.models: expected at least one model, e.g. models: "
        "{gpt-4o-mini: {context_window: 128000}}",
    ),
    (
        "negative timeout",
        _with("providers.sim.timeouts", {"connect": -1}),
        "providers.sim.timeouts.connect: expected a number > 0, got -1",
    ),
    (
        "unknown retry key",
        _with("providers.sim.retry", {"max_tries": 3}),
        "providers.sim.retry.max_tries: unknown key; did you mean 'max_attempts'?",
    ),
    (
        "zero retry attempts",
        _with("providers.sim.retry", {"max_attempts": 0}),
        "providers.sim.retry.max_attempts: expected an integer >= 1, got 0",
    ),
    (
        "failure rate over one",
        _with("providers.sim.circuit_breaker", {"failure_rate": 2}),
        "providers.sim.circuit_breaker.failure_rate: expected a fraction <= 1, got 2",
    ),
    (
        "negative simulated token rate",
        _with("providers.sim.token_rate", -1),
        "providers.sim.token_rate: expected a number >= 0, got -1",
    ),
    (
        "unknown model capability",
        _with("providers.sim.models.m1", {"capabilities": ["telepathy"]}),
        "providers.sim.models.m1.capabilities[0]: expected one of: tools, vision, json, prefill, "
        "embeddings, thinking, prompt_caching, server_tools, completions, got 'telepathy'",
    ),
    (
        "compatible server without a URL",
        _with("providers.local", {"type": "openai_compatible", "models": {"m": {}}}),
        "providers.local.base_url: required for a openai_compatible provider: the server's URL",
    ),
    (
        "base URL without a scheme",
        _with("providers.openai.base_url", "api.openai.com/v1"),
        "providers.openai.base_url: expected an http:// or https:// URL, got 'api.openai.com/v1'",
    ),
    (
        "enabled not a boolean",
        _with("providers.openai.enabled", "no"),
        "providers.openai.enabled: expected true or false, got 'no'",
    ),
    (
        "unknown defaults key",
        _with("defaults", {"timeout": {"connect": 1}}),
        "defaults.timeout: unknown key; did you mean 'timeouts'?",
    ),
    (
        "unknown routing policy",
        _with("routing.policy", "fastest"),
        "routing.policy: unknown routing policy 'fastest'; expected one of: priority, cost, "
        "latency, health, round_robin, weighted, least_loaded, capability",
    ),
    (
        "unknown routing key",
        _with("routing.alias", {}),
        "routing.alias: unknown key; did you mean 'aliases'?",
    ),
    (
        "alias to an unknown model",
        _with("routing.aliases.fast", ["sim/m1", "openai/gpt-5"]),
        "routing.aliases.fast[1]: unknown model 'openai/gpt-5'; configured: openai/gpt-4o-mini",
    ),
    (
        "alias to an unknown provider",
        _with("routing.aliases.fast", ["gemini/pro"]),
        "routing.aliases.fast[0]: unknown provider 'gemini' in 'gemini/pro'; configured "
        "providers: sim, openai",
    ),
    (
        "alias to a bare model name",
        _with("routing.aliases.fast", ["m1"]),
        "routing.aliases.fast[0]: expected a 'provider/model' reference, got 'm1' "
        "(did you mean 'sim/m1'?)",
    ),
    (
        "alias to a number",
        _with("routing.aliases.fast", 3),
        "routing.aliases.fast: expected a list of 'provider/model' references, got 3",
    ),
    (
        "alias to nothing",
        _with("routing.aliases.fast", []),
        "routing.aliases.fast: expected at least one 'provider/model' reference",
    ),
    (
        "alias listing a model twice",
        _with("routing.aliases.fast", ["sim/m1", "sim/m2", "sim/m1"]),
        "routing.aliases.fast[2]: 'sim/m1' is listed twice",
    ),
    (
        "alias named like a model reference",
        _with("routing.aliases", {"sim/fast": ["sim/m1"]}),
        "routing.aliases.sim/fast: expected an alias name: a non-empty string without '/' "
        "('provider/model' names a model itself)",
    ),
    (
        "fallback from an unknown model",
        _with("routing.fallbacks", {"sim/m9": ["sim/m1"]}),
        "routing.fallbacks.sim/m9: unknown model 'sim/m9'; configured: sim/m1, sim/m2",
    ),
    (
        "fallback from a name that is neither a model nor an alias",
        _with("routing.fallbacks", {"fastt": ["sim/m1"]}),
        "routing.fallbacks.fastt: expected a 'provider/model' reference or an alias, got "
        "'fastt'; aliases: fast",
    ),
    (
        "negative weight",
        _with("routing.weights", {"sim/m1": -1}),
        "routing.weights.sim/m1: expected a number >= 0, got -1",
    ),
    (
        "weight for an unknown name",
        _with("routing.weights", {"mistral": 2}),
        "routing.weights.mistral: expected a 'provider/model' reference or a provider name, "
        "got 'mistral'",
    ),
    (
        "fallback to itself",
        _with("routing.fallbacks", {"sim/m1": ["sim/m2", "sim/m1"]}),
        "routing.fallbacks.sim/m1[1]: 'sim/m1' cannot fall back to itself",
    ),
    (
        "context-window fallback to an unknown model",
        _with("routing.context_window_fallbacks", {"sim/m1": ["openai/gpt-4o"]}),
        "routing.context_window_fallbacks.sim/m1[0]: unknown model 'openai/gpt-4o'; "
        "configured: openai/gpt-4o-mini",
    ),
    (
        "resume flag not a boolean",
        _with("routing.resume", {"prefill": "yes"}),
        "routing.resume.prefill: expected true or false, got 'yes'",
    ),
    (
        "unknown resume key",
        _with("routing.resume", {"continue": True}),
        "routing.resume.continue: unknown key; expected one of: prefill, replay",
    ),
    (
        "in-flight bound not a number",
        _with("pool", {"max_in_flight": "lots"}),
        "pool.max_in_flight: expected an integer >= 1, got 'lots'",
    ),
    (
        "zero in-flight bound",
        _with("pool", {"max_in_flight": 0}),
        "pool.max_in_flight: expected an integer >= 1, got 0",
    ),
    (
        "in-flight bound as a fraction",
        _with("pool", {"max_in_flight": 2.5}),
        "pool.max_in_flight: expected an integer >= 1, got 2.5",
    ),
    (
        "zero request timeout",
        _with("pool", {"request_timeout": 0}),
        "pool.request_timeout: expected a number > 0, got 0",
    ),
    (
        "unknown pool key",
        _with("pool", {"max_queue": 10}),
        "pool.max_queue: unknown key; expected one of: max_in_flight, request_timeout",
    ),
    (
        "pool as a list",
        _with("pool", [1000]),
        "pool: expected a mapping, got a list",
    ),
    (
        "port out of range",
        _with("server", {"port": 70000}),
        "server.port: expected an integer from 0 to 65535, got 70000",
    ),
    (
        "port as a boolean",
        _with("server", {"port": True}),
        "server.port: expected an integer from 0 to 65535, got True",
    ),
    (
        "open server on every interface",
        _with("server", {"host": "0.0.0.0"}),
        "server.host: binding '0.0.0.0' with no auth.keys would serve anyone who can reach it; "
        "add auth.keys or bind a loopback address (127.0.0.1)",
    ),
    (
        "unknown server key",
        _with("server", {"address": "127.0.0.1"}),
        "server.address: unknown key; expected one of: host, port, max_body_bytes, shutdown_grace, "
        "admin_port, include_usage",
    ),
    (
        "admin port the same as the main port",
        _with("server", {"port": 4003, "admin_port": 4003}),
        "server.admin_port: must differ from server.port (4003): the admin routes get a port of "
        "their own",
    ),
    (
        "admin port out of range",
        _with("server", {"admin_port": -1}),
        "server.admin_port: expected an integer from 0 to 65535, got -1",
    ),
    (
        "admin port as text",
        _with("server", {"admin_port": "admin"}),
        "server.admin_port: expected an integer from 0 to 65535, got 'admin'",
    ),
    (
        "negative restart count",
        _with("supervision", {"max_restarts": -1}),
        "supervision.max_restarts: expected an integer >= 0, got -1",
    ),
    (
        "zero restart period",
        _with("supervision", {"max_seconds": 0}),
        "supervision.max_seconds: expected a number > 0, got 0",
    ),
    (
        "unknown supervision key",
        _with("supervision", {"intensity": 3}),
        "supervision.intensity: unknown key; expected one of: max_restarts, max_seconds",
    ),
    (
        "client key whose variable is unset",
        _with("auth", {"keys": [{"key": "", "name": "team-a"}]}),
        "auth.keys[0].key: required: a non-empty key (is its variable set?)",
    ),
    (
        "client key with a blank name",
        _with("auth", {"keys": [{"key": "k-1", "name": " "}]}),
        "auth.keys[0].name: expected a non-empty name, got ' '",
    ),
    (
        "two client keys with one name",
        _with("auth", {"keys": [{"key": "k-1", "name": "a"}, {"key": "k-2", "name": "a"}]}),
        "auth.keys[1].name: duplicate key name 'a' (also auth.keys[0])",
    ),
    (
        "one client key given twice",
        _with("auth", {"keys": [{"key": "k-1", "name": "a"}, {"key": "k-1", "name": "b"}]}),
        "auth.keys[1].key: the same key is given twice (also for 'a')",
    ),
    (
        "zero requests a minute",
        _with("auth", {"keys": [{"key": "k-1", "name": "a", "rpm": 0}]}),
        "auth.keys[0].rpm: expected an integer >= 1, got 0",
    ),
    (
        "unknown client key field",
        _with("auth", {"keys": [{"key": "k-1", "name": "a", "rpn": 5}]}),
        "auth.keys[0].rpn: unknown key; did you mean 'rpm'?",
    ),
    (
        "zero tokens a minute",
        _with("auth", {"keys": [{"key": "k-1", "name": "a", "tpm": 0}]}),
        "auth.keys[0].tpm: expected an integer >= 1, got 0",
    ),
    (
        "a cluster without its Redis URL",
        _with("cluster", {"namespace": "gw"}),
        "cluster.redis_url: required: a redis://, rediss:// or unix:// URL",
    ),
    (
        "a cluster Redis URL that is not a Redis URL",
        _with("cluster", {"redis_url": "http://redis:6379"}),
        "cluster.redis_url: expected a redis://, rediss:// or unix:// URL, got 'http://redis:6379'",
    ),
    (
        "a cluster heartbeat of zero",
        _with("cluster", {"redis_url": "redis://r", "heartbeat": 0}),
        "cluster.heartbeat: expected a number > 0, got 0",
    ),
    (
        "an unknown cluster key",
        _with("cluster", {"redis_url": "redis://r", "namespaces": "x"}),
        "cluster.namespaces: unknown key; did you mean 'namespace'?",
    ),
    (
        "client keys in a cluster without a secret to hash them with",
        lambda: {
            **_with("auth", {"keys": [{"key": "k-1", "name": "a"}]})(),
            "cluster": {"redis_url": "redis://r"},
        },
        "cluster.secret: required with auth.keys: the server-side key that client key names "
        "are hashed with before they reach Redis (e.g. secret: ${RUNESTONE_CLUSTER_SECRET})",
    ),
    (
        "client keys as a mapping",
        _with("auth", {"keys": {"team-a": "k-1"}}),
        "auth.keys: expected a list of {key, name, rpm, max_streams, tpm}, got a mapping",
    ),
    (
        "unknown auth key",
        _with("auth", {"admins": []}),
        "auth.admins: unknown key; did you mean 'admin_keys'?",
    ),
    (
        "admin keys as a mapping",
        _with("auth", {"admin_keys": {"ops": "k-1"}}),
        "auth.admin_keys: expected a list of {key, name}, got a mapping",
    ),
    (
        "admin key whose variable is unset",
        _with("auth", {"admin_keys": [{"key": "", "name": "ops"}]}),
        "auth.admin_keys[0].key: required: a non-empty key (is its variable set?)",
    ),
    (
        "admin key with a name that is not text",
        _with("auth", {"admin_keys": [{"key": "k-admin", "name": 7}]}),
        "auth.admin_keys[0].name: expected a non-empty name, got 7",
    ),
    (
        "client key that is not text",
        _with("auth", {"keys": [{"key": 12345, "name": "a"}]}),
        "auth.keys[0].key: required: a non-empty key (is its variable set?)",
    ),
    (
        "one nameless client key given twice",
        _with("auth", {"keys": [{"key": "k-1"}, {"key": "k-1"}]}),
        f"auth.keys[1].key: the same key is given twice (also for {key_fingerprint('k-1')!r})",
    ),
    (
        "admin key with limits",
        _with("auth", {"admin_keys": [{"key": "k-admin", "name": "ops", "rpm": 5}]}),
        "auth.admin_keys[0].rpm: unknown key; expected one of: key, name",
    ),
    (
        "admin key given twice",
        _with(
            "auth",
            {"admin_keys": [{"key": "k-admin", "name": "a"}, {"key": "k-admin", "name": "b"}]},
        ),
        "auth.admin_keys[1].key: the same key is given twice (also for 'a')",
    ),
    (
        "admin key that is also a client key",
        _with(
            "auth",
            {
                "keys": [{"key": "k-shared", "name": "team-a"}],
                "admin_keys": [{"key": "k-shared", "name": "ops"}],
            },
        ),
        "auth.admin_keys[0].key: this admin key is also the client key 'team-a' in auth.keys; "
        "give admins keys of their own",
    ),
    (
        "unknown log level",
        _with("logging", {"level": "LOUD"}),
        "logging.level: expected one of: DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'",
    ),
    (
        "cost table row for an unknown provider",
        _with(
            "cost_table",
            [{"provider": "mistral", "model": "m", "cost_per_1k_tokens": 1}],
            legacy=True,
        ),
        "cost_table[0].provider: unknown provider 'mistral'; configured: sim, openai, legacy",
    ),
    (
        "cost table row for a current-shape provider",
        _with("cost_table", [{"provider": "openai", "model": "gpt-4o", "cost_per_1k_tokens": 1}]),
        "cost_table[0].provider: 'openai' is a current-shape provider block (no default_model "
        "or api_key_env); list its models under providers.openai.models instead",
    ),
    (
        "cost table with an unknown capability",
        _with(
            "cost_table",
            [{"provider": "legacy", "model": "gpt-4o-mini", "capabilities": ["telepathy"]}],
            legacy=True,
        ),
        "cost_table[0].capabilities[0]: unknown capability 'telepathy'; expected one of: tools, "
        "tool_use, function_calling, functions, vision, images, json, json_mode, prefill, chat, "
        "text, streaming, completion",
    ),
    (
        "cost table with a negative price",
        _with(
            "cost_table",
            [{"provider": "legacy", "model": "gpt-4o", "cost_per_1k_tokens": -1}],
            legacy=True,
        ),
        "cost_table[0].cost_per_1k_tokens: expected a number >= 0, got -1",
    ),
    (
        "cost table not a list",
        _with("cost_table", {"openai": 1}),
        "cost_table: expected a list of {provider, model, cost_per_1k_tokens, capabilities}, "
        "got a mapping",
    ),
    (
        "unknown legacy provider key",
        _with("providers.openai", {"default_model": "gpt-4o", "api_key_env": "K", "org": "x"}),
        "providers.openai.org: unknown key; expected one of: type, default_model, api_key_env, "
        "base_url, enabled",
    ),
    (
        "legacy key variable that is not a name",
        _with("providers.openai", {"default_model": "gpt-4o", "api_key_env": "$OPENAI_KEY"}),
        "providers.openai.api_key_env: expected an environment variable name, got '$OPENAI_KEY'",
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"),
    [pytest.param(build, expected, id=name) for name, build, expected in BAD_CONFIGS],
)
def test_a_bad_config_is_one_clear_error_naming_the_key_path(
    build: Callable[[], Mapping[str, Any]], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(build(), env={})
    assert str(error.value) == expected
    assert error.value.path == expected.split(": ", 1)[0]
    assert OPENAI_KEY not in str(error.value)


# --- bad files ---------------------------------------------------------------------------------


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "providers:\n  sim:\n    type: simulated\n    models: {m: {}\n  other: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    message = str(error.value)
    # The wording in between is libyaml's or PyYAML's, whichever parsed it.
    assert message.startswith(f"{path}, line 5, column 3: invalid YAML: ")
    assert message.endswith("',' or '}' (while parsing a flow mapping that started at line 4)")
    assert isinstance(error.value.__cause__, Exception)


def test_a_bad_indent_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "indent.yaml"
    path.write_text("pool:\n  max_in_flight: 5\n   request_timeout: 9\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"indent\.yaml, line 3, column \d+: invalid YAML"):
        load_config(path, env={})


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "providers:\n"
        "  sim: {type: simulated, models: {m: {}}}\n"
        "  sim: {type: simulated, models: {n: {}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert str(error.value) == (
        f"{path}, line 3, column 3: invalid YAML: key 'sim' appears twice (first at line 2)"
    )


def test_yaml_merge_keys_are_not_mistaken_for_repeated_keys(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "providers:\n"
        "  sim:\n"
        "    type: simulated\n"
        "    models:\n"
        "      a: &base {context_window: 8000}\n"
        "      b: {<<: *base, context_window: 16000}\n",
        encoding="utf-8",
    )
    config = load_config(path, env={})
    models = config.providers["sim"].settings.models
    assert (models["a"].context_window, models["b"].context_window) == (8000, 16000)


def test_a_missing_file_is_an_error_naming_its_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"config file not found: {path}"


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path)
    assert str(error.value) == f"config path is a directory, not a file: {tmp_path}"


def test_an_empty_file_says_what_it_should_hold(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"the config is empty; expected a mapping with at least `providers` ({path})"
    )


def test_a_file_holding_a_list_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- providers\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        "expected a mapping of sections (providers, routing, …), got a list"
    )


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("providers: {caf\xe9: 1}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text"):
        load_config(path)


def test_a_python_object_tag_is_refused_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("providers: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"evil\.yaml, line 1, column \d+: invalid YAML"):
        load_config(path)


# --- secrets and describe ----------------------------------------------------------------------


def test_no_key_shows_in_a_repr_or_in_describe() -> None:
    data = _base()
    data["auth"] = {
        "keys": [{"key": "client-secret-value", "name": "team-a"}],
        "admin_keys": [{"key": "admin-secret-value", "name": "ops"}],
    }
    config = load_config(data, env={})
    for text in (
        repr(config),
        describe(config),
        repr(config.auth.keys[0]),
        repr(config.auth.admin_keys[0]),
    ):
        assert OPENAI_KEY not in text
        assert "client-secret-value" not in text
        assert "admin-secret-value" not in text
    assert "admin keys: ops" in describe(config)


def test_admin_keys_and_the_admin_port_are_read_and_kept_apart_from_client_keys() -> None:
    data = _base()
    data["auth"] = {
        "keys": [{"key": "k-client", "name": "team-a"}],
        "admin_keys": [{"key": "${ADMIN_KEY}", "name": "ops"}],
    }
    data["server"] = {"admin_port": "${ADMIN_PORT}"}
    config = load_config(data, env={"ADMIN_KEY": "12345", "ADMIN_PORT": "9100"})
    assert config.server.admin_port == 9100
    assert config.auth.admin_keys == (ApiKey(Secret("12345"), "ops"),)
    # A key of one kind opens nothing of the other.
    assert config.auth.lookup_admin("12345") is not None
    assert config.auth.lookup("12345") is None
    assert config.auth.lookup_admin("k-client") is None
    assert "admin port (/health, /metrics): 127.0.0.1:9100" in describe(config).splitlines()


def test_no_admin_port_and_no_admin_keys_by_default() -> None:
    config = load_config(_base(), env={})
    assert config.server.admin_port is None
    assert config.auth.admin_keys == ()


def test_a_client_key_is_found_by_its_value_only() -> None:
    data = _base()
    data["auth"] = {"keys": [{"key": "k-a", "name": "a"}, {"key": "k-b", "name": "b", "rpm": 5}]}
    auth = load_config(data, env={}).auth
    found = auth.lookup("k-b")
    assert found is not None
    assert (found.name, found.rpm) == ("b", 5)
    assert auth.lookup("k-c") is None
    assert auth.lookup("") is None


def test_describe_shows_live_models_skipped_providers_and_routes() -> None:
    text = describe(load_config(BUNDLED_CONFIG, env={}))
    lines = text.splitlines()
    assert lines[0] == f"config: {BUNDLED_CONFIG}"
    assert "providers: 1 live, 2 skipped" in lines
    assert "  simulated: live (type simulated)" in lines
    assert (
        "    simulated/sim-fast: $0.1 in / $0.4 out per 1M tokens; context 16,000; "
        "json, prefill, thinking, tools"
    ) in lines
    assert "  openai: skipped: api_key is empty: set OPENAI_API_KEY" in lines
    assert "  anthropic: skipped: api_key is empty: set ANTHROPIC_API_KEY" in lines
    assert "routing policy: priority" in lines
    assert "  fast -> simulated/sim-fast" in lines
    assert "  simulated/sim-smart -> simulated/sim-fast" in lines
    assert "server: 127.0.0.1:4003, auth open (no keys; loopback only)" in lines


def test_describe_of_a_config_built_in_code_says_so_and_names_client_keys() -> None:
    data = _base()
    data["auth"] = {"keys": [{"key": "k-a", "name": "team-a"}]}
    data["server"] = {"host": "0.0.0.0", "port": 9000}
    text = describe(load_config(data, env={}))
    assert text.splitlines()[0] == "config: (given in code)"
    assert "server: 0.0.0.0:9000, auth keys: team-a" in text.splitlines()
    assert "  openai: live (type openai)" in text.splitlines()


def test_config_can_be_built_directly_for_tests_of_other_parts() -> None:
    loaded = load_config(_base(), env={})
    built = Config(providers=loaded.providers, routing=loaded.routing)
    assert built.model_refs() == ("sim/m1", "sim/m2", "openai/gpt-4o-mini")
    assert built.model("sim/m1") is loaded.providers["sim"].settings.models["m1"]
    assert built.model("sim/none") is None
    assert built.model("nobody/m1") is None


# --- anything at all gives a Config or a ConfigError -------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "sim/m1", "openai/gpt-4o-mini", "${X}", "${X:-7}", "$${", "${", "m1"]),
    st.text(max_size=8),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=3),
    ),
    max_leaves=8,
)
_PLACES = [
    "providers",
    "providers.sim",
    "providers.sim.type",
    "providers.sim.models",
    "providers.sim.models.m1",
    "providers.sim.models.m1.capabilities",
    "providers.sim.timeouts",
    "providers.sim.retry",
    "providers.sim.circuit_breaker",
    "providers.sim.token_rate",
    "providers.sim.options",
    "providers.openai.api_key",
    "providers.openai.headers",
    "providers.openai.base_url",
    "providers.legacy",
    "providers.legacy.default_model",
    "providers.legacy.api_key_env",
    "cost_table",
    "defaults",
    "defaults.retry",
    "routing",
    "routing.policy",
    "routing.aliases",
    "routing.aliases.fast",
    "routing.fallbacks",
    "routing.weights",
    "routing.resume",
    "supervision",
    "supervision.max_seconds",
    "pool",
    "pool.max_in_flight",
    "server",
    "server.host",
    "server.port",
    "auth",
    "auth.keys",
    "auth.admin_keys",
    "server.admin_port",
    "logging",
    "logging.level",
]


@given(place=st.sampled_from(_PLACES), value=_VALUES)
def test_any_value_anywhere_gives_a_config_or_a_config_error_never_a_traceback(
    place: str, value: object
) -> None:
    data = _with(place, value, legacy=True)()
    outcome: Config | ConfigError
    try:
        outcome = load_config(data, env={"X": "x", "LEGACY_KEY": "k"})
    except ConfigError as error:
        outcome = error
    if isinstance(outcome, ConfigError):
        assert str(outcome)
        assert OPENAI_KEY not in str(outcome)
    else:
        assert describe(outcome)


def test_a_yaml_alias_that_contains_itself_is_an_error_not_a_recursion(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(
        "providers:\n  sim:\n    type: simulated\n    models: {m: {}}\n    options: &o {x: *o}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert str(error.value) == (
        "providers.sim.options.x: a YAML alias refers to a value that contains it"
    )


def test_a_yaml_alias_used_twice_side_by_side_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text(
        "providers:\n"
        "  sim:\n"
        "    type: simulated\n"
        "    models: {a: &spec {context_window: 4096, capabilities: [tools]}, b: *spec}\n",
        encoding="utf-8",
    )
    models = load_config(path, env={}).providers["sim"].settings.models
    assert models["a"].context_window == models["b"].context_window == 4096


def test_a_key_without_a_name_is_named_by_a_fingerprint_that_does_not_reveal_it() -> None:
    data = _base()
    data["auth"] = {
        "keys": [{"key": "sk-team-a-0123456789"}, {"key": "sk-team-b-0123456789"}],
        "admin_keys": [{"key": "sk-admin-0123456789"}],
    }
    config = load_config(data, env={})
    names = [key.name for key in (*config.auth.keys, *config.auth.admin_keys)]
    given = (*data["auth"]["keys"], *data["auth"]["admin_keys"])
    assert names == [key_fingerprint(entry["key"]) for entry in given]
    assert len(set(names)) == 3
    assert all(name.startswith("key-") and len(name) == 14 for name in names)
    assert not any("team" in name or "admin" in name for name in names)
    assert "sk-team" not in describe(config)
