"""Compressed request bodies (`Content-Encoding: zstd` or `gzip`), decoded before routing.

Codex CLI compresses its request bodies with zstd. The middleware inflates the body
once and hands the app the plain bytes with the `content-encoding` header removed and
`content-length` corrected, so every route reads JSON as usual. An encoding it does
not know, or a body that does not decode, is a 400 in OpenAI's error shape.
"""

from __future__ import annotations

import gzip
import json
import zlib

import zstandard
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from turnstream.protocol.errors import invalid_request

__all__ = ["MAX_DECOMPRESSED_BYTES", "DecompressedBodyMiddleware"]

MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
"""A compressed body may not inflate beyond this (a zip bomb is a 400, not an OOM)."""


class DecompressedBodyMiddleware:
    """Pure ASGI: inflates zstd and gzip request bodies for the app behind it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        encoding = _content_encoding(scope) if scope["type"] == "http" else None
        if encoding is None:
            await self.app(scope, receive, send)
            return
        raw = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # a disconnect before the body was complete
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            body = _decode(encoding, bytes(raw))
        except ValueError as exc:
            error = invalid_request(str(exc), code="invalid_body")
            payload = json.dumps(error.to_body()).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        headers = [
            (key, value)
            for key, value in scope["headers"]
            if key not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app({**scope, "headers": headers}, replay, send)


def _content_encoding(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"content-encoding":
            encoding = value.decode("latin-1").strip().lower()
            return None if encoding in ("", "identity") else encoding
    return None


def _decode(encoding: str, data: bytes) -> bytes:
    try:
        if encoding == "zstd":
            with zstandard.ZstdDecompressor().stream_reader(data) as reader:
                body = reader.read(MAX_DECOMPRESSED_BYTES + 1)
        elif encoding in ("gzip", "x-gzip"):
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            body = inflater.decompress(data, MAX_DECOMPRESSED_BYTES + 1)
        else:
            raise ValueError(
                f"Unsupported Content-Encoding '{encoding}': send the body as is, "
                "or compressed with zstd or gzip."
            )
    except (zstandard.ZstdError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise ValueError(f"The request body is not valid {encoding} data: {exc}") from None
    if len(body) > MAX_DECOMPRESSED_BYTES:
        raise ValueError("The decompressed request body is too large.")
    return body
