"""The Chat Completions bridge behind the real server: recorded-style upstream chunk
sequences in, spec-valid Responses streams and stored responses out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests.builders import WEATHER
from tests.livesrv import LiveServer, running_server
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
from turnstream.providers.echo import EchoProvider
from turnstream.providers.openai_chat import OpenAIChatProvider


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeChatUpstream]:
    with FakeChatUpstream() as fake:
        yield fake


@pytest.fixture
def bridged(
    upstream: FakeChatUpstream, tmp_path: Path
) -> Iterator[tuple[LiveServer, FakeChatUpstream]]:
    upstream.reset()
    provider = OpenAIChatProvider(
        upstream.base_url, api_key="sk-upstream", models={"bridged": "upstream-model"}
    )
    with running_server(tmp_path / "b.db", providers=[provider, EchoProvider()]) as live:
        yield live, upstream


def client_for(live: LiveServer) -> OpenAI:
    client = OpenAI(base_url=live.base_url, api_key="t", max_retries=0)
    live.clients.append(client)
    return client


def test_text_streams_through_and_is_stored(bridged: tuple[LiveServer, FakeChatUpstream]) -> None:
    live, upstream = bridged
    upstream.queue(
        FakeReply(
            chunks=[
                text_chunk("Hel"),
                text_chunk("lo "),
                text_chunk("there"),
                finish_chunk(),
                usage_chunk(11, 3),
            ]
        )
    )
    client = client_for(live)
    with client.responses.stream(model="bridged", input="hi", instructions="be brief") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Hel", "lo ", "there"]
    assert final.output_text == "Hello there"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 3)
    assert client.responses.retrieve(final.id).output_text == "Hello there"
    sent = upstream.requests[0].body
    assert sent["model"] == "upstream-model"
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert sent["stream_options"] == {"include_usage": True}
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-upstream"


def _split_everywhere(
    name: str, arguments: str, index: int, call_id: str
) -> list[dict[str, object]]:
    pieces = [tool_call_chunk(index, call_id=call_id, name=name)]
    pieces += [tool_call_chunk(index, arguments=ch) for ch in arguments]
    return pieces


def test_interleaved_tool_calls_split_at_every_byte_become_ordered_function_calls(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    first = _split_everywhere("get_weather", '{"city": "Paris"}', 0, "call_up_1")
    second = _split_everywhere("get_weather", '{"city": "Rome"}', 1, "call_up_2")
    interleaved = (
        [c for pair in zip(first, second, strict=False) for c in pair]
        + first[len(second) :]
        + second[len(first) :]
    )
    upstream.queue(FakeReply(chunks=[*interleaved, finish_chunk("tool_calls")]))
    client = client_for(live)
    with client.responses.stream(
        model="bridged", input="weather in Paris and Rome", tools=[WEATHER]
    ) as stream:
        final = stream.get_final_response()
    calls = [
        (item.name, json.loads(item.arguments))
        for item in final.output
        if item.type == "function_call"
    ]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert upstream.requests[0].body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city.",
            "parameters": WEATHER["parameters"],
            "strict": True,
        },
    }


def test_a_tool_round_trip_sends_tool_calls_and_tool_messages_upstream(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    upstream.queue(
        FakeReply(
            chunks=[
                tool_call_chunk(
                    0, call_id="call_x", name="get_weather", arguments='{"city":"Oslo"}'
                ),
                finish_chunk("tool_calls"),
            ]
        ),
        FakeReply(chunks=[text_chunk("It is sunny."), finish_chunk()]),
    )
    client = client_for(live)
    first = client.responses.create(model="bridged", input="weather in Oslo?", tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call"
    second = client.responses.create(
        model="bridged",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == "It is sunny."
    messages = upstream.requests[1].body["messages"]
    assert messages[-2]["role"] == "assistant"
    assert messages[-2]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert messages[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


def test_invalid_upstream_arguments_are_stored_verbatim_and_do_not_poison_the_next_turn(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    upstream.queue(
        FakeReply(
            chunks=[
                tool_call_chunk(
                    0, call_id="call_bad", name="get_weather", arguments='{"city": Par'
                ),
                finish_chunk("tool_calls"),
            ]
        ),
        FakeReply(chunks=[text_chunk("Sorry."), finish_chunk()]),
    )
    client = client_for(live)
    conv = client.conversations.create()
    first = client.responses.create(
        model="bridged", input="weather?", tools=[WEATHER], conversation=conv.id
    )
    assert first.output[0].arguments == '{"city": Par'  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is
    output = {
        "type": "function_call_output",
        "call_id": first.output[0].call_id,
        "output": "error: invalid JSON",
    }  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is
    second = client.responses.create(
        model="bridged", input=[output], tools=[WEATHER], conversation=conv.id
    )
    assert second.output_text == "Sorry."


def test_reasoning_then_text_becomes_a_reasoning_item_then_a_message(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    upstream.queue(
        FakeReply(
            chunks=[
                reasoning_chunk("Think "),
                reasoning_chunk("hard."),
                text_chunk("42"),
                finish_chunk(),
            ]
        )
    )
    final = client_for(live).responses.create(model="bridged", input="the answer?")
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Think hard."  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is
    assert final.output_text == "42"


def test_finish_reason_length_makes_the_response_incomplete(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    upstream.queue(FakeReply(chunks=[text_chunk("cut o"), finish_chunk("length")]))
    final = client_for(live).responses.create(
        model="bridged", input="long story", max_output_tokens=16
    )
    assert final.status == "incomplete"
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert upstream.requests[0].body["max_tokens"] == 16


def test_an_upstream_error_mid_stream_ends_failed(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    upstream.queue(
        FakeReply(
            chunks=[
                text_chunk("partial"),
                {"error": {"message": "upstream exploded", "code": "server_error"}},
            ]
        )
    )
    with client_for(live).responses.stream(model="bridged", input="hi") as stream:
        events = list(stream)
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.error.message == "upstream exploded"  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is


def test_an_upstream_429_before_the_stream_is_a_429_with_its_retry_after(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    upstream.queue(
        FakeReply.error(
            429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": "2"}
        )
    )
    with pytest.raises(openai.RateLimitError) as info:
        client_for(live).responses.create(model="bridged", input="hi", stream=True)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.code == "rate_limit_exceeded"


def test_a_usage_only_final_chunk_fills_in_usage(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    upstream.queue(
        FakeReply(
            chunks=[
                text_chunk("ok"),
                chunk({}, finish_reason="stop"),
                usage_chunk(5, 1, cached_tokens=2),
            ]
        )
    )
    final = client_for(live).responses.create(model="bridged", input="hi")
    assert final.usage is not None
    assert final.usage.input_tokens_details.cached_tokens == 2


def test_every_response_carries_the_servers_added_time(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, _ = bridged
    for stream in (False, True):
        with httpx.stream(
            "POST",
            f"{live.base_url}/responses",
            json={"model": "bridged", "input": "hi", "stream": stream},
        ) as resp:
            resp.read()
        assert float(resp.headers["x-turnstream-added-ms"]) >= 0


def test_a_client_disconnect_closes_the_upstream_request(
    bridged: tuple[LiveServer, FakeChatUpstream],
) -> None:
    live, upstream = bridged
    # the upstream never ends this reply itself: only the server closing it can
    upstream.queue(FakeReply(chunks=[text_chunk("w0 "), text_chunk("w1 ")], hold_open=True))
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            f"{live.base_url}/responses",
            json={"model": "bridged", "input": "go", "stream": True},
        ) as resp,
    ):
        for line in resp.iter_lines():
            if "output_text.delta" in line:
                break
    assert upstream.disconnected.wait(30), "the upstream request was never closed"
    assert upstream.completed == 0


def test_the_stream_head_is_sent_once_the_upstream_started_not_at_its_first_token(
    upstream: FakeChatUpstream, tmp_path: Path
) -> None:
    """A model's role chunk comes at once, its first token after a prefill: the client
    gets `response.created` at the role chunk, however long the first-delta wait."""
    upstream.reset()
    provider = OpenAIChatProvider(upstream.base_url, models={"bridged": "upstream-model"})
    # the upstream sends its role chunk, then never a token until the client leaves
    upstream.queue(FakeReply(chunks=[chunk({"role": "assistant", "content": ""})], hold_open=True))
    with (
        running_server(tmp_path / "b.db", providers=[provider], first_delta_wait=600) as live,
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            f"{live.base_url}/responses",
            json={"model": "bridged", "input": "go", "stream": True},
        ) as resp,
    ):
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("event: "):
                assert line == "event: response.created"
                break
    assert upstream.disconnected.wait(30), "the upstream request was never closed"
