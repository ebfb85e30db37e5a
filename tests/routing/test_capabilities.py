"""The capability filter never lets through a candidate that cannot serve the request."""

from __future__ import annotations

from hypothesis import given, settings

from runestone.messages import WireFormat
from runestone.providers.settings import Capability
from runestone.routing import Candidate, Requirements, capable, unmet_requirement

from .strategies import pools, requirements


@settings(max_examples=60, deadline=None)
@given(pool=pools(max_size=10), needs=requirements)
def test_the_filter_keeps_exactly_the_candidates_that_have_what_is_needed(
    pool: list[Candidate], needs: Requirements
) -> None:
    kept = capable(pool, needs)
    for candidate in pool:
        fits = (
            # An embedding model serves embeddings only, a chat model chat only.
            (Capability.EMBEDDINGS in candidate.capabilities) == needs.embeddings
            # A request only one format carries goes to a provider speaking it, among others.
            and (needs.wire is None or needs.wire in candidate.wires)
            and needs.capabilities <= candidate.capabilities
            and (
                candidate.context_window is None or candidate.context_window >= needs.context_tokens
            )
            and (
                candidate.max_output_tokens is None
                or needs.max_tokens is None
                or candidate.max_output_tokens >= needs.max_tokens
            )
        )
        assert (candidate in kept) == fits
    assert kept == [c for c in pool if c in kept]  # order kept


def test_the_reason_names_what_is_missing() -> None:
    text_only = Candidate("p", "m", context_window=1_000, max_output_tokens=100)
    assert unmet_requirement(text_only, Requirements(tools=True, vision=True)) == (
        "lacks tools, vision"
    )
    assert unmet_requirement(text_only, Requirements(prompt_tokens=990, max_tokens=20)) == (
        "context window 1000 < 1010 tokens needed"
    )
    assert unmet_requirement(text_only, Requirements(max_tokens=500)) == (
        "max output 100 < max_tokens 500"
    )
    assert unmet_requirement(text_only, Requirements(embeddings=True)) == "not an embedding model"
    embedder = Candidate("p", "e", capabilities=frozenset({Capability.EMBEDDINGS}))
    assert unmet_requirement(embedder, Requirements()) == "an embedding model"
    assert unmet_requirement(text_only, Requirements(prompt_tokens=990)) is None


def test_a_window_exactly_as_large_as_needed_fits() -> None:
    chat = frozenset(Capability) - {Capability.EMBEDDINGS}
    candidate = Candidate("p", "m", context_window=1_000, capabilities=chat)
    needs = Requirements(prompt_tokens=600, max_tokens=400, tools=True, json=True)
    assert unmet_requirement(candidate, needs) is None


def test_unknown_limits_do_not_exclude() -> None:
    assert unmet_requirement(Candidate("p", "m"), Requirements(prompt_tokens=10**6)) is None


def test_a_provider_speaking_several_formats_carries_a_request_of_any_of_them() -> None:
    both = frozenset({WireFormat.OPENAI_CHAT, WireFormat.OPENAI_COMPLETIONS})
    candidate = Candidate("p", "m", capabilities=frozenset({Capability.COMPLETIONS}), wires=both)
    for wire in both:
        assert unmet_requirement(candidate, Requirements(wire=wire, native_field="x")) is None
    needs = Requirements(wire=WireFormat.ANTHROPIC_MESSAGES, native_field="top_k")
    assert unmet_requirement(candidate, needs) == (
        "cannot carry top_k (only an upstream speaking anthropic_messages can)"
    )
    plain = Candidate("p", "n")  # speaks no format natively
    needs = Requirements(wire=WireFormat.OPENAI_COMPLETIONS, native_field="prompt")
    assert unmet_requirement(plain, needs) == (
        "cannot carry prompt (only an upstream speaking openai_completions can)"
    )


def test_a_completions_request_needs_a_model_listing_completions() -> None:
    speaks = frozenset({WireFormat.OPENAI_CHAT, WireFormat.OPENAI_COMPLETIONS})
    chat_only = Candidate("p", "chat", capabilities=frozenset({Capability.TOOLS}), wires=speaks)
    needs = Requirements(
        completions=True, wire=WireFormat.OPENAI_COMPLETIONS, native_field="prompt"
    )
    assert needs.capabilities == {Capability.COMPLETIONS}
    assert unmet_requirement(chat_only, needs) == "lacks completions"
    instruct = Candidate("p", "instruct", capabilities=frozenset(), wires=speaks)
    assert capable([chat_only, instruct], needs) == []
    serving = Candidate(
        "p", "instruct", capabilities=frozenset({Capability.COMPLETIONS}), wires=speaks
    )
    assert capable([chat_only, serving], needs) == [serving]
