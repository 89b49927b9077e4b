"""`_http1.UpstreamPool`, the bridge's lean HTTP/1.1 client, against raw sockets.

Each test's upstream is an asyncio server that writes exactly the bytes the test
scripts (split where the test says), so framing, keep-alive, timeouts and broken
upstreams are all reproduced on a real loopback socket.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.helpers import collect, request, text_of
from turnstream.engine.deltas import Delta
from turnstream.providers._http1 import (
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamTimeout,
    _Connection,
)
from turnstream.providers.base import ProviderError
from turnstream.providers.openai_chat import OpenAIChatProvider

Writer = asyncio.StreamWriter
Answer = Callable[[bytes, Writer], Awaitable[None]]
"""Writes the reply to one request (given its head); closing is up to it."""

TIMEOUT = httpx.Timeout(10.0)


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def sse(*texts: str) -> bytes:
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in texts
    ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    frames = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    return b"".join(frames) + b"data: [DONE]\n\n"


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


class Upstream:
    """A raw server: each request is answered by the next `answers` entry (the
    last one repeats); `connections` counts the sockets opened to it."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                await answer(head, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@asynccontextmanager
async def serving(*answers: Answer) -> AsyncIterator[Upstream]:
    upstream = Upstream(*answers)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    async with server:
        yield upstream


def writes(*pieces: bytes, close: bool = False) -> Answer:
    """An answer that writes `pieces` one write (and one loop turn) at a time."""

    async def answer(head: bytes, writer: Writer) -> None:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)
        if close:
            writer.close()

    return answer


async def body_of(response: UpstreamResponse) -> bytes:
    try:
        return await response.aread()
    finally:
        response.close()


async def post(pool: UpstreamPool, body: bytes = b"{}") -> UpstreamResponse:
    return await pool.post("/v1/chat/completions", {"content-type": "application/json"}, body)


# -- framing, sans sockets --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=30), max_size=30),
)
def test_a_chunked_body_split_at_any_byte_decodes_to_the_same_bytes(
    pieces: list[bytes], cuts: list[int]
) -> None:
    wire = chunked(*pieces)

    async def decode() -> bytes:
        loop = asyncio.get_running_loop()
        connection = _Connection(loop)
        pool = UpstreamPool("http://upstream.invalid", timeout=TIMEOUT)
        response = UpstreamResponse(
            pool,
            connection,
            200,
            "OK",
            httpx.Headers(),
            keep_alive=True,
            body_length=None,
            chunked=True,
        )

        async def feed() -> None:
            # the socket's reads, cut where hypothesis says, a loop turn apart
            sizes = iter(cuts)
            rest = wire
            while rest:
                size = next(sizes, len(rest))
                connection.data_received(rest[:size])
                rest = rest[size:]
                await asyncio.sleep(0)

        feeding = asyncio.create_task(feed())
        got = await response.aread()
        await feeding
        return got

    assert asyncio.run(decode()) == b"".join(pieces)


# -- on a socket ---------------------------------------------------------------------


async def test_a_chunked_stream_arrives_piece_by_piece_and_the_connection_is_reused() -> None:
    async with serving(
        writes(STREAM_HEAD, chunked(b"one ")[:-5], chunked(b"two")[:-5], b"0\r\n\r\n")
    ) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        first = await body_of(await post(pool))
        second = await body_of(await post(pool))
        await pool.aclose()
    assert first == second == b"one two"
    assert up.connections == 1
    assert up.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in up.requests[0]
    assert up.requests[0].endswith(b"content-length: 2\r\n\r\n{}")


async def test_a_head_split_across_writes_after_100_continue_is_read() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\n"
    async with serving(
        writes(b"HTTP/1.1 100 Continue\r\n\r\n", head[:7], head[7:20], head[20:], b"hello")
    ) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        response = await post(pool)
        assert (response.status_code, response.reason_phrase) == (200, "OK")
        assert response.headers["x-a"] == "b"
        assert await body_of(response) == b"hello"
        await pool.aclose()


async def test_a_body_without_length_runs_until_the_upstream_closes() -> None:
    async with serving(writes(b"HTTP/1.1 200 OK\r\n\r\n", b"all ", b"of it", close=True)) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        assert await body_of(await post(pool)) == b"all of it"
        assert await body_of(await post(pool)) == b"all of it"
        await pool.aclose()
    assert up.connections == 2, "a body ended by a close cannot leave its connection"


async def test_a_gzip_body_is_decompressed() -> None:
    packed = gzip.compress(b"squeezed " * 50)
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed)
    async with serving(writes(head, packed[:10], packed[10:])) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        assert await body_of(await post(pool)) == b"squeezed " * 50
        await pool.aclose()


async def test_a_body_larger_than_the_read_buffer_arrives_whole() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: reading pauses and resumes on the way
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big)
    async with serving(writes(head, big)) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        response = await post(pool)
        got = bytearray()
        while piece := await response.read_some():
            got += piece
            await asyncio.sleep(0)  # a reader slower than the socket
        response.close()
        await pool.aclose()
    assert bytes(got) == big


async def test_a_connection_the_upstream_closed_while_idle_is_not_reused() -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with serving(writes(reply, close=True)) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        assert await body_of(await post(pool)) == b"ok"
        await asyncio.sleep(0.05)  # the upstream's close reaches the idle connection
        assert await body_of(await post(pool)) == b"ok"
        await pool.aclose()
    assert up.connections == 2


async def test_an_upstream_that_closes_mid_body_is_a_protocol_error() -> None:
    async with serving(writes(STREAM_HEAD, chunked(b"partial")[:-5], close=True)) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        response = await post(pool)
        assert await response.read_some() == b"partial"
        with pytest.raises(UpstreamProtocolError):
            await response.read_some()
        response.close()
        await pool.aclose()


async def test_a_bad_chunk_size_is_a_protocol_error() -> None:
    async with serving(writes(STREAM_HEAD, b"zz\r\nnope\r\n")) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        response = await post(pool)
        with pytest.raises(UpstreamProtocolError):
            await response.read_some()
        response.close()
        await pool.aclose()


async def test_a_silent_upstream_hits_the_read_timeout() -> None:
    async with serving(writes(STREAM_HEAD, chunked(b"first")[:-5])) as up:
        pool = UpstreamPool(up.url, timeout=httpx.Timeout(10.0, read=0.2))
        response = await post(pool)
        assert await response.read_some() == b"first"
        with pytest.raises(UpstreamTimeout):
            await response.read_some()
        response.close()
        await pool.aclose()


async def test_closing_a_response_midway_closes_its_connection() -> None:
    gone = asyncio.Event()

    async def hold(head: bytes, writer: Writer) -> None:
        writer.write(STREAM_HEAD + chunked(b"x")[:-5])
        await writer.drain()
        try:
            while True:  # until the client's close makes a write fail
                await asyncio.sleep(0.01)
                writer.write(b"1\r\ny\r\n")
                await writer.drain()
        except ConnectionError:
            gone.set()

    async with serving(hold) as up:
        pool = UpstreamPool(up.url, timeout=TIMEOUT)
        response = await post(pool)
        assert await response.read_some() == b"x"
        response.close()
        await gone.wait()
        await pool.aclose()


# -- through the provider: the same errors as with httpx ------------------------------


async def test_the_provider_streams_through_the_pool_and_maps_its_errors() -> None:
    ok = writes(STREAM_HEAD, chunked(sse("Hel", "lo")))
    cut = writes(STREAM_HEAD, chunked(b'data: {"choices":[]}\n\n')[:-5], close=True)
    silent = writes(STREAM_HEAD)
    async with serving(ok, cut, silent) as up:
        chat = OpenAIChatProvider(up.url, models={"m": "m"}, timeout=httpx.Timeout(10.0, read=0.2))
        try:
            assert text_of(await collect(chat.stream(request("q", model="m")))) == "Hello"
            with pytest.raises(ProviderError) as broken:
                await collect(chat.stream(request("q", model="m")))
            with pytest.raises(ProviderError) as quiet:
                await collect(chat.stream(request("q", model="m")))
        finally:
            await chat.aclose()
    assert (broken.value.status, broken.value.code) == (502, "upstream_error")
    assert (quiet.value.status, quiet.value.code) == (504, "upstream_timeout")


async def test_an_error_status_keeps_its_message_and_retry_after() -> None:
    body = json.dumps({"error": {"message": "slow down", "code": "rate_limit_exceeded"}}).encode()
    head = (
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after-ms: 1500\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % len(body)
    )
    async with serving(writes(head, body)) as up:
        chat = OpenAIChatProvider(up.url, models={"m": "m"})
        try:
            with pytest.raises(ProviderError) as caught:
                await collect(chat.stream(request("q", model="m")))
        finally:
            await chat.aclose()
    assert (caught.value.status, caught.value.message) == (429, "slow down")
    assert caught.value.retry_after == 1.5


async def test_text_and_an_error_in_one_read_keep_the_text() -> None:
    error = b'data: {"error": {"message": "model crashed", "type": "server_error"}}\n\n'
    partial = b'data: {"choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n'
    async with serving(writes(STREAM_HEAD + chunked(partial + error))) as up:
        chat = OpenAIChatProvider(up.url, models={"m": "m"})
        seen: list[Delta] = []

        async def consume() -> None:
            async for delta in chat.stream(request("q", model="m")):
                seen.append(delta)

        try:
            with pytest.raises(ProviderError):
                await consume()
        finally:
            await chat.aclose()
    assert text_of(seen) == "partial"
