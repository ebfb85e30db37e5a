"""Many streams at once: stream tasks are loop actors, so threads do not grow with streams."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import runestone
from runestone.io import DataPlane
from runestone.messages import Done, TextDelta
from runestone.testing.upstream import KNOWN_TEXT, FakeUpstream
from tests.system.conftest import config, models, openai_provider

STREAMS = 2_000


@pytest.fixture
def paced_upstream() -> Iterator[FakeUpstream]:
    # Paced so that every stream is still open while the last ones start.
    with FakeUpstream(token_interval=0.2) as up:
        yield up


@pytest.mark.timeout(120)
def test_two_thousand_concurrent_streams_use_a_thread_count_that_does_not_grow_with_them(
    paced_upstream: FakeUpstream,
) -> None:
    provider = openai_provider(
        paced_upstream,
        models("healthy"),
        max_connections=STREAMS + 100,
        timeouts={"connect": 30, "first_token": 60, "idle": 60, "total": 120},
    )
    system = runestone.start(
        config(
            {"up": provider},
            {"m": ["up/healthy"]},
            pool={"max_in_flight": STREAMS + 100, "request_timeout": 120},
        ),
        configure_logs=False,
    )
    baseline = threading.active_count()
    peak = baseline
    open_streams = 0
    most_open = 0

    async def one() -> str:
        nonlocal peak, open_streams, most_open
        stream = await system.astream(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        )
        open_streams += 1
        most_open = max(most_open, open_streams)
        text: list[str] = []
        ended = None
        async for event in stream:
            peak = max(peak, threading.active_count())
            if isinstance(event, TextDelta):
                text.append(event.text)
            else:
                ended = event
        open_streams -= 1
        assert isinstance(ended, Done), ended
        return "".join(text)

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(one() for _ in range(STREAMS)))

    try:
        texts = asyncio.run(all_of_them())
    finally:
        system.stop()
    assert texts == [KNOWN_TEXT] * STREAMS
    assert most_open > STREAMS // 2  # they really were in flight together
    # A thread per stream would add thousands; a few come and go (aiohttp's resolver,
    # the data plane's executor) whatever the number of streams.
    assert peak - baseline <= 8, (baseline, peak)


def test_a_request_on_the_systems_own_loop_crosses_no_thread(fake_upstream: FakeUpstream) -> None:
    """Under ``runestone serve`` the system runs on the server's loop: from the request's
    arrival to its last event, nothing of it may hop to another thread and back."""
    cfg = config({"up": openai_provider(fake_upstream, models("healthy"))}, {"m": ["up/healthy"]})
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    async def main() -> tuple[list[object], list[object]]:
        loop = asyncio.get_running_loop()
        system = await asyncio.to_thread(
            runestone.start, cfg, data_plane=DataPlane.attached(loop), configure_logs=False
        )
        try:
            warm = [e async for e in await system.astream(request)]  # connects, pools
            assert isinstance(warm[-1], Done)
            crossings: list[object] = []
            original = loop.call_soon_threadsafe

            def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
                crossings.append(callback)
                return original(callback, *args, **kwargs)

            loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
            try:
                events = [e async for e in await system.astream(request)]
            finally:
                loop.call_soon_threadsafe = original  # type: ignore[method-assign]
            return events, crossings
        finally:
            await system.astop()

    events, crossings = asyncio.run(main())
    assert isinstance(events[-1], Done)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == KNOWN_TEXT
    assert crossings == []
