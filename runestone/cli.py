"""The ``runestone`` command: ``serve``, ``check-config``, ``init``, ``health``.

::

    runestone serve [--config PATH] [--host 127.0.0.1] [--port 4003] [--watch]
    runestone check-config [PATH]
    runestone init [PATH] [--force]
    runestone import-litellm LITELLM_CONFIG [--output PATH] [--force]
    runestone health [--url http://127.0.0.1:4003] [--key KEY] [--json]

Exit status: 0 fine; 1 a bad config, an unhealthy server or a failure to
start; 2 a usage error (or, for ``health``, a server that cannot be reached); 70 (``serve``)
the actor system went down for good (its root supervisor gave up): restart it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import structlog

from runestone.config import (
    BUNDLED_CONFIG,
    BUNDLED_SCHEMA,
    SCHEMA_COMMENT,
    Config,
    describe,
    load_config,
)
from runestone.exceptions import ConfigError

__all__ = ["format_health", "main"]

DEFAULT_URL: Final = "http://127.0.0.1:4003"
DEFAULT_INIT_PATH: Final = "runestone.yaml"
WATCH_INTERVAL: Final = 1.0
"""Seconds between two looks at the config file under ``serve --watch``."""
_HEALTH_TIMEOUT: Final = 10.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runestone",
        description="Runestone: an LLM gateway that keeps answering when providers misbehave.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the OpenAI- and Anthropic-compatible HTTP API",
        description="Serve /v1/chat/completions, /v1/completions, /v1/responses, /v1/messages, "
        "/v1/embeddings, /v1/models, /health and /metrics until SIGTERM or Ctrl-C.",
    )
    serve.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help=f"config file (default: the bundled {BUNDLED_CONFIG.name}, "
        "which answers through the simulated provider)",
    )
    serve.add_argument(
        "path", nargs="?", default=None, metavar="PATH", help="the config file, as --config"
    )
    serve.add_argument(
        "--watch",
        action="store_true",
        help="reload the config whenever its file changes (SIGHUP always reloads it)",
    )
    serve.add_argument("--host", default=None, help="address to bind (default: server.host)")
    serve.add_argument(
        "--port", type=int, default=None, help="port (default: server.port; 0 = any free port)"
    )

    check = commands.add_parser(
        "check-config",
        help="validate a config and print what it implies",
        description="Validate a config file and print its providers, models, aliases and "
        "routing, or the one error that makes it unusable.",
    )
    check.add_argument(
        "path",
        metavar="PATH",
        nargs="?",
        default=None,
        help="the config file (default: the bundled one)",
    )

    init = commands.add_parser(
        "init",
        help="write a commented starter config to edit",
        description="Write the bundled config, with its comments, to PATH: a starting point "
        "that answers through the simulated provider until real providers are configured.",
    )
    init.add_argument(
        "path",
        metavar="PATH",
        nargs="?",
        default=DEFAULT_INIT_PATH,
        help=f"where to write it (default: {DEFAULT_INIT_PATH})",
    )
    init.add_argument("--force", action="store_true", help="overwrite PATH if it exists")

    imported = commands.add_parser(
        "import-litellm",
        help="turn a LiteLLM proxy config into a Runestone config",
        description="Map a LiteLLM proxy config (model_list, router_settings, fallbacks, "
        "general_settings.master_key, os.environ/VAR references) to a Runestone config, "
        "printing what was mapped and what could not be, each by its LiteLLM key path.",
    )
    imported.add_argument("source", metavar="LITELLM_CONFIG", help="the LiteLLM config file")
    imported.add_argument(
        "--output", "-o", metavar="PATH", default=None, help="write it here (default: stdout)"
    )
    imported.add_argument("--force", action="store_true", help="overwrite PATH if it exists")

    config = commands.add_parser(
        "config",
        help="print the config's JSON Schema, its reference, or a config as it is loaded",
        description="Print the config file's JSON Schema (for editors and CI checks), "
        "the reference of every key, its type, default and meaning (Markdown), or "
        "(dump [PATH]) a config as the gateway runs it: defaults spelled out, "
        "references resolved, secrets as ${VAR} references.",
    )
    config.add_argument("what", choices=("schema", "reference", "dump"), help="what to print")
    config.add_argument(
        "path", nargs="?", default=None, help="the config to dump (default: the bundled one)"
    )
    config.add_argument(
        "--reveal-secrets",
        action="store_true",
        help="dump: write API keys as they are instead of ${VAR} references",
    )

    health = commands.add_parser(
        "health",
        help="print a running server's supervision tree and provider health",
        description="Ask a running server for GET /health and print it as tables (in cluster "
        "mode also every live replica and the providers merged over them).",
    )
    health.add_argument(
        "--url",
        default=os.environ.get("RUNESTONE_URL", DEFAULT_URL),
        help=f"the server (default: $RUNESTONE_URL or {DEFAULT_URL})",
    )
    health.add_argument(
        "--key", default=os.environ.get("RUNESTONE_API_KEY"), help="API key to send, if any"
    )
    health.add_argument("--json", action="store_true", help="print the raw JSON instead")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if not structlog.is_configured():
        # Until the config says how to log, warnings (a skipped provider …) go to
        # stderr: stdout carries what the command prints.
        structlog.configure(
            logger_factory=_stderr_logger,
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        )
    if args.command == "check-config":
        return _check_config(args.path)
    if args.command == "import-litellm":
        return _import_litellm(args.source, args.output, force=args.force)
    if args.command == "config":
        return _config(args.what, args.path, reveal_secrets=args.reveal_secrets)
    if args.command == "init":
        return _init(args.path, force=args.force)
    if args.command == "health":
        return _health(args.url, args.key, as_json=args.json)
    if args.path is not None and args.config is not None and args.path != args.config:
        print("runestone: serve takes one config: PATH or --config, not both", file=sys.stderr)
        return 2
    return _serve(args.config or args.path, args.host, args.port, watch=args.watch)


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # Looked up at each use: whatever sys.stderr is then (a test may swap it).
    return structlog.PrintLogger(sys.stderr)


def _load(path: str | None) -> Config | None:
    try:
        return load_config(BUNDLED_CONFIG if path is None else path)
    except ConfigError as exc:
        print(f"runestone: invalid config: {exc}", file=sys.stderr)
        return None


def _write_new(path: str, text: str, *, force: bool) -> bool:
    """Write ``text`` to ``path``, never over a file unless ``force``; False (said why) if not."""
    target = Path(path)
    if target.is_dir():
        print(f"runestone: {path} is a directory; name the file to write", file=sys.stderr)
        return False
    if target.exists() and not force:
        print(f"runestone: {path} exists; pass --force to overwrite it", file=sys.stderr)
        return False
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"runestone: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _config(what: str, path: str | None, *, reveal_secrets: bool) -> int:
    from runestone.config.dump import dump_yaml
    from runestone.config.reference import reference
    from runestone.config.schema import schema_text

    if what != "dump" and (path is not None or reveal_secrets):
        print(f"runestone: config {what} takes no path or --reveal-secrets", file=sys.stderr)
        return 2
    if what == "dump":
        config = _load(path)
        if config is None:
            return 1
        print(dump_yaml(config, reveal_secrets=reveal_secrets), end="")
        return 0
    print(schema_text() if what == "schema" else reference(), end="")
    return 0


def _init(path: str, *, force: bool) -> int:
    text = BUNDLED_CONFIG.read_text(encoding="utf-8")
    # The bundled file names its schema beside it; a copy elsewhere names the installed one.
    installed = f"# yaml-language-server: $schema={BUNDLED_SCHEMA.as_uri()}"
    text = text.replace(SCHEMA_COMMENT, installed, 1)
    if not _write_new(path, text, force=force):
        return 1
    print(
        f"wrote {path}; check it with `runestone check-config {path}`, "
        f"serve it with `runestone serve --config {path}`"
    )
    return 0


def _import_litellm(source: str, output: str | None, *, force: bool) -> int:
    import yaml

    from runestone.litellm_import import check_environment, import_litellm, render

    try:
        data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"runestone: cannot read {source}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except yaml.YAMLError as exc:
        print(f"runestone: {source} is not valid YAML: {exc}", file=sys.stderr)
        return 1
    try:
        report = import_litellm(data)
    except ValueError as exc:
        print(f"runestone: {source}: {exc}", file=sys.stderr)
        return 1
    lines = [f"runestone: imported {source}"]
    lines += ["  mapped:"] + [f"    {path} -> {to}" for path, to in report.mapped]
    if report.unmapped:
        lines += ["  not mapped:"] + [f"    {path}: {why}" for path, why in report.unmapped]
    lines += [f"  warning: {text}" for text in report.warnings]
    print("\n".join(lines), file=sys.stderr)
    if not report.config["providers"]:
        print(f"runestone: {source}: no deployment could be mapped", file=sys.stderr)
        return 1
    try:
        load_config(report.config, env=check_environment(report.config))
    except ConfigError as exc:
        print(f"runestone: the imported config does not validate: {exc}", file=sys.stderr)
        return 1
    text = render(report, source)
    if output is None:
        sys.stdout.write(text)
        return 0
    if not _write_new(output, text, force=force):
        return 1
    print(f"wrote {output}; check it with `runestone check-config {output}`", file=sys.stderr)
    return 0


def _check_config(path: str | None) -> int:
    config = _load(path)
    if config is None:
        return 1
    print(describe(config))
    return 0


def _serve(path: str | None, host: str | None, port: int | None, *, watch: bool = False) -> int:
    from runestone.server.runner import serve, with_address

    config = _load(path)
    if config is None:
        return 1
    try:
        config = with_address(config, host=host, port=port)
    except ConfigError as exc:
        print(f"runestone: {exc}", file=sys.stderr)
        return 2
    try:
        return serve(config, watch=WATCH_INTERVAL if watch else None)
    except SystemExit as exc:  # uvicorn exits this way when the application fails to start
        print("runestone: the server failed to start (see the log above)", file=sys.stderr)
        return exc.code if isinstance(exc.code, int) and exc.code else 1


# --------------------------------------------------------------------------- health


def _health(url: str, key: str | None, *, as_json: bool) -> int:
    target = url.rstrip("/") + "/health"
    request = urllib.request.Request(target, headers={"accept": "application/json"})
    if key:
        request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=_HEALTH_TIMEOUT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"runestone: cannot reach {target}: {reason}", file=sys.stderr)
        return 2
    try:
        report = json.loads(raw)
    except ValueError:
        print(f"runestone: {target} answered {status} with no JSON health report", file=sys.stderr)
        return 2
    if not isinstance(report, dict) or "status" not in report:
        print(f"runestone: {target} answered {status}: {raw[:200]!r}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if as_json else format_health(report))
    return 0 if status == 200 else 1


def _seconds(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def _percent(value: object) -> str:
    return f"{value * 100:.0f}%" if isinstance(value, int | float) else "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Iterator[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    yield line(headers)
    yield line(["-" * w for w in widths])
    for row in rows:
        yield line(row)


def _tree_rows(node: Mapping[str, Any], depth: int = 0) -> Iterator[list[str]]:
    restarts = node.get("restarts", node.get("restarts_in_window", 0))
    last_exit = node.get("last_exit") or ""
    yield [
        "  " * depth + str(node.get("id", "?")),
        str(node.get("kind", "")),
        str(node.get("state", "")),
        str(restarts),
        str(last_exit)[:60],
    ]
    for child in node.get("children") or ():
        if isinstance(child, Mapping):
            yield from _tree_rows(child, depth + 1)


def format_health(report: Mapping[str, Any]) -> str:
    """A ``GET /health`` report as readable tables."""
    lines = [f"status: {report.get('status')}   uptime: {_seconds(report.get('uptime'))}"]
    if report.get("draining"):
        lines.append("draining: stopping, finishing the requests in flight")
    pool = report.get("pool")
    if isinstance(pool, Mapping):
        lines.append(
            f"pool: {pool.get('in_flight')} in flight of {pool.get('max_in_flight')}, "
            f"{pool.get('admitted')} admitted, {pool.get('refused')} refused"
        )
    cluster = report.get("cluster")
    if isinstance(cluster, Mapping):
        lines.append(_cluster_line(cluster))
    providers = report.get("providers") or {}
    lines += ["", "providers:"]
    rows = []
    for name, info in providers.items():
        health = info.get("health") or {}
        circuit = info.get("circuit") or {}
        rows.append(
            [
                name,
                str(info.get("type", "")),
                str(circuit.get("state") or health.get("circuit") or "-"),
                _percent(health.get("success_rate")),
                _seconds(health.get("latency")),
                _seconds(health.get("first_token")),
                str(health.get("in_flight", "-")),
                str(health.get("last_error") or "-"),
            ]
        )
    headers = ["name", "type", "circuit", "success", "latency", "ttft", "in flight", "last error"]
    lines += ["  " + row for row in _table(headers, rows)]
    if isinstance(cluster, Mapping):
        lines += _cluster_tables(cluster)
    skipped = report.get("skipped") or {}
    if skipped:
        lines += ["", "skipped providers:"]
        lines += [f"  {name}: {reason}" for name, reason in skipped.items()]
    tree = report.get("tree")
    lines += ["", "supervision tree:"]
    if isinstance(tree, Mapping):
        rows = list(_tree_rows(tree))
        lines += [
            "  " + row for row in _table(["actor", "kind", "state", "restarts", "last exit"], rows)
        ]
    else:
        lines.append("  (unavailable)")
    return "\n".join(lines)


def _cluster_line(cluster: Mapping[str, Any]) -> str:
    line = (
        f"cluster: instance {cluster.get('instance')}   redis {cluster.get('redis')}   "
        f"limits {cluster.get('limits')}   circuits {cluster.get('circuits')}"
    )
    if cluster.get("redis") != "up" and cluster.get("last_error"):
        line += f"   ({cluster.get('last_error')})"
    return line


def _circuit_counts(providers: object) -> tuple[int, int, int]:
    """How many of a replica's providers report their circuit closed, half open, open."""
    states = [
        (info.get("circuit") or {}).get("state")
        for info in (providers.values() if isinstance(providers, Mapping) else ())
        if isinstance(info, Mapping)
    ]
    return states.count("closed"), states.count("half_open"), states.count("open")


def _cluster_tables(cluster: Mapping[str, Any]) -> list[str]:
    """The replicas and the providers merged over them (``/health``'s ``cluster``)."""
    instances = [i for i in cluster.get("instances") or () if isinstance(i, Mapping)]
    if cluster.get("view") == "local":
        title = "replicas (local view: Redis cannot be read, this replica only):"
    else:
        title = f"replicas ({len(instances)} live):"
    lines = ["", title]
    rows = []
    for instance in instances:
        name = str(instance.get("instance"))
        closed, half_open, opened = _circuit_counts(instance.get("providers"))
        rows.append(
            [
                f"{name} (this one)" if instance.get("self") else name,
                _seconds(instance.get("heartbeat_ago")),
                _seconds(instance.get("uptime")),
                str(closed),
                str(half_open),
                str(opened),
            ]
        )
    headers = ["instance", "heartbeat", "uptime", "closed", "half open", "open"]
    lines += ["  " + row for row in _table(headers, rows)]
    if cluster.get("view_error"):
        lines.append(f"  ({cluster.get('view_error')})")
    if cluster.get("view") == "local":
        lines += ["", "cluster providers (local view: this replica's own figures):"]
    else:
        lines += ["", "cluster providers (merged; circuit: the worst any replica reports):"]
    rows = []
    for name, info in (cluster.get("providers") or {}).items():
        circuit = info.get("circuit") or {}
        last = info.get("last_error") or {}
        rows.append(
            [
                name,
                str(circuit.get("state") or "-"),
                str(circuit.get("rule") or "-"),
                str(info.get("replicas", "-")),
                str(info.get("window_calls", "-")),
                str(info.get("window_failures", "-")),
                _percent(info.get("success_rate")),
                str(info.get("in_flight", "-")),
                f"{last.get('error')} ({last.get('instance')})" if last else "-",
            ]
        )
    headers = [
        "name",
        "circuit",
        "rule",
        "replicas",
        "calls",
        "failures",
        "success",
        "in flight",
        "last error",
    ]
    lines += ["  " + row for row in _table(headers, rows)]
    return lines
