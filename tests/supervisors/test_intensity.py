"""The restart intensity window, at its edges, on a fake clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runestone.supervisors import IntensityPolicy, RestartIntensity
from runestone.testing import FakeClock


def test_max_restarts_fit_and_one_more_does_not() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(IntensityPolicy(max_restarts=3, max_seconds=5), clock)
    assert [intensity.record() for _ in range(3)] == [True, True, True]
    assert intensity.record() is False


def test_a_restart_exactly_max_seconds_old_no_longer_counts() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(IntensityPolicy(max_restarts=1, max_seconds=5), clock)
    assert intensity.record()
    clock.advance(4.999)
    assert intensity.recent == 1
    clock.advance(0.001)
    assert intensity.recent == 0
    assert intensity.record(), "the first restart aged out exactly at the window's edge"


@given(
    max_restarts=st.integers(0, 5),
    max_seconds=st.sampled_from([0.5, 1.0, 5.0]),
    gaps=st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0, 5.0]), max_size=20),
)
def test_record_agrees_with_counting_the_window_by_hand(
    max_restarts: int, max_seconds: float, gaps: list[float]
) -> None:
    clock = FakeClock(start=0.0)
    intensity = RestartIntensity(IntensityPolicy(max_restarts, max_seconds), clock)
    times: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        now = clock.monotonic()
        times.append(now)
        in_window = [t for t in times if now - t < max_seconds]
        assert intensity.record() == (len(in_window) <= max_restarts)
