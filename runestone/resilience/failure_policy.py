"""The failure-class table of ARCHITECTURE §4, written down once as data.

Both the circuit breaker and the retry decision read :data:`FAILURE_POLICIES`;
nothing else in Runestone decides per error class what a failure means.

=====================  ==========  ==============  =========  =============
error class            retry same  fail over       circuit    resumable (§3)
=====================  ==========  ==============  =========  =============
rate_limited           yes         next            cooling    no
server_error           yes         next            failure    no
connection_error       yes         next            failure    no
connect/headers/
first_token/idle/
total timeout          no          next            failure    no
stream_cut, malformed  yes         next            failure    yes
context_length         no          larger context  none       no
content_policy,
bad_request            no          none            none       no
authentication         no          next            failure    no
internal (a bug of     no          none            none       no
ours, not upstream)
=====================  ==========  ==============  =========  =============

"Retry same" and "fail over" hold before the commit point only; after it a
failure is an in-band error unless the class is *resumable* and a candidate can
continue the stream (ARCHITECTURE §3).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from runestone.exceptions import ErrorClass

__all__ = ["FAILURE_POLICIES", "CircuitEffect", "FailoverScope", "FailurePolicy", "failure_policy"]


class FailoverScope(enum.StrEnum):
    """Where a failed request may go next."""

    NONE = "none"
    """Nowhere: the provider's reason is the answer (a client error)."""
    NEXT = "next"
    """The next candidate of the plan."""
    LARGER_CONTEXT = "larger_context"
    """Only a candidate with a larger context window (``context_window_fallbacks``)."""


class CircuitEffect(enum.StrEnum):
    """What one failure does to its provider's circuit breaker."""

    NONE = "none"
    """Nothing: the provider answered properly, the request was at fault."""
    FAILURE = "failure"
    """Counts as a failure towards opening the circuit."""
    COOLING = "cooling"
    """Pauses the provider for its ``Retry-After`` without counting as a failure."""


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """How one :class:`ErrorClass` is handled (one row of the table above)."""

    retry_same: bool
    failover: FailoverScope
    circuit: CircuitEffect
    resumable: bool = False

    @property
    def counts_against_circuit(self) -> bool:
        """True when the failure counts towards opening the circuit."""
        return self.circuit is CircuitEffect.FAILURE


_RETRYABLE = FailurePolicy(True, FailoverScope.NEXT, CircuitEffect.FAILURE)
_SILENT_ROUTE = FailurePolicy(False, FailoverScope.NEXT, CircuitEffect.FAILURE)
_CUT = FailurePolicy(True, FailoverScope.NEXT, CircuitEffect.FAILURE, resumable=True)
_CLIENT = FailurePolicy(False, FailoverScope.NONE, CircuitEffect.NONE)

FAILURE_POLICIES: Mapping[ErrorClass, FailurePolicy] = MappingProxyType(
    {
        ErrorClass.RATE_LIMITED: FailurePolicy(True, FailoverScope.NEXT, CircuitEffect.COOLING),
        ErrorClass.SERVER_ERROR: _RETRYABLE,
        ErrorClass.CONNECTION_ERROR: _RETRYABLE,
        # A route that stayed silent once will most likely stay silent: go elsewhere.
        ErrorClass.CONNECT_TIMEOUT: _SILENT_ROUTE,
        ErrorClass.HEADERS_TIMEOUT: _SILENT_ROUTE,
        ErrorClass.FIRST_TOKEN_TIMEOUT: _SILENT_ROUTE,
        # A stall after content is a cut stream in all but name: continued elsewhere.
        ErrorClass.IDLE_TIMEOUT: FailurePolicy(
            False, FailoverScope.NEXT, CircuitEffect.FAILURE, resumable=True
        ),
        ErrorClass.TOTAL_TIMEOUT: _SILENT_ROUTE,
        ErrorClass.STREAM_CUT: _CUT,
        ErrorClass.MALFORMED: _CUT,
        ErrorClass.CONTEXT_LENGTH: FailurePolicy(
            False, FailoverScope.LARGER_CONTEXT, CircuitEffect.NONE
        ),
        ErrorClass.CONTENT_POLICY: _CLIENT,
        ErrorClass.BAD_REQUEST: _CLIENT,
        # A bad key makes the provider unusable, but another provider may well answer.
        ErrorClass.AUTHENTICATION: _SILENT_ROUTE,
        # Our own code failed: another try or another provider would hide the bug behind
        # an upstream's name, and the provider did nothing to deserve a failure.
        ErrorClass.INTERNAL: FailurePolicy(False, FailoverScope.NONE, CircuitEffect.NONE),
    }
)
"""Every :class:`ErrorClass` mapped to its handling (ARCHITECTURE §4)."""


def failure_policy(error_class: ErrorClass) -> FailurePolicy:
    """The handling of ``error_class``; a ``ValueError`` names an unknown class."""
    try:
        return FAILURE_POLICIES[ErrorClass(error_class)]
    except (KeyError, ValueError):
        raise ValueError(f"error_class: unknown failure class {error_class!r}") from None
