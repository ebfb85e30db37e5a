"""The data plane: its loop thread, the way in, the sinks out, and a clean stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from runestone.io import AsyncSink, DataPlane, ThreadSink, new_event_loop

WAIT = 5.0


@pytest.fixture
def plane() -> Iterator[DataPlane]:
    with DataPlane() as data_plane:
        yield data_plane


async def numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


class Watched:
    """An endless source that reports, across threads, how far it got and when it was closed."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.closed = threading.Event()
        self.cancelled = threading.Event()

    async def source(self) -> AsyncIterator[int]:
        try:
            self.started.set()
            yield 0
            await asyncio.Event().wait()  # never set: only cancellation ends this
            yield 1
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        finally:
            self.closed.set()


# --------------------------------------------------------------------------- the loop


def test_the_loop_runs_in_its_own_named_thread(plane: DataPlane) -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert plane.run(where()) == "runestone-io"
    assert plane.running
    assert plane.thread is not None
    assert plane.thread is not threading.current_thread()
    assert not plane.in_loop_thread()


def test_submit_returns_a_future_of_the_result(plane: DataPlane) -> None:
    future = plane.submit(asyncio.sleep(0, result="done"))
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(WAIT) == "done"


def test_call_soon_threadsafe_runs_the_callback_on_the_loop(plane: DataPlane) -> None:
    seen: list[str] = []
    ran = threading.Event()

    def callback(tag: str) -> None:
        seen.append(f"{tag}:{threading.current_thread().name}")
        ran.set()

    plane.call_soon_threadsafe(callback, "cb")
    assert ran.wait(WAIT)
    assert seen == ["cb:runestone-io"]


def test_stop_cancels_tasks_closes_registered_things_and_joins_the_thread() -> None:
    plane = DataPlane().start()
    watched = Watched()
    closed: list[str] = []

    class Session:
        async def aclose(self) -> None:
            closed.append(threading.current_thread().name)

    plane.register_closeable(Session())
    gone = Session()
    plane.register_closeable(gone)
    plane.unregister_closeable(gone)

    async def drain() -> None:
        async for _ in watched.source():
            pass

    pending = plane.submit(drain())

    async def in_executor() -> str:
        return await asyncio.get_running_loop().run_in_executor(None, threading.current_thread)

    executor_thread = plane.run(in_executor())
    assert watched.started.wait(WAIT)
    plane.stop()
    assert watched.cancelled.is_set()
    assert pending.cancelled()
    assert closed == ["runestone-io"]
    assert plane.thread is not None
    assert not plane.thread.is_alive()
    assert not executor_thread.is_alive()  # type: ignore[attr-defined]
    plane.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        plane.submit(asyncio.sleep(0))
    with pytest.raises(RuntimeError, match="cannot be restarted"):
        plane.start()


def test_stop_from_the_loop_itself_is_refused(plane: DataPlane) -> None:
    async def stop_from_inside() -> None:
        plane.stop()

    with pytest.raises(RuntimeError, match="deadlock"):
        plane.run(stop_from_inside())


def test_run_from_the_loop_itself_is_refused(plane: DataPlane) -> None:
    async def run_from_inside() -> None:
        plane.run(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="await instead"):
        plane.run(run_from_inside())


def test_a_plain_asyncio_loop_is_available_without_uvloop() -> None:
    loop = new_event_loop(use_uvloop=False)
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


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


def test_an_attached_data_plane_runs_on_the_callers_loop_and_closes_there() -> None:
    closed: list[str] = []

    class Closeable:
        async def aclose(self) -> None:
            closed.append("closed")

    async def main() -> None:
        plane = DataPlane.attached(asyncio.get_running_loop())
        assert plane.start() is plane, "no thread of its own to start"
        assert plane.in_loop_thread()
        plane.register_closeable(Closeable())
        result = await asyncio.wrap_future(plane.submit(asyncio.sleep(0, "ran")))
        assert result == "ran"
        with pytest.raises(RuntimeError, match="aclose"):
            plane.stop()
        await plane.aclose()
        assert closed == ["closed"]

    asyncio.run(main())


# --------------------------------------------------------------------------- attached


class Closeable:
    def __init__(self) -> None:
        self.closed_on: list[str] = []

    async def aclose(self) -> None:
        self.closed_on.append(threading.current_thread().name)


def test_an_attached_data_plane_runs_on_the_callers_loop_without_a_thread() -> None:
    session = Closeable()

    async def serve() -> tuple[int, bool, str]:
        plane = DataPlane.attached(asyncio.get_running_loop())
        assert plane.start() is plane  # nothing to start
        assert plane.thread is None
        assert plane.is_attached
        assert plane.in_loop_thread()
        plane.register_closeable(session)
        # Another thread reaches the loop through the plane, as actors do.
        result = await asyncio.to_thread(lambda: plane.submit(asyncio.sleep(0, 41)).result(WAIT))
        with pytest.raises(RuntimeError, match="aclose"):
            plane.stop()
        await plane.aclose()
        with pytest.raises(RuntimeError, match="not running"):
            plane.submit(asyncio.sleep(0))
        return result + 1, plane.running, threading.current_thread().name

    answer, running, thread_name = asyncio.run(serve())
    assert (answer, running) == (42, False)
    assert session.closed_on == [thread_name]


def test_stopping_an_attached_data_plane_from_another_thread_leaves_the_loop_running() -> None:
    session = Closeable()

    async def serve() -> bool:
        plane = DataPlane.attached(asyncio.get_running_loop())
        plane.register_closeable(session)
        await asyncio.to_thread(plane.stop)
        await asyncio.sleep(0)  # the loop is still ours and still runs
        return plane.running

    assert asyncio.run(serve()) is False
    assert len(session.closed_on) == 1


def test_aclose_on_an_owned_data_plane_closes_sessions_but_stop_still_ends_the_thread() -> None:
    plane = DataPlane().start()
    session = Closeable()
    plane.register_closeable(session)
    plane.run(plane.aclose())
    assert session.closed_on == ["runestone-io"]
    assert plane.running
    plane.stop()
    assert plane.thread is not None
    assert not plane.thread.is_alive()
