"""``runestone serve`` as a process: what it says, what it refuses, and how it stops."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from runestone.config import load_config
from runestone.exceptions import ConfigError
from runestone.server.app import Gateway
from runestone.server.runner import banner, serve, with_address
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.server.serving import RunningServer

CLIENT_KEY = "sk-rs-client-key-0101"
ADMIN_KEY = "sk-rs-admin-key-0202"

USER = [{"role": "user", "content": "Tell me the known text."}]


def paced_config(up: FakeUpstream, *, grace: float) -> dict[str, Any]:
    return {
        "providers": {
            "main": {
                "type": "openai",
                "api_key": "sk-test-upstream",
                "base_url": up.openai_base_url,
                "models": {"healthy": {}},
            },
            "gone": {"type": "openai", "api_key": "", "models": {"x": {}}},
        },
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": grace},
        "logging": {"level": "WARNING"},
    }


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_lets_the_stream_in_flight_finish_and_refuses_new_connections(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # About 41 tokens at 20 ms: the stream is still running when the signal arrives.
    with (
        FakeUpstream(token_interval=0.02) as up,
        RunningServer(paced_config(up, grace=10), tmp_path) as server,
        openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as sdk,
    ):
        # It said what is live, what was skipped and that it is open (on loopback only).
        server.wait_for_line("auth:")
        said = "\n".join(server.lines)
        assert "live provider main (type openai): healthy" in said
        assert "skipped provider gone: api_key is empty" in said
        assert "auth: OPEN" in said
        assert "127.0.0.1 is a loopback address" in said
        stream = iter(sdk.chat.completions.create(model="healthy", messages=USER, stream=True))
        chunks = [next(stream), next(stream)]
        server.signal(signum)
        server.wait_for_line("stopped accepting connections; 1 request")
        host, port = server.url.removeprefix("http://").split(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5).close()
        chunks += list(stream)
        assert server.wait() == 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == KNOWN_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert f"runestone: {signum.name} received, stopping" in server.lines
    assert server.lines[-1] == "runestone: stopped"


def test_a_stream_still_running_when_the_grace_ends_gets_an_error_not_a_cut(
    tmp_path: Path,
) -> None:
    with (
        FakeUpstream(token_interval=0.2) as up,
        RunningServer(paced_config(up, grace=0), tmp_path) as server,
        openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as sdk,
    ):
        stream = iter(sdk.chat.completions.create(model="healthy", messages=USER, stream=True))
        next(stream)
        server.signal(signal.SIGTERM)
        with pytest.raises(openai.APIError) as caught:
            list(stream)
        assert server.wait() == 0
    assert "shut down before the answer was complete" in caught.value.message


def test_serving_open_on_a_public_address_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = with_address(
        load_config({"providers": {"sim": {"type": "simulated", "models": {"m": {}}}}}),
        host="0.0.0.0",
    )
    assert serve(config) == 2
    error = capsys.readouterr().err
    assert "refusing to serve '0.0.0.0' with no auth.keys" in error
    assert "add auth.keys" in error


def test_a_port_in_use_is_one_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = with_address(
            load_config({"providers": {"sim": {"type": "simulated", "models": {"m": {}}}}}),
            port=port,
        )
        assert serve(config) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_port_out_of_range_is_refused() -> None:
    config = load_config({"providers": {"sim": {"type": "simulated", "models": {"m": {}}}}})
    with pytest.raises(ConfigError, match="--port: expected a port from 0 to 65535"):
        with_address(config, port=70000)


def test_the_banner_names_the_keys_when_there_are_some() -> None:
    config = load_config(
        {
            "providers": {"sim": {"type": "simulated", "models": {"m": {}}}},
            "auth": {"keys": [{"key": "sk-secret-value-1", "name": "team-a"}]},
        }
    )
    text = banner(Gateway(config), "http://127.0.0.1:1")
    assert "auth: 1 key(s): team-a" in text
    assert "sk-secret-value-1" not in text


def test_a_system_that_goes_down_for_good_tells_the_stream_in_flight_and_exits_non_zero() -> None:
    from runestone.server.runner import EXIT_SYSTEM_DOWN

    said: list[str] = []
    gateways: list[Gateway] = []
    started = threading.Event()

    def on_started(gateway: Gateway) -> None:
        gateways.append(gateway)
        started.set()

    with FakeUpstream(token_interval=0.05) as up:
        cfg = paced_config(up, grace=5)
        cfg["supervision"] = {"max_restarts": 1, "max_seconds": 30}
        config = load_config(cfg)
        status: list[int] = []
        runner = threading.Thread(
            target=lambda: status.append(serve(config, say=said.append, on_started=on_started))
        )
        runner.start()
        try:
            assert started.wait(15)
            url = next(line for line in said if "serving on" in line).split(" on ")[1].split()[0]
            with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as sdk:
                stream = iter(
                    sdk.chat.completions.create(model="healthy", messages=USER, stream=True)
                )
                next(stream)
                system = gateways[0].system
                for _ in range(2):  # one restart more than the root allows
                    router = system.router
                    router.ref(timeout=5)
                    incarnation = router.incarnation
                    assert incarnation is not None
                    router.tell("no such message")
                    assert incarnation.exited.wait(5)
                with pytest.raises(openai.APIError, match=r"supervisors gave up"):
                    for _ in stream:
                        pass
        finally:
            runner.join(30)
        assert not runner.is_alive()
        assert status == [EXIT_SYSTEM_DOWN]
        assert any("root supervisor gave up" in line for line in said)


# --------------------------------------------------------------------------- the admin port


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    config = {
        "providers": {"sim": {"type": "simulated", "token_rate": 0, "models": {"m": {}}}},
        "server": {"host": "127.0.0.1", "port": 0, "admin_port": 0},
        "auth": {
            "keys": [{"key": CLIENT_KEY, "name": "team-a"}],
            "admin_keys": [{"key": ADMIN_KEY, "name": "ops"}],
        },
        "logging": {"level": "WARNING"},
    }
    with RunningServer(config, tmp_path_factory.mktemp("admin")) as running:
        yield running


def _admin_url(server: RunningServer) -> str:
    line = server.wait_for_line(r"admin routes \(/health, /metrics, /admin/reload\) on http://")
    match = re.search(r"on (http://\S+) only", line)
    assert match is not None, line
    return match.group(1)


def _get(url: str, path: str, key: str | None) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        connection.request("GET", path, headers={"x-api-key": key} if key else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_admin_routes_are_served_on_the_admin_port_only(admin_server: RunningServer) -> None:
    admin = _admin_url(admin_server)
    assert admin != admin_server.url
    status, body = _get(admin, "/health", ADMIN_KEY)
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    status, body = _get(admin, "/metrics", ADMIN_KEY)
    assert (status, body.startswith(b"# HELP")) == (200, True)
    # The main port does not serve them, whatever the key.
    for path in ("/health", "/metrics"):
        status, body = _get(admin_server.url, path, ADMIN_KEY)
        assert status == 404
        assert json.loads(body)["error"]["code"] == "unknown_route"


def test_the_admin_port_serves_no_client_route(admin_server: RunningServer) -> None:
    admin = _admin_url(admin_server)
    status, body = _get(admin, "/v1/models", CLIENT_KEY)
    assert status == 404
    assert json.loads(body)["error"]["code"] == "unknown_route"
    status, _ = _get(admin_server.url, "/v1/models", CLIENT_KEY)
    assert status == 200


def test_the_admin_routes_take_an_admin_key_not_a_client_key(admin_server: RunningServer) -> None:
    admin = _admin_url(admin_server)
    status, body = _get(admin, "/health", CLIENT_KEY)
    assert status == 403
    assert json.loads(body)["error"]["code"] == "admin_key_required"
    status, body = _get(admin, "/health", None)
    assert status == 401
    assert b"providers" not in body
    # An admin key is no client key.
    status, _ = _get(admin_server.url, "/v1/models", ADMIN_KEY)
    assert status == 401


def test_the_probes_answer_on_both_ports_without_a_key(admin_server: RunningServer) -> None:
    admin = _admin_url(admin_server)
    for url in (admin, admin_server.url):
        for path in ("/health/live", "/health/ready"):
            status, _ = _get(url, path, None)
            assert status == 200, (url, path)


def test_no_admin_key_reaches_the_banner_or_the_log(admin_server: RunningServer) -> None:
    _get(_admin_url(admin_server), "/health", "sk-rs-admin-key-guess")
    admin_server.wait_for_line("admin keys")  # the banner's last line may still be on its way
    said = "\n".join(admin_server.lines) + admin_server.log()
    assert "admin keys (/health, /metrics): ops" in said
    assert ADMIN_KEY not in said
    assert "sk-rs-admin-key-guess" not in said


def test_an_admin_port_in_use_is_one_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = load_config(
            {
                "providers": {"sim": {"type": "simulated", "models": {"m": {}}}},
                "server": {"port": 0, "admin_port": port},
            }
        )
        assert serve(config) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
