"""The sinks: a thread or an event loop reads what the loop produces, in order, bounded, and
closing the reading side cancels the producer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
from collections.abc import AsyncIterator

import pytest

from runestone.io import DataPlane
from runestone.sinks import AsyncSink, ThreadSink
from tests.sources import Watched, numbers

WAIT = 5.0


# --------------------------------------------------------------------------- thread sink


def test_a_thread_iterates_what_the_loop_produces_in_order(plane: DataPlane) -> None:
    assert list(plane.iterate(numbers(500), maxsize=8)) == list(range(500))


def test_an_error_in_the_source_is_raised_in_the_consumer_after_the_items_before_it(
    plane: DataPlane,
) -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ValueError("upstream broke")

    sink = plane.iterate(failing())
    assert next(sink) == 1
    assert next(sink) == 2
    with pytest.raises(ValueError, match="upstream broke"):
        next(sink)


def test_closing_the_iterator_cancels_the_producer_promptly(plane: DataPlane) -> None:
    watched = Watched()
    sink = plane.iterate(watched.source())
    assert next(sink) == 0
    sink.close()
    assert watched.closed.wait(WAIT)
    assert watched.cancelled.is_set()
    with pytest.raises(StopIteration):
        next(sink)


def test_leaving_a_with_block_cancels_the_producer(plane: DataPlane) -> None:
    watched = Watched()
    with plane.iterate(watched.source()) as sink:
        assert next(sink) == 0
    assert watched.closed.wait(WAIT)


def test_a_forgotten_iterator_cancels_its_producer(plane: DataPlane) -> None:
    watched = Watched()
    sink = plane.iterate(watched.source())
    assert next(sink) == 0
    del sink
    gc.collect()
    assert watched.closed.wait(WAIT)


def test_a_blocked_consumer_is_released_when_the_data_plane_stops() -> None:
    plane = DataPlane().start()
    watched = Watched()
    sink = plane.iterate(watched.source())
    assert next(sink) == 0
    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            next(sink)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    consumer = threading.Thread(target=consume, name="test-consumer")
    consumer.start()
    plane.stop()
    consumer.join(WAIT)
    assert not consumer.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], concurrent.futures.CancelledError)
    assert isinstance(outcome[0], Exception)  # never a BaseException into an actor


def test_get_with_a_timeout_gives_up(plane: DataPlane) -> None:
    watched = Watched()
    with plane.iterate(watched.source()) as sink:
        assert sink.get(timeout=WAIT) == 0
        with pytest.raises(TimeoutError):
            sink.get(timeout=0.05)


def test_a_full_sink_holds_the_producer_until_the_consumer_reads(plane: DataPlane) -> None:
    sink: ThreadSink[int] = ThreadSink(plane.loop, maxsize=3)
    sent: list[int] = []
    about_to_block = threading.Event()
    unblocked = threading.Event()

    async def produce() -> None:
        for i in range(3):
            if i == 2:
                about_to_block.set()
            await sink.send(i)
            sent.append(i)
            if i == 2:
                unblocked.set()
        sink.finish()

    producer = plane.submit(produce())
    sink.attach(producer)
    assert about_to_block.wait(WAIT)
    assert not unblocked.wait(0.2), "the producer ran past a full sink"
    assert sent == [0, 1]
    assert sink.get(timeout=WAIT) == 0
    assert unblocked.wait(WAIT)
    assert list(sink) == [1, 2]
    producer.result(WAIT)


def test_a_sink_refuses_a_size_below_one(plane: DataPlane) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ThreadSink(plane.loop, maxsize=0)


# --------------------------------------------------------------------------- async sink


def test_an_asyncio_caller_on_another_loop_iterates_the_events(plane: DataPlane) -> None:
    async def consume() -> list[int]:
        return [item async for item in plane.aiterate(numbers(300), maxsize=4)]

    assert asyncio.run(consume()) == list(range(300))


def test_an_async_consumer_gets_the_source_error(plane: DataPlane) -> None:
    async def failing() -> AsyncIterator[int]:
        yield 7
        raise KeyError("gone")

    async def consume() -> list[int]:
        got = []
        async for item in plane.aiterate(failing()):
            got.append(item)
        return got

    with pytest.raises(KeyError, match="gone"):
        asyncio.run(consume())


def test_closing_an_async_sink_cancels_the_producer(plane: DataPlane) -> None:
    watched = Watched()

    async def consume() -> int:
        async with plane.aiterate(watched.source()) as sink:
            return await anext(sink)

    assert asyncio.run(consume()) == 0
    assert watched.closed.wait(WAIT)
    assert watched.cancelled.is_set()


def test_an_async_sink_works_on_the_data_plane_loop_itself(plane: DataPlane) -> None:
    async def same_loop() -> list[int]:
        sink: AsyncSink[int] = AsyncSink(asyncio.get_running_loop(), maxsize=2)

        async def produce() -> None:
            for i in range(50):
                await sink.send(i)
            sink.finish()

        task = asyncio.get_running_loop().create_task(produce())
        sink.attach(task)
        got = [item async for item in sink]
        await task
        return got

    assert plane.run(same_loop()) == list(range(50))


def test_a_consumer_task_cancelled_while_waiting_leaves_the_sink_usable(plane: DataPlane) -> None:
    async def scenario() -> int:
        sink: AsyncSink[int] = AsyncSink(asyncio.get_running_loop())
        waiting = asyncio.get_running_loop().create_task(anext(sink))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await sink.send(5)
        return await anext(sink)

    assert plane.run(scenario()) == 5
