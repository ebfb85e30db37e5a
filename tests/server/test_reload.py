"""A running ``runestone serve`` takes a new config without dropping anything: on
``POST /admin/reload`` (admin key only), on SIGHUP and, with ``--watch``, on a change of the
file. A bad new config is refused with its one error and the running one keeps serving."""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import re
import signal
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

from runestone.config import load_config
from runestone.server.app import Gateway
from runestone.server.reload import ReloadFailedError
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.server.serving import RunningServer

CLIENT_KEY = "sk-rs-client-key-0303"
ADMIN_KEY = "sk-rs-admin-key-0404"
USER = [{"role": "user", "content": "Tell me the known text."}]

pytestmark = pytest.mark.timeout(90)


def config(up: FakeUpstream, *, models: tuple[str, ...] = ("healthy",), **extra: Any) -> dict:
    out: dict[str, Any] = {
        "providers": {
            "main": {
                "type": "openai",
                "api_key": "sk-test-upstream",
                "base_url": up.openai_base_url,
                "models": {name: {} for name in models},
            },
        },
        "routing": {"aliases": {"fast": ["main/healthy"]}},
        "server": {"host": "127.0.0.1", "port": 0},
        "auth": {
            "keys": [{"key": CLIENT_KEY, "name": "team-a"}],
            "admin_keys": [{"key": ADMIN_KEY, "name": "ops"}],
        },
        "logging": {"level": "WARNING"},
    }
    out.update(extra)
    return out


def with_backup(base: dict, up: FakeUpstream) -> dict:
    new = copy.deepcopy(base)
    new["providers"]["backup"] = {
        "type": "anthropic",
        "api_key": "sk-test-upstream-b",
        "base_url": up.anthropic_base_url,
        "models": {"healthy": {}},
    }
    new["routing"]["aliases"]["spare"] = ["backup/healthy"]
    return new


def call(server: RunningServer, method: str, path: str, key: str | None) -> tuple[int, dict]:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def revision(server: RunningServer) -> int:
    status, body = call(server, "GET", "/health", ADMIN_KEY)
    assert status == 200, body
    return int(body["config"]["revision"])


def answer(server: RunningServer, model: str) -> str:
    with openai.OpenAI(base_url=server.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
        reply = sdk.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
    return reply.choices[0].message.content or ""


def test_post_admin_reload_starts_an_added_provider_and_health_shows_the_revision(
    tmp_path: Path,
) -> None:
    with FakeUpstream() as up:
        base = config(up)
        with RunningServer(base, tmp_path) as server:
            status, body = call(server, "GET", "/health", ADMIN_KEY)
            assert body["config"]["revision"] == 1
            assert body["config"]["source"] == str(server.config_path)
            server.rewrite(with_backup(base, up))
            status, body = call(server, "POST", "/admin/reload", ADMIN_KEY)
            assert status == 200, body
            assert body["status"] == "reloaded"
            assert body["revision"] == 2
            assert body["providers"]["added"] == ["backup"]
            assert body["providers"]["unchanged"] == ["main"]
            assert body["restart_needed"] == []
            assert revision(server) == 2
            assert answer(server, "spare") == KNOWN_TEXT
            assert answer(server, "fast") == KNOWN_TEXT


def test_a_bad_new_config_is_refused_by_name_and_the_running_one_keeps_serving(
    tmp_path: Path,
) -> None:
    with FakeUpstream() as up:
        base = config(up)
        with RunningServer(base, tmp_path) as server:
            broken = copy.deepcopy(base)
            broken["pool"] = {"max_in_flight": "lots"}
            server.rewrite(broken)
            status, body = call(server, "POST", "/admin/reload", ADMIN_KEY)
            assert status == 400
            assert body["error"]["code"] == "invalid_config"
            message = body["error"]["message"]
            assert "revision 1 keeps serving" in message
            assert "pool.max_in_flight: expected an integer >= 1, got 'lots'" in message
            assert revision(server) == 1
            assert answer(server, "fast") == KNOWN_TEXT


def test_reload_takes_an_admin_key_and_a_configured_one(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        with RunningServer(config(up), tmp_path / "keys") as server:
            status, body = call(server, "POST", "/admin/reload", CLIENT_KEY)
            assert (status, body["error"]["code"]) == (403, "admin_key_required")
            status, body = call(server, "POST", "/admin/reload", None)
            assert status == 401
            assert revision(server) == 1
        open_config = config(up)
        del open_config["auth"]
        with RunningServer(open_config, tmp_path / "open") as server:
            status, body = call(server, "POST", "/admin/reload", None)
            assert (status, body["error"]["code"]) == (403, "admin_keys_required")
            assert "auth.admin_keys" in body["error"]["message"]


def test_sighup_reloads_the_file_and_says_what_changed(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        base = config(up)
        with RunningServer(base, tmp_path) as server:
            server.rewrite(with_backup(base, up))
            server.signal(signal.SIGHUP)
            line = server.wait_for_line("SIGHUP: config revision 2 applied", timeout=30)
            assert "added: backup" in line
            assert answer(server, "spare") == KNOWN_TEXT
            # A bad one is refused out loud; the process keeps serving revision 2.
            server.rewrite({"providers": {}})
            server.signal(signal.SIGHUP)
            line = server.wait_for_line("SIGHUP: the new config was refused", timeout=30)
            assert "revision 2 keeps serving" in line
            assert answer(server, "spare") == KNOWN_TEXT
            assert server.process.poll() is None


def test_with_watch_a_change_of_the_file_is_applied(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        base = config(up)
        with RunningServer(base, tmp_path, args=("--watch",)) as server:
            server.rewrite(with_backup(base, up))
            line = server.wait_for_line(r"runestone\.yaml changed: config revision 2", timeout=30)
            assert "added: backup" in line
            assert revision(server) == 2


def test_a_section_that_needs_a_restart_is_named_and_left_as_it_runs(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        base = config(up)
        with RunningServer(base, tmp_path) as server:
            moved = copy.deepcopy(base)
            moved["server"]["port"] = 1  # would never bind: it must not be applied live
            moved["logging"] = {"level": "DEBUG"}
            server.rewrite(moved)
            status, body = call(server, "POST", "/admin/reload", ADMIN_KEY)
            assert status == 200, body
            assert body["restart_needed"] == ["server", "logging"]
            assert answer(server, "fast") == KNOWN_TEXT  # still on the port it started on


def test_a_stream_in_flight_finishes_whole_across_a_reload_that_replaces_its_provider(
    tmp_path: Path,
) -> None:
    # About 41 tokens at 20 ms: the stream is running when the reload lands.
    with FakeUpstream(token_interval=0.02) as up:
        base = config(up)
        with RunningServer(base, tmp_path) as server:
            first = threading.Event()
            text: list[str] = []
            outcome: list[BaseException | None] = []

            def stream() -> None:
                try:
                    with openai.OpenAI(
                        base_url=server.base_url, api_key=CLIENT_KEY, max_retries=0
                    ) as sdk:
                        chunks = sdk.chat.completions.create(
                            model="fast",
                            messages=USER,  # type: ignore[arg-type]
                            stream=True,
                        )
                        for chunk in chunks:
                            if chunk.choices and chunk.choices[0].delta.content:
                                text.append(chunk.choices[0].delta.content)
                                first.set()
                    outcome.append(None)
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                    outcome.append(exc)
                    first.set()

            reader = threading.Thread(target=stream)
            reader.start()
            try:
                assert first.wait(30)
                changed = copy.deepcopy(base)
                changed["providers"]["main"]["timeouts"] = {"total": 30}  # replaced
                server.rewrite(changed)
                status, body = call(server, "POST", "/admin/reload", ADMIN_KEY)
                assert status == 200, body
                assert body["providers"]["replaced"] == ["main"]
            finally:
                reader.join(60)
            assert outcome == [None]
            assert "".join(text) == KNOWN_TEXT
            assert answer(server, "fast") == KNOWN_TEXT  # and the replacement serves


def test_the_health_revision_names_when_it_was_loaded(tmp_path: Path) -> None:
    with FakeUpstream() as up, RunningServer(config(up), tmp_path) as server:
        _, body = call(server, "GET", "/health", ADMIN_KEY)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", body["config"]["loaded_at"])


SIMULATED = {"providers": {"sim": {"type": "simulated", "models": {"m": {}}}}}


def test_a_reload_before_the_system_has_started_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "runestone.yaml"
    path.write_text(json.dumps(SIMULATED), encoding="utf-8")
    gateway = Gateway(load_config(path))
    with pytest.raises(ReloadFailedError, match="the server is starting"):
        asyncio.run(gateway.reloader.reload("test"))
    assert gateway.reloader.revision.number == 1


def test_a_config_that_did_not_come_from_a_file_cannot_be_reloaded() -> None:
    gateway = Gateway(load_config(SIMULATED))
    assert gateway.reloader.revision.source is None
    with pytest.raises(ReloadFailedError, match="did not come from a file"):
        asyncio.run(gateway.reloader.reload("test"))
