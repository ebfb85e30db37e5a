"""Planning: the ordered, de-duplicated list of candidates one request will try.

:func:`plan` resolves the requested name, filters, orders, and appends fallbacks:

1. The name resolves to primaries: an alias's targets in their order; a
   ``"provider/model"`` key; or every candidate serving a bare model name, in
   configuration order.
2. Each candidate must be configured, have the capabilities and room the
   request needs (:func:`runestone.routing.capabilities.unmet_requirement`),
   and have a breaker that would admit a call now (not open, not cooling).
3. The eligible primaries are ordered by the routing policy; then, for a primary
   without the room the request needs, its ``context_window_fallbacks``; then the
   configured ``fallbacks`` (of the requested name, then of each primary), in
   configuration order. Nothing appears twice.
4. When every capable candidate is held back by its breaker, the plan is in
   *panic mode*: it holds the one whose breaker admits again soonest (its
   ``retry_at``), rather than failing outright. A circuit forced open is never
   tried.
5. After a provider answered "context length exceeded" (``context_exceeded=``),
   the plan holds only larger-context candidates: that candidate's (and the
   requested name's) ``context_window_fallbacks`` first, then — when the failed
   window is known — any candidate of the normal plan with a larger window.

Anything left out is listed in :attr:`Plan.excluded` with the reason. When
nothing at all can serve the request, :class:`NoCandidatesError` says why, in
words and as its :class:`~runestone.exceptions.NoCandidatesReason`: an unknown
name; every capable candidate held back; candidates able but without the room;
or none able at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from runestone.exceptions import NoCandidatesError, NoCandidatesReason
from runestone.resilience import CircuitState
from runestone.routing.candidate import Candidate
from runestone.routing.capabilities import serves_kind, unmet_requirement
from runestone.routing.policies import RoutingPolicy
from runestone.routing.requirements import Requirements
from runestone.routing.table import RoutingTable

__all__ = ["Exclusion", "Plan", "plan"]


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A candidate left out of a plan, and why."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The candidates to try for one request, in order; never empty."""

    model: str
    candidates: tuple[Candidate, ...]
    panic: bool = False
    excluded: tuple[Exclusion, ...] = ()

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def keys(self) -> tuple[str, ...]:
        """The candidates' ``"provider/model"`` keys, in order."""
        return tuple(candidate.key for candidate in self.candidates)


def plan(
    model: str,
    requirements: Requirements,
    candidates: Sequence[Candidate] | Mapping[str, Candidate],
    table: RoutingTable,
    policy: RoutingPolicy,
    *,
    now: float,
    context_exceeded: Candidate | str | None = None,
) -> Plan:
    """Plan the candidates for a request naming ``model`` (see the module docstring).

    ``candidates`` is every configured (provider, model) with its live state, as
    a sequence or a mapping by key; ``now`` is the monotonic time the breaker
    times (``retry_at``) are compared with. ``context_exceeded`` names the
    candidate (or its key) that answered "context length exceeded".
    """
    index = _index(candidates)
    primaries = _resolve(model, table, index)
    planner = _Planner(requirements, index, now)

    if context_exceeded is None:
        ranked = policy.order(planner.take(primaries), requirements)
        # A primary without room for the request hands it to its context-window
        # fallbacks at once, as an upstream's "context length exceeded" would.
        cw = table.context_window_fallbacks
        larger = planner.take([k for key in planner.small for k in cw.get(key, ())])
        fallbacks = planner.take(_fallback_keys(model, table, ranked, primaries))
        chosen = ranked + larger + fallbacks
    else:
        failed_key = (
            context_exceeded.key if isinstance(context_exceeded, Candidate) else context_exceeded
        )
        failed = index.get(failed_key)
        planner.seen.add(failed_key)
        planner.floor = None if failed is None else failed.context_window
        cw = table.context_window_fallbacks
        configured = planner.take([*cw.get(failed_key, ()), *cw.get(model, ())])
        chosen = configured
        if planner.floor is not None:
            ranked = policy.order(planner.take(primaries), requirements)
            fallbacks = planner.take(_fallback_keys(model, table, ranked, primaries))
            chosen = configured + ranked + fallbacks

    if chosen:
        return Plan(model, tuple(chosen), excluded=tuple(planner.excluded))
    waiting = [c for c in planner.blocked if c.retry_at is not None]
    if waiting:
        soonest = min(waiting, key=_retry_time)
        return Plan(model, (soonest,), panic=True, excluded=tuple(planner.excluded))
    reasons = "; ".join(f"{e.key}: {e.reason}" for e in planner.excluded) or "no candidates"
    field = requirements.native_field
    if not any(e.reason.startswith(f"cannot carry {field} ") for e in planner.excluded):
        field = ""  # not why: every candidate that could carry it lacked something else
    raise NoCandidatesError(
        f"nothing can serve {model!r}: {reasons}", reason=planner.why_none(), field=field
    )


class _Planner:
    """Filters keys into eligible candidates, remembering what it left out and why."""

    __slots__ = (
        "blocked",
        "excluded",
        "floor",
        "index",
        "now",
        "requirements",
        "seen",
        "small",
    )

    def __init__(self, requirements: Requirements, index: Mapping[str, Candidate], now: float):
        self.requirements = requirements
        self.index = index
        self.now = now
        self.floor: int | None = None
        self.seen: set[str] = set()
        self.excluded: list[Exclusion] = []
        self.blocked: list[Candidate] = []
        self.small: list[str] = []
        """The candidates that had the capabilities asked for but not the room (window,
        output, or a context window no larger than the one exceeded), in order."""

    def why_none(self) -> NoCandidatesReason:
        """Why nothing was taken: held back wins (it passes), then room, then ability."""
        if self.blocked:
            return NoCandidatesReason.ALL_HELD_BACK
        if self.small:
            return NoCandidatesReason.CONTEXT_TOO_LONG
        return NoCandidatesReason.NO_CAPABLE_CANDIDATE

    def take(self, keys: Sequence[str]) -> list[Candidate]:
        eligible: list[Candidate] = []
        seen, index, now, floor = self.seen, self.index, self.now, self.floor
        needed = self.requirements.capabilities
        room = self.requirements.context_tokens
        max_tokens = self.requirements.max_tokens or 0
        wire = self.requirements.wire
        for key in keys:
            if key in seen:
                continue
            seen.add(key)
            candidate = index.get(key)
            if candidate is None:
                self.excluded.append(Exclusion(key, "not configured"))
                continue
            window, limit = candidate.context_window, candidate.max_output_tokens
            # The common case inline; unmet_requirement words the reason otherwise.
            kind = serves_kind(candidate, self.requirements) and (
                wire is None or wire in candidate.wires
            )
            fits = (
                kind
                and needed <= candidate.capabilities
                and (window is None or window >= room)
                and (limit is None or limit >= max_tokens)
            )
            reason = None if fits else unmet_requirement(candidate, self.requirements)
            if reason is not None and kind and needed <= candidate.capabilities:
                self.small.append(key)
            if reason is None and floor is not None and window is not None and window <= floor:
                reason = f"context window {window} not larger than the {floor} exceeded"
                self.small.append(key)
            if reason is None and candidate.is_blocked(now):
                self.blocked.append(candidate)
                reason = _blocked_reason(candidate, now)
            if reason is None:
                eligible.append(candidate)
            else:
                self.excluded.append(Exclusion(key, reason))
        return eligible


def _index(candidates: Sequence[Candidate] | Mapping[str, Candidate]) -> Mapping[str, Candidate]:
    if isinstance(candidates, Mapping):
        for key, candidate in candidates.items():
            if candidate.key != key:
                raise ValueError(f"candidates: key {key!r} holds {candidate.key!r}")
        return candidates
    index: dict[str, Candidate] = {}
    for candidate in candidates:
        if candidate.key in index:
            raise ValueError(f"candidates: {candidate.key!r} appears twice")
        index[candidate.key] = candidate
    return index


def _resolve(model: str, table: RoutingTable, index: Mapping[str, Candidate]) -> list[str]:
    if not isinstance(model, str) or not model:
        raise NoCandidatesError(
            f"no model named: {model!r}", reason=NoCandidatesReason.UNKNOWN_MODEL
        )
    alias = table.aliases.get(model)
    if alias is not None:
        return list(alias)
    if model in index:
        return [model]
    serving = sorted((c for c in index.values() if c.model == model), key=lambda c: c.priority)
    if not serving:
        raise NoCandidatesError(
            f"unknown model or alias {model!r}", reason=NoCandidatesReason.UNKNOWN_MODEL
        )
    return [c.key for c in serving]


def _fallback_keys(
    model: str, table: RoutingTable, ranked: Sequence[Candidate], primaries: Sequence[str]
) -> list[str]:
    # The requested name's fallbacks, then those of each primary: the chosen ones
    # in the policy's order first, then those left out (an open primary's
    # fallbacks are exactly what is needed).
    fallbacks = table.fallbacks
    keys = list(fallbacks.get(model, ()))
    order = [c.key for c in ranked]
    chosen = set(order)
    order += [key for key in primaries if key not in chosen]
    for key in order:
        keys.extend(fallbacks.get(key, ()))
    return keys


def _blocked_reason(candidate: Candidate, now: float) -> str:
    if candidate.retry_at is None:
        return "circuit forced open"
    what = "circuit open" if candidate.circuit is CircuitState.OPEN else "cooling down"
    return f"{what} for another {candidate.retry_at - now:.3g}s"


def _retry_time(candidate: Candidate) -> float:
    assert candidate.retry_at is not None  # only waiting candidates are compared
    return candidate.retry_at
