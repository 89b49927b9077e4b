"""A sans-I/O Server-Sent Events codec for Responses streams.

`encode(event)` renders one frame, `event: <type>\\ndata: <compact JSON>\\n\\n`, in a
single `bytes` (no `data: [DONE]`: OpenAI ends a Responses stream by closing the
body). `KEEPALIVE` is an SSE comment, which every decoder drops; a typed `ping` frame
would reach SDK users as an event.

`Decoder` turns arbitrary byte chunks into `ServerSentEvent`s. It accepts CR, LF
and CRLF line ends, chunks split anywhere (inside a CRLF pair or a multi-byte UTF-8
character), comments, multi-line `data` (joined with `\\n`), `id` and `retry`.
Both are on the per-event hot path of server and client, so the work is done with
`bytes.splitlines` / `partition` per line, never a Python loop per byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel

__all__ = ["KEEPALIVE", "Decoder", "ServerSentEvent", "encode", "encode_data"]

KEEPALIVE: Final = b": keepalive\n\n"
"""A comment frame that keeps idle connections (and proxies) open."""

_EVENT_PREFIX: Final = b"event: "
_DATA_PREFIX: Final = b"\ndata: "
_FRAME_END: Final = b"\n\n"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_data(kind: str, data: bytes) -> bytes:
    """One SSE frame from an event's `type` and its already serialized JSON."""
    return b"".join((_EVENT_PREFIX, kind.encode(), _DATA_PREFIX, data, _FRAME_END))


def encode(event: Mapping[str, Any] | BaseModel) -> bytes:
    """One SSE frame for an event: an `event:` line naming its `type`, one `data:` line.

    Args:
        event: A protocol event model, or a mapping with a `type` key. Models are
            serialized by pydantic-core straight to bytes; JSON never holds a raw
            newline, so `data` is always a single line.
    """
    if isinstance(event, BaseModel):
        data = event.__pydantic_serializer__.to_json(event)
        kind = getattr(event, "type", None)
    else:
        data = _dumps(event).encode()
        kind = event.get("type")
    if isinstance(kind, str) and kind:
        return b"".join((_EVENT_PREFIX, kind.encode(), _DATA_PREFIX, data, _FRAME_END))
    return b"".join((b"data: ", data, _FRAME_END))


class ServerSentEvent:
    """One decoded event.

    Attributes:
        event: The `event:` field, or `None` when the frame had none.
        data: The `data:` lines joined with `\\n` (empty when there were none).
        id: The last `id:` seen on the stream (it persists across events), or `None`.
        retry: The `retry:` reconnection delay in milliseconds, when this frame set one.
    """

    __slots__ = ("data", "event", "id", "retry")

    def __init__(
        self,
        data: str = "",
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry

    def json(self) -> Any:
        """`data` parsed as JSON (raises `json.JSONDecodeError` if it is not JSON)."""
        return json.loads(self.data)

    def __repr__(self) -> str:
        return (
            f"ServerSentEvent(event={self.event!r}, data={self.data!r}, "
            f"id={self.id!r}, retry={self.retry!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (self.event, self.data, self.id, self.retry) == (
            other.event,
            other.data,
            other.id,
            other.retry,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable value object


class Decoder:
    """Incremental SSE decoder: `feed(chunk)` returns the events it completed."""

    __slots__ = ("_buffer", "_data", "_event", "_has_fields", "_last_id", "_retry", "_skip_lf")

    def __init__(self) -> None:
        self._buffer: list[bytes] = []
        # A chunk that ended in CR may be the first half of CRLF: drop a leading LF next.
        self._skip_lf = False
        self._event: str | None = None
        self._data: list[str] = []
        self._retry: int | None = None
        self._last_id: str | None = None
        self._has_fields = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume a chunk of the body; return the events whose blank line arrived."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        if self._buffer:
            if b"\n" not in chunk and b"\r" not in chunk:
                # Still inside one long line: park the piece, join once at its end.
                self._buffer.append(chunk)
                return []
            self._buffer.append(chunk)
            chunk = b"".join(self._buffer)
        lines = chunk.splitlines()
        end = chunk[-1:]
        if end != b"\n" and end != b"\r":
            self._buffer = [lines.pop()]
        else:
            self._buffer = []
            self._skip_lf = end == b"\r"
        events: list[ServerSentEvent] = []
        # The lines every Responses frame is made of (`event: `, `data: `, blank) are
        # handled here, the rest in `_line`: a call per line is a third of the cost.
        for line in lines:
            if not line:
                if self._has_fields:
                    events.append(self._dispatch())
            elif line.startswith(b"data: "):
                self._data.append(line[6:].decode("utf-8", "replace"))
                self._has_fields = True
            elif line.startswith(b"event: "):
                self._event = line[7:].decode("utf-8", "replace")
                self._has_fields = True
            else:
                self._line(line)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of body: finish a last line without terminator and a pending event."""
        events: list[ServerSentEvent] = []
        if self._buffer:
            line = b"".join(self._buffer)
            self._buffer = []
            event = self._line(line.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        self._skip_lf = False
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch() if self._has_fields else None
        if line[:1] == b":":
            return None
        name, colon, raw = line.partition(b":")
        if colon and raw[:1] == b" ":
            raw = raw[1:]
        value = raw.decode("utf-8", "replace")
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if "\0" not in value:
                self._last_id = value
        elif name == b"retry":
            if value.isdigit():
                self._retry = int(value)
        else:
            return None
        self._has_fields = True
        return None

    def _dispatch(self) -> ServerSentEvent:
        data = self._data
        event = ServerSentEvent(
            data[0] if len(data) == 1 else "\n".join(data),
            self._event,
            self._last_id,
            self._retry,
        )
        self._data = []
        self._event = None
        self._retry = None
        self._has_fields = False
        return event
