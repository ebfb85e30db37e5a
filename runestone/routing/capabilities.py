"""The capability filter: does a candidate have what a request needs?"""

from __future__ import annotations

from collections.abc import Iterable

from runestone.providers.settings import Capability
from runestone.routing.candidate import Candidate
from runestone.routing.requirements import Requirements

__all__ = ["capable", "serves_kind", "unmet_requirement"]


def serves_kind(candidate: Candidate, requirements: Requirements) -> bool:
    """An embedding model serves embeddings requests only, a chat model chat only."""
    return (Capability.EMBEDDINGS in candidate.capabilities) == requirements.embeddings


def unmet_requirement(candidate: Candidate, requirements: Requirements) -> str | None:
    """Why ``candidate`` cannot serve the request, or ``None`` when it can.

    It must speak the request's wire format (among those its provider speaks) if the
    request has fields only that format carries, list every needed capability (tools,
    vision, json, prefill …), have a context window of at least the estimated prompt
    plus ``max_tokens``, and allow ``max_tokens`` of output. An unknown window or output
    limit passes.
    """
    if not serves_kind(candidate, requirements):
        return "not an embedding model" if requirements.embeddings else "an embedding model"
    wire = requirements.wire
    if wire is not None and wire not in candidate.wires:
        return f"cannot carry {requirements.native_field} (only an upstream speaking {wire} can)"
    missing = requirements.capabilities - candidate.capabilities
    if missing:
        return "lacks " + ", ".join(sorted(missing))
    window = candidate.context_window
    if window is not None and window < requirements.context_tokens:
        return f"context window {window} < {requirements.context_tokens} tokens needed"
    limit, wanted = candidate.max_output_tokens, requirements.max_tokens
    if limit is not None and wanted is not None and limit < wanted:
        return f"max output {limit} < max_tokens {wanted}"
    return None


def capable(candidates: Iterable[Candidate], requirements: Requirements) -> list[Candidate]:
    """The candidates that can serve the request, in their given order."""
    return [c for c in candidates if unmet_requirement(c, requirements) is None]
