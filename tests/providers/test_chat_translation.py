"""The pure halves of the Chat Completions bridge: request body and chunk translation."""

from __future__ import annotations

import itertools
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.providers.fake_chat_upstream import (
    chunk,
    finish_chunk,
    reasoning_chunk,
    text_chunk,
    tool_call_chunk,
    usage_chunk,
)
from tests.providers.helpers import (
    assistant,
    calls_of,
    function_call,
    function_output,
    reasoning_of,
    request,
    text_of,
    tool,
    user,
)
from turnstream.engine.deltas import Delta, FinishDelta, ToolCallDelta, UsageDelta
from turnstream.providers._chat_request import build_chat_body
from turnstream.providers._chat_stream import ChatChunkTranslator
from turnstream.providers.base import ProviderError

FinishReason = Literal["stop", "length", "content_filter"]


def body_for(*items: Any, **fields: Any) -> dict[str, Any]:
    return build_chat_body(request(*items, model="pub", **fields), "upstream-model")


def translate(*chunks: dict[str, Any]) -> list[Delta]:
    translator = ChatChunkTranslator()
    deltas = [delta for c in chunks for delta in translator.feed(c)]
    return deltas + translator.finish()


# --- request translation -------------------------------------------------------------


def test_body_streams_with_usage_and_uses_the_upstream_model_name() -> None:
    body = body_for("hi")
    assert body == {
        "model": "upstream-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_instructions_become_the_first_system_message_and_developer_becomes_system() -> None:
    developer = {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "be brief"}],
    }
    system = {"type": "message", "role": "system", "content": "sys"}
    body = body_for(system, developer, "hi", instructions="You are terse.")
    assert body["messages"][:3] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "be brief"},
    ]
    kept = build_chat_body(request(developer), "m", developer_role="developer")
    assert kept["messages"] == [{"role": "developer", "content": "be brief"}]


def test_user_text_and_image_parts_become_chat_content_parts() -> None:
    message = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": None},
        ],
    }
    assert body_for(message)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        }
    ]


def test_an_image_known_only_by_file_id_is_rejected_as_a_client_error() -> None:
    message = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_image", "file_id": "file_1"}],
    }
    with pytest.raises(ProviderError) as caught:
        body_for(message)
    assert caught.value.status == 400


def test_consecutive_function_calls_merge_into_the_preceding_assistant_message() -> None:
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": []}
    body = body_for(
        "weather in Paris and Rome?",
        reasoning,
        assistant("Checking both."),
        function_call("call_1", "get_weather", '{"city":"Paris"}'),
        reasoning,
        function_call("call_2", "get_weather", '{"city": "Rome"'),
        function_output("call_1", '{"temp":18}'),
        function_output(
            "call_2", [{"type": "input_text", "text": "20"}, {"type": "input_text", "text": "C"}]
        ),
        assistant("Paris 18, Rome 20C."),
    )
    assert body["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":18}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "20C"},
        {"role": "assistant", "content": "Paris 18, Rome 20C."},
    ]


def test_function_calls_without_assistant_text_get_their_own_message() -> None:
    body = body_for(
        "go",
        function_call("call_1", "a", "{}"),
        function_output("call_1", "ok"),
        function_call("call_2", "b", "{}"),
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert body["messages"][1]["content"] is None
    assert [c["id"] for c in body["messages"][3]["tool_calls"]] == ["call_2"]


def test_assistant_refusals_are_kept_as_assistant_text() -> None:
    refusal = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "refusal", "refusal": "No."}],
    }
    assert body_for(user("x"), refusal)["messages"][1] == {"role": "assistant", "content": "No."}


def test_flat_tools_become_nested_functions_with_choice_and_parallel_flag() -> None:
    weather = tool("get_weather", {"type": "object", "properties": {}}, strict=True)
    body = body_for(
        "x",
        tools=[weather, {"type": "web_search"}],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "the get_weather tool",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


@pytest.mark.parametrize("choice", ["none", "auto", "required"])
def test_string_tool_choices_pass_through(choice: str) -> None:
    assert body_for("x", tools=[tool("a")], tool_choice=choice)["tool_choice"] == choice


def test_allowed_tools_filters_the_tool_list_and_sets_the_mode() -> None:
    body = body_for(
        "x",
        tools=[tool("a"), tool("b"), tool("c")],
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "b"}],
        },
    )
    assert [t["function"]["name"] for t in body["tools"]] == ["b"]
    assert body["tool_choice"] == "required"


def test_tool_fields_are_only_sent_when_there_are_tools() -> None:
    body = body_for("x", tool_choice="required", parallel_tool_calls=True)
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


def test_sampling_and_max_output_tokens_map_to_chat_fields() -> None:
    body = body_for("x", max_output_tokens=64, temperature=0.2, top_p=0.9)
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.2, 0.9)
    other = build_chat_body(
        request("x", max_output_tokens=64), "m", max_tokens_field="max_completion_tokens"
    )
    assert other["max_completion_tokens"] == 64
    assert "max_tokens" not in other


# --- stream translation --------------------------------------------------------------


def test_text_reasoning_and_refusal_chunks_become_text_and_reasoning_deltas() -> None:
    deltas = translate(
        chunk({"role": "assistant", "content": ""}),
        reasoning_chunk("Let me "),
        reasoning_chunk("think.", field="reasoning"),
        text_chunk("Hi"),
        chunk({"content": None, "refusal": "!"}),
        finish_chunk(),
    )
    assert reasoning_of(deltas) == "Let me think."
    assert text_of(deltas) == "Hi!"
    assert deltas[-1] == FinishDelta("stop")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "stop"),
        ("tool_calls", "stop"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        (None, "stop"),
    ],
)
def test_finish_reasons_map_to_finish_deltas(reason: str | None, expected: FinishReason) -> None:
    assert translate(text_chunk("x"), chunk({}, finish_reason=reason))[-1] == FinishDelta(expected)


def test_usage_comes_from_the_usage_only_chunk_including_details_and_precedes_finish() -> None:
    deltas = translate(
        text_chunk("x"), finish_chunk(), usage_chunk(12, 5, cached_tokens=8, reasoning_tokens=2)
    )
    assert deltas[-2:] == [
        UsageDelta(input_tokens=12, output_tokens=5, cached_tokens=8, reasoning_tokens=2),
        FinishDelta("stop"),
    ]


def test_unknown_fields_and_null_usage_are_ignored() -> None:
    odd = {**text_chunk("x"), "usage": None, "x_vendor": {"a": 1}}
    odd["choices"][0]["delta"]["x_vendor"] = 1
    assert translate(odd, {"foo": "bar"}) == [*translate(text_chunk("x"))]


def test_an_error_object_in_the_stream_raises_with_its_code() -> None:
    translator = ChatChunkTranslator()
    with pytest.raises(ProviderError) as caught:
        translator.feed({"error": {"message": "overloaded", "code": "overloaded_error"}})
    assert (caught.value.message, caught.value.code) == ("overloaded", "overloaded_error")
    with pytest.raises(ProviderError) as caught:
        translator.feed({"error": {"message": "bad", "code": 500}})
    assert caught.value.code == "server_error"


def test_repeated_names_and_ids_are_passed_on_once_per_call() -> None:
    deltas = translate(
        tool_call_chunk(0, call_id="call_a", name="f", arguments="{"),
        tool_call_chunk(0, call_id="call_a", name="f", arguments="}"),
        chunk({"tool_calls": [{"index": 0}]}),
    )
    assert [d for d in deltas if isinstance(d, ToolCallDelta)] == [
        ToolCallDelta(index=0, name="f", call_id="call_a", arguments="{"),
        ToolCallDelta(index=0, arguments="}"),
    ]


def test_tool_calls_without_index_are_told_apart_by_id() -> None:
    def call(call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
        body: dict[str, Any] = {"function": {"arguments": arguments}}
        if call_id:
            body |= {"id": call_id, "type": "function"}
            body["function"]["name"] = name
        return chunk({"tool_calls": [body]})

    calls = calls_of(translate(call("c1", "a", "{"), call(None, None, "}"), call("c2", "b", "[]")))
    assert calls == {
        0: {"name": "a", "call_id": "c1", "arguments": "{}"},
        1: {"name": "b", "call_id": "c2", "arguments": "[]"},
    }


CALLS = [
    ("call_1", "get_weather", '{"city": "Zürich", "unit": "celsius"}'),
    ("call_2", "get_time", '{"tz":"Asia/Tokyo"}'),
    ("call_3", "noop", "not json {"),
]


def interleaved_chunks(cuts: list[list[int]], order: list[int]) -> list[dict[str, Any]]:
    """Chunks for CALLS: each call's arguments cut at `cuts`, calls interleaved by `order`."""
    pieces: list[list[dict[str, Any]]] = []
    for index, ((call_id, name, arguments), points) in enumerate(zip(CALLS, cuts, strict=True)):
        bounds = [0, *sorted(set(points)), len(arguments)]
        parts = [arguments[a:b] for a, b in itertools.pairwise(bounds)]
        first = tool_call_chunk(index, call_id=call_id, name=name)
        pieces.append([first, *(tool_call_chunk(index, arguments=part) for part in parts if part)])
    chunks: list[dict[str, Any]] = []
    cursors = [0] * len(CALLS)
    for who in order:
        # each call's own pieces stay in order; the calls interleave arbitrarily
        if cursors[who] < len(pieces[who]):
            chunks.append(pieces[who][cursors[who]])
            cursors[who] += 1
    for who, rest in enumerate(pieces):
        chunks += rest[cursors[who] :]
    return chunks


@given(
    st.tuples(*(st.lists(st.integers(0, len(args)), max_size=len(args)) for _, _, args in CALLS)),
    st.lists(st.integers(0, len(CALLS) - 1), max_size=40),
)
def test_interleaved_tool_call_pieces_reassemble_per_index(
    cuts: tuple[list[int], ...], order: list[int]
) -> None:
    chunks = [*interleaved_chunks(list(cuts), order), finish_chunk("tool_calls")]
    calls = calls_of(translate(*chunks))
    assert calls == {
        index: {"name": name, "call_id": call_id, "arguments": arguments}
        for index, (call_id, name, arguments) in enumerate(CALLS)
    }
