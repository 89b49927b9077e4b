"""Fresh databases for tests: each test gets its own, created and dropped.

`fresh_database_url(backend, tmp_path)` yields a store URL on an empty database:
for `sqlite` a file under `tmp_path`; for `postgresql` a new schema of its own in
the server's `test` database (a schema is created in milliseconds where a database
takes half a second, and `?search_path=` makes it the only one the store sees).

PostgreSQL is found at `$TURNSTREAM_TEST_POSTGRES`, by default
`postgresql://root@127.0.0.1:5432/test`. Where it does not answer, the PostgreSQL
cases skip with one reason; with `CI=true` they fail instead, so that a CI run
can never pass without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import create_async_engine

from turnstream.storage import sqlite_path

__all__ = [
    "BACKENDS",
    "POSTGRES_ENV",
    "fresh_database_url",
    "fresh_postgres_url",
    "postgres_url",
    "require_postgres",
    "run_sync_on",
]

T = TypeVar("T")

BACKENDS = ("sqlite", "postgresql")
POSTGRES_ENV = "TURNSTREAM_TEST_POSTGRES"
_DEFAULT_POSTGRES = "postgresql://root@127.0.0.1:5432/test"


def postgres_url() -> str:
    """The PostgreSQL database tests make their schemas in."""
    return os.environ.get(POSTGRES_ENV, _DEFAULT_POSTGRES)


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a loop of its own, in a thread, so that
    both sync tests and async fixtures (inside a running loop) can call this."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(work()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _execute(*statements: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

    conn = await asyncpg.connect(postgres_url(), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@functools.cache
def _postgres_missing() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can (asked once per run)."""
    try:
        import asyncpg  # noqa: F401  # only whether it is installed
    except ImportError:
        return "PostgreSQL tests need asyncpg (pip install 'turnstream[postgres]')"
    try:
        _run(lambda: _execute("SELECT 1"))
    except Exception as exc:  # any failure to connect means the same to a test
        return f"PostgreSQL is not reachable at {postgres_url()} (${POSTGRES_ENV}): {exc}"
    return None


def under_ci() -> bool:
    """Whether `CI` says this run is CI's (`1`, `true` or `yes`, in any case)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is unavailable; fail it under CI."""
    reason = _postgres_missing()
    if reason is None:
        return
    if under_ci():
        pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def fresh_postgres_url() -> Iterator[str]:
    """A URL on a new, empty schema of its own; dropped afterwards with all it holds."""
    require_postgres()
    schema = f"ts_{secrets.token_hex(6)}"
    _run(lambda: _execute(f"CREATE SCHEMA {schema}"))
    base = postgres_url()
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}search_path={schema}"
    finally:
        _run(lambda: _execute(f"DROP SCHEMA {schema} CASCADE"))


@contextlib.contextmanager
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of `backend` (`sqlite` or `postgresql`) as a store URL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'turnstream.db'}"
    elif backend == "postgresql":
        with fresh_postgres_url() as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}")


async def run_sync_on(db_url: str, probe: Callable[[Connection], T]) -> T:
    """Run `probe` on a connection of its own to the database at `db_url` (then
    commit), to look at or change it behind the stores' backs."""
    if db_url.startswith("postgresql"):
        from turnstream.storage.postgres import create_postgres_engine

        engine = create_postgres_engine(db_url, pool_size=1)
    else:
        sqlite_path(db_url).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            URL.create("sqlite+aiosqlite", database=str(sqlite_path(db_url)))
        )
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(probe)
    finally:
        await engine.dispose()
