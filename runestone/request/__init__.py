"""One request on the data plane: its context, its admission slot and its upstream attempts.

None of it is an actor: the stream task (:mod:`runestone.actors.stream_task`) drives a
request's :class:`RequestContext` through :func:`run_attempt` on the loop, and
:class:`InFlight` counts the requests admitted and not yet ended.
"""

from __future__ import annotations

from runestone.request.admission import InFlight
from runestone.request.attempt import (
    AttemptMode,
    AttemptOutcome,
    OutcomeKind,
    attempt_request,
    run_attempt,
)
from runestone.request.context import RequestContext, RequestOutcome

__all__ = [
    "AttemptMode",
    "AttemptOutcome",
    "InFlight",
    "OutcomeKind",
    "RequestContext",
    "RequestOutcome",
    "attempt_request",
    "run_attempt",
]
