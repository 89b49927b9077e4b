"""A run cancelled after a call was announced but before its response's end was read.

The server may have stored that turn (it persists before it announces: the terminal
event is held back here until the run is gone) or dropped it (the disconnect cancelled
it: the model is held at a gate that never opens). Either way the next run on the same
history must be accepted, which it can only be if it asked the server which it was.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.livesrv import LiveServer
from turnstream.engine.deltas import FinishDelta, ItemEndDelta, ToolCallDelta
from turnstream.providers.scripted import ScriptedProvider
from turnstream.runtime import Agent, ConversationRegistry, RunStream, ToolCallReady
from turnstream.runtime.loop import NOT_RUN_CANCELLED

from .helpers import assert_paired, conversation_items, make_agent, shape
from .server_taps import HoldTerminalEvent, tap

pytestmark = pytest.mark.parametrize("kept", [True, False], ids=["server-kept", "server-dropped"])


async def cancel_once_a_call_is_announced(run: RunStream) -> str:
    """Reads `run` until its first call is announced, cancels it; returns the call id."""
    async for event in run:
        if isinstance(event, ToolCallReady):
            run.cancel()
            call_id = event.call_id
    assert run.cancelled
    assert run.result is None
    return call_id


async def cut_off_turn(
    live: LiveServer,
    scripted: ScriptedProvider,
    agent: Agent,
    kept: bool,
    **history: Any,
) -> str:
    """Runs a turn that calls `add`, cancelled once the call is announced."""
    script: list[Any] = [ToolCallDelta(index=0, name="add", arguments='{"a": 1, "b": 2}')]
    script.append(ItemEndDelta())
    if kept:
        hold = tap(live, HoldTerminalEvent)
    else:
        # the response is mid-way when the disconnect cancels it; the gate is never
        # opened, so only the cancel can end it (the server drops it with the lease)
        script.append(live.gate())
    scripted.push([*script, FinishDelta()])
    try:
        return await cancel_once_a_call_is_announced(agent.stream("add", **history))
    finally:
        if kept:
            hold.release.set()


async def test_conversation(
    live_server: LiveServer,
    scripted: ScriptedProvider,
    server_client: openai.AsyncOpenAI,
    kept: bool,
) -> None:
    registry = ConversationRegistry()
    cid = (await server_client.conversations.create()).id
    agent = make_agent(server_client, model="scripted", registry=registry)
    call_id = await cut_off_turn(live_server, scripted, agent, kept, conversation=cid)

    talker = make_agent(server_client, tools=[], registry=registry)
    result = await talker.run("again", conversation=cid)

    items = await conversation_items(server_client, cid)
    assert_paired(items)
    if kept:
        assert shape(items) == ["user", "call:add", "output", "user", "assistant"]
        [output] = [item for item in items if item["type"] == "function_call_output"]
        assert (output["call_id"], output["output"]) == (call_id, NOT_RUN_CANCELLED)
    else:
        assert shape(items) == ["user", "assistant"]
    assert result.final_output


async def test_chain(
    live_server: LiveServer,
    scripted: ScriptedProvider,
    server_client: openai.AsyncOpenAI,
    kept: bool,
) -> None:
    registry = ConversationRegistry()
    first = await make_agent(server_client, tools=[], registry=registry).run("hi")
    agent = make_agent(server_client, model="scripted", registry=registry)
    previous = first.last_response_id
    call_id = await cut_off_turn(live_server, scripted, agent, kept, previous_response_id=previous)

    talker = make_agent(server_client, tools=[], registry=registry)
    result = await talker.run("again", previous_response_id=previous)

    assert result.last_response_id is not None
    last = await server_client.responses.retrieve(result.last_response_id)
    page = await server_client.responses.input_items.list(last.id, order="asc")
    sent = [item.model_dump(mode="json", exclude_none=True) for item in page.data]
    if kept:
        assert last.previous_response_id not in (None, previous)  # the cut-off turn
        assert [(i.get("type"), i.get("call_id")) for i in sent[:1]] == [
            ("function_call_output", call_id)
        ]
    else:
        assert last.previous_response_id == previous
        assert all(item.get("type") != "function_call_output" for item in sent)
