"""Planning: resolution, filters, policy order, fallbacks, panic mode, context fallbacks."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.exceptions import NoCandidatesError, NoCandidatesReason
from runestone.messages import WireFormat
from runestone.providers.settings import Capability
from runestone.resilience import CircuitState
from runestone.routing import (
    Candidate,
    CostPolicy,
    PriorityPolicy,
    Requirements,
    RoutingTable,
    make_policy,
    plan,
    unmet_requirement,
)
from runestone.routing.policies import POLICIES

from .strategies import NOW, pools, requirements

TOOLS = frozenset({Capability.TOOLS})
OPEN, CLOSED = CircuitState.OPEN, CircuitState.CLOSED

small = Candidate("alpha", "small", 0.1, 0.4, context_window=16_000, capabilities=TOOLS, priority=0)
big = Candidate("alpha", "big", 2.0, 8.0, context_window=128_000, capabilities=TOOLS, priority=1)
other = Candidate("beta", "small", 0.2, 0.2, context_window=32_000, priority=2)
huge = Candidate("gamma", "huge", 3.0, 15.0, context_window=1_000_000, priority=3)
POOL = [small, big, other, huge]
TABLE = RoutingTable(
    aliases={"fast": ("beta/small", "alpha/small")},
    fallbacks={"fast": ("gamma/huge",), "alpha/small": ("alpha/big", "beta/small")},
    context_window_fallbacks={"alpha/small": ("gamma/huge",)},
)


def keys(
    model: str,
    pool: list[Candidate] = POOL,
    needs: Requirements | None = None,
    policy: str = "priority",
    context_exceeded: str | None = None,
) -> tuple[str, ...]:
    needs = needs or Requirements()
    policy_ = make_policy(policy)
    return plan(model, needs, pool, TABLE, policy_, now=NOW, context_exceeded=context_exceeded).keys


# -- resolution ----------------------------------------------------------------------------


def test_an_alias_tries_its_targets_in_order_then_its_fallbacks() -> None:
    assert keys("fast") == ("beta/small", "alpha/small", "gamma/huge", "alpha/big")


def test_a_provider_slash_model_key_names_one_candidate_then_its_fallbacks() -> None:
    assert keys("alpha/small") == ("alpha/small", "alpha/big", "beta/small")


def test_a_bare_model_name_means_every_provider_serving_it_in_config_order() -> None:
    assert keys("small") == ("alpha/small", "beta/small", "alpha/big")


def test_an_unknown_model_raises_no_candidates_naming_it() -> None:
    with pytest.raises(NoCandidatesError, match="'gpt-7'") as unknown:
        keys("gpt-7")
    assert unknown.value.reason is NoCandidatesReason.UNKNOWN_MODEL
    with pytest.raises(NoCandidatesError) as empty:
        keys("")
    assert empty.value.reason is NoCandidatesReason.UNKNOWN_MODEL


def test_an_alias_target_that_is_not_configured_is_skipped_and_reported() -> None:
    table = RoutingTable(aliases={"x": ("delta/gone", "alpha/big")})
    result = plan("x", Requirements(), POOL, table, PriorityPolicy(), now=NOW)
    assert result.keys == ("alpha/big",)
    assert [(e.key, e.reason) for e in result.excluded] == [("delta/gone", "not configured")]


# -- filters and order ---------------------------------------------------------------------


def test_the_policy_orders_the_primaries_and_fallbacks_follow_in_config_order() -> None:
    table = RoutingTable(
        aliases={"any": ("gamma/huge", "alpha/big", "alpha/small")},
        fallbacks={"any": ("beta/small",)},
    )
    result = plan("any", Requirements(prompt_tokens=1000), POOL, table, CostPolicy(), now=NOW)
    # beta/small is the cheapest of all, but it is a fallback: it comes last.
    assert result.keys == ("alpha/small", "alpha/big", "gamma/huge", "beta/small")


def test_candidates_lacking_a_capability_or_room_are_left_out_with_the_reason() -> None:
    result = plan(
        "fast",
        Requirements(tools=True, prompt_tokens=20_000),
        POOL,
        TABLE,
        PriorityPolicy(),
        now=NOW,
    )
    assert result.keys == ("alpha/big",)
    reasons = dict((e.key, e.reason) for e in result.excluded)
    assert reasons["beta/small"] == "lacks tools"
    assert reasons["alpha/small"].startswith("context window 16000")
    assert reasons["gamma/huge"] == "lacks tools"


def test_nothing_capable_raises_no_candidates_with_every_reason() -> None:
    with pytest.raises(
        NoCandidatesError, match=r"beta/small: lacks vision.*alpha/small: lacks"
    ) as raised:
        keys("fast", needs=Requirements(vision=True))
    assert raised.value.reason is NoCandidatesReason.NO_CAPABLE_CANDIDATE


def test_a_request_only_one_wire_format_carries_goes_only_to_its_upstreams() -> None:
    pool = [replace(small, wires=frozenset({WireFormat.OPENAI_CHAT})), big, other]
    needs = Requirements(wire=WireFormat.OPENAI_CHAT, native_field="seed")
    assert keys("fast", pool, needs) == ("alpha/small",)
    with pytest.raises(NoCandidatesError) as raised:
        keys("beta/small", pool, needs)
    assert raised.value.reason is NoCandidatesReason.NO_CAPABLE_CANDIDATE
    assert "beta/small: cannot carry seed (only an upstream speaking openai_chat can)" in str(
        raised.value
    )
    assert raised.value.field == "seed"  # the field no candidate could carry: the 400's param
    with pytest.raises(NoCandidatesError) as other_reason:
        keys("fast", pool, Requirements(vision=True))
    assert other_reason.value.field == ""


def test_a_candidate_of_several_wire_formats_takes_a_request_of_each() -> None:
    both = frozenset({WireFormat.OPENAI_CHAT, WireFormat.OPENAI_COMPLETIONS})
    serving = frozenset({Capability.COMPLETIONS})
    pool = [
        replace(small, wires=both, capabilities=serving),
        replace(big, wires=frozenset({WireFormat.ANTHROPIC_MESSAGES}), capabilities=serving),
        replace(other, wires=both),
    ]
    chat = Requirements(wire=WireFormat.OPENAI_CHAT, native_field="seed")
    assert keys("fast", pool, chat) == ("beta/small", "alpha/small")
    completion = Requirements(
        completions=True, wire=WireFormat.OPENAI_COMPLETIONS, native_field="prompt"
    )
    assert keys("fast", pool, completion) == ("alpha/small",)
    anthropic_only = [replace(pool[0], wires=frozenset({WireFormat.ANTHROPIC_MESSAGES})), pool[2]]
    with pytest.raises(NoCandidatesError) as raised:
        keys("fast", anthropic_only, completion)
    assert raised.value.reason is NoCandidatesReason.NO_CAPABLE_CANDIDATE
    message = str(raised.value)
    assert "alpha/small: cannot carry prompt (only an upstream speaking openai_completions" in (
        message
    )
    assert "beta/small: lacks completions" in message


def test_an_alias_to_nothing_configured_has_no_capable_candidate() -> None:
    table = RoutingTable(aliases={"x": ("delta/gone",)})
    with pytest.raises(NoCandidatesError, match="not configured") as raised:
        plan("x", Requirements(), POOL, table, PriorityPolicy(), now=NOW)
    assert raised.value.reason is NoCandidatesReason.NO_CAPABLE_CANDIDATE


def test_a_prompt_too_long_for_every_capable_candidate_is_context_too_long() -> None:
    with pytest.raises(NoCandidatesError, match="context window") as raised:
        keys("fast", needs=Requirements(prompt_tokens=2_000_000))
    assert raised.value.reason is NoCandidatesReason.CONTEXT_TOO_LONG


def test_a_primary_without_room_hands_the_request_to_its_context_window_fallbacks() -> None:
    needs = Requirements(prompt_tokens=20_000)
    # alpha/small (16k) is too small: its context-window fallback comes before the rest.
    assert keys("alpha/small", needs=needs) == ("gamma/huge", "alpha/big", "beta/small")


def test_an_output_limit_too_small_for_max_tokens_is_context_too_long() -> None:
    pool = [replace(c, max_output_tokens=100) for c in POOL]
    with pytest.raises(NoCandidatesError, match="max output") as raised:
        keys("fast", pool, needs=Requirements(max_tokens=1000))
    assert raised.value.reason is NoCandidatesReason.CONTEXT_TOO_LONG


def test_an_open_primary_is_left_out_but_its_fallbacks_are_tried() -> None:
    pool = [replace(small, circuit=OPEN, retry_at=NOW + 30), big, other, huge]
    result = plan("alpha/small", Requirements(), pool, TABLE, PriorityPolicy(), now=NOW)
    assert result.keys == ("alpha/big", "beta/small")
    assert not result.panic
    assert result.excluded[0].reason == "circuit open for another 30s"


def test_a_half_open_or_recovery_due_candidate_is_tried() -> None:
    pool = [
        replace(small, circuit=CircuitState.HALF_OPEN),
        replace(other, circuit=OPEN, retry_at=NOW - 1),
        big,
        huge,
    ]
    assert keys("small", pool) == ("alpha/small", "beta/small", "alpha/big")


def test_a_cooling_candidate_is_left_out_until_it_cools_down() -> None:
    pool = [replace(other, retry_at=NOW + 5), small, big, huge]
    assert keys("fast", pool) == ("alpha/small", "gamma/huge", "alpha/big")


# -- panic mode ----------------------------------------------------------------------------


def test_when_every_candidate_is_open_the_one_recovering_soonest_is_tried() -> None:
    pool = [
        replace(small, circuit=OPEN, retry_at=NOW + 20),
        replace(big, circuit=OPEN, retry_at=NOW + 5),
        replace(other, circuit=OPEN, retry_at=NOW + 9),
        replace(huge, circuit=OPEN, retry_at=None),  # forced open: never
    ]
    result = plan("fast", Requirements(), pool, TABLE, PriorityPolicy(), now=NOW)
    assert result.panic
    assert result.keys == ("alpha/big",)


def test_when_every_candidate_is_forced_open_there_is_no_plan() -> None:
    pool = [replace(c, circuit=OPEN, retry_at=None) for c in POOL]
    with pytest.raises(NoCandidatesError, match="forced open") as raised:
        keys("fast", pool)
    assert raised.value.reason is NoCandidatesReason.ALL_HELD_BACK


def test_held_back_wins_over_incapable_as_the_reason_for_no_plan() -> None:
    # beta/small lacks tools; alpha/small, the only capable one, is forced open: it is
    # the held-back candidate that would serve, so waiting may help.
    pool = [replace(small, circuit=OPEN, retry_at=None), other]
    table = RoutingTable(aliases={"x": ("beta/small", "alpha/small")})
    with pytest.raises(NoCandidatesError) as raised:
        plan("x", Requirements(tools=True), pool, table, PriorityPolicy(), now=NOW)
    assert raised.value.reason is NoCandidatesReason.ALL_HELD_BACK


def test_panic_mode_never_picks_an_incapable_candidate() -> None:
    pool = [
        replace(small, circuit=OPEN, retry_at=NOW + 50),
        replace(other, circuit=OPEN, retry_at=NOW + 1),  # soonest, but no tools
        replace(big, circuit=OPEN, retry_at=NOW + 10),
        huge,
    ]
    result = plan("fast", Requirements(tools=True), pool, TABLE, PriorityPolicy(), now=NOW)
    assert (result.panic, result.keys) == (True, ("alpha/big",))


# -- context-window fallbacks --------------------------------------------------------------


def test_after_context_length_exceeded_only_larger_windows_are_tried() -> None:
    result = plan(
        "fast", Requirements(), POOL, TABLE, PriorityPolicy(), now=NOW, context_exceeded=small
    )
    # Configured context fallback first, then larger ones from the normal plan.
    assert result.keys == ("gamma/huge", "beta/small", "alpha/big")


def test_after_context_length_exceeded_smaller_windows_are_excluded() -> None:
    result = plan(
        "fast",
        Requirements(),
        POOL,
        TABLE,
        PriorityPolicy(),
        now=NOW,
        context_exceeded="beta/small",
    )
    assert result.keys == ("gamma/huge", "alpha/big")
    reasons = dict((e.key, e.reason) for e in result.excluded)
    assert reasons["alpha/small"] == "context window 16000 not larger than the 32000 exceeded"


def test_with_an_unknown_window_only_configured_context_fallbacks_are_tried() -> None:
    unknown = replace(small, context_window=None)
    pool = [unknown, big, other, huge]
    result = plan(
        "fast", Requirements(), pool, TABLE, PriorityPolicy(), now=NOW, context_exceeded=unknown
    )
    assert result.keys == ("gamma/huge",)


def test_with_no_larger_candidate_there_is_no_plan() -> None:
    with pytest.raises(NoCandidatesError) as raised:
        keys("huge", context_exceeded="gamma/huge")
    assert raised.value.reason is NoCandidatesReason.NO_CAPABLE_CANDIDATE


# -- properties ----------------------------------------------------------------------------


@st.composite
def tables(draw: st.DrawFn, pool: list[Candidate]) -> RoutingTable:
    names = [c.key for c in pool] + ["p9/ghost"]
    targets = st.lists(st.sampled_from(names), min_size=1, max_size=5)
    return RoutingTable(
        aliases={"alias": tuple(draw(targets))},
        fallbacks={draw(st.sampled_from(["alias", *names])): tuple(draw(targets))},
        context_window_fallbacks={draw(st.sampled_from(names)): tuple(draw(targets))},
    )


@settings(max_examples=120, deadline=None)
@given(data=st.data(), pool=pools(max_size=8), needs=requirements)
def test_a_plan_never_holds_an_incapable_or_refusing_candidate_outside_panic_or_twice(
    data: st.DataObject, pool: list[Candidate], needs: Requirements
) -> None:
    table = data.draw(tables(pool))
    name = data.draw(st.sampled_from(sorted(POLICIES)))
    requested = data.draw(st.sampled_from(["alias", *[c.key for c in pool], pool[0].model]))
    exceeded = data.draw(st.one_of(st.none(), st.sampled_from(pool)))
    try:
        result = plan(
            requested,
            needs,
            pool,
            table,
            make_policy(name, rng=random.Random(1)),
            now=NOW,
            context_exceeded=exceeded,
        )
    except NoCandidatesError:
        return
    assert result.candidates
    assert len(set(result.keys)) == len(result.keys)
    for candidate in result:
        assert unmet_requirement(candidate, needs) is None
        assert needs.capabilities <= candidate.capabilities
        assert candidate in pool
        if exceeded is not None:
            assert candidate.key != exceeded.key
    if result.panic:
        (only,) = result.candidates
        assert only.is_blocked(NOW)
        assert only.retry_at is not None
    else:
        assert not any(c.is_blocked(NOW) for c in result)


@settings(max_examples=60, deadline=None)
@given(pool=pools(min_size=2, max_size=8), needs=requirements)
def test_panic_mode_picks_the_capable_candidate_recovering_soonest(
    pool: list[Candidate], needs: Requirements
) -> None:
    shut = [replace(c, circuit=OPEN, retry_at=NOW + 1 + i * 7 % 5) for i, c in enumerate(pool)]
    table = RoutingTable(aliases={"all": tuple(c.key for c in shut)})
    capable_ones = [c for c in shut if unmet_requirement(c, needs) is None]
    if not capable_ones:
        with pytest.raises(NoCandidatesError):
            plan("all", needs, shut, table, PriorityPolicy(), now=NOW)
        return
    result = plan("all", needs, shut, table, PriorityPolicy(), now=NOW)
    assert result.panic
    assert result.candidates == (min(capable_ones, key=lambda c: c.retry_at or 0.0),)


# -- bad inputs ----------------------------------------------------------------------------


def test_duplicate_candidates_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        keys("fast", [small, small])
    with pytest.raises(ValueError, match="holds"):
        plan("fast", Requirements(), {"beta/small": small}, TABLE, PriorityPolicy(), now=NOW)


def test_candidates_can_be_given_as_a_mapping_by_key() -> None:
    by_key = {c.key: c for c in POOL}
    result = plan("fast", Requirements(), by_key, TABLE, PriorityPolicy(), now=NOW)
    assert result.keys == keys("fast")
