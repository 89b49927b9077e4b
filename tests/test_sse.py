"""The sans-I/O SSE codec."""

from __future__ import annotations

import json

import pytest

from turnstream.protocol import OutputTextDeltaEvent
from turnstream.sse import KEEPALIVE, Decoder, ServerSentEvent, encode


def _decode_in_pieces(data: bytes, cuts: list[int]) -> list[ServerSentEvent]:
    decoder = Decoder()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in [*cuts, len(data)]:
        events += decoder.feed(data[start:cut])
        start = cut
    return events + decoder.flush()


def test_encode_writes_an_event_line_and_one_compact_data_line() -> None:
    frame = encode({"type": "response.created", "sequence_number": 0, "text": "a\nb"})
    assert frame == (
        b"event: response.created\n"
        b'data: {"type":"response.created","sequence_number":0,"text":"a\\nb"}\n\n'
    )


def test_encode_of_a_model_matches_its_json_and_keeps_unicode_unescaped() -> None:
    event = OutputTextDeltaEvent(
        sequence_number=4, item_id="msg_1", output_index=0, content_index=0, delta="héllo ☃"
    )
    frame = encode(event)
    head, data = frame.split(b"\n", 1)
    assert head == b"event: response.output_text.delta"
    assert data.startswith(b"data: ")
    assert data.endswith(b"\n\n")
    assert data.count(b"\n") == 2
    assert json.loads(data[6:]) == event.model_dump(mode="json")
    assert "☃".encode() in data


def test_encode_never_sends_a_done_sentinel() -> None:
    assert b"[DONE]" not in encode({"type": "response.completed", "sequence_number": 1})


def test_keepalive_is_a_comment_the_decoder_drops() -> None:
    decoder = Decoder()
    assert decoder.feed(KEEPALIVE) == []
    assert decoder.flush() == []


def test_an_encoded_stream_decodes_back_to_the_same_events() -> None:
    events = [{"type": f"t{i}", "sequence_number": i, "x": "é" * i} for i in range(5)]
    body = b"".join(encode(e) for e in events)
    decoded = Decoder().feed(body)
    assert [e.event for e in decoded] == [f"t{i}" for i in range(5)]
    assert [e.json() for e in decoded] == events


STREAM = (
    b": hello\r\n"
    b"event: a\r\n"
    b'data: {"type":"a","text":"h\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80"}\r\n'
    b"\r\n"
    b"id: 7\r"
    b"data: line1\r"
    b"data: line2\r"
    b"\r"
    b"event: c\n"
    b"retry: 1500\n"
    b"data:no-space\n"
    b"\n"
)
EXPECTED = [
    ServerSentEvent(data='{"type":"a","text":"hé☃😀"}', event="a"),
    ServerSentEvent(data="line1\nline2", id="7"),
    ServerSentEvent(data="no-space", event="c", id="7", retry=1500),
]


def test_a_mixed_line_ending_stream_decodes_in_one_chunk() -> None:
    assert _decode_in_pieces(STREAM, []) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_a_stream_split_at_any_byte_decodes_the_same(cut: int) -> None:
    assert _decode_in_pieces(STREAM, [cut]) == EXPECTED


def test_a_stream_fed_one_byte_at_a_time_decodes_the_same() -> None:
    assert _decode_in_pieces(STREAM, list(range(1, len(STREAM)))) == EXPECTED


def test_a_split_inside_a_multibyte_character_is_not_corrupted() -> None:
    body = encode({"type": "x", "t": "😀😀"})
    emoji = body.index("😀".encode())
    for cut in range(emoji, emoji + 8):
        [event] = _decode_in_pieces(body, [cut])
        assert event.json()["t"] == "😀😀"


def test_crlf_split_between_cr_and_lf_does_not_create_an_empty_line() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r\n") == [ServerSentEvent(data="a\nb")]


def test_flush_finishes_a_last_event_without_its_blank_line() -> None:
    decoder = Decoder()
    assert decoder.feed(b"event: x\ndata: 1") == []
    assert decoder.flush() == [ServerSentEvent(data="1", event="x")]


def test_an_event_without_data_is_still_delivered_like_the_sdk_does() -> None:
    assert Decoder().feed(b"event: ping\n\n") == [ServerSentEvent(event="ping")]


def test_blank_lines_alone_produce_no_events() -> None:
    assert Decoder().feed(b"\n\n\r\n\r\r") == []


def test_unknown_fields_are_ignored() -> None:
    assert Decoder().feed(b"foo: bar\ndata: x\n\n") == [ServerSentEvent(data="x")]


def test_json_raises_on_non_json_data() -> None:
    with pytest.raises(json.JSONDecodeError):
        ServerSentEvent(data="[DONE]x").json()


def test_a_thousand_small_events_in_4k_chunks_decode_whole_and_in_order() -> None:
    # Speed is the benchmarks' business (bench/loop_overhead.py measures the decoder
    # per event); here, chunk boundaries that fall anywhere in a frame lose nothing.
    body = b"".join(
        encode({"type": "response.output_text.delta", "sequence_number": i, "delta": "tok"})
        for i in range(1000)
    )
    decoder = Decoder()
    events = []
    for offset in range(0, len(body), 4096):
        events += decoder.feed(body[offset : offset + 4096])
    events += decoder.flush()
    assert [event.json()["sequence_number"] for event in events] == list(range(1000))


def test_a_long_line_arriving_in_many_small_chunks_is_joined_once() -> None:
    payload = "x" * 200_000
    body = encode({"type": "big", "p": payload})
    decoder = Decoder()
    events = []
    for offset in range(0, len(body), 100):
        events += decoder.feed(body[offset : offset + 100])
    [event] = events
    assert event.json()["p"] == payload
