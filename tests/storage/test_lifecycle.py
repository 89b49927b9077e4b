"""Opening, migrating, closing and reopening a SQLite store; create_store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

import turnstream.storage
from turnstream.storage import ResponseRecord, SQLiteStore, base, create_store
from turnstream.storage.schema import metadata


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


async def test_open_creates_missing_parent_directories_and_the_schema(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "turnstream.db"
    store = SQLiteStore(db)
    await store.open()
    await store.close()

    assert tables(db) >= {
        "alembic_version",
        "responses",
        "response_input_items",
        "conversations",
        "conversation_items",
        "conversation_locks",
        "store_owners",
    }


async def test_the_database_is_in_wal_mode(db_path: Path, store: SQLStore) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_opening_an_existing_database_again_is_a_no_op_migration(db_path: Path) -> None:
    for _ in range(3):
        store = SQLiteStore(db_path)
        await store.open()
        await store.close()

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]


async def test_open_twice_on_one_store_is_harmless(store: SQLStore) -> None:
    await store.open()
    await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)
    assert await store.get_conversation("conv_1") is not None


async def test_the_migrated_schema_matches_the_declared_tables(
    db_path: Path, store: SQLStore
) -> None:
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
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

    reopened = SQLiteStore(db_path)
    await reopened.open()
    try:
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
    finally:
        await reopened.close()


async def test_close_unregisters_the_owner(db_path: Path) -> None:
    store = SQLiteStore(db_path, owner="me")
    await store.open()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT owner FROM store_owners").fetchall() == [("me",)]
    await store.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT owner FROM store_owners").fetchall() == []


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


def test_create_store_refuses_postgres_for_now() -> None:
    with pytest.raises(NotImplementedError, match="PostgreSQL"):
        create_store("postgresql://localhost/turnstream")


@pytest.mark.parametrize("url", [":memory:", "sqlite:///:memory:", "mysql://db/x"])
def test_create_store_refuses_memory_and_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"in-memory|unsupported"):
        create_store(url)


def test_package_all_is_sorted_resolvable_and_covers_the_store_contract() -> None:
    exported = turnstream.storage.__all__
    assert exported == sorted(set(exported))
    assert set(base.__all__) | {"SQLiteStore", "create_store"} == set(exported)
    for name in exported:
        assert getattr(turnstream.storage, name) is not None
