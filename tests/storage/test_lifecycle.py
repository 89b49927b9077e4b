"""Opening, migrating, closing and reopening a store, on every backend; create_store."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

import turnstream.storage
from tests.databases import run_sync_on
from tests.storage.conftest import OpenStore
from turnstream.storage import ResponseRecord, SchemaTooNewError, SQLiteStore, base, create_store
from turnstream.storage.migrations import MIGRATIONS_DIR, head_revision
from turnstream.storage.schema import metadata
from turnstream.storage.sql import SQLStore

TABLES = {
    "alembic_version",
    "responses",
    "response_input_items",
    "response_events",
    "conversations",
    "conversation_items",
    "conversation_locks",
    "store_owners",
    "api_keys",
    "stream_slots",
    "idempotency_keys",
    "server_secrets",
}


def versions(conn: Connection) -> list[str]:
    return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def owners(conn: Connection) -> list[str]:
    return list(conn.execute(sa.text("SELECT owner FROM store_owners")).scalars())


def table_names(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


async def test_open_creates_the_schema(db_url: str, store: SQLStore) -> None:
    assert await run_sync_on(db_url, table_names) == TABLES


async def test_sqlite_open_creates_missing_parent_directories(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "turnstream.db"
    store = SQLiteStore(db)
    await store.open()
    await store.close()
    assert db.exists()


async def test_the_sqlite_database_is_in_wal_mode(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "x.db")
    await store.open()
    await store.close()
    with sqlite3.connect(tmp_path / "x.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_opening_an_existing_database_again_is_a_no_op_migration(
    db_url: str, open_store: OpenStore
) -> None:
    for _ in range(3):
        await (await open_store()).close()

    assert await run_sync_on(db_url, versions) == [head_revision()]


async def test_stores_opening_one_new_database_at_once_migrate_it_once(
    db_url: str, open_store: OpenStore
) -> None:
    stores = await asyncio.gather(*(open_store() for _ in range(4)))

    await stores[0].create_conversation("conv_1", metadata={}, items=[], created_at=0)
    assert all([await s.get_conversation("conv_1") is not None for s in stores])
    assert await run_sync_on(db_url, versions) == [head_revision()]


async def test_a_database_newer_than_the_code_refuses_to_open_with_a_clear_message(
    db_url: str, open_store: OpenStore
) -> None:
    await (await open_store()).close()

    def from_the_future(conn: Connection) -> None:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    await run_sync_on(db_url, from_the_future)

    with pytest.raises(SchemaTooNewError, match=r"revision 9999, newer than this turnstream"):
        await open_store()
    assert await run_sync_on(db_url, versions) == ["9999"]  # and nothing was touched


async def test_open_twice_on_one_store_is_harmless(store: SQLStore) -> None:
    await store.open()
    await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)
    assert await store.get_conversation("conv_1") is not None


async def test_the_migrated_schema_matches_the_declared_tables(
    db_url: str, store: SQLStore
) -> None:
    def diff(conn: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    assert await run_sync_on(db_url, diff) == []


async def test_data_survives_close_and_reopen(open_store: OpenStore) -> None:
    store = await open_store()
    await store.create_conversation(
        "conv_1", metadata={"k": "v"}, items=[{"role": "user", "content": "hi"}], created_at=7
    )
    await store.insert_response(
        ResponseRecord(
            id="resp_1", response={"id": "resp_1", "status": "completed"}, status="completed"
        )
    )
    items = await store.all_items("conv_1")
    await store.close()

    reopened = await open_store()
    assert await reopened.get_conversation("conv_1") == {
        "id": "conv_1",
        "object": "conversation",
        "created_at": 7,
        "metadata": {"k": "v"},
    }
    assert await reopened.all_items("conv_1") == items
    got = await reopened.get_response("resp_1")
    assert got is not None
    assert got.response == {"id": "resp_1", "status": "completed"}


async def test_close_unregisters_the_owner(db_url: str, open_store: OpenStore) -> None:
    store = await open_store(owner="me")
    assert await run_sync_on(db_url, owners) == ["me"]
    await store.close()
    assert await run_sync_on(db_url, owners) == []


@pytest.mark.parametrize("form", ["path", "str", "url", "aiosqlite_url"])
def test_create_store_accepts_paths_and_sqlite_urls(tmp_path: Path, form: str) -> None:
    db = tmp_path / "x.db"
    forms: dict[str, str | Path] = {
        "path": db,
        "str": str(db),
        "url": f"sqlite:///{db}",
        "aiosqlite_url": f"sqlite+aiosqlite:///{db}",
    }

    store = create_store(forms[form])

    assert isinstance(store, SQLiteStore)
    assert store.path == db


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me@db.example:5432/turnstream",
        "postgresql+asyncpg://me@db.example:5432/turnstream",
        "postgres://me@db.example/turnstream",
    ],
)
def test_create_store_selects_postgresql_for_its_urls(url: str) -> None:
    pytest.importorskip("asyncpg")
    from turnstream.storage.postgres import PostgresStore

    store = create_store(url, pool_size=3)

    assert isinstance(store, PostgresStore)
    assert store.url == url
    assert store._engine.pool.size() == 3  # type: ignore[attr-defined]  # QueuePool's size


def test_a_pool_smaller_than_one_connection_is_refused() -> None:
    pytest.importorskip("asyncpg")
    with pytest.raises(ValueError, match="pool_size"):
        create_store("postgresql://me@db.example/turnstream", pool_size=0)


@pytest.mark.parametrize("url", [":memory:", "sqlite:///:memory:", "mysql://db/x"])
def test_create_store_refuses_memory_and_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"in-memory|unsupported"):
        create_store(url)


def test_package_all_is_sorted_resolvable_and_covers_the_store_contract() -> None:
    exported = turnstream.storage.__all__
    assert exported == sorted(set(exported))
    assert set(base.__all__) <= set(exported)
    for name in exported:
        assert getattr(turnstream.storage, name) is not None


async def test_a_database_of_an_older_revision_is_migrated_with_its_data(
    db_url: str, open_store: OpenStore
) -> None:
    def at_0002_with_a_response(conn: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        conn.execute(
            sa.text(
                "INSERT INTO responses (id, created_at, status, background, response, updated_at)"
                " VALUES ('resp_old', 1, 'completed', false, '{\"id\": \"resp_old\"}', 1.0)"
            )
        )

    await run_sync_on(db_url, at_0002_with_a_response)

    store = await open_store()

    assert await run_sync_on(db_url, versions) == [head_revision()]
    old = await store.get_response("resp_old")
    assert old is not None
    assert old.response == {"id": "resp_old"}
