"""A call the local model writes as text streams its arguments as they are generated.

Pure: `ArgumentStream` and `ChunkTranslator(stream_arguments=True)` (a reply decoded
under the call grammar), fed chunks split at awkward places, no model.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.providers.helpers import run_machine
from turnstream.engine.deltas import FinishDelta, ItemEndDelta, OutputTextDelta, ToolCallDelta
from turnstream.providers._local_chat import ChunkTranslator, build_chat_request
from turnstream.providers._text_calls import ArgumentStream
from turnstream.providers.base import GenerationRequest

PLAIN = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
DESCRIBED = {**PLAIN, "name": "get_time", "description": "Current time, e.g. in Asia/Tokyo."}
ARGUMENTS = '{"city": "Rio de Janeiro, \\"RJ\\" {centre}", "days": [1, {"n": 2}]}'
REPLY = '{"name": "get_weather", "arguments": ' + ARGUMENTS + "}"


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def translator(
    items: list[dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    *,
    review: bool = True,
    stream: bool = True,
    parallel: bool = True,
) -> ChunkTranslator:
    request = GenerationRequest(
        "local",
        items or [user("Weather in Rio?")],
        tools=tools or [PLAIN, DESCRIBED],
        parallel_tool_calls=parallel,
    )
    return ChunkTranslator(build_chat_request(request), review=review, stream_arguments=stream)


def run(t: ChunkTranslator, pieces: list[str], finish: str = "stop") -> tuple[list[Any], list[Any]]:
    """(deltas while streaming, deltas at the end)."""
    during = [d for p in pieces for d in t.feed(chunk(p))]
    return during, t.feed(chunk(finish=finish)) + t.finish()


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_arguments_read_as_they_grow_are_the_arguments_whatever_the_split(
    cuts: list[int],
) -> None:
    reply = "```json\n" + REPLY + "\n```"
    stream = ArgumentStream()
    seen = ""
    pieces = []
    for piece in split(reply, cuts):
        seen += piece
        pieces.append(stream.feed(seen))
    assert stream.name == "get_weather"
    assert stream.complete
    assert "".join(pieces) == ARGUMENTS


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_a_grammar_call_streams_its_arguments_before_the_reply_ends(cuts: list[int]) -> None:
    t = translator()
    during, end = run(t, [*split(REPLY, cuts), ""])
    calls = [d for d in during if isinstance(d, ToolCallDelta)]
    assert calls, "nothing streamed before the end"
    first = calls[0]
    assert (first.index, first.name) == (0, "get_weather")
    assert first.call_id
    assert all(c.index == 0 and c.name is None and c.call_id is None for c in calls[1:])
    assert "".join(c.arguments for c in calls) == ARGUMENTS
    assert json.loads(ARGUMENTS)  # what the done event will carry: valid JSON
    assert not any(isinstance(d, OutputTextDelta) for d in during + end)
    assert end == [ItemEndDelta(), FinishDelta("stop")]
    assert t.decision == "call"


def test_the_name_goes_out_once_the_arguments_begin() -> None:
    t = translator()
    head = '{"name": "get_weather", "argu'
    assert t.feed(chunk(head)) == []  # name known, but is it followed by arguments?
    (call,) = t.feed(chunk('ments": {"ci'))
    assert (call.name, call.arguments) == ("get_weather", '{"ci')


def test_a_call_the_review_might_reject_goes_out_whole_once_reviewed_not_at_the_end() -> None:
    # its tool's description has an example the model could have copied: not streamed,
    # but out as soon as its arguments close, before the fence after it is written
    t = translator([user("Time in Lisbon?")])
    reply = '```json\n{"name": "get_time", "arguments": {"city": "Lisbon"}}'
    assert t.feed(chunk(reply[:20])) + t.feed(chunk(reply[20:-2])) == []
    (call,) = t.feed(chunk(reply[-2:]))  # the arguments close
    assert (call.index, call.name, call.arguments) == (0, "get_time", '{"city": "Lisbon"}')
    assert call.call_id
    assert t.feed(chunk("}\n```")) == []
    assert t.feed(chunk(finish="stop")) + t.finish() == [ItemEndDelta(), FinishDelta("stop")]
    assert (t.decision, t.rejected, t.done) == ("call", None, False)


def test_a_call_the_review_rejects_is_known_as_soon_as_it_is_whole() -> None:
    t = translator([user("Hello!")])
    reply = '{"name": "get_time", "arguments": {"city": "Asia/Tokyo"}}'
    assert t.feed(chunk(reply[:-2])) == []
    assert not t.done
    assert t.feed(chunk(reply[-2:])) == []
    assert t.done  # the provider may stop the generation here and re-sample
    assert t.rejected is not None
    assert [c.name for c in t.rejected[0]] == ["get_time"]
    assert "Asia/Tokyo" in t.rejected[1]
    assert t.finish() == []  # nothing was released, nothing follows


def test_a_call_the_review_rejects_is_never_on_the_wire() -> None:
    t = translator([user("Hello!")])
    reply = '{"name": "get_time", "arguments": {"city": "Asia/Tokyo"}}'
    during, end = run(t, [reply[:25], reply[25:]])
    assert not any(isinstance(d, ToolCallDelta) for d in during + end)
    assert t.rejected is not None


def test_a_call_answered_already_is_not_streamed() -> None:
    items = [
        user("Weather in Rio?"),
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ]
    during, _ = run(translator(items), ['{"name": "get_weather", "arguments": {}}'])
    assert during == []


def test_without_a_review_a_call_to_a_described_tool_streams() -> None:
    t = translator([user("Time in Lisbon?")], review=False)
    during, _ = run(t, ['{"name": "get_time", "arguments": {"ci', 'ty": "Lisbon"}}'])
    assert [d.arguments for d in during if isinstance(d, ToolCallDelta)] == [
        '{"ci',
        'ty": "Lisbon"}',
    ]


def test_without_the_grammar_a_call_is_not_streamed_but_goes_out_once_whole() -> None:
    t = translator(stream=False)
    assert t.feed(chunk(REPLY[:30])) == []
    (call,) = t.feed(chunk(REPLY[30:]))
    assert call.arguments == json.dumps(json.loads(ARGUMENTS), ensure_ascii=False)
    assert t.feed(chunk(finish="stop")) + t.finish() == [ItemEndDelta(), FinishDelta("stop")]


def test_a_shape_the_grammar_does_not_start_arrives_whole() -> None:
    reply = "[" + REPLY + "]"
    during, end = run(translator(), [reply[:30], reply[30:]])
    assert during == []
    assert [d.name for d in end if isinstance(d, ToolCallDelta)] == ["get_weather"]


def test_further_calls_follow_whole_and_a_repeat_of_the_streamed_one_is_dropped() -> None:
    second = '{"name": "get_time", "arguments": {"city": "rio"}}'
    reply = f"{REPLY}\n{REPLY}\n{second}"
    # (the message asks for both: a further call nobody asked for, while the
    # weather's call is due, would be sent back)
    during, end = run(translator([user("Weather and time in Rio?")]), [reply[:60], reply[60:]])
    assert "".join(d.arguments for d in during if isinstance(d, ToolCallDelta)) == ARGUMENTS
    later = [d for d in end if isinstance(d, ToolCallDelta)]
    assert [(d.index, d.name, d.arguments) for d in later] == [(1, "get_time", '{"city": "rio"}')]
    assert end[0] == ItemEndDelta()  # the streamed call closes first


def test_a_further_call_the_review_rejects_is_dropped_not_re_sampled() -> None:
    copied = '{"name": "get_time", "arguments": {"city": "Asia/Tokyo"}}'
    t = translator()
    during, end = run(t, [REPLY + "\n" + copied])
    assert [d.name for d in during + end if isinstance(d, ToolCallDelta) and d.name] == [
        "get_weather"
    ]
    assert t.rejected is None


def test_one_call_only_when_parallel_calls_are_off() -> None:
    second = '{"name": "get_time", "arguments": {}}'
    _, end = run(translator(parallel=False), [REPLY + "\n" + second])
    assert not any(isinstance(d, ToolCallDelta) for d in end)


def test_a_call_cut_off_by_the_token_limit_ends_with_what_it_has_never_as_text() -> None:
    during, end = run(translator(), ['{"name": "get_weather", "arguments": {"city": "Ri'], "length")
    assert [d.arguments for d in during if isinstance(d, ToolCallDelta)] == ['{"city": "Ri']
    assert end == [ItemEndDelta(), FinishDelta("length")]


def test_a_call_to_a_name_no_tool_has_is_reviewed_so_not_streamed() -> None:
    t = translator([user("Good morning!")])
    during, end = run(t, ['{"name": "greeting", "arguments": {"text": "Good morning!"}}'])
    assert not any(isinstance(d, ToolCallDelta) for d in during + end)
    assert t.rejected is not None


async def test_on_the_wire_the_streamed_arguments_are_deltas_and_their_done_is_the_whole() -> None:
    t = translator()
    pieces = [REPLY[:30], REPLY[30:45], REPLY[45:70], REPLY[70:]]

    async def deltas() -> Any:
        for piece in [*pieces, None]:
            for delta in t.feed(chunk(piece, "stop" if piece is None else None)):
                yield delta
        for delta in t.finish():
            yield delta

    wire, response = await run_machine("local", deltas())
    kinds = [e["type"] for e in wire]
    streamed = [e["delta"] for e in wire if e["type"] == "response.function_call_arguments.delta"]
    assert len(streamed) > 1
    assert "".join(streamed) == ARGUMENTS
    (done,) = [e for e in wire if e["type"] == "response.function_call_arguments.done"]
    assert (done["name"], done["arguments"]) == ("get_weather", ARGUMENTS)
    assert kinds.index("response.function_call_arguments.delta") < kinds.index(
        "response.function_call_arguments.done"
    )
    (item,) = response.model_dump(mode="json")["output"]
    assert json.loads(item["arguments"]) == json.loads(ARGUMENTS)
