"""How soon traffic returns to a provider after it recovers (issue 9's scenario).

A primary answers 503 for ``--down`` seconds (the fake upstream's ``down-for``, its
model listing failing too), then recovers; a healthy backup takes the requests
meanwhile. One request every ``--every`` seconds. Printed: the time from the
primary's recovery to its circuit leaving open, and to the first request it served;
the out-of-band probes it saw while down. With ``--baseline`` the same run again
with out-of-band probes off (``probe_interval: null``: the recovery time alone,
10 s doubling per opening), side by side.

Run: ``python bench/recovery.py [--down 60] [--every 4] [--baseline]`` (about 80 s a run).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import runestone
from runestone.messages import Done
from runestone.testing.upstream import FakeUpstream

USER = [{"role": "user", "content": "Tell me the known text."}]


def one_run(down: float, every: float, *, probes: bool, after: float) -> dict[str, Any]:
    with FakeUpstream() as up:
        breaker: dict[str, Any] = {"recovery": 10}  # the base recovery time
        if not probes:
            breaker["probe_interval"] = None
        model = f"down-for:{down:g}"
        cfg = {
            "providers": {
                "primary": {
                    "type": "openai",
                    "api_key": "sk-bench",
                    "base_url": up.openai_base_url,
                    "circuit_breaker": breaker,
                    "models": {model: {}},
                },
                "backup": {
                    "type": "anthropic",
                    "api_key": "sk-ant-bench",
                    "base_url": up.anthropic_base_url,
                    "models": {"healthy": {}},
                },
            },
            "routing": {
                "policy": "priority",
                "aliases": {"m": [f"primary/{model}", "backup/healthy"]},
            },
            "logging": {"level": "ERROR"},
        }
        system = runestone.start(cfg)
        try:
            up.reset()
            start = time.monotonic()
            recovered_at = start + down
            left_open: float | None = None
            served: float | None = None
            listings_down = 0
            next_request = start
            while time.monotonic() < recovered_at + after and served is None:
                now = time.monotonic()
                if now >= next_request:
                    next_request += every
                    events = list(system.stream({"model": "m", "messages": USER}))
                    done = events[-1]
                    if isinstance(done, Done) and done.provider == "primary" and now >= start:
                        served = now
                if left_open is None and now > recovered_at:
                    state = system.health()["providers"]["primary"]["circuit"]["state"]
                    if state != "open":
                        left_open = time.monotonic()
                time.sleep(0.02)
            listings_down = sum(1 for t in up.listings if t < recovered_at)
        finally:
            system.stop()
    return {
        "left_open": None if left_open is None else left_open - recovered_at,
        "served": None if served is None else served - recovered_at,
        "probes_while_down": listings_down,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=4.0)
    parser.add_argument("--after", type=float, default=30.0, help="give up this long after")
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    runs = [("out-of-band probes (defaults)", True)]
    if args.baseline:
        runs.append(("recovery time only (probe_interval: null)", False))
    print(f"primary down {args.down:g} s, one request every {args.every:g} s")
    for label, probes in runs:
        result = one_run(args.down, args.every, probes=probes, after=args.after)

        def fmt(value: float | None) -> str:
            return f"{value:6.2f} s" if value is not None else f"> {args.after:g} s"

        print(
            f"  {label:45s} circuit left open after {fmt(result['left_open'])}, "
            f"first request served after {fmt(result['served'])}, "
            f"{result['probes_while_down']} probes while down"
        )


if __name__ == "__main__":
    main()
