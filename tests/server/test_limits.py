"""Per-key limits: an exact sliding minute, in-flight slots, and both through the real server."""

from __future__ import annotations

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.config import ApiKey
from runestone.providers.settings import Secret
from runestone.server.errors import ApiError
from runestone.server.limits import KeyLimits, SlidingWindow
from runestone.testing import FakeClock
from tests.server.conftest import OPEN_KEY, TIGHT_KEY
from tests.server.serving import RunningServer

USER = [{"role": "user", "content": "Tell me the known text."}]


def key(name: str, *, rpm: int | None = None, max_streams: int | None = None) -> ApiKey:
    return ApiKey(key=Secret(f"sk-{name}-0000"), name=name, rpm=rpm, max_streams=max_streams)


def test_a_window_admits_its_limit_then_says_when_the_oldest_leaves() -> None:
    clock = FakeClock()
    window = SlidingWindow(3, clock=clock)
    for _ in range(3):  # at 0, 10 and 20 s
        assert window.take() is None
        clock.advance(10)
    assert window.take() == pytest.approx(30)  # at 30 s: the first leaves at 60 s
    clock.advance(30)
    assert window.take() is None  # at 60 s the first has left
    assert window.take() == pytest.approx(10)  # the one from 10 s leaves at 70 s


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=60))
def test_a_window_never_admits_more_than_its_limit_in_any_minute(gaps: list[float]) -> None:
    clock = FakeClock()
    window = SlidingWindow(4, clock=clock)
    admitted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        now = clock.monotonic()
        wait = window.take()
        recent = [t for t in admitted if t > now - 60]
        if wait is None:
            admitted.append(now)
            assert len(recent) < 4
        else:
            # Refused only when full, and told exactly when the oldest leaves the minute.
            assert len(recent) == 4
            assert wait == pytest.approx(min(recent) + 60 - now)


def test_a_window_refuses_a_bad_limit_or_window() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        SlidingWindow(0)
    with pytest.raises(ValueError, match="window must be a positive number"):
        SlidingWindow(1, window=0)


def test_a_keys_rpm_is_a_429_with_retry_after() -> None:
    clock = FakeClock()
    limits = KeyLimits([key("team", rpm=2)], clock=clock)
    team = key("team", rpm=2)
    limits.count(team)
    clock.advance(15)
    limits.count(team)
    with pytest.raises(ApiError) as caught:
        limits.count(team)
    assert caught.value.status == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.headers() == {"retry-after": "45"}
    assert "'team'" in caught.value.message


def test_keys_without_limits_and_the_anonymous_caller_are_never_refused() -> None:
    limits = KeyLimits([key("free")])
    for _ in range(1000):
        limits.count(key("free"))
        limits.count(None)
        limits.acquire(key("free"))
        limits.acquire(None)


def test_in_flight_slots_are_given_back_once_each() -> None:
    limits = KeyLimits([key("narrow", max_streams=2)])
    narrow = key("narrow", max_streams=2)
    first, second = limits.acquire(narrow), limits.acquire(narrow)
    with pytest.raises(ApiError) as caught:
        limits.acquire(narrow)
    assert caught.value.code == "concurrency_limit_exceeded"
    first.release()
    first.release()  # a second release gives nothing back twice
    assert limits.in_flight("narrow") == 1
    third = limits.acquire(narrow)
    second.release()
    third.release()
    assert limits.in_flight("narrow") == 0


def test_updated_limits_keep_what_each_key_holds_under_its_name() -> None:
    clock = FakeClock()
    narrow, tight = key("narrow", max_streams=2), key("tight", rpm=2)
    limits = KeyLimits([narrow, tight], clock=clock)
    held = limits.acquire(narrow)
    limits.count(tight)
    limits.count(tight)
    # A reload: narrow's bound is lowered to the one it holds, tight's rate is unchanged.
    narrow, tight = key("narrow", max_streams=1), key("tight", rpm=2)
    limits.update([narrow, tight])
    assert limits.in_flight("narrow") == 1
    with pytest.raises(ApiError) as error:
        limits.acquire(narrow)
    assert error.value.code == "concurrency_limit_exceeded"
    with pytest.raises(ApiError):
        limits.count(tight)  # its two recent requests still count
    held.release()  # a lease from before the reload gives its slot back to the same count
    assert limits.in_flight("narrow") == 0
    limits.acquire(narrow).release()
    # A changed rate starts a fresh window; a key removed is no longer limited.
    limits.update([key("tight", rpm=3)])
    for _ in range(3):
        limits.count(key("tight", rpm=3))
    limits.acquire(key("narrow")).release()


def test_a_keys_rpm_through_the_server_is_a_rate_limit_error(server: RunningServer) -> None:
    with openai.OpenAI(base_url=server.base_url, api_key=TIGHT_KEY, max_retries=0) as sdk:
        for _ in range(3):
            sdk.chat.completions.create(model="fast", messages=USER)
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model="fast", messages=USER)
    assert caught.value.code == "rate_limit_exceeded"
    assert 50 <= int(caught.value.response.headers["retry-after"]) <= 60
    # Another key is not affected.
    with openai.OpenAI(base_url=server.base_url, api_key=OPEN_KEY, max_retries=0) as sdk:
        assert sdk.chat.completions.create(model="fast", messages=USER).choices
