"""`ToolLoop`, the tool loop's decisions, without a server, a network or an event loop."""

from __future__ import annotations

from typing import Any

import pytest

from turnstream.runtime.history import (
    InDoubt,
    LocalReplay,
    ReadConversation,
    ReadResponse,
    ResponseChain,
    ServerConversation,
)
from turnstream.runtime.loop import (
    NOT_RUN_CANCELLED,
    NOT_RUN_INCOMPLETE,
    NOT_RUN_TURN_LIMIT,
    Failed,
    Finish,
    OweOutputs,
    RequestTemplate,
    RunTools,
    ToolLoop,
)
from turnstream.runtime.results import TokenUsage
from turnstream.runtime.tools import ToolCall
from turnstream.runtime.turn import EndStatus, TurnOutcome

ADD = {"type": "function", "name": "add", "parameters": {"type": "object"}}
TEMPLATE = RequestTemplate("m", "Be brief.", [ADD], {"temperature": 0})
USER = {"role": "user", "content": "hi"}


def call(call_id: str) -> ToolCall:
    return ToolCall(call_id, "add", "{}", f"fc_{call_id}")


def output(call_id: str, text: str = "ok") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


def outcome(
    response_id: str,
    *call_ids: str,
    status: EndStatus = "completed",
    text: str = "",
    usage: TokenUsage | None = None,
) -> TurnOutcome:
    calls = [call(c) for c in call_ids]
    items = [
        {"type": "function_call", "id": c.item_id, "call_id": c.call_id, "name": "add"}
        for c in calls
    ]
    if text:
        items.append({"type": "message", "role": "assistant", "content": []})
    return TurnOutcome(
        response_id=response_id,
        status=status,
        output=items,
        calls=calls,
        text=text,
        usage=usage,
        error_code="server_error" if status == "failed" else None,
        error_message="boom" if status == "failed" else "",
    )


def test_the_first_request_carries_the_template_the_mode_and_the_input() -> None:
    loop = ToolLoop(ServerConversation("conv_1"), TEMPLATE, [USER], max_turns=3)
    request = loop.next_request()
    assert request.turn == 1
    assert not request.final
    assert request.body == {
        "model": "m",
        "input": [USER],
        "instructions": "Be brief.",
        "tools": [ADD],
        "conversation": "conv_1",
    }
    assert request.options == {"temperature": 0}


def test_the_last_turn_asks_for_an_answer_without_tools() -> None:
    loop = ToolLoop(ResponseChain(None), TEMPLATE, [USER], max_turns=1)
    request = loop.next_request()
    assert request.final
    assert request.body["tool_choice"] == "none"


def test_a_response_without_calls_finishes_the_run() -> None:
    loop = ToolLoop(ServerConversation("conv_1"), TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    usage = TokenUsage(10, 5, 15)
    decision = loop.on_stream_end(outcome("resp_1", text="hello", usage=usage))
    assert isinstance(decision, Finish)
    result = decision.result
    assert (result.final_output, result.status, result.turns) == ("hello", "completed", 1)
    assert (result.conversation, result.last_response_id) == ("conv_1", "resp_1")
    assert result.usage == usage
    assert result.new_items == [{"type": "message", "role": "assistant", "content": []}]
    assert loop.close() == []


def test_calls_are_run_and_their_outputs_are_the_next_request_in_call_order() -> None:
    mode = ResponseChain("resp_0")
    loop = ToolLoop(mode, TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    decision = loop.on_stream_end(outcome("resp_1", "a", "b"))
    assert decision == RunTools((call("a"), call("b")))
    assert loop.unanswered_calls == (call("a"), call("b"))
    assert loop.on_outputs([output("b", "2"), output("a", "1")]) is None
    request = loop.next_request()
    assert request.body["input"] == [output("a", "1"), output("b", "2")]
    assert request.body["previous_response_id"] == "resp_1"
    final = loop.on_stream_end(outcome("resp_2", text="done", usage=TokenUsage(1, 1, 2)))
    assert isinstance(final, Finish)
    assert final.result.turns == 2
    assert [item.get("type") for item in final.result.new_items] == [
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
        "message",
    ]


def test_each_call_keeps_exactly_one_output_whatever_the_driver_hands_over() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    loop.on_stream_end(outcome("resp_1", "a", "b"))
    loop.on_outputs([output("a", "first"), output("a", "second"), output("stray")])
    sent = loop.next_request().body["input"]
    assert sent == [output("a", "first"), output("b", NOT_RUN_CANCELLED)]


def test_a_failed_response_is_raised_and_the_outputs_it_carried_stay_owed() -> None:
    mode = ResponseChain("resp_0")
    loop = ToolLoop(mode, TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    loop.on_stream_end(outcome("resp_1", "a"))
    loop.on_outputs([output("a")])
    loop.next_request()
    decision = loop.on_stream_end(outcome("resp_2", status="failed"))
    assert isinstance(decision, Failed)
    assert (decision.error.code, decision.error.message) == ("server_error", "boom")
    # owed to the response that holds the call, not to the failed one
    assert mode.owed_key == "resp:resp_1"
    assert loop.close() == [output("a")]


def test_outputs_owed_by_an_earlier_run_go_first_and_count_as_the_runs_items() -> None:
    owed = [output("old")]
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], owed=owed, max_turns=2)
    assert loop.next_request().body["input"] == [output("old"), USER]
    decision = loop.on_stream_end(outcome("resp_1", text="hi"))
    assert isinstance(decision, Finish)
    assert decision.result.new_items[0] == output("old")
    assert loop.close() == []


def test_owed_outputs_are_owed_again_when_the_response_carrying_them_fails() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], owed=[output("old")], max_turns=2)
    loop.next_request()
    assert isinstance(loop.on_stream_end(outcome("r", status="failed")), Failed)
    assert loop.close() == [output("old")]


def test_calls_at_the_turn_limit_are_not_run_and_are_owed() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=1)
    loop.next_request()
    decision = loop.on_stream_end(outcome("resp_1", "a", text="still calling"))
    assert decision == OweOutputs((call("a"),), NOT_RUN_TURN_LIMIT)
    finish = loop.on_outputs([])
    assert finish is not None
    assert finish.result.status == "incomplete"
    assert finish.result.final_output == "still calling"
    assert loop.close() == [output("a", NOT_RUN_TURN_LIMIT)]


def test_calls_of_an_incomplete_response_keep_outputs_of_tools_that_ran_early() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    decision = loop.on_stream_end(outcome("resp_1", "a", "b", status="incomplete"))
    assert decision == OweOutputs((call("a"), call("b")), NOT_RUN_INCOMPLETE)
    loop.on_outputs([output("a", "ran early")])
    assert loop.close() == [output("a", "ran early"), output("b", NOT_RUN_INCOMPLETE)]


def test_local_replay_takes_owed_outputs_into_the_history_it_returns() -> None:
    mode = LocalReplay()
    loop = ToolLoop(mode, TEMPLATE, [USER], max_turns=1)
    loop.next_request()
    loop.on_stream_end(outcome("resp_1", "a"))
    finish = loop.on_outputs([])
    assert finish is not None
    assert [item.get("type", "user") for item in finish.result.history] == [
        "user",
        "function_call",
        "function_call_output",
    ]
    assert loop.close() == []


def test_a_run_cancelled_while_tools_run_owes_one_output_per_held_call() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    loop.on_stream_end(outcome("resp_1", "a", "b"))
    assert loop.close([output("a", "cancelled by the user")]) == [
        output("a", "cancelled by the user"),
        output("b", NOT_RUN_CANCELLED),
    ]
    assert loop.close() == []


def test_a_run_stopped_right_after_a_response_with_calls_owes_those_calls() -> None:
    """Stopping between the end of the body and the tools (the caller closes the stream at
    `TurnCompleted`) owes the new calls; the outputs that response accepted are delivered."""
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], owed=[output("old")], max_turns=3)
    loop.next_request()
    loop.on_stream_end(outcome("resp_1", "a"))
    assert loop.close() == [output("a", NOT_RUN_CANCELLED)]


def test_a_run_cancelled_mid_stream_leaves_what_it_was_sending_in_doubt() -> None:
    """Whether the server kept the cut-off turn is unknown here: nothing is owed yet."""
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    loop.on_stream_end(outcome("resp_1", "a"))
    loop.on_outputs([output("a")])
    loop.next_request()
    assert loop.close(response_id="resp_2") == []
    assert loop.in_doubt == InDoubt("resp_2", (output("a"),), NOT_RUN_CANCELLED)


def test_a_run_cancelled_before_reading_any_call_still_leaves_its_turn_in_doubt() -> None:
    """The server may have stored calls whose announcements were never read."""
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    assert loop.close() == []
    assert loop.in_doubt == InDoubt(None, (), NOT_RUN_CANCELLED)


def test_a_request_refused_with_an_error_status_owes_what_it_carried() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], owed=[output("a")], max_turns=3)
    loop.next_request()
    assert loop.close(refused=True) == [output("a")]
    assert loop.in_doubt is None


def test_local_replay_cut_off_mid_stream_keeps_the_outputs_and_drops_the_calls() -> None:
    """With `store=False` the history held here is the truth: nothing is asked."""
    mode = LocalReplay()
    loop = ToolLoop(mode, TEMPLATE, [USER], max_turns=3)
    loop.next_request()
    loop.on_stream_end(outcome("resp_1", "a"))
    loop.on_outputs([output("a")])
    loop.next_request()
    assert loop.close(response_id="resp_2") == []
    assert loop.in_doubt is None
    assert [i.get("call_id") for i in mode.history()] == [None, "a", "a"]


def test_a_chain_cut_off_before_its_response_id_owes_what_it_was_sending() -> None:
    """Chaining onto the previous response is always valid: no need to ask."""
    loop = ToolLoop(ResponseChain("resp_0"), TEMPLATE, [USER], owed=[output("a")], max_turns=3)
    loop.next_request()
    assert loop.close() == [output("a")]
    assert loop.in_doubt is None


def cancelled_turn() -> InDoubt:
    return InDoubt("resp_2", (output("a"),), NOT_RUN_CANCELLED)


def conversation_items(*, kept: bool) -> list[dict[str, Any]]:
    """The conversation's newest items, newest first, as the server lists them."""
    earlier = [{"type": "function_call", "call_id": "a"}, USER]
    if not kept:
        return earlier
    calls = [{"type": "function_call", "call_id": c} for c in ("c", "b")]
    return [*calls, output("a"), *earlier]


@pytest.mark.parametrize("kept", [True, False])
def test_a_conversation_in_doubt_owes_exactly_what_the_server_lacks(kept: bool) -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], doubt=cancelled_turn(), max_turns=3)
    assert loop.question == ReadConversation("c", "resp_2")
    with pytest.raises(RuntimeError, match="settle"):
        loop.next_request()
    loop.settle(conversation_items(kept=kept))
    assert loop.question is None
    owed = [output("b", NOT_RUN_CANCELLED), output("c", NOT_RUN_CANCELLED)]
    owed = owed if kept else [output("a")]
    assert loop.next_request().body["input"] == [*owed, USER]
    loop.on_stream_end(outcome("resp_3"))
    assert loop.in_doubt is None


def test_a_settled_doubt_is_owed_again_when_the_run_ends_before_sending_it() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], doubt=cancelled_turn(), max_turns=3)
    loop.settle(conversation_items(kept=True))
    assert loop.close() == [output("b", NOT_RUN_CANCELLED), output("c", NOT_RUN_CANCELLED)]
    assert loop.in_doubt is None


def test_an_unsettled_doubt_outlives_a_run_that_could_not_ask() -> None:
    doubt = cancelled_turn()
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], doubt=doubt, max_turns=3)
    assert loop.close() == []
    assert loop.in_doubt == doubt


def test_a_chain_in_doubt_continues_from_the_kept_response_and_answers_all_its_calls() -> None:
    mode = ResponseChain("resp_1")
    loop = ToolLoop(mode, TEMPLATE, [USER], doubt=cancelled_turn(), max_turns=3)
    assert loop.question == ReadResponse("resp_2")
    calls = [{"type": "function_call", "call_id": c} for c in ("b", "c")]
    loop.settle({"id": "resp_2", "status": "completed", "output": calls})
    assert loop.last_response_id == "resp_2"  # where the caller chains from next
    body = loop.next_request().body
    assert body["previous_response_id"] == "resp_2"
    assert body["input"] == [output("b", NOT_RUN_CANCELLED), output("c", NOT_RUN_CANCELLED), USER]


@pytest.mark.parametrize(
    "response",
    [
        None,
        {"id": "resp_2", "status": "cancelled", "output": []},
        {"id": "resp_2", "status": "completed", "output": [{"type": "message"}]},
    ],
)
def test_a_chain_in_doubt_continues_from_the_previous_response_otherwise(
    response: dict[str, Any] | None,
) -> None:
    loop = ToolLoop(ResponseChain("resp_1"), TEMPLATE, [USER], doubt=cancelled_turn(), max_turns=3)
    loop.settle(response)
    assert loop.last_response_id is None
    body = loop.next_request().body
    assert body["previous_response_id"] == "resp_1"
    assert body["input"] == [output("a"), USER]


def test_only_a_doubt_can_be_settled() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=3)
    assert loop.question is None
    with pytest.raises(RuntimeError, match="nothing is in doubt"):
        loop.settle([])


def test_the_driver_must_follow_the_phases() -> None:
    loop = ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=3)
    with pytest.raises(RuntimeError, match="'ready', not 'streaming'"):
        loop.on_stream_end(outcome("r"))
    loop.next_request()
    with pytest.raises(RuntimeError, match="'streaming', not 'ready'"):
        loop.next_request()
    with pytest.raises(RuntimeError, match="not 'answering'"):
        loop.on_outputs([])


def test_max_turns_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_turns"):
        ToolLoop(ServerConversation("c"), TEMPLATE, [USER], max_turns=0)
