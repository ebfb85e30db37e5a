"""Async sources for the data-plane and sink tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator


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
