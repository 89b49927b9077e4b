"""`OpenAIChatProvider` against a real HTTP fake of a Chat Completions server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.providers.fake_chat_upstream import (
    FakeChatUpstream,
    FakeReply,
    chunk,
    finish_chunk,
    reasoning_chunk,
    text_chunk,
    tool_call_chunk,
    usage_chunk,
)
from tests.providers.held_upstream import HeldUpstream
from tests.providers.helpers import (
    assistant,
    calls_of,
    collect,
    function_call,
    function_output,
    reasoning_of,
    request,
    text_of,
    tool,
)
from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    OutputTextDelta,
    ReasoningDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers.base import Provider, ProviderError
from turnstream.providers.openai_chat import OpenAIChatProvider

MODEL = "gpt-pub"


@pytest.fixture
async def provider(fake_upstream: FakeChatUpstream) -> AsyncIterator[OpenAIChatProvider]:
    chat = OpenAIChatProvider(fake_upstream.base_url, "sk-test", {MODEL: "upstream-model"})
    yield chat
    await chat.aclose()


async def run(provider: OpenAIChatProvider, *items: Any, **fields: Any) -> list[Delta]:
    return await collect(provider.stream(request(*items, model=MODEL, **fields)))


def test_the_chat_provider_satisfies_the_provider_protocol_and_serves_public_names() -> None:
    chat = OpenAIChatProvider("http://127.0.0.1:9/v1", models={"a": "x", "b": "y"})
    assert isinstance(chat, Provider)
    assert list(chat.models()) == ["a", "b"]


async def test_plain_text_streams_as_text_deltas_then_usage_then_finish(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(
        FakeReply(
            chunks=[
                chunk({"role": "assistant", "content": ""}),
                text_chunk("Hello"),
                text_chunk(", wörld"),
                text_chunk("!"),
                finish_chunk("stop"),
                usage_chunk(9, 3, cached_tokens=4),
            ]
        )
    )
    deltas = await run(provider, "hi")
    assert deltas == [
        OutputTextDelta("Hello"),
        OutputTextDelta(", wörld"),
        OutputTextDelta("!"),
        UsageDelta(input_tokens=9, output_tokens=3, cached_tokens=4),
        FinishDelta("stop"),
    ]


async def test_the_request_is_translated_into_a_streaming_chat_completions_body(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    weather = tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}})
    await run(
        provider,
        "weather?",
        function_call("call_1", "get_weather", '{"city":"Oslo"}'),
        function_output("call_1", "cold"),
        assistant("It is cold."),
        "thanks",
        instructions="Be terse.",
        tools=[weather],
        tool_choice="required",
        max_output_tokens=50,
        temperature=0.5,
    )
    received = fake_upstream.requests[0]
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.headers["authorization"] == "Bearer sk-test"
    assert received.body == {
        "model": "upstream-model",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
            {"role": "assistant", "content": "It is cold."},
            {"role": "user", "content": "thanks"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "the get_weather tool",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": True,
        "max_tokens": 50,
        "temperature": 0.5,
    }


ARGUMENTS = '{"city": "Zürich", "days": [1, 2]}'


@pytest.mark.parametrize("cut", range(1, len(ARGUMENTS)))
async def test_one_tool_call_split_at_any_boundary_reassembles_verbatim(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream, cut: int
) -> None:
    fake_upstream.queue(
        FakeReply(
            chunks=[
                tool_call_chunk(0, call_id="call_abc", name="get_weather"),
                tool_call_chunk(0, arguments=ARGUMENTS[:cut]),
                tool_call_chunk(0, arguments=ARGUMENTS[cut:]),
                finish_chunk("tool_calls"),
            ]
        )
    )
    deltas = await run(provider, "weather?")
    assert calls_of(deltas) == {
        0: {"name": "get_weather", "call_id": "call_abc", "arguments": ARGUMENTS}
    }
    assert deltas[-1] == FinishDelta("stop")


async def test_several_tool_calls_interleaved_byte_by_byte_reassemble_per_index(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    calls = [("call_1", "a", '{"x": 1}'), ("call_2", "b", "{}"), ("call_3", "c", "not json")]
    chunks = [tool_call_chunk(i, call_id=cid, name=name) for i, (cid, name, _) in enumerate(calls)]
    for position in range(max(len(args) for _, _, args in calls)):
        for index, (_, _, args) in reversed(list(enumerate(calls))):
            if position < len(args):
                chunks.append(tool_call_chunk(index, arguments=args[position]))
    fake_upstream.queue(FakeReply(chunks=[*chunks, finish_chunk("tool_calls")]))
    deltas = await run(provider, "go")
    assert calls_of(deltas) == {
        i: {"name": name, "call_id": cid, "arguments": args}
        for i, (cid, name, args) in enumerate(calls)
    }
    indexes = [d.index for d in deltas if isinstance(d, ToolCallDelta) and d.arguments]
    assert indexes[:3] == [2, 1, 0]  # passed on in arrival order, not regrouped


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_then_text_yields_reasoning_deltas_before_text(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream, field: str
) -> None:
    fake_upstream.queue(
        FakeReply(
            chunks=[
                reasoning_chunk("Think", field),
                reasoning_chunk("ing.", field),
                text_chunk("Answer."),
                finish_chunk(),
                usage_chunk(5, 10, reasoning_tokens=6),
            ]
        )
    )
    deltas = await run(provider, "q")
    assert [type(d) for d in deltas] == [
        ReasoningDelta,
        ReasoningDelta,
        OutputTextDelta,
        UsageDelta,
        FinishDelta,
    ]
    assert (reasoning_of(deltas), text_of(deltas)) == ("Thinking.", "Answer.")
    assert deltas[3] == UsageDelta(input_tokens=5, output_tokens=10, reasoning_tokens=6)


async def test_finish_reason_length_yields_a_length_finish(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(
        FakeReply(chunks=[text_chunk("cut"), finish_chunk("length"), usage_chunk(1, 1)])
    )
    assert (await run(provider, "q"))[-1] == FinishDelta("length")


async def test_comments_and_frames_split_into_single_byte_writes_are_decoded(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(
        FakeReply(
            chunks=[
                b": OPENROUTER PROCESSING\n\n",
                text_chunk("é😀 ok"),
                b"event: x\r\n\r\n",
                finish_chunk(),
            ],
            write_size=1,
        )
    )
    assert text_of(await run(provider, "q")) == "é😀 ok"


async def test_an_error_object_mid_stream_raises_after_the_earlier_deltas(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(
        FakeReply(
            chunks=[
                text_chunk("partial"),
                {"error": {"message": "model crashed", "type": "server_error", "code": None}},
            ],
            done=False,
        )
    )
    seen: list[Delta] = []

    async def consume() -> None:
        async for delta in provider.stream(request("q", model=MODEL)):
            seen.append(delta)

    with pytest.raises(ProviderError) as caught:
        await consume()
    assert seen == [OutputTextDelta("partial")]
    assert (caught.value.message, caught.value.code) == ("model crashed", "server_error")


async def test_on_started_is_called_once_at_the_role_chunk_before_any_delta(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(
        FakeReply(
            chunks=[chunk({"role": "assistant", "content": ""}), text_chunk("hi"), finish_chunk()]
        )
    )
    seen: list[object] = []
    started = request("q", model=MODEL)
    started = dataclasses.replace(started, on_started=lambda: seen.append("started"))
    async for delta in provider.stream(started):
        seen.append(delta)
    assert seen == ["started", OutputTextDelta("hi"), FinishDelta("stop")]


async def test_on_started_is_not_called_when_the_first_chunk_is_an_error(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(FakeReply(chunks=[{"error": {"message": "no", "code": "bad"}}]))
    seen: list[str] = []
    started = dataclasses.replace(request("q", model=MODEL), on_started=lambda: seen.append("x"))
    with pytest.raises(ProviderError):
        await collect(provider.stream(started))
    assert seen == []


async def test_a_stream_that_ends_without_finish_or_done_is_an_upstream_error(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(FakeReply(chunks=[text_chunk("half")], done=False))
    with pytest.raises(ProviderError) as caught:
        await run(provider, "q")
    assert (caught.value.code, caught.value.status) == ("upstream_error", 502)


async def test_a_stream_with_a_finish_reason_but_no_done_sentinel_ends_normally(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(FakeReply(chunks=[text_chunk("ok"), finish_chunk()], done=False))
    assert (await run(provider, "q"))[-1] == FinishDelta("stop")


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({}, None),
    ],
)
async def test_a_429_before_the_stream_raises_429_keeping_retry_after(
    provider: OpenAIChatProvider,
    fake_upstream: FakeChatUpstream,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    fake_upstream.queue(
        FakeReply.error(429, "Rate limit reached", code="rate_limit_exceeded", headers=headers)
    )
    with pytest.raises(ProviderError) as caught:
        await run(provider, "q")
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (
        429,
        "rate_limit_exceeded",
        retry_after,
    )
    assert error.message == "Rate limit reached"


@pytest.mark.parametrize(
    ("status", "code", "expected_status", "expected_code"),
    [
        (400, "context_length_exceeded", 400, "context_length_exceeded"),
        (422, None, 400, "invalid_request"),
        (401, "invalid_api_key", 502, "upstream_error"),
        (403, None, 502, "upstream_error"),
        (404, "model_not_found", 502, "upstream_error"),
        (500, None, 502, "upstream_error"),
        (503, None, 503, "upstream_unavailable"),
        (504, None, 504, "upstream_timeout"),
    ],
)
async def test_upstream_http_errors_map_to_the_status_our_client_should_see(
    provider: OpenAIChatProvider,
    fake_upstream: FakeChatUpstream,
    status: int,
    code: str | None,
    expected_status: int,
    expected_code: str,
) -> None:
    fake_upstream.queue(FakeReply.error(status, "upstream says no", code=code))
    with pytest.raises(ProviderError) as caught:
        await run(provider, "q")
    assert (caught.value.status, caught.value.code) == (expected_status, expected_code)
    assert "upstream says no" in caught.value.message


async def test_a_non_json_error_body_still_gives_a_message(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    fake_upstream.queue(FakeReply(status=502, body=b"<html>Bad Gateway</html>"))
    with pytest.raises(ProviderError, match="Bad Gateway") as caught:
        await run(provider, "q")
    assert caught.value.status == 502


async def test_an_unreachable_upstream_raises_503_upstream_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but never listening: connection refused
        chat = OpenAIChatProvider(f"http://127.0.0.1:{port}/v1", models={MODEL: "m"})
        with pytest.raises(ProviderError) as caught:
            await run(chat, "q")
        await chat.aclose()
    assert (caught.value.status, caught.value.code) == (503, "upstream_unavailable")


async def test_an_unknown_public_model_is_model_not_found(provider: OpenAIChatProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(provider.stream(request("q", model="other")))
    assert (caught.value.status, caught.value.code) == (400, "model_not_found")


async def test_a_non_streaming_json_completion_is_still_translated(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    completion = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "whole"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1},
    }
    fake_upstream.queue(FakeReply(body=completion))
    assert await run(provider, "q") == [
        OutputTextDelta("whole"),
        UsageDelta(input_tokens=2, output_tokens=1),
        FinishDelta("length"),
    ]


async def test_consecutive_streams_reuse_one_pooled_upstream_connection(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    await run(provider, "one")
    await run(provider, "two")
    ports = {received.client_port for received in fake_upstream.requests}
    assert len(ports) == 1


async def test_closing_the_stream_midway_closes_the_upstream_response(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    # the upstream never ends this reply itself: only the provider closing it can
    fake_upstream.queue(FakeReply(chunks=[text_chunk("w0 "), text_chunk("w1 ")], hold_open=True))
    stream = provider.stream(request("q", model=MODEL))
    assert await anext(stream) == OutputTextDelta("w0 ")
    assert await anext(stream) == OutputTextDelta("w1 ")
    await stream.aclose()
    await fake_upstream.wait_for_disconnect(within=10)
    assert fake_upstream.completed == 0


async def test_cancelling_the_consuming_task_closes_the_upstream_response(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    # the upstream never ends this reply itself: only the cancellation can
    fake_upstream.queue(FakeReply(chunks=[text_chunk("x")], hold_open=True))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(request("q", model=MODEL)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake_upstream.wait_for_disconnect(within=10)
    assert fake_upstream.completed == 0


async def test_a_shared_http_client_is_used_and_left_open_on_aclose(
    fake_upstream: FakeChatUpstream,
) -> None:
    async with httpx.AsyncClient() as client:
        chat = OpenAIChatProvider(fake_upstream.base_url, models={MODEL: "m"}, http_client=client)
        assert text_of(await run(chat, "shared client")) == "shared client"
        await chat.aclose()
        assert not client.is_closed
    assert "authorization" not in fake_upstream.requests[0].headers


async def test_aclose_closes_the_owned_client(fake_upstream: FakeChatUpstream) -> None:
    chat = OpenAIChatProvider(fake_upstream.base_url, models={MODEL: "m"})
    await run(chat, "x")
    await chat.aclose()
    with pytest.raises(ProviderError):
        await run(chat, "x")


async def test_stats_count_streams_and_the_providers_own_time(
    provider: OpenAIChatProvider, fake_upstream: FakeChatUpstream
) -> None:
    began = time.perf_counter()
    await run(provider, "a b c")
    wall = time.perf_counter() - began
    assert provider.stats.streams == 1
    # the provider's own share is counted, and is a share: never more than the call
    assert 0 < provider.stats.overhead_seconds <= wall


def test_fake_upstream_records_bodies_as_json(fake_upstream: FakeChatUpstream) -> None:
    response = httpx.post(
        fake_upstream.base_url + "/chat/completions",
        json={"messages": [{"role": "user", "content": "a b"}]},
    )
    frames = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert json.loads(frames[0][6:])["choices"][0]["delta"] == {"content": "a "}
    assert frames[-1] == "data: [DONE]"
    assert fake_upstream.requests[0].body == {"messages": [{"role": "user", "content": "a b"}]}


@pytest.mark.parametrize("enabled", [True, False])
async def test_calls_written_as_reply_text_become_function_calls_only_when_enabled(
    fake_upstream: FakeChatUpstream, enabled: bool
) -> None:
    written = '```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```'
    fake_upstream.queue(
        FakeReply(
            chunks=[
                *(text_chunk(written[i : i + 3]) for i in range(0, len(written), 3)),
                finish_chunk(),
            ]
        )
    )
    chat = OpenAIChatProvider(fake_upstream.base_url, None, {MODEL: "m"}, text_tool_calls=enabled)
    try:
        deltas = await collect(
            chat.stream(request("weather in Oslo?", model=MODEL, tools=[tool("get_weather")]))
        )
    finally:
        await chat.aclose()
    if enabled:
        assert text_of(deltas) == ""
        assert [
            (c.name, json.loads(c.arguments)) for c in deltas if isinstance(c, ToolCallDelta)
        ] == [("get_weather", {"city": "Oslo"})]
        assert isinstance(deltas[-1], FinishDelta)
    else:
        assert text_of(deltas) == written
        assert not any(isinstance(d, ToolCallDelta) for d in deltas)


async def test_prose_streams_through_the_text_call_recogniser_as_it_arrives(
    fake_upstream: FakeChatUpstream,
) -> None:
    fake_upstream.queue(
        FakeReply(chunks=[text_chunk("It is "), text_chunk("sunny."), finish_chunk()])
    )
    chat = OpenAIChatProvider(fake_upstream.base_url, None, {MODEL: "m"}, text_tool_calls=True)
    try:
        deltas = await collect(chat.stream(request("hi", model=MODEL, tools=[tool("get_weather")])))
    finally:
        await chat.aclose()
    assert [d.text for d in deltas if isinstance(d, OutputTextDelta)] == ["It is ", "sunny."]


async def test_more_streams_than_httpxs_default_pool_are_open_upstream_at_once() -> None:
    # httpx caps a client at 100 connections; a stream holds one for its whole length,
    # so stream 101 used to wait, unseen, for one to end (and failed after 30 s)
    async with HeldUpstream(hold=101) as upstream:
        chat = OpenAIChatProvider(upstream.base_url, models={MODEL: "m"}, timeout=20.0)
        try:
            answers = await asyncio.gather(
                *(collect(chat.stream(request("hi", model=MODEL))) for _ in range(101))
            )
        finally:
            await chat.aclose()
    assert upstream.peak == 101
    assert [text_of(deltas) for deltas in answers] == ["held"] * 101


@pytest.mark.parametrize("cap", [2, 35])
async def test_streams_beyond_max_connections_fail_upstream_timeout_instead_of_hanging(
    cap: int,
) -> None:
    async with HeldUpstream(hold=cap + 1) as upstream:
        chat = OpenAIChatProvider(
            upstream.base_url,
            models={MODEL: "m"},
            max_connections=cap,
            timeout=httpx.Timeout(20.0, pool=0.2),
        )
        try:
            # the admitted streams wait for one more, which the cap keeps out
            held = [
                asyncio.create_task(collect(chat.stream(request("hi", model=MODEL))))
                for _ in range(cap)
            ]
            await upstream.until_open(cap)
            with pytest.raises(ProviderError) as refused:
                await collect(chat.stream(request("hi", model=MODEL)))
            assert refused.value.code == "upstream_timeout"
            assert upstream.peak == cap
            upstream.released.set()
            answers = await asyncio.gather(*held)
            assert [text_of(deltas) for deltas in answers] == ["held"] * cap
            # every slot came back: as many streams again go through at once
            upstream.released.clear()
            upstream.hold = cap
            again = await asyncio.gather(
                *(collect(chat.stream(request("hi", model=MODEL))) for _ in range(cap))
            )
            assert [text_of(deltas) for deltas in again] == ["held"] * cap
        finally:
            await chat.aclose()
