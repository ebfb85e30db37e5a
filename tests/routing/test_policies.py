"""Each routing policy's order, brute-force and statistical checks, and selection by name."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.config import ROUTING_POLICIES
from runestone.exceptions import ConfigError, ErrorClass
from runestone.providers.settings import Capability
from runestone.resilience import HealthTracker
from runestone.routing import (
    Candidate,
    CapabilityPolicy,
    CostPolicy,
    HealthPolicy,
    LatencyPolicy,
    LeastLoadedPolicy,
    PriorityPolicy,
    Requirements,
    RoundRobinPolicy,
    WeightedPolicy,
    make_policy,
)
from runestone.routing.policies import POLICIES
from runestone.testing import FakeClock

from .strategies import pools, requirements


def brute_force_cost(candidate: Candidate, needs: Requirements) -> float:
    answer = needs.max_tokens if needs.max_tokens is not None else 512
    return (needs.prompt_tokens * candidate.input_per_1m + answer * candidate.output_per_1m) / 1e6


@settings(max_examples=100, deadline=None)
@given(pool=pools(max_size=6), needs=requirements)
def test_cost_order_is_the_brute_force_cheapest_first_order(
    pool: list[Candidate], needs: Requirements
) -> None:
    def costs(order: tuple[Candidate, ...]) -> list[tuple[float, int]]:
        return [(brute_force_cost(c, needs), pool.index(c)) for c in order]

    best = min(itertools.permutations(pool), key=costs)
    assert CostPolicy().order(pool, needs) == list(best)


def test_cost_weighs_input_and_output_by_the_request_size() -> None:
    cheap_in = Candidate("a", "m", input_per_1m=1.0, output_per_1m=20.0)
    cheap_out = Candidate("b", "m", input_per_1m=10.0, output_per_1m=2.0)
    long_prompt = Requirements(prompt_tokens=100_000, max_tokens=100)
    long_answer = Requirements(prompt_tokens=100, max_tokens=10_000)
    assert CostPolicy().order([cheap_out, cheap_in], long_prompt) == [cheap_in, cheap_out]
    assert CostPolicy().order([cheap_in, cheap_out], long_answer) == [cheap_out, cheap_in]


def measured(candidate: Candidate, *latencies: float, failures: int = 0) -> Candidate:
    health = HealthTracker(FakeClock())
    for latency in latencies:
        health.record_start()
        health.record_success(latency)
    for _ in range(failures):
        health.record_failure(ErrorClass.SERVER_ERROR)
    return replace(candidate, health=health.snapshot())


A, B, C = (Candidate(p, "m", priority=i) for i, p in enumerate("abc"))


def test_latency_puts_the_unmeasured_first_then_the_fastest() -> None:
    fast, slow = measured(A, 0.2), measured(B, 3.0)
    assert LatencyPolicy().order([slow, fast, C], Requirements()) == [C, fast, slow]


def test_health_puts_the_highest_score_first_and_unmeasured_as_healthy() -> None:
    flaky, broken = measured(A, 1.0, failures=1), measured(B, failures=3)
    assert HealthPolicy().order([broken, flaky, C], Requirements()) == [C, flaky, broken]


def test_least_loaded_puts_the_fewest_in_flight_first() -> None:
    def loaded(candidate: Candidate, calls: int) -> Candidate:
        health = HealthTracker(FakeClock())
        for _ in range(calls):
            health.record_start()
        return replace(candidate, health=health.snapshot())

    busy, idle = loaded(A, 5), loaded(B, 1)
    assert LeastLoadedPolicy().order([busy, idle, C], Requirements()) == [C, idle, busy]


def test_capability_prefers_the_closest_fit() -> None:
    everything = Candidate("a", "m", capabilities=frozenset(Capability), context_window=200_000)
    tools_big = Candidate(
        "b", "m", capabilities=frozenset({Capability.TOOLS}), context_window=10**6
    )
    tools_small = Candidate(
        "c", "m", capabilities=frozenset({Capability.TOOLS}), context_window=8_000
    )
    order = CapabilityPolicy().order([everything, tools_big, tools_small], Requirements(tools=True))
    assert order == [tools_small, tools_big, everything]


def test_priority_keeps_the_given_order() -> None:
    assert PriorityPolicy().order([C, A, B], Requirements()) == [C, A, B]


@settings(max_examples=60, deadline=None)
@given(pool=pools(max_size=8), needs=requirements, name=st.sampled_from(sorted(POLICIES)))
def test_every_policy_returns_the_same_candidates_reordered(
    pool: list[Candidate], needs: Requirements, name: str
) -> None:
    order = make_policy(name, rng=random.Random(0)).order(pool, needs)
    assert sorted(c.key for c in order) == sorted(c.key for c in pool)
    assert make_policy(name).order([], needs) == []


def test_sorting_policies_break_ties_by_priority_order() -> None:
    same = [Candidate(p, "m") for p in "xyzw"]
    for name in ("cost", "latency", "health", "least_loaded", "capability"):
        assert make_policy(name).order(same, Requirements()) == same


# -- fairness ------------------------------------------------------------------------------


def test_round_robin_gives_each_candidate_the_first_place_in_turn() -> None:
    policy = RoundRobinPolicy()
    firsts = [policy.order([A, B, C], Requirements())[0] for _ in range(3000)]
    assert firsts[:6] == [A, B, C, A, B, C]
    assert Counter(c.key for c in firsts) == {"a/m": 1000, "b/m": 1000, "c/m": 1000}


def test_round_robin_starves_nobody_when_aliases_share_candidates() -> None:
    policy = RoundRobinPolicy()
    firsts: Counter[str] = Counter()
    per_alias: dict[str, Counter[str]] = {"ab": Counter(), "bc": Counter()}
    for turn in range(3000):
        alias = ("ab", "bc")[turn % 2]
        members = [A, B] if alias == "ab" else [B, C]
        first = policy.order(members, Requirements())[0].key
        firsts[first] += 1
        per_alias[alias][first] += 1
    assert all(900 <= n <= 1100 for n in firsts.values()), firsts
    for counts in per_alias.values():
        assert len(counts) == 2
        assert min(counts.values()) >= 1500 / 4, per_alias


def test_round_robin_carries_on_fairly_when_a_candidate_drops_out_and_returns() -> None:
    policy = RoundRobinPolicy()
    for _ in range(10):
        policy.order([A, B, C], Requirements())
    firsts = Counter(policy.order([A, C], Requirements())[0].key for _ in range(100))
    assert firsts == {"a/m": 50, "c/m": 50}
    assert policy.order([A, B, C], Requirements())[0] == B  # B waited longest


def test_weighted_puts_each_first_in_proportion_to_its_weight() -> None:
    pool = [replace(A, weight=1.0), replace(B, weight=2.0), replace(C, weight=7.0)]
    policy = WeightedPolicy(random.Random(20240601))
    draws = 20_000
    firsts = Counter(policy.order(pool, Requirements())[0].key for _ in range(draws))
    # Binomial standard deviations are at most 0.0035 here: 0.015 is over four of them.
    for key, expected in (("a/m", 0.1), ("b/m", 0.2), ("c/m", 0.7)):
        assert abs(firsts[key] / draws - expected) < 0.015, firsts


def test_weighted_second_place_follows_the_remaining_weights() -> None:
    pool = [replace(A, weight=1.0), replace(B, weight=1.0), replace(C, weight=2.0)]
    policy = WeightedPolicy(random.Random(7))
    draws = 20_000
    seconds: Counter[str] = Counter()
    for _ in range(draws):
        order = policy.order(pool, Requirements())
        if order[0].key == "c/m":
            seconds[order[1].key] += 1
    total = sum(seconds.values())
    assert abs(total / draws - 0.5) < 0.02
    assert abs(seconds["a/m"] / total - 0.5) < 0.03


def test_a_zero_weight_never_goes_before_a_positive_one() -> None:
    pool = [replace(A, weight=0.0), replace(B, weight=0.001), replace(C, weight=0.0)]
    policy = WeightedPolicy(random.Random(1))
    for _ in range(500):
        assert policy.order(pool, Requirements()) == [pool[1], pool[0], pool[2]]


def test_weighted_is_reproducible_from_its_seed() -> None:
    pool = [A, B, C]
    one, two = WeightedPolicy(random.Random(5)), WeightedPolicy(random.Random(5))
    assert [one.order(pool, Requirements()) for _ in range(50)] == [
        two.order(pool, Requirements()) for _ in range(50)
    ]


# -- by name -------------------------------------------------------------------------------


def test_every_configurable_policy_name_has_a_policy() -> None:
    assert set(POLICIES) == set(ROUTING_POLICIES)
    for name in ROUTING_POLICIES:
        assert make_policy(name).name == name


@pytest.mark.parametrize("name", ["cheapest", "", "Cost", None, 3])
def test_an_unknown_policy_name_raises_a_config_error_at_routing_policy(name: object) -> None:
    with pytest.raises(ConfigError, match="priority, cost") as caught:
        make_policy(name)  # type: ignore[arg-type]
    assert caught.value.path == "routing.policy"
