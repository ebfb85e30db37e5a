"""Supervision costs, measured side by side in one run.

1. Crash to recovery: median (and p99) time from a child's crash to its
   replacement answering an ``ask``, over N crashes.
2. Spawn-and-stop: a short-lived child under the DynamicSupervisor (spawn, one
   ask, terminate) against a bare pykka actor (start, one ask, stop), as a ratio.

Run: ``python bench/bench_supervision.py [--crashes 1000] [--spawns 1000]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any

import pykka
import structlog

from runestone.supervisors import (
    ChildSpec,
    DynamicSupervisor,
    IntensityPolicy,
    SupervisedActor,
    start_supervisor,
)


class Echo(SupervisedActor):
    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash on purpose")
        return message


class BareEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def crash_to_recovery(crashes: int) -> list[float]:
    root = start_supervisor(
        [ChildSpec("echo", Echo.start)],
        name="bench",
        intensity=IntensityPolicy(max_restarts=crashes + 1, max_seconds=3600),
    )
    try:
        echo = root.child("echo")
        echo.ask("warm")
        samples = []
        for _ in range(crashes):
            start = time.perf_counter()
            echo.tell("crash")
            echo.ask("ping")  # waits for the next incarnation
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        root.stop()


def spawn_and_stop(spawns: int, rounds: int) -> tuple[float, float]:
    dyn = start_supervisor(name="tasks", actor_class=DynamicSupervisor)
    bare_total = supervised_total = 0.0
    try:
        per_round = spawns // rounds
        for _ in range(rounds):  # interleaved, so drift hits both sides alike
            start = time.perf_counter()
            for _ in range(per_round):
                ref = BareEcho.start()
                ref.ask("ping")
                ref.stop()
            bare_total += time.perf_counter() - start

            start = time.perf_counter()
            for _ in range(per_round):
                handle = dyn.spawn(Echo.start)
                handle.ask("ping")
                dyn.terminate_child(handle.id)
            supervised_total += time.perf_counter() - start
        n = per_round * rounds
        return bare_total / n, supervised_total / n
    finally:
        dyn.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=1000)
    parser.add_argument("--spawns", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    # Crash logs would dominate the measurement.
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    samples = crash_to_recovery(args.crashes)
    print(f"crash -> replacement answers an ask, {args.crashes} crashes:")
    print(
        f"  median {statistics.median(samples) * 1e3:.3f} ms   "
        f"p99 {percentile(samples, 0.99) * 1e3:.3f} ms   max {max(samples) * 1e3:.3f} ms"
    )

    bare, supervised = spawn_and_stop(args.spawns, args.rounds)
    print(f"spawn + one ask + stop, {args.spawns} children, interleaved in {args.rounds} rounds:")
    print(f"  bare pykka actor            {bare * 1e6:8.1f} us")
    print(f"  under DynamicSupervisor     {supervised * 1e6:8.1f} us")
    print(f"  ratio supervised / bare     {supervised / bare:8.2f}x")


if __name__ == "__main__":
    main()
