"""Client libraries (LangChain, pydantic-ai, openai-agents, instructor, LiteLLM) against a real
``runestone serve``, in two setups, a test taking the ``gateway`` fixture runs in both:

``bundled`` (fixture ``bundled``)
    the bundled config as shipped, no keys: the ``simulated`` provider answers, the same way
    every time (its text is ``DEFAULT_TEXT``; a string argument named ``location`` or ``city``
    is ``"London"``; after a tool result it answers "The <tool> tool returned: <result>").
``fake-upstream`` (fixture ``fake``)
    providers of type ``openai`` and ``anthropic`` pointed at a :class:`FakeUpstream`, so a
    request crosses HTTP twice: client → gateway → upstream. Its text is ``KNOWN_TEXT``; its
    ``tool-call`` model calls the request's first tool with ``{"location": "Paris"}`` every
    time (so an agent loop on it never ends by itself), and it ignores ``response_format``.

Nothing here may talk to anything but a loopback address: every test runs with outbound
connections and name lookups refused (:func:`loopback_only`) and with dummy API keys in the
environment, for the libraries that insist on one.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from runestone.config import BUNDLED_CONFIG
from runestone.providers.simulated import DEFAULT_TEXT
from runestone.testing.upstream import KNOWN_TEXT, Attempt, FakeUpstream
from tests.server.serving import RunningServer

# LiteLLM fetches its model cost map from the internet at import unless told not to; this
# conftest is imported before any test module imports litellm.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

DUMMY_KEY = "sk-dummy-not-a-real-key"
TIMEOUT = 10.0
"""Seconds a client waits for the gateway (each library's own request timeout)."""
QUESTION = "Use get_weather for the weather, please."
"""Names the tool as a word: the simulated provider calls it (``tool_choice`` auto)."""

# Slashes in a model name confuse some libraries (LiteLLM's "openai/<model>"), so the
# fake-upstream models are reached through aliases.
_FAKE_ALIASES = {
    "text": ["oai/healthy"],
    "tools": ["oai/tool-call"],
    "claude-text": ["ant/healthy"],
    "claude-tools": ["ant/tool-call"],
}


# What would switch the bundled config's real providers on, or send them elsewhere.
_PROVIDER_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")


class Location(pydantic.BaseModel):
    """What both setups can fill: a tool call on the fake upstream is ``{"location": "Paris"}``."""

    location: str


def weather_report(location: str) -> str:
    """The canned result every test's ``get_weather`` tool returns."""
    return f"18 C and clear in {location}"


@dataclass(frozen=True)
class Gateway:
    """One running setup and what it is known to answer."""

    setup: str
    server: RunningServer
    text_model: str
    """Answers in text: ``text``, whole or streamed."""
    tool_model: str
    """Calls a tool when the question names it (bundled) or always (fake-upstream)."""
    claude_text_model: str
    """For Anthropic clients: answered by an ``anthropic`` provider on the fake upstream."""
    claude_tool_model: str
    text: str
    location: str
    """The value a tool's ``location`` argument gets."""
    upstream: FakeUpstream | None

    @property
    def url(self) -> str:
        """The Anthropic SDK's ``base_url``."""
        return self.server.url

    @property
    def base_url(self) -> str:
        """The OpenAI SDK's ``base_url``."""
        return self.server.base_url

    def tool_result_answer(self, tool: str = "get_weather") -> str:
        """The simulated provider's answer after the tool's result."""
        return f"The {tool} tool returned: {weather_report(self.location)}"

    def attempts_since(self, mark: int) -> list[Attempt]:
        """The requests the fake upstream got after ``mark`` (a ``len(upstream.attempts)``)."""
        assert self.upstream is not None
        return self.upstream.attempts[mark:]

    def mark(self) -> int:
        return len(self.upstream.attempts) if self.upstream is not None else 0


@pytest.fixture(scope="package")
def bundled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The bundled config as shipped (its ${VAR}s unexpanded), on a fresh machine: no keys."""
    config = yaml.safe_load(BUNDLED_CONFIG.read_text(encoding="utf-8"))
    with pytest.MonkeyPatch.context() as env:
        for name in _PROVIDER_ENV:
            env.delenv(name, raising=False)
        env.setenv("RUNESTONE_PORT", "0")
        env.setenv("RUNESTONE_SIM_TOKEN_RATE", "0")
        env.setenv("RUNESTONE_LOG_LEVEL", "WARNING")
        directory: Path = tmp_path_factory.mktemp("clients-bundled")
        with RunningServer(config, directory, name="bundled") as running:
            yield running


@pytest.fixture(scope="package")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def fake_upstream_config(up: FakeUpstream) -> dict[str, Any]:
    def provider(kind: str, base_url: str) -> dict[str, Any]:
        return {
            "type": kind,
            "api_key": f"sk-test-upstream-{kind}",
            "base_url": base_url,
            "timeouts": {"connect": 2, "first_token": 5, "idle": 5, "total": 10},
            "retry": {"max_attempts": 1},
            "models": {
                "healthy": {"capabilities": ["json"]} if kind == "openai" else {},
                "tool-call": {"capabilities": ["tools", "json"] if kind == "openai" else ["tools"]},
            },
        }

    return {
        "providers": {
            # Responses clients here check the translation onto chat completions; the
            # pass-through is tested in tests/server/test_responses_passthrough.py.
            "oai": {**provider("openai", up.openai_base_url), "responses": False},
            "ant": provider("anthropic", up.anthropic_base_url),
        },
        "routing": {"policy": "priority", "aliases": _FAKE_ALIASES},
        "server": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "WARNING"},
    }


@pytest.fixture(scope="package")
def fake_upstream_server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("clients-fake-upstream")
    with RunningServer(fake_upstream_config(upstream), directory, name="fake") as running:
        yield running


@pytest.fixture(scope="package")
def bundled(bundled_server: RunningServer) -> Gateway:
    """The bundled setup (see the module docstring)."""
    return Gateway(
        setup="bundled",
        server=bundled_server,
        text_model="fast",
        tool_model="fast",
        claude_text_model="fast",
        claude_tool_model="fast",
        text=DEFAULT_TEXT,
        location="London",
        upstream=None,
    )


@pytest.fixture(scope="package")
def fake(upstream: FakeUpstream, fake_upstream_server: RunningServer) -> Gateway:
    """The fake-upstream setup (see the module docstring)."""
    return Gateway(
        setup="fake-upstream",
        server=fake_upstream_server,
        text_model="text",
        tool_model="tools",
        claude_text_model="claude-text",
        claude_tool_model="claude-tools",
        text=KNOWN_TEXT,
        location="Paris",
        upstream=upstream,
    )


@pytest.fixture(scope="package", params=["bundled", "fake"], ids=["bundled", "fake-upstream"])
def gateway(request: pytest.FixtureRequest) -> Gateway:
    """Each setup in turn: a test taking it must pass on both."""
    setup: Gateway = request.getfixturevalue(request.param)
    return setup


def _is_loopback(host: object) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection and name lookup that is not for a loopback address.

    A client library that phones home (telemetry, a model price list, a tokenizer download)
    fails the test loudly instead of reaching, or hanging on, the internet.
    """
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise OSError(f"tests/clients: a connection to {address!r} is not loopback")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not _is_loopback(name):
            raise socket.gaierror(f"tests/clients: a name lookup of {name!r} is not loopback")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture(autouse=True)
def dummy_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy keys for libraries that insist on one; no base URL that could lead elsewhere."""
    monkeypatch.setenv("OPENAI_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", DUMMY_KEY)
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
