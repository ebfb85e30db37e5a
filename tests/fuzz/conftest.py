"""One real ``runestone serve`` for the fuzz suite, in front of the fake upstream and the
simulated provider, and the checks every fuzzed answer must pass.

Every provider type is reachable, so fuzzed requests go through each provider's own
request encoder (where a bug of ours would hide): ``main`` (OpenAI), ``backup``
(Anthropic) and ``sim`` (simulated), each model with every capability so routing lets
odd requests through. Auth is on, with admin keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from runestone.testing.upstream import FakeUpstream
from tests.server.serving import RunningServer

CLIENT_KEY: Final = "sk-fuzz-client-key-0001"
ADMIN_KEY: Final = "sk-fuzz-admin-key-0002"
UPSTREAM_KEYS: Final = ("sk-fuzz-upstream-openai-03", "sk-ant-fuzz-upstream-04")
SECRETS: Final = (CLIENT_KEY, ADMIN_KEY, *UPSTREAM_KEYS)
MAX_BODY: Final = 16_384
EVERYTHING: Final = {"capabilities": ["tools", "vision", "json", "prefill", "completions"]}

_LOG_PROBLEMS: Final = re.compile(r"Traceback|internal_error|unhandled_error")


def fuzz_config(up: FakeUpstream) -> dict[str, Any]:
    common = {
        "timeouts": {"connect": 2, "first_token": 5, "idle": 5, "total": 10},
        "retry": {"max_attempts": 1},
        # Fuzzed requests fail upstream on purpose: no breaker may open on them.
        "circuit_breaker": {"consecutive_failures": 100000, "min_calls": 100000},
    }
    return {
        "providers": {
            "main": {
                "type": "openai",
                "api_key": UPSTREAM_KEYS[0],
                "base_url": up.openai_base_url,
                "models": {"healthy": EVERYTHING},
                **common,
            },
            "backup": {
                "type": "anthropic",
                "api_key": UPSTREAM_KEYS[1],
                "base_url": up.anthropic_base_url,
                "models": {"healthy": EVERYTHING},
                **common,
            },
            "sim": {"type": "simulated", "token_rate": 0, "models": {"m": EVERYTHING}},
        },
        "routing": {"policy": "priority", "resume": {"prefill": False, "replay": False}},
        "server": {"host": "127.0.0.1", "port": 0, "max_body_bytes": MAX_BODY},
        "auth": {
            "keys": [{"key": CLIENT_KEY, "name": "fuzz"}],
            "admin_keys": [{"key": ADMIN_KEY, "name": "ops"}],
        },
        "logging": {"level": "INFO"},
    }


@pytest.fixture(scope="package")
def fuzz_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="package")
def fuzz_server(
    fuzz_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    with RunningServer(fuzz_config(fuzz_upstream), directory, name="fuzz") as running:
        yield running


def check_log(server: RunningServer) -> None:
    """No traceback, no internal error and no key in anything the server logged."""
    text = server.full_log()
    problems = [line for line in text.splitlines() if _LOG_PROBLEMS.search(line)]
    assert not problems, "\n".join(problems[:20])
    for secret in SECRETS:
        assert secret not in text


def check_error_body(path: str, status: int, body: bytes) -> dict[str, Any]:
    """An error answer in the dialect's shape for ``path``: what it says."""
    payload = json.loads(body)
    assert isinstance(payload, dict), body
    if path.startswith("/v1/messages"):
        assert set(payload) == {"type", "error"}, payload
        assert payload["type"] == "error"
        error = payload["error"]
        assert set(error) == {"type", "message"}, payload
    else:
        assert set(payload) == {"error"}, payload
        error = payload["error"]
        assert set(error) == {"message", "type", "param", "code"}, payload
    assert isinstance(error["message"], str)
    assert error["message"], payload
    assert isinstance(error["type"], str)
    return dict(error)


def check_clean(body: bytes) -> None:
    """No traceback and no key of ours in a response body."""
    assert b"Traceback" not in body
    for secret in SECRETS:
        assert secret.encode() not in body
