"""A fake Chat Completions upstream that keeps a model's pace, for `bridge_paced.py`.

Raw asyncio (uvloop when installed), no framework: the upstream itself costs next to
nothing, so what a proxy in front of it adds is the proxy's. `POST .../chat/completions`
with `stream: true` answers a role chunk, `--chunks` one-word content chunks, a finish
chunk, a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`.
Each SSE event is its own HTTP chunk and its own write, as a real model server sends
them. Chunk `i` leaves at `start + i * delay` on the clock, not `delay` after the
previous one, so a busy machine does not stretch a stream (it catches up instead).

    python bench/paced_upstream.py [--chunks 100] [--delay-ms 10]   # prints its port
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

_WORDS = [b"alpha ", b"beta ", b"gamma ", b"delta ", b"eps ", b"zeta ", b"eta ", b"theta "]


def _frame(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Upstream:
    def __init__(self, chunks: int, delay: float) -> None:
        self.chunks = chunks
        self.delay = delay

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    headers = {}
                    for line in head.decode("latin-1").split("\r\n")[1:]:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    length = int(headers.get("content-length", "0"))
                    body = await reader.readexactly(length) if length else b"{}"
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client went away
                await self.chat(json.loads(body), writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def chat(self, request: dict[str, object], writer: asyncio.StreamWriter) -> None:
        model = json.dumps(request.get("model") or "bench").encode()
        head = (
            b'data: {"id":"chatcmpl-paced","object":"chat.completion.chunk","created":0,'
            b'"model":' + model + b',"choices":[{"index":0,"delta":'
        )
        tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            + _frame(head + b'{"role":"assistant","content":""}' + tail)
        )
        await writer.drain()
        words = [_frame(head + b'{"content":"' + w + b'"}' + tail) for w in _WORDS]
        start = time.monotonic()
        for i in range(self.chunks):
            wait = start + (i + 1) * self.delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(words[i % len(words)])
            await writer.drain()
        end = _frame(head + b'{},"logprobs":null,"finish_reason":"stop"}]}\n\n')
        options = request.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = {"prompt_tokens": 1, "completion_tokens": self.chunks}
            end += _frame(
                b'data: {"id":"chatcmpl-paced","object":"chat.completion.chunk","created":0,'
                b'"model":'
                + model
                + b',"choices":[],"usage":'
                + json.dumps(usage).encode()
                + b"}\n\n"
            )
        writer.write(end + _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()


async def serve(chunks: int, delay: float) -> None:
    upstream = Upstream(chunks, delay)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=10.0)
    args = parser.parse_args()
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(args.chunks, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
