"""`copy_database`: a SQLite file's contents moved to another database, ids unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from sqlalchemy.exc import IntegrityError

from tests.livesrv import running_server
from tests.storage.conftest import OpenStore
from turnstream.storage import ResponseRecord, SQLiteStore
from turnstream.storage.copy import SecretConflictError, TargetNotEmptyError, copy_database


def msg(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


@pytest.fixture
async def source(tmp_path: Path) -> Path:
    """A SQLite file with a chain of two responses, events, two conversations, and
    two API keys (one revoked); the live key's secret is in `secret.txt` beside it."""
    path = tmp_path / "old" / "turnstream.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        _, secret = await store.create_key("deploy", project="proj_a")
        await store.authenticate_key(secret)  # used once: last_used_at is set
        await store.create_key("old")
        await store.revoke_key("old")
        (path.parent / "secret.txt").write_text(secret, encoding="utf-8")
        for conv in ("conv_a", "conv_b"):
            await store.create_conversation(
                conv,
                metadata={"who": conv},
                items=[msg(f"{conv} 1"), msg(f"{conv} 2")],
                created_at=1,
            )
        await store.add_items("conv_a", [msg("conv_a 3")])
        await store.insert_response(
            ResponseRecord(
                id="resp_1",
                response={"id": "resp_1", "status": "completed"},
                input_items=[msg("first")],
                status="completed",
                created_at=5,
            )
        )
        await store.insert_response(
            ResponseRecord(
                id="resp_2",
                response={"id": "resp_2", "status": "completed"},
                input_items=[msg("second"), msg("third")],
                previous_response_id="resp_1",
                conversation_id=None,
                status="completed",
                background=True,
                created_at=6,
            )
        )
        await store.append_events("resp_2", [(0, '{"n":0}'), (1, '{"n":1}')])
        await store.server_secret("compaction", lambda: "source-key")
    finally:
        await store.close()
    return path


async def snapshot(store: Any) -> dict[str, Any]:
    """Everything the Store protocol can read back about the fixture's data."""
    chain = await store.response_chain("resp_2")
    return {
        "chain": [
            (
                r.id,
                r.response,
                r.input_items,
                r.previous_response_id,
                r.status,
                r.background,
                r.created_at,
                r.owner,
            )
            for r in chain
        ],
        "events": await store.list_events("resp_2", after=None),
        "conversations": [await store.get_conversation(c) for c in ("conv_a", "conv_b")],
        "items": [await store.all_items(c) for c in ("conv_a", "conv_b")],
        "keys": sorted(await store.list_keys(), key=lambda k: k.name),
    }


async def test_everything_is_copied_with_its_ids(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    counts = await copy_database(source, db_url)

    original = SQLiteStore(source)
    await original.open()
    try:
        expected = await snapshot(original)
    finally:
        await original.close()
    assert await snapshot(await open_store()) == expected
    assert counts == {
        "responses": 2,
        "response_input_items": 3,
        "response_events": 2,
        "conversations": 2,
        "conversation_items": 5,
        "api_keys": 2,
        "server_secrets": 1,
    }
    assert await (await open_store()).server_secret("compaction", lambda: "new") == "source-key"


async def test_a_copied_api_key_lets_its_secret_in_and_a_revoked_one_stays_revoked(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    await copy_database(source, db_url)
    store = await open_store()

    key = await store.authenticate_key((source.parent / "secret.txt").read_text("utf-8"))

    assert key is not None
    assert (key.name, key.project) == ("deploy", "proj_a")
    assert [k.name for k in await store.list_keys() if k.revoked_at is not None] == ["old"]
    assert await store.has_keys()


async def test_a_target_holding_only_api_keys_is_not_empty(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    store = await open_store()
    await store.create_key("theirs")

    with pytest.raises(TargetNotEmptyError, match="already holds api_keys"):
        await copy_database(source, db_url)

    assert [k.name for k in await store.list_keys()] == ["theirs"]


async def test_a_copied_conversation_takes_new_items_after_its_copied_ones(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    await copy_database(source, db_url)
    store = await open_store()

    await store.add_items("conv_b", [msg("conv_b 3")])
    await store.add_items("conv_a", [msg("conv_a 4")])

    texts = [
        [i["content"][0]["text"] for i in await store.all_items(c)] for c in ("conv_a", "conv_b")
    ]
    assert texts == [
        ["conv_a 1", "conv_a 2", "conv_a 3", "conv_a 4"],
        ["conv_b 1", "conv_b 2", "conv_b 3"],
    ]


async def test_a_non_empty_target_is_refused_and_left_alone(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    store = await open_store()
    await store.create_conversation("conv_there", metadata={}, items=[msg("mine")], created_at=0)

    with pytest.raises(TargetNotEmptyError, match="already holds"):
        await copy_database(source, db_url)

    assert await store.get_conversation("conv_a") is None
    assert len(await store.all_items("conv_there")) == 1


async def test_into_non_empty_adds_to_the_target(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    store = await open_store()
    await store.create_conversation("conv_there", metadata={}, items=[msg("mine")], created_at=0)

    await copy_database(source, db_url, into_non_empty=True)

    assert await store.get_conversation("conv_a") is not None
    assert await store.get_conversation("conv_there") is not None


async def test_an_id_already_in_the_target_aborts_the_whole_copy(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    store = await open_store()
    await store.create_conversation("conv_b", metadata={}, items=[], created_at=0)

    with pytest.raises(IntegrityError):
        await copy_database(source, db_url, into_non_empty=True)

    assert await store.get_response("resp_1") is None  # copied before conv_b, rolled back
    assert await store.all_items("conv_b") == []


async def test_an_empty_target_s_own_secret_is_replaced_by_the_source_s(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    # a server started on the empty target once: it made a key, and sealed nothing
    store = await open_store()
    assert await store.server_secret("compaction", lambda: "target-key") == "target-key"

    await copy_database(source, db_url)

    assert await store.server_secret("compaction", lambda: "new") == "source-key"


async def test_a_target_with_data_and_another_secret_aborts_the_copy(
    source: Path, db_url: str, open_store: OpenStore
) -> None:
    store = await open_store()
    await store.create_conversation("conv_there", metadata={}, items=[], created_at=0)
    await store.server_secret("compaction", lambda: "target-key")

    with pytest.raises(SecretConflictError, match="compaction"):
        await copy_database(source, db_url, into_non_empty=True)

    assert await store.get_response("resp_1") is None  # one transaction: nothing copied
    assert await store.server_secret("compaction", lambda: "new") == "target-key"


async def test_a_missing_source_file_is_refused_without_creating_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await copy_database(tmp_path / "nope.db", f"sqlite:///{tmp_path / 'target.db'}")
    assert not (tmp_path / "nope.db").exists()


def test_a_copied_response_chains_and_a_copied_conversation_continues_through_the_server(
    tmp_path: Path, db_url: str
) -> None:
    old = tmp_path / "old.db"
    with running_server(old) as before:
        client = OpenAI(base_url=before.base_url, api_key="test", max_retries=0)
        conv = client.conversations.create(items=[{"role": "user", "content": "earlier"}])
        in_conv = client.responses.create(model="scripted", input="in conv", conversation=conv.id)
        first = client.responses.create(model="scripted", input="first")
        items_before = [i.id for i in client.conversations.items.list(conv.id, order="asc")]
        client.close()

    asyncio.run(copy_database(old, db_url))

    with running_server(tmp_path / "unused.db", db_url=db_url) as after:
        assert after.scripted is not None
        client = OpenAI(base_url=after.base_url, api_key="test", max_retries=0)
        assert client.responses.retrieve(in_conv.id).output_text == "in conv"

        chained = client.responses.create(
            model="scripted", input="second", previous_response_id=first.id
        )
        more = client.responses.create(model="scripted", input="more", conversation=conv.id)
        items_after = list(client.conversations.items.list(conv.id, order="asc"))
        client.close()

    chained_request, conv_request = after.scripted.requests
    assert [text(i) for i in chained_request.items] == ["first", "first", "second"]
    assert [text(i) for i in conv_request.items] == ["earlier", "in conv", "in conv", "more"]
    assert chained.output_text == "second"
    assert [i.id for i in items_after][:3] == items_before
    assert items_after[-1].id == more.output[0].id
    assert len(items_after) == 5


def text(item: dict[str, Any]) -> str:
    return "".join(part["text"] for part in item["content"])


def test_a_compaction_item_made_before_a_copy_opens_on_the_target(
    tmp_path: Path, db_url: str
) -> None:
    old = tmp_path / "old.db"
    history = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "and now?"},
    ]
    with running_server(old) as before:
        client = OpenAI(base_url=before.base_url, api_key="test", max_retries=0)
        window = client.post(
            "/responses/compact",
            body={"model": "echo", "input": history},
            cast_to=object,
        )
        client.close()
    items = window["output"]  # type: ignore[index]
    assert items[-1]["type"] == "compaction"

    asyncio.run(copy_database(old, db_url))

    with running_server(tmp_path / "unused.db", db_url=db_url) as after:
        client = OpenAI(base_url=after.base_url, api_key="test", max_retries=0)
        # without the source's key the item would be refused as invalid_compaction
        reply = client.responses.create(
            model="echo", input=[*items, {"role": "user", "content": "next"}]
        )
        client.close()
    assert reply.status == "completed"
