"""A lean HTTP/1.1 client for the Chat Completions bridge's upstream streams.

httpx reads each piece of a streamed body through seven async-generator levels, an
h11 state-machine pass and an anyio cancel scope with a timer of its own; at a
model's pace (a chunk every 10 ms per stream) that was about a third of the
server's CPU. `UpstreamPool` does only what the bridge needs: one origin, a POST
with its body, keep-alive connections, the response body read as it arrives
(chunked, `Content-Length`, or until the upstream closes), the bridge's four
timeouts (connect, write, read, pool) and a connection cap. The socket is an
`asyncio.Protocol`: the loop appends what it read to a buffer and wakes the one
reader, with no task, generator or timer per chunk (the read timeout is a watchdog
that is re-armed only when it fires).

Errors have one root, `UpstreamHTTPError`:

- `UpstreamConnectError`: the connection could not be opened (refused, DNS, TLS);
- `UpstreamTimeout`: the connect, write, read or pool timeout passed;
- `UpstreamProtocolError`: the upstream broke HTTP/1.1 or closed the connection
  before the response was complete.

Proxies are not spoken here: an `httpx.AsyncClient` handed to the provider (with
its proxies, or anything else httpx does) is used as it is instead.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httpx

__all__ = [
    "UpstreamConnectError",
    "UpstreamHTTPError",
    "UpstreamPool",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamTimeout",
]

_MAX_HEAD = 64 * 1024
"""The most bytes a response head (status line and headers) may take."""
_HIGH_WATER = 256 * 1024
"""Unread bytes at which the socket stops being read until the reader catches up."""


class UpstreamHTTPError(Exception):
    """The root of this module's errors."""


class UpstreamConnectError(UpstreamHTTPError):
    """The connection could not be opened."""


class UpstreamTimeout(UpstreamHTTPError):
    """A connect, write, read or pool timeout passed."""


class UpstreamProtocolError(UpstreamHTTPError):
    """The upstream broke HTTP/1.1 or closed the connection early."""


class _Connection(asyncio.Protocol):
    """One socket: the bytes read and not yet consumed, and the one reader waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_since = 0.0
        self._last_read = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._read_timeout: float | None = None
        self._reading_paused = False
        self._writable: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._last_read = self._loop.time()
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake(None)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None:
            self.error = exc
        self._wake(None)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- for the pool and the response ---------------------------------------------

    @property
    def usable(self) -> bool:
        """Open, and nothing unread on it (an idle connection must be silent)."""
        return (
            self.transport is not None
            and not self.eof
            and not self.transport.is_closing()
            and not self.buffer
        )

    def send(self, data: bytes, read_timeout: float | None) -> None:
        """Write a request; the read timeout counts from now."""
        assert self.transport is not None
        self.transport.write(data)
        self._last_read = self._loop.time()
        self._read_timeout = read_timeout
        if read_timeout is not None:
            self._watchdog = self._loop.call_at(self._last_read + read_timeout, self._watch)

    async def drained(self, write_timeout: float | None) -> None:
        """Wait until the socket takes more writes (only when it asked for a pause)."""
        if self._writable is None:
            return
        try:
            async with asyncio.timeout(write_timeout):
                await self._writable
        except TimeoutError:
            raise UpstreamTimeout("timed out writing the request upstream") from None

    def consumed(self) -> None:
        """The reader took bytes from the buffer: read the socket again if paused."""
        if self._reading_paused and len(self.buffer) < _HIGH_WATER // 2:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    async def more(self) -> None:
        """Wait for more bytes, EOF, or the read timeout (raises `UpstreamTimeout`)."""
        if self.eof:
            return
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._waiting_since = self._loop.time()
        try:
            await waiter
        finally:
            self._waiter = None

    def done_reading(self) -> None:
        """The response is over: no read timeout while the connection is idle."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._read_timeout = None

    def close(self) -> None:
        self.done_reading()
        if self.transport is not None:
            self.transport.close()
        self.eof = True

    def _wake(self, error: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    def _watch(self) -> None:
        """The read timeout's watchdog: one timer per read timeout, not per read."""
        timeout = self._read_timeout
        if timeout is None:
            self._watchdog = None
            return
        quiet_since = max(self._last_read, self._waiting_since)
        now = self._loop.time()
        if self._waiter is not None and now - quiet_since >= timeout:
            self._watchdog = None
            self._wake(UpstreamTimeout(f"no byte from upstream in {timeout:g} s"))
            return
        base = quiet_since if self._waiter is not None else now
        self._watchdog = self._loop.call_at(base + timeout, self._watch)


class UpstreamResponse:
    """A response whose head has arrived; its body is read with `read_some()`.

    `close()` it when done: a body read to its end leaves a keep-alive connection to
    the pool; anything else closes the connection, which tells the upstream to stop.
    """

    def __init__(
        self,
        pool: UpstreamPool,
        connection: _Connection,
        status_code: int,
        reason_phrase: str,
        headers: httpx.Headers,
        *,
        keep_alive: bool,
        body_length: int | None,
        chunked: bool,
    ) -> None:
        self._pool = pool
        self._connection = connection
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self._keep_alive = keep_alive
        self._remaining = body_length
        self._chunked = chunked
        self._chunk_left = 0
        self._stage = "size" if chunked else "body"
        self._complete = body_length == 0
        self._closed = False
        self._content: bytes | None = None
        self._decompressor = _decompressor(headers.get("content-encoding"))

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        """The body as text, once `aread()` has read it."""
        if self._content is None:
            raise RuntimeError("read the body with aread() first")
        return self._content.decode("utf-8", "replace")

    async def aread(self) -> bytes:
        """The whole (rest of the) body."""
        parts = []
        while piece := await self.read_some():
            parts.append(piece)
        self._content = b"".join(parts)
        return self._content

    async def read_some(self) -> bytes:
        """The body bytes that have arrived (waiting for some); `b""` at its end."""
        connection = self._connection
        while True:
            if self._complete:
                return self._flush()
            data = self._take()
            if data:
                connection.consumed()
                if self._decompressor is None:
                    return data
                data = self._decompressor.decompress(data)
                if data:
                    return data
                continue
            if self._complete:
                continue
            if connection.eof:
                if self._remaining is None and not self._chunked:
                    self._complete = True  # the body runs until the upstream closes
                    continue
                raise UpstreamProtocolError(
                    "the upstream closed the connection before the response was complete"
                ) from connection.error
            await connection.more()

    def close(self) -> None:
        """Done with this response (idempotent)."""
        if self._closed:
            return
        self._closed = True
        reusable = self._complete and self._keep_alive and self._connection.usable
        self._pool.release(self._connection, reusable=reusable)

    def _flush(self) -> bytes:
        if self._decompressor is None:
            return b""
        rest = self._decompressor.flush()
        self._decompressor = None
        return rest

    def _take(self) -> bytes:
        """What the buffer holds of the body now; marks the body complete at its end."""
        buffer = self._connection.buffer
        if self._chunked:
            return self._take_chunked(buffer)
        if self._remaining is None:
            data = bytes(buffer)
            buffer.clear()
            return data
        data = bytes(buffer[: self._remaining])
        del buffer[: len(data)]
        self._remaining -= len(data)
        self._complete = self._remaining == 0
        return data

    def _take_chunked(self, buffer: bytearray) -> bytes:
        """Chunked transfer decoding, as far as the buffer goes."""
        parts: list[bytes] = []
        while not self._complete:
            if self._stage == "data":
                data = bytes(buffer[: self._chunk_left])
                if not data:
                    break
                del buffer[: len(data)]
                parts.append(data)
                self._chunk_left -= len(data)
                if self._chunk_left:
                    break
                self._stage = "crlf"
            elif self._stage == "crlf":
                if len(buffer) < 2:
                    break
                if buffer[:2] != b"\r\n":
                    raise UpstreamProtocolError("a chunk of the body did not end with CRLF")
                del buffer[:2]
                self._stage = "size"
            elif not self._take_line(buffer):
                break
        return b"".join(parts)

    def _take_line(self, buffer: bytearray) -> bool:
        """A chunk size line, or a trailer line after the last chunk; False if the
        buffer does not hold a whole line yet."""
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise UpstreamProtocolError("a chunk size line is too long")
            return False
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        if self._stage == "trailer":
            self._complete = not line
            return True
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise UpstreamProtocolError(f"bad chunk size line {line[:40]!r}") from None
        if size < 0:
            raise UpstreamProtocolError(f"bad chunk size line {line[:40]!r}")
        self._chunk_left = size
        self._stage = "data" if size else "trailer"
        return True


def _decompressor(encoding: str | None) -> zlib._Decompress | None:
    # we ask for no encoding; an upstream that compresses anyway is still read
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return None
    kind = encoding.strip().lower()
    if kind in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if kind == "deflate":
        return zlib.decompressobj()
    raise UpstreamProtocolError(f"the upstream sent an unsupported content-encoding {kind!r}")


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to one origin, at most `max_connections`.

    Args:
        base_url: `http://` or `https://` origin (its path is ignored: requests name
            their own).
        timeout: httpx's timeout fields, with httpx's meaning: `connect` to open a
            connection, `write` to send the request, `read` the longest pause
            between two bytes of the response, `pool` to wait for a connection at the
            cap. `None` in a field: no limit.
        max_connections: The most connections open at once (`None`: no cap).
        ssl_context: For `https` (default: httpx's, with certifi's roots).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout,
        max_connections: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        secure = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if secure else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if parts.port is None else f"{host}:{parts.port}"
        self._ssl = (ssl_context or httpx.create_ssl_context()) if secure else None
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_connections) if max_connections else None
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self.is_closed = False

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> UpstreamResponse:
        """Send `POST path` and wait for the response's head."""
        if self.is_closed:
            raise UpstreamProtocolError("the connection pool is closed")
        lines = [f"POST {path} HTTP/1.1", f"host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        await self._take_slot()
        connection: _Connection | None = None
        try:
            connection = await self._connection()
            connection.send(request, self._timeout.read)
            await connection.drained(self._timeout.write)
            return await self._response(connection)
        except BaseException:
            if connection is not None:
                self.release(connection, reusable=False)
            elif self._slots is not None:
                self._slots.release()
            raise

    def release(self, connection: _Connection, *, reusable: bool) -> None:
        """A response is done with `connection` (its slot is free again)."""
        connection.done_reading()
        if reusable and not self.is_closed:
            self._idle.append(connection)
        else:
            connection.close()
            self._open.discard(connection)
        if self._slots is not None:
            self._slots.release()

    async def aclose(self) -> None:
        """Close every connection; later requests fail."""
        self.is_closed = True
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    async def _take_slot(self) -> None:
        if self._slots is None:
            return
        if not self._slots.locked():
            await self._slots.acquire()  # free: no timer to set up
            return
        try:
            async with asyncio.timeout(self._timeout.pool):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamTimeout("timed out waiting for a connection to the upstream") from None

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
            connection.close()
            self._open.discard(connection)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout.connect):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise UpstreamTimeout(f"timed out connecting to {self._host_header}") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamConnectError(f"{exc or type(exc).__name__}") from exc
        self._open.add(connection)
        return connection

    async def _response(self, connection: _Connection) -> UpstreamResponse:
        while True:
            head = await _head(connection)
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            version, _, rest = status_line.partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise UpstreamProtocolError(f"bad status line {status_line[:80]!r}")
            status = int(code)
            if 100 <= status < 200:
                continue  # an interim response (100 Continue): the real one follows
            fields = []
            for line in header_lines:
                name, colon, value = line.partition(":")
                if not colon:
                    raise UpstreamProtocolError(f"bad header line {line[:80]!r}")
                fields.append((name.strip(), value.strip()))
            headers = httpx.Headers(fields)
            connection_tokens = headers.get("connection", "").lower()
            keep_alive = (
                "close" not in connection_tokens
                if version == "HTTP/1.1"
                else "keep-alive" in connection_tokens
            )
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            length: int | None = None
            if status in (204, 304):
                length = 0
            elif not chunked and "content-length" in headers:
                try:
                    length = int(headers["content-length"])
                except ValueError:
                    raise UpstreamProtocolError("bad content-length") from None
            elif not chunked:
                keep_alive = False  # the body ends when the upstream closes
            return UpstreamResponse(
                self,
                connection,
                status,
                reason,
                headers,
                keep_alive=keep_alive,
                body_length=length,
                chunked=chunked,
            )


async def _head(connection: _Connection) -> bytes:
    """The next response head on `connection` (taken from its buffer)."""
    buffer = connection.buffer
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            connection.consumed()
            return head
        if len(buffer) > _MAX_HEAD:
            raise UpstreamProtocolError("the response head is too large")
        if connection.eof:
            raise UpstreamProtocolError(
                "the upstream closed the connection without a response"
            ) from connection.error
        await connection.more()
