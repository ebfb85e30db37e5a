"""Test helpers: a real ``runestone serve`` process, and an upstream that holds its answers.

``RunningServer`` writes a config as YAML, starts ``python -m runestone serve``
on a free loopback port, waits for its banner and stops it (SIGTERM, then a
kill as a backstop), always waiting for the process. ``HoldingUpstream`` sends
the start of an answer and then holds the connection, recording when the client
(our server) closes it: the way to see an upstream request being cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import yaml

_BANNER = re.compile(r"serving on (http://\S+)")
_START_TIMEOUT = 30.0


class RunningServer:
    """``runestone serve`` in a child process (see the module docstring)."""

    def __init__(
        self,
        config: dict[str, Any],
        directory: Path,
        *,
        name: str = "runestone",
        args: tuple[str, ...] = (),
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path = directory / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.log_path = directory / f"{name}.log"
        self.lines: list[str] = []
        self._pending = b""
        self.url = ""
        self._log = self.log_path.open("wb")
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runestone", "serve", "--config", str(self.config_path), *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        try:
            line = self.wait_for_line(_BANNER, timeout=_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        match = _BANNER.search(line)
        assert match is not None
        self.url = match.group(1)

    def rewrite(self, config: dict[str, Any]) -> None:
        """Replace the config file (what a reload then reads)."""
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    @property
    def base_url(self) -> str:
        """What the OpenAI SDK takes as ``base_url``."""
        return self.url + "/v1"

    def wait_for_line(self, pattern: re.Pattern[str] | str, timeout: float = 10.0) -> str:
        """Read stdout until a line matches ``pattern``; that line."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        checked = 0
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[checked:]:
                if regex.search(line):
                    return line
            checked = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no line matching {regex.pattern!r} within {timeout} s; "
                    f"stdout: {self.lines}; log: {self.log()}"
                )
            if not self._read(remaining):
                raise RuntimeError(
                    f"the server exited ({self.process.wait()}) before printing "
                    f"{regex.pattern!r}; stdout: {self.lines}; log: {self.log()}"
                )

    def _read(self, timeout: float) -> bool:
        """Read what stdout has (unbuffered, so select() sees all of it); False at its end."""
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            return True
        data = os.read(stdout.fileno(), 65536)
        if not data:
            return False
        self._pending += data
        *complete, self._pending = self._pending.split(b"\n")
        self.lines += [line.decode("utf-8", "replace") for line in complete]
        return True

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit; read the rest of its stdout."""
        rest, _ = self.process.communicate(timeout=timeout)
        data = self._pending + rest
        self._pending = b""
        self.lines += data.decode("utf-8", "replace").splitlines()
        return self.process.returncode

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; a kill if it does not stop in time. The exit status."""
        try:
            self.signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.wait(timeout)
        finally:
            self._log.close()

    def log(self) -> str:
        """The end of what the server wrote to stderr (its log) so far."""
        return self.full_log()[-4000:]

    def full_log(self) -> str:
        """Everything the server wrote to stderr (its log) so far."""
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_CHUNK = {
    "id": "chatcmpl-held",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "hold",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Held "}}],
}


class HoldingUpstream:
    """An OpenAI-ish upstream that starts every answer, then holds it until the client closes.

    A stream gets its headers and one content chunk; a whole answer gets its
    headers and the first bytes of a body it never finishes. ``wait_closed(n)``
    returns once ``n`` connections were closed by the client.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = threading.Condition()
        self.requests: list[dict[str, Any]] = []
        self.closed = 0
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="holding-upstream", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        assert self._server is not None
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

        self._loop.run_until_complete(start())
        ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length)) if length else {}
            with self._changed:
                self.requests.append(body)
                self._changed.notify_all()
            if body.get("stream"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"connection: close\r\n\r\n" + b"data: " + json.dumps(_CHUNK).encode() + b"\n\n"
                )
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: 100000\r\n\r\n" + b'{"id": "held", '
                )
            await writer.drain()
            while await reader.read(65536):
                pass  # hold: the answer never goes on; wait for the client to close
            with self._changed:
                self.closed += 1
                self._changed.notify_all()
        except (OSError, asyncio.IncompleteReadError):
            with self._changed:
                self.closed += 1
                self._changed.notify_all()
        finally:
            self._tasks.discard(task)
            writer.close()

    def wait_requests(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"{len(self.requests)} requests arrived, not {n}")
            return list(self.requests)

    def wait_closed(self, n: int, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.closed >= n, timeout):
                raise TimeoutError(f"{self.closed} connections were closed, not {n}")

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._server is not None:
                await self._server.wait_closed()
            self._loop.stop()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            self._thread.join(10)


class Raw:
    """One HTTP exchange without an SDK in the way."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        payload = self.json()
        assert set(payload) == {"error"}, payload
        error: dict[str, Any] = payload["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        return error


def raw(
    server: RunningServer,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> Raw:
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
    try:
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("authorization", f"Bearer {key}")
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        if data is not None:
            sent.setdefault("content-type", "application/json")
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return Raw(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def sse_data(body: bytes) -> list[str]:
    return [
        line.removeprefix("data: ")
        for line in body.decode().split("\n")
        if line.startswith("data: ")
    ]
