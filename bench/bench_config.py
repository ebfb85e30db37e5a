"""Config load time and ``runestone serve`` start-up to ready, before and after a change.

Both sides run in their own processes, interleaved, on the same machine: "before"
is a commit (default: the last one with the hand-written config validators) in a
temporary ``git worktree`` that is removed afterwards, "after" is this checkout.

    python3 bench/bench_config.py [--before REV] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _common import ROOT, checkout_of, run_worker, stop

ENV = {
    "OPENAI_API_KEY": "sk-bench",
    "ANTHROPIC_API_KEY": "sk-bench",
    "GROQ_API_KEY": "sk-bench",
    "RUNESTONE_KEY_TEAM_A": "team-a-key",
    "RUNESTONE_KEY_TEAM_B": "team-b-key",
}


def worker(number: int) -> None:
    """Time load_config on the bundled config and the team example; print ms as JSON."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    from runestone.config import BUNDLED_CONFIG, load_config

    team = ROOT / "config" / "examples" / "team-gateway.yaml"
    out: dict[str, float] = {}
    for name, path in (("bundled config", BUNDLED_CONFIG), ("team-gateway example", team)):
        load_config(path, env=ENV)
        start = time.perf_counter()
        for _ in range(number):
            load_config(path, env=ENV)
        out[name] = (time.perf_counter() - start) / number * 1e3
    print(json.dumps(out))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def startup(tree: Path) -> float:
    """Seconds from spawning ``runestone serve`` (no config path) to /health/ready answering.

    With bytecode cached, as an installed wheel has it (pip compiles at install): a
    machine that sets PYTHONDONTWRITEBYTECODE would otherwise compile every module of
    ours at every start, a quarter of a second that no deployment pays.
    """
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "runestone", "serve", "--port", str(port)],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1):
                    return time.perf_counter() - start
            except OSError:
                if process.poll() is not None:
                    raise SystemExit("runestone serve exited before it was ready") from None
                time.sleep(0.005)  # a poll interval, not a synchronisation
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="ee8d35d", help="the commit to compare with")
    parser.add_argument("--number", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.number)
        return
    loads: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    starts: dict[str, list[float]] = {"before": [], "after": []}
    with checkout_of(args.before) as before:
        for tree in (before, ROOT):
            startup(tree)  # writes the bytecode cache: every timed start reads it
        for _ in range(args.rounds):  # interleaved: drift hits both sides alike
            for side, tree in (("before", before), ("after", ROOT)):
                loads[side].append(run_worker(__file__, tree, args.number))
                starts[side].append(startup(tree))
    print(f"median of {args.rounds} rounds (before: {args.before}, after: this checkout)")
    print(f"  {'figure':36s} {'before':>9s} {'after':>9s} {'after/before':>13s}")
    for name in loads["after"][0]:
        old = statistics.median(run[name] for run in loads["before"])
        new = statistics.median(run[name] for run in loads["after"])
        print(f"  {'load ' + name + ', ms':36s} {old:9.2f} {new:9.2f} {new / old:12.2f}x")
    old, new = statistics.median(starts["before"]), statistics.median(starts["after"])
    print(f"  {'serve start-up to ready, s':36s} {old:9.3f} {new:9.3f} {new / old:12.2f}x")


if __name__ == "__main__":
    main()
