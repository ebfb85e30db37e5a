"""The ``runestone`` command line: check-config, health, and serve's refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import yaml

import runestone
from runestone.cli import format_health, main
from runestone.cluster import Member, cluster_section
from runestone.config import BUNDLED_CONFIG, BUNDLED_SCHEMA, SCHEMA_COMMENT, json_schema
from runestone.config.reference import reference
from runestone.testing.upstream import FakeUpstream
from tests.server.serving import RunningServer

SIMULATED = {"providers": {"sim": {"type": "simulated", "models": {"sim-fast": {}}}}}


@pytest.fixture(autouse=True)
def unconfigured_logging() -> Iterator[None]:
    # main() routes warnings to stderr only when nothing configured structlog before it;
    # a test run earlier in the process may have, which would put them on stdout. What
    # was configured is put back afterwards, for the tests that run next.
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


def write(tmp_path: Path, config: object) -> Path:
    path = tmp_path / "runestone.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_check_config_prints_what_the_bundled_config_implies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", str(BUNDLED_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "simulated: live (type simulated)" in out
    assert "aliases:" in out
    assert "routing policy: priority" in out


def test_check_config_with_no_path_checks_the_bundled_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"config: {BUNDLED_CONFIG}"
    assert "simulated: live (type simulated)" in out


def test_init_writes_the_commented_bundled_config_to_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    written = tmp_path / "runestone.yaml"
    first, rest = written.read_text(encoding="utf-8").split("\n", 1)
    bundled_first, bundled_rest = BUNDLED_CONFIG.read_text(encoding="utf-8").split("\n", 1)
    assert rest == bundled_rest
    assert rest.startswith("# Runestone's bundled configuration")
    # The copy names the installed schema, so an editor finds it from anywhere.
    assert bundled_first == SCHEMA_COMMENT
    assert first == f"# yaml-language-server: $schema={BUNDLED_SCHEMA.as_uri()}"
    assert "runestone serve --config runestone.yaml" in capsys.readouterr().out
    assert main(["check-config", str(written)]) == 0


def test_config_schema_prints_the_json_schema_and_reference_prints_the_reference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()
    assert main(["config", "reference"]) == 0
    assert capsys.readouterr().out == reference()


def test_config_dump_prints_the_loaded_config_without_its_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "providers:\n  openai: {type: openai, api_key: sk-secret-1, models: {m: {}}}\n",
        encoding="utf-8",
    )
    assert main(["config", "dump", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sk-secret-1" not in out
    assert yaml.safe_load(out)["providers"]["openai"]["api_key"] == "${OPENAI_API_KEY}"
    assert main(["config", "dump", str(path), "--reveal-secrets"]) == 0
    assert (
        yaml.safe_load(capsys.readouterr().out)["providers"]["openai"]["api_key"] == "sk-secret-1"
    )


def test_config_schema_takes_no_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema", "x.yaml"]) == 2
    assert "config schema takes no path" in capsys.readouterr().err


def test_config_with_an_unknown_subject_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["config", "schemas"])
    assert exited.value.code == 2
    assert "invalid choice: 'schemas'" in capsys.readouterr().err


def test_init_refuses_to_overwrite_a_file_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("mine: true\n", encoding="utf-8")
    assert main(["init", str(path)]) == 1
    assert f"{path} exists; pass --force to overwrite it" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "mine: true\n"  # nothing lost
    assert main(["init", str(path), "--force"]) == 0
    bundled = BUNDLED_CONFIG.read_text(encoding="utf-8")
    assert path.read_text(encoding="utf-8").split("\n", 1)[1] == bundled.split("\n", 1)[1]


@pytest.mark.parametrize("where", ["directory", "missing parent"])
def test_init_names_a_path_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    path = tmp_path if where == "directory" else tmp_path / "no" / "such" / "runestone.yaml"
    assert main(["init", str(path)]) == 1
    err = capsys.readouterr().err
    if where == "directory":
        assert f"runestone: {path} is a directory; name the file to write" in err
    else:
        assert f"runestone: cannot write {path}: No such file or directory" in err
    assert "Traceback" not in err


def test_check_config_names_the_bad_key_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {**SIMULATED, "pool": {"max_in_flight": "lots"}})
    assert main(["check-config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pool.max_in_flight: expected an integer >= 1, got 'lots'" in captured.err
    assert "Traceback" not in captured.err


def test_check_config_on_a_missing_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    assert "config file not found" in capsys.readouterr().err


def test_serve_refuses_an_open_public_bind_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SIMULATED)
    assert main(["serve", "--config", str(path), "--host", "0.0.0.0"]) == 2
    assert "refusing to serve '0.0.0.0' with no auth.keys" in capsys.readouterr().err


def test_serve_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, {"providers": {}})
    assert main(["serve", "--config", str(path)]) == 1
    assert "no usable provider" in capsys.readouterr().err


def test_serve_takes_the_config_as_a_path_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"providers": {}})
    assert main(["serve", str(path)]) == 1
    assert "no usable provider" in capsys.readouterr().err
    other = tmp_path / "other.yaml"
    assert main(["serve", str(path), "--config", str(other)]) == 2
    assert "PATH or --config, not both" in capsys.readouterr().err


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


def test_health_prints_the_tree_and_providers_of_a_running_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeUpstream() as up:
        config = {
            "providers": {
                "main": {
                    "type": "openai",
                    "api_key": "sk-test-upstream",
                    "base_url": up.openai_base_url,
                    "models": {"healthy": {}},
                },
                "gone": {"type": "anthropic", "api_key": "", "models": {"x": {}}},
            },
            "server": {"port": 0},
            "logging": {"level": "WARNING"},
        }
        with RunningServer(config, tmp_path) as server:
            status = main(["health", "--url", server.url])
            out = capsys.readouterr().out
            assert main(["health", "--url", server.url, "--json"]) == 0
            raw = capsys.readouterr().out
    assert status == 0
    assert out.startswith("status: ok")
    assert "main  openai  closed" in out
    assert "gone: api_key is empty" in out
    tree = out.splitlines()[out.splitlines().index("supervision tree:") + 3 :]
    actors = {line.split()[0] for line in tree if line.strip()}
    assert {"root", "provider_factory", "providers", "router", "pool", "admission"} <= actors
    assert '"status": "ok"' in raw


def test_health_of_an_unreachable_server_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot reach http://127.0.0.1:9/health" in capsys.readouterr().err


def test_a_health_report_reads_as_tables() -> None:
    system = runestone.start(SIMULATED, configure_logs=False)
    try:
        report = system.health()
    finally:
        system.stop()
    report["draining"] = True
    text = format_health(report)
    lines = text.splitlines()
    assert lines[0].startswith("status: ok")
    assert "draining: stopping, finishing the requests in flight" in text
    header = next(line for line in lines if line.strip().startswith("name"))
    assert header.split() == [
        "name",
        "type",
        "circuit",
        "success",
        "latency",
        "ttft",
        "in",
        "flight",
        "last",
        "error",
    ]
    assert any(line.split()[:3] == ["sim", "simulated", "closed"] for line in lines)
    tree = lines[lines.index("supervision tree:") + 1 :]
    assert tree[0].split() == ["actor", "kind", "state", "restarts", "last", "exit"]
    assert any(line.startswith("      admission") for line in tree)


def _provider_report(state: str, *, calls: int = 0, failures: int = 0) -> dict[str, object]:
    return {
        "circuit": {"state": state, "window_calls": calls, "window_failures": failures},
        "health": {
            "success_rate": 1.0 if not calls else (calls - failures) / calls,
            "window_calls": calls,
            "window_failures": failures,
            "latency": 0.25,
            "first_token": 0.05,
            "in_flight": 1,
            "last_error": "timeout" if failures else None,
            "circuit": state,
        },
    }


SINGLE_PROCESS_REPORT: dict[str, object] = {
    "status": "ok",
    "uptime": 12.5,
    "draining": False,
    "pool": {"in_flight": 1, "max_in_flight": 100, "admitted": 7, "refused": 0},
    "providers": {"sim": {"type": "simulated", **_provider_report("closed", calls=4)}},
    "skipped": {"gone": "api_key is empty"},
    "tree": {
        "id": "root",
        "kind": "supervisor",
        "state": "running",
        "restarts_in_window": 0,
        "children": [{"id": "router", "kind": "worker", "state": "running", "restarts": 1}],
    },
}


def test_a_single_process_health_report_prints_as_it_always_has() -> None:
    assert format_health(SINGLE_PROCESS_REPORT) == "\n".join(
        [
            "status: ok   uptime: 12.5 s",
            "pool: 1 in flight of 100, 7 admitted, 0 refused",
            "",
            "providers:",
            "  name  type       circuit  success  latency  ttft   in flight  last error",
            "  ----  ---------  -------  -------  -------  -----  ---------  ----------",
            "  sim   simulated  closed   100%     250 ms   50 ms  1          -",
            "",
            "skipped providers:",
            "  gone: api_key is empty",
            "",
            "supervision tree:",
            "  actor     kind        state    restarts  last exit",
            "  --------  ----------  -------  --------  ---------",
            "  root      supervisor  running  0",
            "    router  worker      running  1",
        ]
    )


_HERE = {
    "instance": "a",
    "namespace": "runestone",
    "redis": "up",
    "last_error": None,
    "limits": "shared",
    "circuits": "shared",
}


def _lines_after(text: str, title: str, count: int) -> list[str]:
    lines = text.splitlines()
    start = lines.index(title) + 1
    return lines[start : start + count]


def test_a_cluster_health_report_prints_the_replicas_and_the_merged_providers() -> None:
    failing = _provider_report("open", calls=6, failures=6)
    failing["health"]["last_error_at"] = 5.0  # type: ignore[index]
    members = [
        Member("a", 0.02, {"providers": {"sim": _provider_report("closed", calls=4)}}),
        Member("b", 0.31, {"providers": {"sim": failing}, "uptime": 3.5}),
    ]
    section = cluster_section(_HERE, members, {})
    text = format_health({**SINGLE_PROCESS_REPORT, "cluster": section})
    lines = text.splitlines()
    assert lines[2] == "cluster: instance a   redis up   limits shared   circuits shared"
    assert _lines_after(text, "replicas (2 live):", 4) == [
        "  instance      heartbeat  uptime   closed  half open  open",
        "  ------------  ---------  -------  ------  ---------  ----",
        "  a (this one)  20 ms      -        1       0          0",
        "  b             310 ms     3500 ms  0       0          1",
    ]
    merged = "cluster providers (merged; circuit: the worst any replica reports):"
    assert _lines_after(text, merged, 3) == [
        "  name  circuit  rule   replicas  calls  failures  success  in flight  last error",
        "  ----  -------  -----  --------  -----  --------  -------  ---------  -----------",
        "  sim   open     worst  2         10     6         40%      2          timeout (b)",
    ]
    # This replica's own providers table is still there, as in a single process.
    assert "  sim   simulated  closed   100%     250 ms   50 ms  1          -" in lines


def test_a_cluster_health_report_without_redis_says_the_view_is_local() -> None:
    down = {**_HERE, "redis": "down", "limits": "local", "circuits": "local"}
    down["last_error"] = "ping: ConnectionError: refused"
    local = {"providers": {"sim": _provider_report("closed", calls=4)}, "uptime": 12.5}
    section = cluster_section(down, None, local, error="registry view: Redis is down")
    text = format_health({**SINGLE_PROCESS_REPORT, "cluster": section})
    assert text.splitlines()[2] == (
        "cluster: instance a   redis down   limits local   circuits local   "
        "(ping: ConnectionError: refused)"
    )
    title = "replicas (local view: Redis cannot be read, this replica only):"
    assert _lines_after(text, title, 4)[2:] == [
        "  a (this one)  -          12.5 s  1       0          0",
        "  (registry view: Redis is down)",
    ]
    local_title = "cluster providers (local view: this replica's own figures):"
    assert _lines_after(text, local_title, 3)[2].split()[:4] == ["sim", "closed", "unanimous", "1"]


def test_health_json_of_a_cluster_report_is_the_raw_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = {**SINGLE_PROCESS_REPORT, "cluster": cluster_section(_HERE, [], {})}
    body = json.dumps(report).encode()

    class Answer:
        status = 200

        def read(self) -> bytes:
            return body

        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *_: object) -> None:
            return None

    monkeypatch.setattr("urllib.request.urlopen", lambda *_args, **_kw: Answer())
    assert main(["health", "--url", "http://replica.invalid", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == report


def test_python_dash_m_runestone_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runestone", "check-config", str(BUNDLED_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "simulated: live" in result.stdout


@pytest.mark.parametrize(
    "example",
    sorted((Path(__file__).resolve().parent.parent / "config" / "examples").glob("*.yaml")),
)
def test_the_commands_an_example_config_tells_the_reader_are_valid(example: Path) -> None:
    from runestone.cli import _parser

    commands = [
        line.split("`")[1] if "`" in line else line.lstrip("# ").strip()
        for line in example.read_text(encoding="utf-8").splitlines()
        if line.startswith("#") and "runestone " in line
    ]
    assert commands, f"{example.name} names no command"
    for command in commands:
        argv = command.split()
        assert argv[0] == "runestone", command
        _parser().parse_args(argv[1:])  # a usage error exits with status 2
