"""What becomes of a told message that no incarnation will ever handle.

OTP's rule is that a message to a dead process is lost, so every caller waiting
on one must be monitored and told. Ours: a message left unhandled by a crash is
handed to the next incarnation; one that can never be delivered (its child
stopped for good) is rejected, and a message that carries its own way back
defines ``undeliverable(error)`` to hear it. Nothing is dropped in silence.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import structlog

__all__ = ["Rejectable", "reject"]

log = structlog.get_logger(__name__)


@runtime_checkable
class Rejectable(Protocol):
    """A message whose sender waits for it: told, instead, when it cannot be delivered."""

    def undeliverable(self, error: BaseException) -> None: ...


def reject(messages: list[Any], error: BaseException) -> None:
    """Tell each message's sender that ``error`` keeps it from ever being handled."""
    dropped = 0
    for message in messages:
        if isinstance(message, Rejectable):
            try:
                message.undeliverable(error)
            except Exception as exc:  # noqa: BLE001 - one sender's failure must not stop the rest
                log.error("undeliverable_callback_failed", error=repr(exc))
        else:
            dropped += 1
    if dropped:
        log.warning("messages_undeliverable", count=dropped, reason=str(error))
