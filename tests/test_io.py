"""The data plane: its loop thread, the way in, the way out, and a clean stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from runestone.io import DataPlane, new_event_loop
from tests.sources import Watched

WAIT = 5.0


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


# --------------------------------------------------------------------------- attached


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
