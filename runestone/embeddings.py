"""Running an embeddings request: the chat path's routing, breakers, retries and failover.

An :class:`~runestone.messages.EmbeddingRequest` names its model as chat does (an
alias or a ``provider/model``); the Router's plan, read from its snapshot, holds the
embedding models only (``capabilities: [embeddings]``). :func:`run_embeddings` tries
them in order, each through its provider's permit gate, with the provider's retry
policy, telling every outcome to the provider's actor so its breaker and health
figures count embeddings like any other call.

What differs from a chat request, on purpose:

- a fallback goes only to a model of the same ``dimensions`` as the first one (or as
  the request asks): vectors of another length would be a broken answer dressed up
  as a good one. A model whose dimensions are not configured passes, as an unknown
  context window does;
- there is nothing to stream and no commit point: an answer is whole or it fails;
- a provider whose gate refuses (open, half-open, cooling) is passed over, never
  probed: the chat traffic's probes decide when it is back;
- embeddings are not counted against ``pool.max_in_flight``; the request's deadline
  is ``pool.request_timeout``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import msgspec
import structlog

from runestone.clock import Clock
from runestone.directory import Directory, ProviderEntry
from runestone.exceptions import NoCandidatesReason, NoHealthyUpstreamError, ProviderError
from runestone.messages import EmbeddingAnswer, EmbeddingRequest
from runestone.request.attempt import AttemptOutcome, OutcomeKind
from runestone.resilience.retry import RetryAction, decide_retry
from runestone.routing.routes import Route

__all__ = ["run_embeddings", "same_dimensions"]

log = structlog.get_logger(__name__)


def same_dimensions(
    request: EmbeddingRequest, routes: Sequence[Route], directory: Directory
) -> list[Route]:
    """``routes`` whose models give vectors of the length the first one (or the request)
    gives; a model with no configured ``dimensions`` is kept."""
    wanted = request.dimensions
    kept: list[Route] = []
    for route in routes:
        size = _dimensions(directory.get(route.provider), route.model)
        if wanted is None:
            wanted = size
        if size is None or size == wanted:
            kept.append(route)
    return kept


async def run_embeddings(
    request: EmbeddingRequest,
    routes: Sequence[Route],
    directory: Directory,
    *,
    clock: Clock,
    deadline: float,
    rng: random.Random | None = None,
) -> EmbeddingAnswer:
    """The first answer along ``routes`` (see the module docstring); the last failure, or
    :class:`NoHealthyUpstreamError` when no route could be tried, when none answers."""
    rng = rng or random.Random()
    last_error: ProviderError | None = None
    for route in same_dimensions(request, routes, directory):
        entry = directory.get(route.provider)
        if entry is None or not entry.provider.embeds:
            continue
        asked = msgspec.structs.replace(request, model=route.model)
        attempt = 1
        while True:
            started = clock.monotonic()
            permit = entry.gate.grant(started)
            if permit is None:
                break  # held back by its breaker: the next route
            entry.gate.in_flight += 1
            try:
                answer = await entry.provider.embed(asked)
            except ProviderError as exc:
                latency = clock.monotonic() - started
                _book(
                    entry,
                    AttemptOutcome(
                        route.provider,
                        route.model,
                        OutcomeKind.FAILED,
                        latency,
                        error=exc,
                        permit=permit,
                    ),
                )
                last_error = exc
                decision = decide_retry(
                    entry.config.retry,
                    exc.error_class,
                    attempt=attempt,
                    now=clock.monotonic(),
                    rng=rng,
                    deadline=deadline,
                    retry_after=exc.retry_after,
                )
                log.info(
                    "embeddings_attempt_failed",
                    route=str(route),
                    error_class=exc.error_class.value,
                    decision=decision.action.value,
                )
                if decision.action is RetryAction.RETRY_SAME:
                    await asyncio.sleep(decision.delay)
                    attempt += 1
                    continue
                if decision.action is RetryAction.GIVE_UP:
                    raise
                break
            finally:
                entry.gate.in_flight -= 1
            latency = clock.monotonic() - started
            _book(
                entry,
                AttemptOutcome(route.provider, route.model, OutcomeKind.OK, latency, permit=permit),
            )
            return msgspec.structs.replace(answer, provider=route.provider, model=route.model)
    if last_error is not None:
        raise last_error
    raise NoHealthyUpstreamError(
        f"no embedding model of {request.model!r} could take the request now",
        reason=NoCandidatesReason.ALL_HELD_BACK,
    )


def _dimensions(entry: ProviderEntry | None, model: str) -> int | None:
    info = None if entry is None else entry.config.settings.models.get(model)
    return None if info is None else info.dimensions


def _book(entry: ProviderEntry, outcome: AttemptOutcome) -> None:
    """Tell the provider's actor, which books it in its breaker, health and metrics."""
    handle = entry.handle
    if handle is None:
        return
    try:
        handle.tell(outcome)
    except Exception:  # noqa: BLE001 - gone or restarting: its books are not the answer's
        log.debug("embeddings_outcome_unbooked", provider=entry.name)
