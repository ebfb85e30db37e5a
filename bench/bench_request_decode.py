"""Request decode + validate, before and after the msgspec schemas (issue 11), in one run.

End to end as the server does it: the body's bytes in, the validated ``ChatCall`` (a
``ChatRequest`` and its answer options) out, for three shapes — a typical chat request
(a system and a user message, a tool), a 100-message chat request and an Anthropic
messages request (content blocks, a tool use, a tool result).

- before: the code at ``--before`` (a commit; default ``ee8d35d``, the hand-written
  parsers): ``orjson`` loads the body, the dialect's ``parse`` validates the dict;
- after: this checkout: the dialect's ``decode`` runs msgspec on the bytes.

Each side runs in its own process (both trees are the package ``runestone``), the
sides interleaved ``--rounds`` times; each figure is the median over the rounds of the
mean of ``--number`` calls, in microseconds per request. The commit is checked out in
a temporary ``git worktree`` that is removed afterwards.

Run: ``python bench/bench_request_decode.py [--before ee8d35d] [--number 5000] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import ROOT, checkout_of, run_worker
from _requests import ANTHROPIC, chat

SHAPES = ("chat, typical", "chat, 100 messages", "anthropic messages")


def _server_path() -> dict[str, Callable[[bytes], object]]:
    """What the server runs on a body, per shape, in the tree this process imports."""
    from runestone import jsonio
    from runestone.server.anthropic_schema import AnthropicDialect
    from runestone.server.openai_schema import OpenAIDialect

    openai, anthropic = OpenAIDialect(), AnthropicDialect()
    if hasattr(openai, "decode"):  # after: msgspec on the bytes (server/body.decode_body)
        from runestone.server.body import decode_body

        def on_openai(body: bytes) -> object:
            return decode_body(body, openai.decode)

        def on_anthropic(body: bytes) -> object:
            return decode_body(body, anthropic.decode)

    else:  # before: read_json's loads and object check, then the dialect's parse

        def loads(body: bytes) -> Any:
            data = jsonio.loads(body)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            return data

        def on_openai(body: bytes) -> object:
            return openai.parse(loads(body))  # type: ignore[attr-defined]

        def on_anthropic(body: bytes) -> object:
            return anthropic.parse(loads(body))  # type: ignore[attr-defined]

    return {SHAPES[0]: on_openai, SHAPES[1]: on_openai, SHAPES[2]: on_anthropic}


def _bodies() -> dict[str, bytes]:
    return {
        SHAPES[0]: json.dumps(chat(2)).encode(),
        SHAPES[1]: json.dumps(chat(100)).encode(),
        SHAPES[2]: json.dumps(ANTHROPIC).encode(),
    }


def worker(number: int) -> None:
    """Time each shape in this process's tree; print the figures as JSON."""
    paths, bodies = _server_path(), _bodies()
    out: dict[str, float] = {}
    for shape in SHAPES:
        run, body = paths[shape], bodies[shape]
        calls = number if "100" not in shape else max(1, number // 10)
        for _ in range(calls // 10):  # warm up
            run(body)
        start = time.perf_counter()
        for _ in range(calls):
            run(body)
        out[shape] = (time.perf_counter() - start) / calls * 1e6
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="ee8d35d", help="the commit to compare with")
    parser.add_argument("--number", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.number)
        return
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with checkout_of(args.before) as before:
        for _ in range(args.rounds):  # interleaved: drift hits both sides alike
            runs["before"].append(run_worker(__file__, before, args.number))
            runs["after"].append(run_worker(__file__, ROOT, args.number))
    print(
        f"request decode + validate, bytes in -> ChatCall out; us per request, median of "
        f"{args.rounds} rounds (before: {args.before}, after: this checkout)"
    )
    print(f"  {'shape':22s} {'before':>9s} {'after':>9s} {'after/before':>13s} {'speed-up':>9s}")
    for shape in SHAPES:
        old = statistics.median(run[shape] for run in runs["before"])
        new = statistics.median(run[shape] for run in runs["after"])
        print(f"  {shape:22s} {old:9.1f} {new:9.1f} {new / old:12.2f}x {old / new:8.1f}x")


if __name__ == "__main__":
    main()
