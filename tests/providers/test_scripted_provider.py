from __future__ import annotations

import asyncio
import time

import pytest

from tests.providers.helpers import collect, request, text_of
from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    OutputTextDelta,
    ReasoningDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers.base import GenerationRequest, Provider, ProviderError
from turnstream.providers.scripted import Raise, ScriptedProvider, Sleep


def test_scripted_provider_satisfies_the_provider_protocol() -> None:
    provider = ScriptedProvider(models=("a", "b"))
    assert isinstance(provider, Provider)
    assert list(provider.models()) == ["a", "b"]
    assert list(ScriptedProvider().models()) == ["scripted"]


async def test_a_script_of_deltas_is_yielded_exactly_in_order() -> None:
    script: list[Delta] = [
        ReasoningDelta("thinking"),
        OutputTextDelta("He"),
        OutputTextDelta("llo"),
        ToolCallDelta(index=0, name="f", call_id="call_x", arguments='{"a'),
        ToolCallDelta(index=0, arguments='":1}'),
        UsageDelta(input_tokens=3, output_tokens=4),
        FinishDelta("stop"),
    ]
    provider = ScriptedProvider()
    provider.push(script)
    assert await collect(provider.stream(request("hi", model="scripted"))) == script


async def test_scripts_are_consumed_one_per_stream_in_push_order() -> None:
    provider = ScriptedProvider()
    provider.push([OutputTextDelta("first")], [OutputTextDelta("second")])
    assert provider.pending == 2
    assert text_of(await collect(provider.stream(request("x")))) == "first"
    assert text_of(await collect(provider.stream(request("x")))) == "second"
    assert provider.pending == 0


async def test_with_an_empty_queue_the_provider_falls_back_to_echo() -> None:
    provider = ScriptedProvider()
    deltas = await collect(provider.stream(request("echo me", model="scripted")))
    assert text_of(deltas) == "echo me"
    assert deltas[-1] == FinishDelta("stop")


async def test_every_request_is_recorded_in_call_order_even_before_iteration() -> None:
    provider = ScriptedProvider()
    first = request("one", instructions="be brief")
    second = request("two")
    stream_one = provider.stream(first)
    provider.stream(second)
    assert provider.requests == [first, second]
    await collect(stream_one)


async def test_sleep_steps_pause_the_stream() -> None:
    provider = ScriptedProvider()
    provider.push([OutputTextDelta("a"), Sleep(0.05), OutputTextDelta("b")])
    stream = provider.stream(request("x"))
    assert await anext(stream) == OutputTextDelta("a")
    started = time.monotonic()
    assert await anext(stream) == OutputTextDelta("b")
    assert time.monotonic() - started >= 0.045


async def test_a_raise_step_fails_the_stream_midway_after_earlier_deltas() -> None:
    provider = ScriptedProvider()
    provider.push([OutputTextDelta("partial"), Raise(ProviderError("boom", code="server_error"))])
    seen: list[Delta] = []

    async def consume() -> None:
        async for delta in provider.stream(request("x")):
            seen.append(delta)

    with pytest.raises(ProviderError, match="boom") as caught:
        await consume()
    assert seen == [OutputTextDelta("partial")]
    assert caught.value.code == "server_error"


async def test_a_provider_error_as_script_fails_before_the_first_delta() -> None:
    provider = ScriptedProvider()
    provider.push(
        ProviderError("slow down", code="rate_limit_exceeded", status=429, retry_after=2.5)
    )
    stream = provider.stream(request("x"))
    with pytest.raises(ProviderError) as caught:
        await anext(stream)
    assert (caught.value.status, caught.value.retry_after) == (429, 2.5)


async def test_callable_steps_get_the_request_and_may_return_deltas_or_await() -> None:
    gate = asyncio.Event()
    seen: list[GenerationRequest] = []

    def remember(req: GenerationRequest) -> None:
        seen.append(req)

    async def hold(req: GenerationRequest) -> Delta:
        await gate.wait()
        return OutputTextDelta(" released")

    provider = ScriptedProvider()
    provider.push(
        [
            remember,
            lambda req: OutputTextDelta(f"model={req.model}"),
            lambda req: [OutputTextDelta(" a"), OutputTextDelta(" b")],
            hold,
            FinishDelta(),
        ]
    )
    req = request("x", model="scripted")
    task = asyncio.create_task(collect(provider.stream(req)))
    await asyncio.sleep(0.02)
    assert not task.done()
    gate.set()
    deltas = await task
    assert seen == [req]
    assert text_of(deltas) == "model=scripted a b released"


async def test_aclose_drops_queued_scripts() -> None:
    provider = ScriptedProvider()
    provider.push([OutputTextDelta("never")])
    await provider.aclose()
    assert provider.pending == 0
