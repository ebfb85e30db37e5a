"""The request context: what one request carries across its attempts and its task's restarts.

One context per admitted request, built by the System and handed to every
incarnation of its stream task. It is where the commit point is decided
(:attr:`RequestContext.committed`), where the one terminal event is claimed
(:meth:`RequestContext.claim_terminal`), and where an attempt left running by a
crashed or stopped task is fenced off (:meth:`RequestContext.fence`).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runestone.clock import Cancellable
    from runestone.exceptions import ProviderError
    from runestone.messages import ChatRequest, Event
    from runestone.request.attempt import AttemptOutcome
    from runestone.sinks import Sink

__all__ = ["RequestContext", "RequestOutcome"]


class RequestOutcome(enum.StrEnum):
    """How a request ended, as its terminal event says and the requests metric counts it."""

    OK = "ok"
    """``Done``: the answer is whole."""
    ERROR = "error"
    """``StreamError``: it failed (before or after the commit point)."""


@dataclass(slots=True)
class RequestContext:
    """What one request carries across attempts and across stream-task restarts.

    Written by one attempt at a time (on the loop) and read by the stream task
    only after that attempt has ended, so it needs no lock of its own.
    """

    id: str
    request: ChatRequest
    sink: Sink[Event]
    deadline: float
    delivered: list[str] = field(default_factory=list)
    delivered_tools: bool = False
    attempts: list[AttemptOutcome] = field(default_factory=list)
    restarts: int = 0
    crashes: int = 0
    """How often its stream task crashed (not counting restarts with its supervisor)."""
    cut_error: ProviderError | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    guard: Cancellable | None = None
    """The request's one deadline timer, armed at admission (``stream_task.expire``)."""
    on_deadline: Callable[[], bool] | None = None
    """How that timer reaches the stream task running the request now (False: it cannot)."""
    owner: object | None = None
    """The attempt allowed to deliver now; any other (one a crashed or stopped task left
    running while its cancellation is on its way) is fenced off."""
    _claim: threading.Lock = field(default_factory=threading.Lock)

    def own(self, token: object) -> None:
        """Let the attempt holding ``token`` deliver; fence off every other."""
        with self._claim:
            self.owner = token

    def fence(self) -> None:
        """No attempt may deliver until the next :meth:`own`. Once this returns, what
        ``delivered`` and ``committed`` say is all a fenced attempt will ever deliver."""
        with self._claim:
            self.owner = None

    def deliver(self, token: object, text: str | None) -> bool:
        """Record content about to reach the caller (``None``: content other than text, a
        tool-call delta or a thinking block, which no continuation can extend), unless
        the attempt holding ``token`` has been fenced off."""
        with self._claim:
            if self.owner is not token:
                return False
            if text is None:
                self.delivered_tools = True
            else:
                self.delivered.append(text)
            return True

    def claim_terminal(self, token: object = None) -> bool:
        """True exactly once: to whoever may now send the request's one terminal event
        (given ``token``, only to the attempt that holds it)."""
        with self._claim:
            if self.finished.is_set() or (token is not None and self.owner is not token):
                return False
            self.finished.set()
        guard = self.guard
        if guard is not None:
            guard.cancel()
        return True

    @property
    def stream(self) -> bool:
        return self.request.stream

    @property
    def committed(self) -> bool:
        """Content has reached the caller: the commit point has passed."""
        return bool(self.delivered) or self.delivered_tools

    @property
    def delivered_text(self) -> str:
        return "".join(self.delivered)
