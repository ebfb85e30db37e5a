"""Per-key limits: an exact sliding minute, tokens a minute, in-flight slots, and through the
real server."""

from __future__ import annotations

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.config import ApiKey
from runestone.providers.settings import Secret
from runestone.server.errors import ApiError
from runestone.server.limits import KeyLimits, SlidingWindow, TokenWindow
from runestone.testing import FakeClock
from tests.server.conftest import OPEN_KEY, TIGHT_KEY, TOKENS_KEY
from tests.server.serving import RunningServer

USER = [{"role": "user", "content": "Tell me the known text."}]


def key(
    name: str, *, rpm: int | None = None, max_streams: int | None = None, tpm: int | None = None
) -> ApiKey:
    return ApiKey(
        key=Secret(f"sk-{name}-0000"), name=name, rpm=rpm, max_streams=max_streams, tpm=tpm
    )


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


def test_a_keys_tpm_refuses_once_its_booked_tokens_reach_it_until_enough_have_left() -> None:
    clock = FakeClock()
    team = key("team", tpm=1000)
    limits = KeyLimits([team], clock=clock)
    limits.count(team)
    limits.book(team, 600)  # at 0 s
    clock.advance(10)
    limits.count(team)  # 600 < 1000
    limits.book(team, 300)  # at 10 s
    clock.advance(10)
    limits.count(team)
    limits.book(team, 150)  # at 20 s: 1050 in the minute
    assert limits.tokens_used("team") == 1050
    with pytest.raises(ApiError) as caught:
        limits.count(team)
    assert caught.value.status == 429
    assert caught.value.code == "token_limit_exceeded"
    assert "'team'" in caught.value.message
    assert "1000 tokens per minute" in caught.value.message
    # The 600 booked at 0 s leave at 60 s, and 450 are under the limit again.
    assert caught.value.retry_after == pytest.approx(40)
    clock.advance(40)
    limits.count(team)
    assert limits.tokens_used("team") == 450


def test_a_request_refused_for_tokens_is_not_counted_against_the_rpm() -> None:
    clock = FakeClock()
    team = key("team", rpm=2, tpm=10)
    limits = KeyLimits([team], clock=clock)
    limits.count(team)
    limits.book(team, 10)  # at 0 s
    clock.advance(30)
    for _ in range(5):
        with pytest.raises(ApiError, match="token limit"):
            limits.count(team)
    clock.advance(30)  # at 60 s the tokens and the first request have left the minute
    limits.count(team)
    limits.count(team)  # two a minute: the refusals at 30 s took none
    with pytest.raises(ApiError, match="rate limit"):
        limits.count(team)


def test_tokens_booked_for_a_key_without_a_tpm_or_no_key_are_ignored() -> None:
    limits = KeyLimits([key("free")])
    limits.book(key("free"), 10**9)
    limits.book(None, 10**9)
    limits.count(key("free"))
    assert limits.tokens_used("free") == 0


def test_a_reload_keeps_the_tokens_a_key_used_under_a_new_tpm() -> None:
    clock = FakeClock()
    limits = KeyLimits([key("team", tpm=100)], clock=clock)
    limits.book(key("team", tpm=100), 80)
    limits.update([key("team", tpm=50)])
    with pytest.raises(ApiError, match="50 tokens per minute"):
        limits.count(key("team", tpm=50))
    limits.update([key("team")])  # no tpm any more: unlimited, and nothing kept
    limits.count(key("team"))
    limits.update([key("team", tpm=50)])
    limits.count(key("team", tpm=50))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=30), st.integers(min_value=0, max_value=400)),
        min_size=1,
        max_size=60,
    )
)
def test_a_token_window_matches_a_reference_model(steps: list[tuple[float, int]]) -> None:
    clock = FakeClock()
    window = TokenWindow(1000, clock=clock)
    booked: list[tuple[float, int]] = []
    for gap, tokens in steps:
        clock.advance(gap)
        now = clock.monotonic()
        recent = [(t, n) for t, n in booked if t > now - 60]
        used = sum(n for _, n in recent)
        wait = window.check()
        if used < 1000:
            assert wait is None
            window.book(tokens)
            booked.append((now, tokens))
            continue
        # Refused, and told when enough of the oldest have left for it to be under 1000.
        assert wait is not None
        left = used
        for at, n in recent:
            left -= n
            if left < 1000:
                assert wait == pytest.approx(at + 60 - now)
                break
        assert 0 < wait <= 60


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


def test_a_keys_tpm_through_the_server_books_each_answers_usage(server: RunningServer) -> None:
    with openai.OpenAI(base_url=server.base_url, api_key=TOKENS_KEY, max_retries=0) as sdk:
        stream = sdk.chat.completions.create(
            model="fast", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model="fast", messages=USER)
    assert caught.value.code == "token_limit_exceeded"
    assert 50 <= int(caught.value.response.headers["retry-after"]) <= 60
