"""The state modes and the usage view: what each request carries, and what is kept."""

from __future__ import annotations

import pytest

import turnstream.runtime as runtime
from turnstream.runtime.history import LocalReplay, ResponseChain, ServerConversation, replayable
from turnstream.runtime.results import TokenUsage

CALL = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_1",
    "name": "add",
    "arguments": "{}",
    "status": "completed",
}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "3"}


def test_a_conversation_sends_only_new_items_and_keeps_owed_outputs_under_its_id() -> None:
    mode = ServerConversation("conv_1")
    assert mode.input([OUTPUT]) == [OUTPUT]
    assert mode.fields() == {"conversation": "conv_1"}
    assert (mode.lock_key, mode.owed_key) == ("conv:conv_1", "conv:conv_1")
    assert mode.owe([OUTPUT]) == [OUTPUT]


def test_a_chain_moves_its_owed_key_to_each_completed_response() -> None:
    mode = ResponseChain(None)
    assert (mode.fields(), mode.owed_key, mode.lock_key) == ({}, None, None)
    mode.completed("resp_1", [], [CALL])
    assert mode.fields() == {"previous_response_id": "resp_1"}
    assert mode.owed_key == "resp:resp_1"


def test_local_replay_resends_the_history_without_server_ids() -> None:
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "e"}
    opaque = {"type": "reasoning", "id": "rs_2", "summary": []}
    message = {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "hi", "logprobs": []}],
    }
    mode = LocalReplay([{"role": "user", "content": "go"}])
    mode.completed("resp_1", [], [reasoning, opaque, CALL])
    mode.completed("resp_2", [OUTPUT], [message])
    sent = mode.input([{"role": "user", "content": "more"}])
    assert sent == [
        {"role": "user", "content": "go"},
        reasoning,  # resolved from its encrypted content; the id is required by the SDK
        {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": "{}"},
        OUTPUT,
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}],
        },
        {"role": "user", "content": "more"},
    ]
    assert mode.fields() == {"store": False, "include": ["reasoning.encrypted_content"]}


def test_local_replay_keeps_owed_outputs_in_its_history() -> None:
    mode = LocalReplay()
    mode.completed("resp_1", [{"role": "user", "content": "go"}], [CALL])
    assert mode.owe([OUTPUT]) == []
    assert mode.history()[-1] == OUTPUT
    assert mode.owed_key is None


def test_replayable_drops_ids_and_statuses_of_other_items() -> None:
    assert replayable({"type": "custom", "id": "x", "status": "done", "a": 1}) == {
        "type": "custom",
        "a": 1,
    }


def test_token_usage_reads_the_wire_object_and_adds_up() -> None:
    wire = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 5,
        "output_tokens_details": None,
        "total_tokens": 15,
    }
    usage = TokenUsage.from_wire(wire)
    assert usage == TokenUsage(10, 5, 15, cached_tokens=4)
    assert usage + usage == TokenUsage(20, 10, 30, cached_tokens=8)
    assert TokenUsage.from_wire(None) is None
    assert TokenUsage.from_wire({"input_tokens": "many"}) is None


def test_the_old_usage_name_still_imports_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="TokenUsage"):
        assert runtime.Usage is TokenUsage
