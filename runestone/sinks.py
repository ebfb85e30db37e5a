"""Sinks: the bounded channels that carry a request's events from the loop to its consumer.

The producer ``await sink.send(event)`` on the data-plane loop (waiting only when
the consumer is ``maxsize`` events behind); the consumer iterates —
:class:`ThreadSink` from any thread (``for event in sink``), :class:`AsyncSink`
from any event loop (``async for event in sink``). Closing the consumer's side
(``close()`` / ``aclose()``) cancels the producer promptly, so its upstream
connection is released at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

__all__ = ["DEFAULT_SINK_SIZE", "AsyncSink", "Sink", "ThreadSink"]

T = TypeVar("T")

DEFAULT_SINK_SIZE = 256
"""How many unread events a sink holds before its producer waits."""


class Sink(Generic[T]):
    """The producer's side of a bounded event channel, used on the producer's loop.

    ``send`` appends an item, waiting only while ``maxsize`` items are unread;
    ``finish`` ends the stream, optionally with an exception the consumer raises.
    Once the consumer has closed its side, ``send`` drops items, ``cancelled``
    is true and the attached producer has been cancelled.

    A consumer reads it through a :class:`ThreadSink` or an :class:`AsyncSink`
    wrapped around it; the producer holds only this object, so a consumer that
    is dropped without closing is still garbage-collected (and then cancels).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        maxsize: int = DEFAULT_SINK_SIZE,
        whole: bool = False,
    ):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self._loop = loop
        self._maxsize = maxsize
        # A consumer that wants the whole answer is woken once, at its end (or when the
        # sink is full), not once per event: each wake-up is a thread crossing.
        self._whole = whole
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a thread consumer waits on it
        self._waiting = False
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self._items: deque[T] = deque()
        self._closed = False
        self._error: BaseException | None = None
        self._cancelled = False
        self._space: asyncio.Future[None] | None = None
        self._producer: concurrent.futures.Future[Any] | asyncio.Future[Any] | None = None

    @property
    def cancelled(self) -> bool:
        """The consumer went away: nothing sent now will be read."""
        return self._cancelled

    @property
    def closed(self) -> bool:
        """The producer has ended the stream."""
        return self._closed

    def attach(self, producer: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> None:
        """Cancel ``producer`` when the consumer goes away."""
        self._producer = producer
        if self._cancelled:
            producer.cancel()

    async def send(self, item: T) -> None:
        """Hand ``item`` to the consumer (on the sink's loop)."""
        space: asyncio.Future[None] | None = None
        with self._lock:
            if self._cancelled or self._closed:
                return
            self._items.append(item)
            full = len(self._items) >= self._maxsize
            if full or not self._whole:
                self._wake_consumer()
            if full:
                space = self._space = self._loop.create_future()
        if space is not None:
            await space

    def put(self, item: T) -> None:
        """Hand ``item`` over without waiting for space (from any thread): for the few
        events that end a stream, which must not wait on a slow consumer."""
        with self._lock:
            if self._cancelled or self._closed:
                return
            self._items.append(item)
            if not self._whole or len(self._items) >= self._maxsize:
                self._wake_consumer()

    def finish(self, error: BaseException | None = None) -> None:
        """End the stream; the consumer raises ``error`` after the items before it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._error = error
            self._wake_consumer()

    # ---- for the consumer fronts

    def _wake_consumer(self) -> None:
        """Called with the lock held after an item or the end arrived."""
        if self._waiting:
            self._ready.notify()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            loop, future = waiter
            if loop is self._loop and _running_loop() is loop:
                _resolve(future)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    def _take(self) -> T:
        """Pop the next item (lock held) and let a producer waiting for space go on."""
        item = self._items.popleft()
        space = self._space
        if space is not None and len(self._items) < self._maxsize:
            self._space = None
            self._loop.call_soon_threadsafe(_resolve, space)
        return item

    def _end(self) -> BaseException | None:
        error = self._error
        if isinstance(error, asyncio.CancelledError):
            # Consumers may be actors: never hand them a BaseException.
            return concurrent.futures.CancelledError()
        return error

    def _cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            self._items.clear()
            space, self._space = self._space, None
            # A producer that finished the stream has said its last word: closing the
            # consumer afterwards must not cancel what it still does (its bookkeeping).
            producer = None if self._closed else self._producer
            self._ready.notify_all()
            self._wake_consumer()
        if space is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_resolve, space)
        if producer is not None:
            if isinstance(producer, asyncio.Future) and _running_loop() is not self._loop:
                # An asyncio task is cancelled on its own loop only.
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    self._loop.call_soon_threadsafe(producer.cancel)
            else:
                producer.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ThreadSink(Generic[T]):
    """What a thread iterates: ``for event in sink`` blocks until the next one.

    The producer side is :attr:`sink` (``send``/``finish`` are also offered here).
    Not for use on an event loop (it would block it); see :class:`AsyncSink`.
    ``whole``: the reader wants the whole stream, and is woken only at its end.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        maxsize: int = DEFAULT_SINK_SIZE,
        whole: bool = False,
    ):
        self.sink: Sink[T] = Sink(loop, maxsize=maxsize, whole=whole)

    async def send(self, item: T) -> None:
        await self.sink.send(item)

    def finish(self, error: BaseException | None = None) -> None:
        self.sink.finish(error)

    def attach(self, producer: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> None:
        self.sink.attach(producer)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        return self.get()

    def get(self, timeout: float | None = None) -> T:
        """The next item; ``StopIteration`` at the end; ``TimeoutError`` after ``timeout``."""
        sink = self.sink
        with sink._ready:
            while not sink._items:
                if sink._cancelled:
                    raise StopIteration
                if sink._closed:
                    error = sink._end()
                    if error is not None:
                        raise error
                    raise StopIteration
                sink._waiting = True
                try:
                    if not sink._ready.wait(timeout):
                        raise TimeoutError(f"no event within {timeout} s")
                finally:
                    sink._waiting = False
            return sink._take()

    def close(self) -> None:
        """Stop reading; the producer is cancelled promptly."""
        self.sink._cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        sink = getattr(self, "sink", None)  # None if __init__ failed
        if sink is not None and not sink._closed and not sink._cancelled:
            with contextlib.suppress(Exception):
                sink._cancel()


class AsyncSink(Generic[T]):
    """What an asyncio task iterates (``async for``), on the producer's loop or another.

    The producer side is :attr:`sink` (``send``/``finish`` are also offered here).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, maxsize: int = DEFAULT_SINK_SIZE):
        self.sink: Sink[T] = Sink(loop, maxsize=maxsize)

    async def send(self, item: T) -> None:
        await self.sink.send(item)

    def finish(self, error: BaseException | None = None) -> None:
        self.sink.finish(error)

    def attach(self, producer: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> None:
        self.sink.attach(producer)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        sink = self.sink
        loop = asyncio.get_running_loop()
        while True:
            with sink._lock:
                if sink._cancelled:
                    raise StopAsyncIteration
                if sink._items:
                    return sink._take()
                if sink._closed:
                    error = sink._end()
                    if error is not None:
                        raise error
                    raise StopAsyncIteration
                future: asyncio.Future[None] = loop.create_future()
                sink._waiter = (loop, future)
            try:
                await future
            except asyncio.CancelledError:
                with sink._lock:
                    if sink._waiter is not None and sink._waiter[1] is future:
                        sink._waiter = None
                raise

    async def aclose(self) -> None:
        """Stop reading; the producer is cancelled promptly."""
        self.sink._cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        sink = getattr(self, "sink", None)
        if sink is not None and not sink._closed and not sink._cancelled:
            with contextlib.suppress(Exception):
                sink._cancel()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
