"""The long chaos run: the harness of ``tests/chaos/`` (runestone/testing/chaos.py) at scale.

N concurrent streams through ``system.stream()``, ``system.astream()``, the actor
``StreamRequest`` path and HTTP while a seeded schedule crashes and stops every kind
of actor and supervisor and the primary upstream flaps, cuts and stalls. Prints the
counts: requests, kills by kind, violations by kind (target 0), leaked admission slots
(target 0), what was left after stop. Exit status 1 when any violation was counted.

Run: ``python bench/chaos.py [--requests 100000] [--seed 0] [--concurrency 32]
[--kinds crash_router,upstream_cut,...] [--safe]``
"""

from __future__ import annotations

import argparse
import sys

from runestone.testing.chaos import ALL_KINDS, SAFE_KINDS, ChaosSettings, Kind, run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--interval", type=float, default=0.05, help="mean seconds between actions")
    parser.add_argument(
        "--kinds",
        default=",".join(sorted(k.value for k in ALL_KINDS)),
        help="comma-separated action kinds (default: all)",
    )
    parser.add_argument(
        "--safe", action="store_true", help="only the kinds that exposed none of issue 9's bugs"
    )
    args = parser.parse_args(argv)
    kinds = frozenset(Kind(name) for name in args.kinds.split(",") if name)
    if args.safe:
        kinds = SAFE_KINDS
    settings = ChaosSettings(
        requests=args.requests,
        concurrency=args.concurrency,
        seed=args.seed,
        kinds=kinds,
        action_interval=args.interval,
        progress=lambda text: print(text, flush=True),
    )
    report = run_chaos(settings)
    print(report.render())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
