"""A real ``redis-server`` on a free loopback port, for tests of cluster mode.

>>> with RedisServer() as server:          # doctest: +SKIP
...     config["cluster"] = {"redis_url": server.url}

It keeps nothing on disk, binds 127.0.0.1 only, and can be stopped and started
again on the same port (an outage), killed, or paused and resumed (a Redis that
stops answering without closing its connections). Readiness is Redis's own
"Ready to accept connections" line, not a poll.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from types import TracebackType
from typing import Self

__all__ = ["RedisServer", "RedisServerUnavailableError", "find_redis_server"]

_READY = b"Ready to accept connections"


class RedisServerUnavailableError(RuntimeError):
    """No ``redis-server`` executable here."""


def find_redis_server() -> str | None:
    """The path of ``redis-server`` (``$REDIS_SERVER`` first, then ``PATH``), or None."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """See the module docstring."""

    def __init__(self, *, executable: str | None = None, port: int | None = None) -> None:
        found = executable or find_redis_server()
        if found is None:
            raise RedisServerUnavailableError(
                "redis-server is not installed (apt-get install redis-server, or set "
                "$REDIS_SERVER to its path)"
            )
        self.executable = found
        self.port = port or _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="runestone-redis-")
        self._process: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> Self:
        """Start it (again, on the same port); returns once it accepts connections."""
        if self.running:
            return self
        process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--logfile",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._process = process
        ready = threading.Event()
        lines: list[bytes] = []

        def drain() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if len(lines) < 200:
                    lines.append(line)
                if _READY in line:
                    ready.set()
            ready.set()  # it exited: start() reads why below

        self._drain = threading.Thread(target=drain, name="redis-server-log", daemon=True)
        self._drain.start()
        if not ready.wait(timeout) or process.poll() is not None:
            self._reap(kill=True)
            output = b"".join(lines).decode(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server did not start on port {self.port}:\n{output}")
        self.paused = False
        return self

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL); its data is gone."""
        self._reap(kill=False)

    def kill(self) -> None:
        """SIGKILL it."""
        self._reap(kill=True)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)
            self.paused = False

    def _reap(self, *, kill: bool) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if self.paused:
            process.send_signal(signal.SIGCONT)
            self.paused = False
        if process.poll() is None:
            if kill:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._drain is not None:
            self._drain.join(timeout=5)
            self._drain = None
        if process.stdout is not None:
            process.stdout.close()

    def close(self) -> None:
        self._reap(kill=False)
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} {'running' if self.running else 'stopped'}>"
