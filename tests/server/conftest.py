"""One real ``runestone serve`` for the package, in front of the fake upstream and a holding one.

Keys: ``OPEN_KEY`` has no limits, ``TIGHT_KEY`` 3 requests a minute, ``NARROW_KEY``
one request in flight, ``TOKENS_KEY`` one token a minute (its first answer uses it
up). Providers (each failure mode on a provider of its own, so a breaker or a
cooling period never leaks into another test):

=========  =========  ==========================================================
provider   type       models
=========  =========  ==========================================================
main       openai     healthy, tool-call, cut-after:3, error-event-after:2,
                      context-length, content-policy, unavailable, structured
                      (healthy, with the json capability)
backup     anthropic  healthy, tool-call
limited    openai     rate-limit, rate-limit-once:45
slow       openai     blackhole (timeouts of half a second)
hold       openai     hold (the HoldingUpstream: answers start, then hang)
sim        simulated  sim-text (unpaced; honours max_tokens with finish reason length)
=========  =========  ==========================================================

Aliases: ``fast`` → main/healthy; ``failover`` → main/unavailable, then backup/healthy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runestone.testing.upstream import FakeUpstream
from tests.server.serving import HoldingUpstream, RunningServer

OPEN_KEY = "sk-rs-open-key-0001"
TIGHT_KEY = "sk-rs-tight-key-0002"
NARROW_KEY = "sk-rs-narrow-key-0003"
TOKENS_KEY = "sk-rs-tokens-key-0004"
MAX_BODY = 65_536

RETRY = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05}
TIMEOUTS = {"connect": 2, "first_token": 5, "idle": 5, "total": 20}
# Failures are what these tests cause on purpose: the breaker must not open on them.
LENIENT = {"consecutive_failures": 1000, "min_calls": 1000, "failure_rate": 1.0}


def provider(kind: str, base_url: str, models: dict[str, Any], **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": kind,
        "api_key": f"sk-test-upstream-{kind}",
        "base_url": base_url,
        "timeouts": TIMEOUTS,
        "retry": RETRY,
        "circuit_breaker": LENIENT,
        "models": models,
    }
    block.update(extra)
    return block


def gateway_config(up: FakeUpstream, hold: HoldingUpstream) -> dict[str, Any]:
    main_models = [
        "healthy",
        "cut-after:3",
        "error-event-after:2",
        "context-length",
        "content-policy",
        "unavailable",
    ]
    models: dict[str, Any] = {name: {} for name in main_models}
    models["tool-call"] = {"capabilities": ["tools"]}
    models["structured"] = {"capabilities": ["json"]}
    return {
        "providers": {
            # Translated Responses requests: /v1/responses passed through is tested in
            # test_responses_passthrough.py.
            "main": provider("openai", up.openai_base_url, models, responses=False),
            "backup": provider(
                "anthropic",
                up.anthropic_base_url,
                {"healthy": {}, "tool-call": {"capabilities": ["tools"]}},
            ),
            "limited": provider(
                "openai",
                up.openai_base_url,
                {"rate-limit": {}, "rate-limit-once:45": {}},
                circuit_breaker={**LENIENT, "rate_limit_cooldown": 0.01},
            ),
            "slow": provider(
                "openai",
                up.openai_base_url,
                {"blackhole": {}},
                timeouts={"connect": 1, "first_token": 0.5, "idle": 0.5, "total": 1},
            ),
            "hold": provider(
                "openai",
                hold.base_url,
                {"hold": {}},
                timeouts={"connect": 2, "first_token": 30, "idle": 30, "total": 60},
            ),
            "sim": {
                "type": "simulated",
                "token_rate": 0,
                "first_token_delay": 0,
                "circuit_breaker": LENIENT,
                "models": {"sim-text": {"capabilities": ["tools", "json"]}},
            },
        },
        "routing": {
            "policy": "priority",
            "aliases": {
                "fast": ["main/healthy"],
                "failover": ["main/unavailable", "backup/healthy"],
            },
            "resume": {"prefill": False, "replay": False},
        },
        "server": {
            "host": "127.0.0.1",
            "port": 0,
            "max_body_bytes": MAX_BODY,
            "shutdown_grace": 5,
        },
        "auth": {
            "keys": [
                {"key": OPEN_KEY, "name": "open"},
                {"key": TIGHT_KEY, "name": "tight", "rpm": 3},
                {"key": NARROW_KEY, "name": "narrow", "max_streams": 1},
                {"key": TOKENS_KEY, "name": "tokens", "tpm": 1},
            ]
        },
        "logging": {"level": "WARNING"},
    }


@pytest.fixture(scope="package")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="package")
def holding_upstream() -> Iterator[HoldingUpstream]:
    hold = HoldingUpstream()
    try:
        yield hold
    finally:
        hold.stop()


@pytest.fixture(scope="package")
def server(
    upstream: FakeUpstream,
    holding_upstream: HoldingUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("gateway")
    with RunningServer(gateway_config(upstream, holding_upstream), directory) as running:
        yield running
