"""An incremental Server-Sent Events parser that buffers across reads.

Network reads split an SSE stream anywhere: inside a line, between ``\\r`` and
``\\n``, inside a multi-byte UTF-8 character. :class:`SSEParser` keeps the
unfinished tail between ``feed`` calls, so every split of a byte stream gives
the same events as reading it whole. It follows the WHATWG event-stream rules
(LF, CRLF and CR line ends, ``:`` comments, multi-line ``data``, ``event``,
``id``, ``retry``, a leading BOM) and, unlike a browser, dispatches an event
left pending when the stream ends without its final blank line.

Data stays as bytes (``SSEEvent.raw``) so JSON decoders can read it without
an extra decode on the hot path.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["SSEEvent", "SSEParser"]

_BOM: Final = b"\xef\xbb\xbf"
# A longer retry is no real reconnection time, and past 4300 digits int() refuses it.
_MAX_RETRY_DIGITS: Final = 18


class SSEEvent(NamedTuple):
    """One dispatched event: its type (``message`` by default), data bytes, last id and retry."""

    event: str
    raw: bytes
    id: str | None = None
    retry: int | None = None

    @property
    def data(self) -> str:
        """The data field as text (invalid UTF-8 replaced, as browsers do)."""
        return self.raw.decode("utf-8", "replace")

    def frame(self) -> bytes:
        """The event written out again as one SSE frame (its type and data; the id and
        retry fields, which no API here uses, are left out)."""
        raw = self.raw
        if b"\n" in raw:
            raw = raw.replace(b"\n", b"\ndata: ")
        if self.event == "message":
            return b"data: " + raw + b"\n\n"
        return b"event: " + self.event.encode() + b"\ndata: " + raw + b"\n\n"


class SSEParser:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_retry", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._data: bytes | None = None
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk`` (any slice of the stream); return the events it completed."""
        if (
            not self._buf
            and self._data is None
            and self._event is None
            and self._started
            and chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n\n")
            and b"\r" not in chunk
        ):
            # The common read: exactly one "data: ...\n\n" event (OpenAI-style streams).
            return [SSEEvent("message", chunk[6:-2], self._id, self._retry)]
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buf = buf  # could still be the start of a BOM
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
        hold = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                # A CR at the end of a read may be the first half of a CRLF.
                hold = b"\r"
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop() + hold
        if not lines:
            return []
        return self._lines(lines)

    def finish(self) -> list[SSEEvent]:
        """The stream ended: parse the unterminated last line and dispatch a pending event."""
        tail = self._buf
        self._buf = b""
        if not self._started:
            self._started = True
            if tail.startswith(_BOM):
                tail = tail[len(_BOM) :]
        tail = tail.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = tail.split(b"\n") if tail else []
        lines.append(b"")  # the blank line the stream never sent
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        event = self._event
        for line in lines:
            if not line:
                if data is not None:
                    events.append(SSEEvent(event or "message", data, self._id, self._retry))
                    data = None
                event = None
                continue
            if line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                data = value if data is None else data + b"\n" + value
                continue
            if line[0] == 0x3A:  # ":" starts a comment (keep-alives)
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"event":
                event = value.decode("utf-8", "replace")
            elif name == b"data":  # "data" with no colon: an empty data line
                data = value if data is None else data + b"\n" + value
            elif name == b"id":
                if b"\0" not in value:
                    self._id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit() and len(value) <= _MAX_RETRY_DIGITS:
                self._retry = int(value)
        self._data = data
        self._event = event
        return events
