"""Property-based fuzzing of the two parsers that read untrusted bytes: the SSE
decoder (upstream and server streams) and the create-request parser. No input
makes them raise anything but their documented errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turnstream.protocol import parse_create_params
from turnstream.protocol.errors import APIError
from turnstream.server.limits import parse_json
from turnstream.sse import Decoder

_SSE_PIECES = st.sampled_from(
    [b"data: ", b"event: ", b"id: ", b"retry: ", b":", b"\r", b"\n", b"\r\n", b"{", b"}", b"9"]
)
_SSE_BYTES = st.lists(st.one_of(_SSE_PIECES, st.binary(max_size=20)), max_size=40).map(b"".join)


def _decode(chunks: list[bytes]) -> list[Any]:
    decoder = Decoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.flush()


@settings(max_examples=400, deadline=None)
@given(body=_SSE_BYTES, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_the_sse_decoder_takes_any_bytes_cut_anywhere(body: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(body)) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    # never raises, and how the body was cut does not change what it means
    assert _decode(chunks) == _decode([body])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_CREATE_KEYS = st.sampled_from(
    [
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "previous_response_id",
        "conversation",
        "store",
        "stream",
        "background",
        "metadata",
        "max_output_tokens",
        "temperature",
        "stream_options",
        "parallel_tool_calls",
    ]
)


@settings(max_examples=400, deadline=None)
@given(body=st.dictionaries(_CREATE_KEYS, _JSON, max_size=6) | _JSON)
def test_the_request_parser_only_ever_raises_api_errors(body: Any) -> None:
    error: APIError | None = None
    try:
        parse_create_params(body)
    except APIError as raised:
        error = raised
    if error is not None:
        assert error.status == 400
        assert error.to_body()["error"]["type"] == "invalid_request_error"


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=64) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_the_body_reader_only_ever_raises_api_errors(raw: bytes) -> None:
    error: APIError | None = None
    try:
        parse_json(raw)
    except APIError as raised:
        error = raised
    assert error is None or error.status == 400


def test_deep_nesting_is_a_400() -> None:
    for depth in (5_000, 100_000):
        with pytest.raises(APIError) as caught:
            parse_json(b"[" * depth + b"]" * depth)
        assert caught.value.status == 400
