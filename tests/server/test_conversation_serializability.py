"""Property: whatever mix of responses, item appends and item deletes races on a few
conversations, each conversation ends up as *some* serial order of the operations
that succeeded: nothing lost, doubled or interleaved, failures leave no trace."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.livesrv import LiveServer


@dataclass(frozen=True)
class Op:
    kind: str  # "respond" | "add" | "delete"
    conversation: int
    start_delay: float
    target: int = 0  # for delete: which initial item


ops_strategy = st.lists(
    st.builds(
        Op,
        kind=st.sampled_from(["respond", "add", "delete"]),
        conversation=st.integers(0, 2),
        start_delay=st.sampled_from([0.0, 0.005, 0.02, 0.05]),
        target=st.integers(0, 2),
    ),
    min_size=1,
    max_size=10,
)


async def _run(base_url: str, ops: list[Op]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        conversations = []
        for c in range(3):
            created = (
                await http.post(
                    "/conversations",
                    json={"items": [{"role": "user", "content": f"init{c}-{i}"} for i in range(3)]},
                )
            ).json()
            items = (
                await http.get(f"/conversations/{created['id']}/items", params={"order": "asc"})
            ).json()["data"]
            conversations.append((created["id"], [item["id"] for item in items]))

        async def perform(n: int, op: Op) -> tuple[int, Op, httpx.Response]:
            await asyncio.sleep(op.start_delay)
            conv_id, initial = conversations[op.conversation]
            if op.kind == "respond":
                resp = await http.post(
                    "/responses",
                    json={"model": "echo-slow", "input": f"op{n} a b", "conversation": conv_id},
                )
            elif op.kind == "add":
                resp = await http.post(
                    f"/conversations/{conv_id}/items",
                    json={"items": [{"role": "user", "content": f"op{n}"}]},
                )
            else:
                resp = await http.delete(f"/conversations/{conv_id}/items/{initial[op.target]}")
            return n, op, resp

        results = await asyncio.gather(*(perform(n, op) for n, op in enumerate(ops)))

        for c, (conv_id, initial) in enumerate(conversations):
            page = (
                await http.get(
                    f"/conversations/{conv_id}/items", params={"order": "asc", "limit": 100}
                )
            ).json()["data"]
            texts = [item["content"][0]["text"] for item in page]
            ids = [item["id"] for item in page]
            mine = [(n, op, resp) for n, op, resp in results if op.conversation == c]
            _check_serializable(c, initial, ids, texts, mine)


def _check_serializable(
    c: int,
    initial: list[str],
    ids: list[str],
    texts: list[str],
    mine: list[tuple[int, Op, httpx.Response]],
) -> None:
    for _, op, resp in mine:
        # every refusal is the lock (or deleting an already deleted item), never a crash
        if resp.status_code != 200:
            code = resp.json()["error"]["code"]
            assert (resp.status_code, code) == (400, "conversation_locked") or (
                op.kind == "delete" and resp.status_code == 404
            ), resp.text
    deleted = {
        initial[op.target]
        for _, op, resp in mine
        if op.kind == "delete" and resp.status_code == 200
    }
    survivors = [i for i in initial if i not in deleted]
    assert ids[: len(survivors)] == survivors, (
        "initial items kept their order, deleted ones are gone"
    )
    appended = texts[len(survivors) :]

    # the appended tail must be a concatenation of the successful ops' blocks, in some order
    blocks: dict[str, list[str]] = {}
    for n, op, resp in mine:
        if resp.status_code != 200 or op.kind == "delete":
            continue
        blocks[f"op{n}"] = [f"op{n} a b", f"op{n} a b"] if op.kind == "respond" else [f"op{n}"]
    position = 0
    seen: set[str] = set()
    while position < len(appended):
        key = appended[position].split()[0]
        assert key in blocks, (
            f"an item of a failed or unknown operation was stored: {appended[position]!r}"
        )
        assert key not in seen, f"{key} appears twice or interleaved"
        block = blocks[key]
        assert appended[position : position + len(block)] == block, (
            f"{key}'s items are split or interleaved: {appended}"
        )
        seen.add(key)
        position += len(block)
    assert seen == set(blocks), f"lost operations: {set(blocks) - seen}"


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops_strategy)
def test_conversations_are_always_a_serial_order_of_the_successful_operations(
    live_server: LiveServer, ops: list[Op]
) -> None:
    asyncio.run(_run(live_server.base_url, ops))


def test_the_serializability_check_rejects_an_interleaved_history() -> None:
    class FakeResponse:
        status_code = 200

    ops: list[Any] = [
        (0, Op("respond", 0, 0.0), FakeResponse()),
        (1, Op("add", 0, 0.0), FakeResponse()),
    ]
    interleaved = ["op0 a b", "op1", "op0 a b"]
    try:
        _check_serializable(0, [], [], interleaved, ops)
    except AssertionError:
        return
    raise AssertionError("an interleaved history passed the check")
