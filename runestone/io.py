"""The data plane: one asyncio event loop for all upstream I/O, and the ways in and out of it.

Embedded, :class:`DataPlane` runs the loop (uvloop when importable) in a thread
of its own named ``runestone-io``. Other threads — actors, a synchronous caller
— reach it without ever blocking it:

- ``submit(coro)`` runs a coroutine there and returns a ``concurrent.futures.Future``;
- ``call_soon_threadsafe(cb, *args)`` runs a callback there;
- a *sink* (:mod:`runestone.sinks`) carries a stream of events out:
  :meth:`DataPlane.iterate` and :meth:`DataPlane.aiterate` pump an async
  iterable into one, for a thread or an event loop to read.

``stop()`` cancels every task still running, closes what was registered with
:meth:`DataPlane.register_closeable` (provider sessions), shuts the default
executor down and joins the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterable, Callable, Coroutine
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import structlog

from runestone.sinks import DEFAULT_SINK_SIZE, AsyncSink, Sink, ThreadSink

__all__ = ["AsyncCloseable", "DataPlane", "new_event_loop"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

THREAD_NAME = "runestone-io"


def new_event_loop(*, use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed and wanted, else asyncio's."""
    if use_uvloop:
        try:
            import uvloop  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            pass
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


class AsyncCloseable(Protocol):
    """Something the data plane closes on stop (a provider and its HTTP session)."""

    async def aclose(self) -> None: ...


class DataPlane:
    """The data-plane event loop running in its own thread.

    >>> with DataPlane() as plane:
    ...     plane.submit(asyncio.sleep(0, "ok")).result()
    'ok'
    """

    def __init__(self, *, name: str = THREAD_NAME, use_uvloop: bool = True) -> None:
        self._name = name
        self._use_uvloop = use_uvloop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closeables: list[AsyncCloseable] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._stopped = False
        self._attached_thread: int | None = None

    @classmethod
    def attached(cls, loop: asyncio.AbstractEventLoop, *, name: str = "attached") -> Self:
        """A data plane on a loop that someone else runs (``runestone serve``: uvicorn's).

        It starts and joins no thread. Call it from the loop's own thread;
        :meth:`aclose` (awaited there) closes what was registered.
        """
        plane = cls(name=name)
        plane._loop = loop
        plane._attached_thread = threading.get_ident()
        return plane

    @property
    def is_attached(self) -> bool:
        """Runs on someone else's loop (see :meth:`attached`)."""
        return self._attached_thread is not None

    async def aclose(self) -> None:
        """Close what was registered, on the loop (the way an attached data plane stops).

        On a data plane that owns its thread this only closes the registered
        closeables; :meth:`stop` still ends the thread.
        """
        attached = self._attached_thread is not None
        with self._lock:
            if self._stopped or (attached and self._stopping):
                return
            if attached:
                self._stopping = True
            closeables, self._closeables = self._closeables[::-1], []
        for closeable in closeables:
            try:
                await closeable.aclose()
            except Exception:  # one bad close must not leak the others
                log.exception("data_plane_close_failed", closeable=repr(closeable))
        if attached:
            self._stopped = True

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running" if self.running else "new"
        return f"<DataPlane {self._name!r} {state}>"

    # ---- lifecycle

    def start(self) -> Self:
        """Start the loop thread; returns once the loop is running. Idempotent."""
        with self._lock:
            if self._stopped or self._stopping:
                raise RuntimeError("a stopped DataPlane cannot be restarted; make a new one")
            if self._thread is not None or self._attached_thread is not None:
                return self
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._run, args=(ready, failure), name=self._name, daemon=True
            )
            self._thread = thread
            thread.start()
        ready.wait()
        if failure:
            raise RuntimeError("the data-plane loop failed to start") from failure[0]
        return self

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            loop = new_event_loop(use_uvloop=self._use_uvloop)
            asyncio.set_event_loop(loop)
        except BaseException as exc:  # noqa: BLE001 - reported to start(), which raises it
            failure.append(exc)
            ready.set()
            return
        self._loop = loop
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (for ``run_coroutine_threadsafe`` and sinks)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the DataPlane is not started")
        return loop

    @property
    def running(self) -> bool:
        loop = self._loop
        return loop is not None and loop.is_running() and not self._stopping

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the data-plane thread."""
        if self._attached_thread is not None:
            return threading.get_ident() == self._attached_thread
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel all tasks, close registered closeables, stop the loop and join the thread.

        Idempotent. Must not be called from the loop itself.
        """
        if self._attached_thread is not None:
            if self.in_loop_thread():
                raise RuntimeError("stop an attached DataPlane with `await aclose()` on its loop")
            if self.running:
                asyncio.run_coroutine_threadsafe(self.aclose(), self.loop).result(timeout)
            return
        with self._lock:
            if self._stopped or self._stopping:
                return
            if self._thread is None:
                self._stopped = True
                return
            if self.in_loop_thread():
                raise RuntimeError("DataPlane.stop() called from its own loop; it would deadlock")
            self._stopping = True
        loop = self.loop
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        except concurrent.futures.TimeoutError:
            log.error("data_plane_shutdown_timeout", timeout=timeout)
        except Exception:  # stopping must go on whatever a closeable did
            log.exception("data_plane_shutdown_failed")
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("data_plane_thread_did_not_exit", timeout=timeout)
            self._stopped = True

    async def _shutdown(self) -> None:
        me = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not me]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with self._lock:
            closeables, self._closeables = self._closeables[::-1], []
        for closeable in closeables:
            try:
                await closeable.aclose()
            except Exception:  # one bad close must not leak the others
                log.exception("data_plane_close_failed", closeable=repr(closeable))
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- the way in

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; cancelling the future cancels the task."""
        if not self.running:
            coro.close()
            raise RuntimeError("the DataPlane is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> asyncio.Handle:
        """Run ``callback(*args)`` on the loop, soon."""
        if not self.running:
            raise RuntimeError("the DataPlane is not running")
        return self.loop.call_soon_threadsafe(callback, *args)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (never from the loop thread)."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("DataPlane.run() called from its own loop; await instead")
        return self.submit(coro).result(timeout)

    def register_closeable(self, closeable: AsyncCloseable) -> None:
        """Close ``closeable`` (``await closeable.aclose()``) when the data plane stops."""
        with self._lock:
            if self._stopping or self._stopped:
                raise RuntimeError("the DataPlane is stopping")
            self._closeables.append(closeable)

    def unregister_closeable(self, closeable: AsyncCloseable) -> None:
        """Forget ``closeable`` (the caller closes it itself)."""
        with self._lock, contextlib.suppress(ValueError):
            self._closeables.remove(closeable)

    # ---- the way out

    def iterate(
        self, source: AsyncIterable[T], *, maxsize: int = DEFAULT_SINK_SIZE
    ) -> ThreadSink[T]:
        """Run ``async for`` over ``source`` on the loop; iterate its items in this thread.

        Closing the returned sink (``close()``, ``with``, or garbage collection)
        cancels the producing coroutine.
        """
        front: ThreadSink[T] = ThreadSink(self.loop, maxsize=maxsize)
        # The pump holds only the producer side, so a dropped front can be collected.
        front.attach(self.submit(pump(source, front.sink)))
        return front

    def aiterate(
        self, source: AsyncIterable[T], *, maxsize: int = DEFAULT_SINK_SIZE
    ) -> AsyncSink[T]:
        """Like :meth:`iterate` for an asyncio consumer on any loop (``async for``)."""
        front: AsyncSink[T] = AsyncSink(self.loop, maxsize=maxsize)
        front.attach(self.submit(pump(source, front.sink)))
        return front


async def pump(source: AsyncIterable[T], sink: Sink[T]) -> None:
    """Send every item of ``source`` to ``sink``, then close it (with the error, if any).

    On cancellation the source is closed at once (``aclose``), so an upstream
    response it holds is released without waiting for garbage collection.
    """
    iterator = aiter(source)
    try:
        async for item in iterator:
            await sink.send(item)
    except asyncio.CancelledError:
        sink.finish(concurrent.futures.CancelledError())
        raise
    except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
        sink.finish(exc)
    else:
        sink.finish()
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
