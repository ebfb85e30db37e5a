"""Shared pieces of the benchmark scripts: the fake upstream in its own process, percentiles."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_upstream(interval: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    """The fake upstream in its own process (its CPU is not ours); returns it and its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runestone.testing.upstream",
            "--port",
            "0",
            "--token-interval",
            str(interval),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if match is None:
        process.kill()
        raise SystemExit(f"the fake upstream did not start: {line!r}")
    return process, match.group(1)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
    """Peak resident memory of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))
