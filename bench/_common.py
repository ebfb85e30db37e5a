"""Shared pieces of the benchmark scripts: the parties in their own processes, /proc figures."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, so no server outlives a bench."""
    # Not Linux: no prctl, and the bench's own clean-up is all there is.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# --------------------------------------------------------------------------- processes


@dataclass
class Party:
    """One server process under test."""

    name: str
    process: subprocess.Popen[Any]
    url: str  # the OpenAI base URL, ending in /v1
    headers: dict[str, str] = field(default_factory=dict)
    """Extra request headers this party needs (Portkey's routing headers)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def chat_url(self) -> str:
        return self.url + "/chat/completions"

    @property
    def root(self) -> str:
        """The URL without ``/v1`` (the Anthropic base URL)."""
        return self.url.removesuffix("/v1")

    def stop(self) -> None:
        stop(self.process)


def spawn_upstream(interval: float = 0.0, port: int = 0) -> subprocess.Popen[str]:
    """Start the fake upstream in its own process (its CPU is not ours); see upstream_url."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runestone.testing.upstream",
            "--port",
            str(port),
            "--token-interval",
            str(interval),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=_die_with_parent,
    )


def upstream_url(process: subprocess.Popen[str]) -> str:
    """Wait for a spawned fake upstream's banner; its URL (no /v1)."""
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if match is None:
        process.kill()
        process.wait()
        raise SystemExit(f"the fake upstream did not start: {line!r}")
    return match.group(1)


def start_upstream(interval: float = 0.0, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    """The fake upstream in its own process; returns it and its URL (no /v1)."""
    process = spawn_upstream(interval, port)
    return process, upstream_url(process)


def wait_line(process: subprocess.Popen[bytes], pattern: str, what: str) -> re.Match[str]:
    """Read ``process``'s stdout until a line matches ``pattern``; exit naming ``what`` if not."""
    assert process.stdout is not None
    regex = re.compile(pattern)
    seen = []
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace")
        seen.append(line)
        match = regex.search(line)
        if match:
            return match
    process.wait()
    raise SystemExit(f"{what} did not start: {''.join(seen)[-2000:]}")


def _drain(source: IO[bytes], sink: IO[bytes]) -> None:
    shutil.copyfileobj(source, sink, 4096)


def start_serve(config: Mapping[str, Any], directory: Path, name: str = "gateway") -> Party:
    """``runestone serve`` on ``config`` (written to ``directory``), its stderr in a log there.

    Its stdout after the banner goes to the same log, so a long run never fills the pipe.
    """
    return start_serves({name: config}, directory)[0]


def start_serves(configs: Mapping[str, Mapping[str, Any]], directory: Path) -> list[Party]:
    """:func:`start_serve` for each named config, the processes starting concurrently.

    From the calling thread (not a pool): a child's parent-death signal follows the
    thread that started it.
    """
    spawned = []
    for name, config in configs.items():
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
        log = (directory / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "runestone", "serve", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )
        spawned.append((name, process, log))
    parties = []
    try:
        for name, process, log in spawned:
            match = wait_line(process, r"serving on (http://\S+)", f"runestone serve ({name})")
            assert process.stdout is not None
            threading.Thread(target=_drain, args=(process.stdout, log), daemon=True).start()
            parties.append(Party(name, process, match.group(1) + "/v1"))
    except BaseException:
        for _, process, _ in spawned:
            stop(process)
        raise
    return parties


@contextlib.contextmanager
def checkout_of(revision: str) -> Iterator[Path]:
    """A temporary ``git worktree`` of ``revision`` (for before/after runs), removed after."""
    with tempfile.TemporaryDirectory(prefix="runestone-before-") as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), revision],
            check=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True
            )


def run_worker(script: str, tree: Path, number: int) -> dict[str, float]:
    """Run ``script --worker --number N`` on the package in ``tree``; its JSON figures."""
    done = subprocess.run(
        [sys.executable, script, "--worker", "--number", str(number)],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- figures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds() -> float:
    """CPU (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM) since start or reset_peak_rss(), in MB."""
    return float(proc_status(os.getpid()).get("VmHWM", "0 kB").split()[0]) / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to what it holds now (Linux: ``5`` to clear_refs).

    So a run's peak is its own, not that of what ran before it in the process.
    Whether it could.
    """
    try:
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a mapping (``VmRSS``, ``VmHWM``, ``Threads``, …)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        out[name] = value.strip()
    return out


def proc_cpu_seconds(pid: int) -> float:
    """CPU (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def proc_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant of it (a server that forks workers: granian)."""
    found = [pid]
    for parent in found:  # grows while it is walked: breadth first
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in os.listdir(f"/proc/{parent}/task"):
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
                found.extend(int(child) for child in children)
    return found


def proc_tree_cpu_seconds(pid: int) -> float:
    """CPU (user + system) used so far by ``pid`` and its live descendants."""
    total = 0.0
    for member in proc_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += proc_cpu_seconds(member)
    return total


def proc_tree_threads(pid: int) -> int:
    """Threads of ``pid`` and its live descendants now."""
    total = 0
    for member in proc_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int(proc_status(member).get("Threads", "0"))
    return total


def proc_tree_peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of ``pid`` plus that of its live descendants, in MB."""
    total = 0.0
    for member in proc_tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += float(proc_status(member).get("VmHWM", "0 kB").split()[0]) / 1024
    return total


def raise_open_files() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it); the limit.

    Only the soft limit can be raised without CAP_SYS_RESOURCE: the hard one is the ceiling.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_fds(pid: int) -> tuple[int, int]:
    """Open file descriptors of ``pid`` and how many of them are sockets."""
    fds = sockets = 0
    directory = f"/proc/{pid}/fd"
    for name in os.listdir(directory):
        try:
            target = os.readlink(f"{directory}/{name}")
        except FileNotFoundError:  # closed between the listing and the look
            continue
        fds += 1
        sockets += target.startswith("socket:")
    return fds, sockets
