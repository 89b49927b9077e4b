"""Alembic environment: runs on a connection handed over by the store.

The store opens the transaction itself (on SQLite a `BEGIN IMMEDIATE`, so two
processes migrating one new file take turns) and passes its connection in
`config.attributes["connection"]`; Alembic then runs inside that transaction.
There is no offline (`--sql`) mode and no alembic.ini.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from turnstream.storage.schema import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("turnstream migrations run only through Store.open()")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
