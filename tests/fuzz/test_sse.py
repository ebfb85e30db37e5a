"""Hypothesis against the SSE parser: any bytes, split anywhere, give the events of the whole
stream read at once, and never an exception, whatever the bytes."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runestone.providers.sse import SSEEvent, SSEParser

pytestmark = pytest.mark.timeout(60)

COUNTS: Counter[str] = Counter()
FUZZ = settings(
    max_examples=int(os.environ.get("RUNESTONE_FUZZ_EXAMPLES", "400")),
    derandomize=os.environ.get("RUNESTONE_FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
)


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    yield
    print("\nfuzz inputs per test:", dict(COUNTS))


# Lines an upstream might send, and the bytes that break naive parsers around them.
field = st.sampled_from([b"data", b"event", b"id", b"retry", b"", b":", b"dat", b"DATA"])
value = (
    st.binary(max_size=12)
    | st.sampled_from([b" ", b"  x", b"\xef\xbb\xbf", b"\xe2\x82", b"\x00", b"{}", b"[DONE]"])
    | st.integers(min_value=0, max_value=6000).map(lambda n: b"9" * n)
    # Long digit runs about int()'s 4300-digit limit (the first finding: a retry of 4301).
    | st.integers(min_value=4290, max_value=4310).map(lambda n: b"9" * n)
)
line = st.tuples(field, st.sampled_from([b":", b": ", b""]), value).map(b"".join)
ending = st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n", b"\r\n\r\n", b""])
stream = st.lists(st.tuples(line, ending).map(b"".join), max_size=12).map(b"".join) | st.binary(
    max_size=200
)
bom = st.sampled_from([b"", b"\xef\xbb\xbf"])


def _whole(data: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(data) + parser.finish()


def _split(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    start = 0
    for cut in sorted({min(cut, len(data)) for cut in cuts}):
        events += parser.feed(data[start:cut])
        start = cut
    events += parser.feed(data[start:])
    return events + parser.finish()


@FUZZ
@given(prefix=bom, data=stream, cuts=st.lists(st.integers(min_value=0, max_value=400)))
def test_any_split_of_any_stream_gives_the_events_of_the_whole(
    prefix: bytes, data: bytes, cuts: list[int]
) -> None:
    COUNTS["any split of SSE-shaped bytes"] += 1
    whole = _whole(prefix + data)
    assert _split(prefix + data, cuts) == whole
    for event in whole:
        assert isinstance(event.raw, bytes)
        assert isinstance(event.event, str)
        assert event.retry is None or event.retry >= 0


@FUZZ
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(min_value=0, max_value=600)))
def test_any_bytes_split_anywhere_never_raise(data: bytes, cuts: list[int]) -> None:
    COUNTS["any bytes, any split"] += 1
    assert _split(data, cuts) == _whole(data)


@FUZZ
@given(data=stream)
def test_one_byte_at_a_time_is_the_same_as_all_at_once(data: bytes) -> None:
    COUNTS["byte at a time"] += 1
    parser = SSEParser()
    events: list[SSEEvent] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    assert events + parser.finish() == _whole(data)
