"""The incremental SSE parser: line ends, comments, fields, and any split of the bytes."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from runestone.providers.sse import SSEEvent, SSEParser


def parse_whole(data: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(data) + parser.finish()


def parse_in_pieces(pieces: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.finish()


def test_a_data_line_and_a_blank_line_make_one_message_event() -> None:
    assert parse_whole(b'data: {"a": 1}\n\n') == [SSEEvent("message", b'{"a": 1}')]


def test_an_event_field_names_the_event_and_resets_after_dispatch() -> None:
    events = parse_whole(b"event: ping\ndata: {}\n\ndata: x\n\n")
    assert [(e.event, e.data) for e in events] == [("ping", "{}"), ("message", "x")]


def test_crlf_and_lone_cr_line_ends_work_like_lf() -> None:
    expected = [SSEEvent("message", b"one"), SSEEvent("message", b"two")]
    assert parse_whole(b"data: one\r\n\r\ndata: two\r\n\r\n") == expected
    assert parse_whole(b"data: one\r\rdata: two\r\r") == expected


def test_a_crlf_split_between_two_reads_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: one\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\ndata: two\r\n\r\n") == [
        SSEEvent("message", b"one"),
        SSEEvent("message", b"two"),
    ]


def test_comment_lines_are_ignored() -> None:
    assert parse_whole(b": keep-alive\n\n:another\ndata: x\n\n") == [SSEEvent("message", b"x")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    events = parse_whole(b"data: first\ndata: second\ndata:\ndata:third\n\n")
    assert events == [SSEEvent("message", b"first\nsecond\n\nthird")]


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert parse_whole(b"data:  two spaces\n\n")[0].data == " two spaces"


def test_a_line_split_across_reads_still_parses() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"te') == []
    assert parser.feed(b'xt": "hi"}') == []
    assert parser.feed(b"\n\n") == [SSEEvent("message", b'{"text": "hi"}')]


def test_a_missing_final_newline_still_dispatches_the_last_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.finish() == [SSEEvent("message", b"[DONE]")]


def test_a_missing_final_blank_line_still_dispatches_the_last_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: last\n") == []
    assert parser.finish() == [SSEEvent("message", b"last")]


def test_an_event_without_data_is_not_dispatched() -> None:
    assert parse_whole(b"event: ping\n\n") == []
    assert parse_whole(b"id: 7\n\n") == []


def test_an_empty_data_field_is_an_event_with_empty_data() -> None:
    assert parse_whole(b"data:\n\n") == [SSEEvent("message", b"")]


def test_id_and_retry_are_carried_and_the_id_persists() -> None:
    events = parse_whole(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [(e.data, e.id, e.retry) for e in events] == [
        ("a", "7", 1500),
        ("b", "7", 1500),
        ("c", "", 1500),
    ]


def test_a_retry_too_long_for_an_integer_is_ignored_not_an_exception() -> None:
    # Found by tests/fuzz/test_sse.py: int() refuses more than 4300 digits (a ValueError).
    [event] = parse_whole(b"retry: " + b"9" * 4301 + b"\ndata: x\n\n")
    assert (event.data, event.retry) == ("x", None)


def test_a_bad_retry_and_an_id_with_nul_are_ignored() -> None:
    [event] = parse_whole(b"retry: soon\nid: a\x00b\ndata: x\n\n")
    assert (event.id, event.retry) == (None, None)


def test_a_field_without_a_colon_has_an_empty_value() -> None:
    assert parse_whole(b"data\n\n") == [SSEEvent("message", b"")]


def test_unknown_fields_are_ignored() -> None:
    assert parse_whole(b"foo: bar\ndata: x\n\n") == [SSEEvent("message", b"x")]


def test_a_leading_bom_is_dropped_even_when_split() -> None:
    assert parse_in_pieces([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent("message", b"x")]
    assert parse_whole(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("message", b"x")]


def test_a_multibyte_character_split_across_reads_decodes_whole() -> None:
    encoded = "data: café ☕\n\n".encode()
    split = encoded.index("☕".encode()) + 1
    assert parse_in_pieces([encoded[:split], encoded[split:]])[0].data == "café ☕"


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert parse_whole(b"data: \xff\n\n")[0].data == "\ufffd"


# --------------------------------------------------------------------------- any split

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=12,
)
_LINE = st.one_of(
    _TEXT.map(lambda t: f"data: {t}"),
    _TEXT.map(lambda t: f"data:{t}"),
    _TEXT.map(lambda t: f": {t}"),
    st.sampled_from(["event: ping", "event: message_stop", "id: 42", "retry: 10", "data", ""]),
)
_EOL = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_LINE, _EOL), max_size=25))
    text = "".join(line + eol for line, eol in lines)
    if draw(st.booleans()):
        text = "\ufeff" + text
    if draw(st.booleans()):
        text += draw(_LINE)  # no final newline
    return text.encode()


@st.composite
def splits(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(sse_streams())
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(splits())
def test_any_split_of_a_stream_into_reads_gives_the_events_of_reading_it_whole(
    case: tuple[bytes, list[bytes]],
) -> None:
    data, pieces = case
    assert b"".join(pieces) == data
    assert parse_in_pieces(pieces) == parse_whole(data)


@given(sse_streams())
def test_byte_by_byte_reads_give_the_events_of_reading_it_whole(data: bytes) -> None:
    assert parse_in_pieces([data[i : i + 1] for i in range(len(data))]) == parse_whole(data)
