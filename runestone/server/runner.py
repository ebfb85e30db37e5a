"""``runestone serve``: the gateway on uvicorn, one process, one event loop, stopped gracefully.

The listening socket is bound before anything starts, so a port in use is one
clear message and the real port (``port: 0`` picks a free one) is known for the
banner. The system is built on uvicorn's loop, which becomes its data plane.

SIGTERM or SIGINT: stop accepting connections, let the requests in flight
finish within ``server.shutdown_grace`` seconds (a stream still running then
gets an error frame, never a silent cut), then stop the actor system and exit 0.
A second SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Final

import msgspec
import uvicorn

import runestone
from runestone.config import Config, is_loopback
from runestone.exceptions import ConfigError
from runestone.io import new_event_loop
from runestone.server.app import Gateway, create_app
from runestone.server.protocol import http_protocol

__all__ = ["EXIT_SYSTEM_DOWN", "bind", "check_exposure", "serve", "with_address"]

EXIT_SYSTEM_DOWN: Final = 70
"""Exit status when the supervision tree gave up (EX_SOFTWARE): a process manager restarts."""
_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_BACKLOG: Final = 4096
# Clients (and benchmarks) reuse connections; uvicorn's default of 5 s closes them early.
_KEEP_ALIVE: Final = 75


def with_address(config: Config, *, host: str | None = None, port: int | None = None) -> Config:
    """``config`` listening on ``host``/``port`` where given."""
    server = config.server
    if host is not None:
        server = msgspec.structs.replace(server, host=host)
    if port is not None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"expected a port from 0 to 65535, got {port}", path="--port")
        server = msgspec.structs.replace(server, port=port)
    return dataclasses.replace(config, server=server)


def check_exposure(config: Config) -> None:
    """Refuse to serve with no keys anywhere but on a loopback address."""
    host = config.server.host
    if not config.auth.keys and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve {host!r} with no auth.keys: anyone who can reach it could "
            "use your providers; add auth.keys to the config or bind a loopback address "
            "(--host 127.0.0.1)",
            path="server.host",
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (IPv4 or IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def banner(gateway: Gateway, url: str, admin_url: str | None = None) -> str:
    """What ``runestone serve`` says once it is up."""
    config = gateway.config
    lines = [f"runestone {runestone.__version__}: serving on {url} (OpenAI base URL {url}/v1)"]
    if admin_url is not None:
        lines.append(f"  admin routes (/health, /metrics, /admin/reload) on {admin_url} only")
    if config.source:
        lines.append(f"  config: {config.source}")
    for name, provider in config.providers.items():
        settings = provider.settings
        models = ", ".join(settings.models) or "no models"
        lines.append(f"  live provider {name} (type {settings.type}): {models}")
    for skipped in config.skipped:
        lines.append(f"  skipped provider {skipped.name}: {skipped.reason}")
    if config.auth.keys:
        names = ", ".join(key.name for key in config.auth.keys)
        lines.append(f"  auth: {len(config.auth.keys)} key(s): {names}")
        if config.auth.admin_keys:
            admins = ", ".join(key.name for key in config.auth.admin_keys)
            lines.append(f"  admin keys (/health, /metrics): {admins}")
    else:
        lines.append(
            f"  auth: OPEN - no auth.keys configured; allowed only because "
            f"{config.server.host} is a loopback address"
        )
    return "\n".join(lines)


class _Server(uvicorn.Server):
    """uvicorn's server, draining our way: no re-raised signal at exit, a message per step."""

    def __init__(
        self, config: uvicorn.Config, gateway: Gateway, say: Callable[[str], None]
    ) -> None:
        super().__init__(config)
        self._gateway = gateway
        self._say = say
        self._loop: asyncio.AbstractEventLoop | None = None
        self.went_down = False
        gateway.on_down = self.system_down

    def system_down(self, error: BaseException) -> None:
        """The actor system gave up for good: drain like a SIGTERM, then exit non-zero."""
        if self.went_down:
            return
        self.went_down = True
        self._say(f"runestone: {error}; stopping with exit status {EXIT_SYSTEM_DOWN}")
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a caught signal once it has stopped, which would end the
        # process by the signal rather than with our exit status.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        originals[signal.SIGHUP] = signal.signal(signal.SIGHUP, self.handle_hangup)
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        self._gateway.draining = True
        loop = self._loop
        if first and loop is not None:
            # Not from the signal handler itself: a print there could interrupt another.
            name = signal.Signals(sig).name
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._say, f"runestone: {name} received, stopping")

    def handle_hangup(self, _sig: int, _frame: FrameType | None) -> None:
        """SIGHUP: reload the config file, on the loop (not in the signal handler)."""
        loop = self._loop
        if loop is not None and not self.should_exit:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._gateway.reloader.reload_soon, "SIGHUP")

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in getattr(self, "servers", []):
            server.close()
        grace = self._gateway.config.server.shutdown_grace
        self._say(
            f"runestone: stopped accepting connections; {self._gateway.in_flight} request(s) "
            f"in flight get up to {grace:g} s to finish"
        )
        await super().shutdown(sockets)


def serve(
    config: Config,
    *,
    say: Callable[[str], None] | None = None,
    on_started: Callable[[Gateway], None] | None = None,
    watch: float | None = None,
) -> int:
    """Serve ``config`` until SIGTERM/SIGINT; returns the process exit status
    (:data:`EXIT_SYSTEM_DOWN` when the actor system's root supervisor gave up).

    ``say`` gets the banner, reload and shutdown messages (default: printed to stdout);
    ``on_started`` the gateway, once it serves. SIGHUP reloads the config file, and so
    does a change of it with ``watch`` (checked every ``watch`` seconds).
    """

    def default_say(text: str) -> None:
        print(text, flush=True)

    say = say or default_say
    try:
        check_exposure(config)
    except ConfigError as exc:
        print(f"runestone: {exc}", file=sys.stderr)
        return 2
    host, port, admin_port = config.server.host, config.server.port, config.server.admin_port
    sockets: list[socket.socket] = []
    try:
        for wanted in (port,) if admin_port is None else (port, admin_port):
            try:
                sockets.append(bind(host, wanted))
            except OSError as exc:
                print(
                    f"runestone: cannot listen on {host}:{wanted}: {exc.strerror or exc}",
                    file=sys.stderr,
                )
                return 1
        return _serve_on(config, sockets, say, on_started, watch)
    finally:
        for sock in sockets:
            sock.close()


def _serve_on(
    config: Config,
    sockets: list[socket.socket],
    say: Callable[[str], None],
    on_started: Callable[[Gateway], None] | None,
    watch: float | None,
) -> int:
    url = _url(sockets[0])
    admin_url = _url(sockets[1]) if len(sockets) > 1 else None

    def started(gateway: Gateway) -> None:
        say(banner(gateway, url, admin_url))
        if on_started is not None:
            on_started(gateway)

    app = create_app(config, on_started=started, watch=watch)
    app.gateway.reloader.announce = say
    if len(sockets) > 1:
        # The port really bound (admin_port 0 takes any free one): requests tell it apart.
        app.admin_port = sockets[1].getsockname()[1]
    uv_config = uvicorn.Config(
        app,
        lifespan="on",
        # uvicorn's parser, answering a request it cannot parse with our JSON error.
        http=http_protocol(),
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-* from anyone is not trusted
        backlog=_BACKLOG,
        timeout_keep_alive=_KEEP_ALIVE,
        # uvicorn takes whole seconds here.
        timeout_graceful_shutdown=math.ceil(config.server.shutdown_grace),
    )
    server = _Server(uv_config, app.gateway, say)

    async def run() -> None:
        try:
            await server.serve(sockets=sockets)
        finally:
            # A forced exit skips the lifespan's shutdown: stop the system anyway.
            await app.gateway.shutdown()

    # The data plane's kind of loop: uvloop where installed (runestone.io).
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run())
    if not server.started:
        return 1
    say("runestone: stopped")
    return EXIT_SYSTEM_DOWN if server.went_down else 0
