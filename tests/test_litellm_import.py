"""``runestone import-litellm``: LiteLLM proxy configs (written from LiteLLM's documented
shapes, in tests/data/litellm/) become Runestone configs that load and serve, and every key
that has no counterpart is reported by its LiteLLM path, never dropped silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import runestone
from runestone.cli import main
from runestone.config import load_config
from runestone.litellm_import import check_environment, import_litellm
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream

DATA = Path(__file__).resolve().parent / "data" / "litellm"
USER = [{"role": "user", "content": "Tell me the known text."}]


def load(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text(encoding="utf-8"))


def test_a_proxy_config_maps_deployments_routing_fallbacks_and_the_master_key() -> None:
    report = import_litellm(load("proxy.yaml"))
    config = report.config
    providers = config["providers"]
    assert providers["openai"]["api_key"] == "${OPENAI_API_KEY}"
    assert providers["openai"]["models"]["gpt-4o"] == {
        "context_window": 128000,
        "input_per_1m": 2.5,
        "output_per_1m": 10.0,
    }
    assert providers["openai"]["timeouts"] == {"total": 300}  # its own timeout
    assert providers["openai"]["retry"] == {"max_attempts": 3}  # num_retries 2
    assert providers["openai"]["circuit_breaker"] == {"consecutive_failures": 3, "recovery": 30}
    assert providers["anthropic"]["retry"] == {"max_attempts": 2}  # its own max_retries 1
    assert providers["compatible"]["base_url"] == "${OPENAI_EU_BASE}"
    assert providers["vllm-internal"]["type"] == "openai_compatible"
    routing = config["routing"]
    assert routing["policy"] == "latency"
    assert routing["aliases"]["gpt-4o"] == ["openai/gpt-4o", "compatible/gpt-4o"]
    assert routing["weights"] == {"compatible/gpt-4o": 2}
    assert routing["fallbacks"]["claude-sonnet"] == [
        "openai/gpt-4o",
        "compatible/gpt-4o",
        "vllm-internal/meta-llama/Llama-3.1-8B-Instruct",
    ]
    assert routing["context_window_fallbacks"] == {"llama": ["anthropic/claude-sonnet-4-0"]}
    assert config["auth"] == {"keys": [{"key": "${LITELLM_MASTER_KEY}", "name": "master"}]}
    loaded = load_config(config, env=check_environment(config))
    assert set(loaded.providers) == {"openai", "compatible", "anthropic", "vllm-internal"}


def test_what_has_no_counterpart_is_reported_by_its_litellm_key_path() -> None:
    unmapped = dict(import_litellm(load("proxy.yaml")).unmapped)
    assert "'azure'" in unmapped["model_list[4].litellm_params.model"]
    assert "'gemini'" in unmapped["model_list[5].litellm_params.model"]
    assert "per client key" in unmapped["model_list[0].litellm_params.rpm"]
    assert "router_settings.fallbacks is used instead" in unmapped["litellm_settings.fallbacks"]
    for path in (
        "litellm_settings.drop_params",
        "litellm_settings.success_callback",
        "router_settings.redis_host",
        "general_settings.database_url",
        "environment_variables",
    ):
        assert path in unmapped


def test_bare_model_names_are_inferred_as_litellm_does_and_literal_keys_are_flagged() -> None:
    report = import_litellm(load("minimal.yaml"))
    providers = report.config["providers"]
    assert providers["openai"]["models"] == {"gpt-3.5-turbo": {}}
    assert providers["openai"]["api_key"] == "sk-literal-key-1234"
    assert providers["anthropic"]["api_key"] == "${ANTHROPIC_API_KEY}"  # LiteLLM's default
    assert "command-r" in dict(report.unmapped)["model_list[2].litellm_params.model"]
    assert any("model_list[0].litellm_params.api_key is a literal" in w for w in report.warnings)
    assert any("master_key is a literal" in w for w in report.warnings)
    assert report.config["routing"]["policy"] == "weighted"


def test_an_imported_config_serves_through_the_upstream_it_names(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        litellm_config = {
            "model_list": [
                {
                    "model_name": "main",
                    "litellm_params": {
                        "model": "openai/healthy",
                        "api_base": up.openai_base_url,
                        "api_key": "os.environ/TEST_UPSTREAM_KEY",
                    },
                },
                {
                    "model_name": "main",
                    "litellm_params": {
                        "model": "anthropic/healthy",
                        "api_base": up.anthropic_base_url,
                        "api_key": "os.environ/TEST_UPSTREAM_KEY",
                    },
                },
            ],
            "router_settings": {"routing_strategy": "simple-shuffle", "num_retries": 1},
        }
        source = tmp_path / "litellm.yaml"
        source.write_text(yaml.safe_dump(litellm_config), encoding="utf-8")
        out = tmp_path / "runestone.yaml"
        assert main(["import-litellm", str(source), "--output", str(out)]) == 0
        text = out.read_text(encoding="utf-8")
        assert text.startswith("# Imported from the LiteLLM config")
        config = load_config(out, env={"TEST_UPSTREAM_KEY": "sk-test-0000"})
        assert config.routing.policy == "weighted"
        system = runestone.start(config)
        try:
            for _ in range(4):
                assert system.complete({"model": "main", "messages": USER}).text == KNOWN_TEXT
        finally:
            system.stop()


def test_the_command_prints_the_config_and_the_report_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["import-litellm", str(DATA / "proxy.yaml")]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["routing"]["policy"] == "latency"
    assert "  mapped:\n    model_list[0] -> providers.openai.models.gpt-4o" in captured.err
    assert "  not mapped:" in captured.err


def test_the_command_refuses_what_it_cannot_import_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import-litellm", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list: [\n", encoding="utf-8")
    assert main(["import-litellm", str(broken)]) == 1
    assert "is not valid YAML" in capsys.readouterr().err
    nothing = tmp_path / "nothing.yaml"
    nothing.write_text(
        yaml.safe_dump(
            {"model_list": [{"model_name": "x", "litellm_params": {"model": "bedrock/x"}}]}
        ),
        encoding="utf-8",
    )
    assert main(["import-litellm", str(nothing)]) == 1
    err = capsys.readouterr().err
    assert "no deployment could be mapped" in err
    assert (
        "model_list[0].litellm_params.model: no Runestone provider type for LiteLLM's 'bedrock'"
        in err
    )
    no_list = tmp_path / "no-list.yaml"
    no_list.write_text("router_settings: {}\n", encoding="utf-8")
    assert main(["import-litellm", str(no_list)]) == 1
    assert "model_list: expected a list of deployments" in capsys.readouterr().err


def test_the_command_does_not_overwrite_a_file_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine.yaml"
    out.write_text("mine: true\n", encoding="utf-8")
    source = str(DATA / "minimal.yaml")
    assert main(["import-litellm", source, "-o", str(out)]) == 1
    assert f"{out} exists; pass --force" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "mine: true\n"
    assert main(["import-litellm", source, "-o", str(out), "--force"]) == 0
    assert "gpt-3.5-turbo" in out.read_text(encoding="utf-8")


# Each documented shape, and what it must become (policy, providers, one key fact).
SHAPES = {
    "proxy.yaml": ("latency", {"openai", "compatible", "anthropic", "vllm-internal"}),
    "minimal.yaml": ("weighted", {"openai", "anthropic"}),
    "shuffle.yaml": ("weighted", {"openai", "openai-2"}),
    "usage.yaml": ("least_loaded", {"anthropic"}),
    "local.yaml": ("least_loaded", {"localhost", "compatible", "openai"}),
    "cost.yaml": ("cost", {"openai", "anthropic"}),
}


@pytest.mark.parametrize(("name", "expected"), SHAPES.items(), ids=list(SHAPES))
def test_every_documented_litellm_shape_imports_to_a_config_that_loads(
    name: str, expected: tuple[str, set[str]]
) -> None:
    report = import_litellm(load(name))
    policy, providers = expected
    assert report.config["routing"]["policy"] == policy
    loaded = load_config(report.config, env=check_environment(report.config))
    assert set(loaded.providers) == providers
    if "routing_strategy" in (load(name).get("router_settings") or {}):
        assert [p for p, _ in report.mapped if p.endswith("routing_strategy")]


def test_weights_and_retries_of_a_load_balanced_model_come_along() -> None:
    config = import_litellm(load("shuffle.yaml")).config
    assert config["routing"]["aliases"]["gpt-4o-mini"] == [
        "openai/gpt-4o-mini",
        "openai-2/gpt-4o-mini",
    ]
    assert config["routing"]["weights"] == {"openai/gpt-4o-mini": 3, "openai-2/gpt-4o-mini": 1}
    assert config["providers"]["openai-2"]["base_url"] == "https://eu.api.example.com/v1"
    assert config["providers"]["openai"]["retry"] == {"max_attempts": 4}


def test_litellm_settings_give_every_provider_its_retries_timeout_and_breaker() -> None:
    report = import_litellm(load("usage.yaml"))
    anthropic = report.config["providers"]["anthropic"]
    assert anthropic["timeouts"] == {"total": 45}
    assert anthropic["circuit_breaker"] == {"consecutive_failures": 2, "recovery": 10}
    notes = dict(report.mapped)
    assert "in flight" in notes["router_settings.routing_strategy"]


def test_local_servers_keep_their_urls_and_fallbacks() -> None:
    config = import_litellm(load("local.yaml")).config
    assert config["providers"]["localhost"]["type"] == "openai_compatible"
    assert config["providers"]["compatible"]["base_url"] == "${VLLM_BASE}"
    assert config["providers"]["compatible"]["timeouts"] == {"total": 120}
    assert config["routing"]["fallbacks"]["local-llama"][-1] == "openai/gpt-4o"
    assert config["routing"]["context_window_fallbacks"] == {"local-llama": ["openai/gpt-4o"]}


def test_prices_per_token_become_prices_per_million_and_a_literal_key_is_flagged() -> None:
    report = import_litellm(load("cost.yaml"))
    models = report.config["providers"]["openai"]["models"]
    assert models["gpt-4o-mini"]["input_per_1m"] == pytest.approx(0.15)
    assert models["gpt-4o-mini"]["output_per_1m"] == pytest.approx(0.6)
    assert report.config["auth"]["keys"] == [{"key": "sk-1234", "name": "master"}]
    assert any("master_key is a literal key" in w for w in report.warnings)
