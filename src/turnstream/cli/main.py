"""The `turnstream` command: thin wrappers over the library."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .chat import chat
from .db import db_app, display_database
from .keys import keys_app, require_keys_beyond_loopback

if TYPE_CHECKING:
    from turnstream.server.settings import Settings

app = typer.Typer(
    name="turnstream",
    help="Streaming, tool-calling conversations over the OpenAI Responses API.",
    no_args_is_help=True,
    add_completion=False,
)

__all__ = ["app"]


@app.callback()
def _main() -> None:
    """turnstream: a Responses API server with conversation state and locking, and a client loop."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db: Annotated[
        str | None,
        typer.Option(
            help="SQLite file, or postgresql://USER@HOST:PORT/DB, for responses and conversations (default: $TURNSTREAM_DB or a file in the user data dir)."
        ),
    ] = None,
    db_pool_size: Annotated[
        int, typer.Option(help="PostgreSQL: the most database connections this process opens.")
    ] = 10,
    config: Annotated[
        Path | None, typer.Option(help="TOML file mapping model names to providers.")
    ] = None,
    lock_release: Annotated[
        str,
        typer.Option(
            help="before_terminal (default, race-free) or after_body (OpenAI's hosted behaviour, to test clients)."
        ),
    ] = "before_terminal",
    lock_release_delay: Annotated[
        float, typer.Option(help="Seconds after the body closes (after_body mode).")
    ] = 1.0,
    lease_ttl: Annotated[
        float, typer.Option(help="Seconds a conversation lease survives without heartbeat.")
    ] = 30.0,
    no_local: Annotated[
        bool, typer.Option("--no-local", help="Do not load the embedded local model.")
    ] = False,
    local_slots: Annotated[
        int,
        typer.Option(
            help="Conversations the embedded model answers at once; more wait, shown queued."
        ),
    ] = 2,
    local_threads: Annotated[
        int | None,
        typer.Option(
            envvar="TURNSTREAM_LOCAL_THREADS",
            help="CPU threads for the embedded model (default: the usable CPUs, at most 8); "
            "fewer suit a machine busy with other work.",
        ),
    ] = None,
    reject_hosted_tools: Annotated[
        bool,
        typer.Option(
            "--reject-hosted-tools",
            help="Answer 400 to requests offering hosted tools (web_search, ...) instead of "
            "leaving them out.",
        ),
    ] = False,
    fault_rate_limit: Annotated[
        float, typer.Option(help="Share of requests answered 429 (testing).")
    ] = 0.0,
    fault_unavailable: Annotated[
        float, typer.Option(help="Share of requests answered 503 (testing).")
    ] = 0.0,
    fault_locked: Annotated[
        float, typer.Option(help="Share of requests answered conversation_locked (testing).")
    ] = 0.0,
    shutdown_grace: Annotated[
        int, typer.Option(help="Seconds running responses get to finish when the server stops.")
    ] = 10,
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes sharing the port (replicas on one machine; each has its own store connections)."
        ),
    ] = 1,
    event_ttl: Annotated[
        float,
        typer.Option(help="Seconds a background response's events stay resumable after it ends."),
    ] = 600.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    log_format: Annotated[
        str, typer.Option(help="text (for people) or json (one object per line, for machines).")
    ] = "text",
    log_content: Annotated[
        bool,
        typer.Option(
            "--log-content", help="Put prompt and output text in the per-request log line."
        ),
    ] = False,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve a non-loopback address with no API keys (anyone reaching it has full access).",
        ),
    ] = False,
    cors_origin: Annotated[
        str | None, typer.Option(help="The one browser origin allowed to call the API (CORS).")
    ] = None,
    max_body_mib: Annotated[float, typer.Option(help="Largest request body, in MiB.")] = 16.0,
    requests_per_minute: Annotated[
        int | None, typer.Option(help="Per API key, per server process.")
    ] = None,
    concurrent_streams: Annotated[
        int | None, typer.Option(help="Open streams per API key, across all replicas.")
    ] = None,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a client gets to send a request body.")
    ] = 30.0,
    keep_alive_timeout: Annotated[
        float, typer.Option(help="Seconds an idle keep-alive connection stays open.")
    ] = 5.0,
) -> None:
    """Run the Responses + Conversations server."""
    import uvicorn

    from turnstream.server.limits import Limits
    from turnstream.server.settings import (
        FaultSettings,
        Settings,
        default_db_path,
        default_db_url,
    )

    if lock_release not in ("before_terminal", "after_body"):
        raise typer.BadParameter(
            "must be before_terminal or after_body", param_hint="--lock-release"
        )
    from turnstream.server.logs import LOG_FORMATS, configure_logging, uvicorn_log_config

    if log_format not in LOG_FORMATS:
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    if db is None:
        db_path, db_url = default_db_path(), default_db_url()
    elif "://" in db:
        db_path, db_url = default_db_path(), db
    else:
        db_path, db_url = Path(db), None  # a --db file wins over a URL in $TURNSTREAM_DB
    require_auth = require_keys_beyond_loopback(host, db, insecure_no_auth=insecure_no_auth)
    settings = Settings(
        db_path=db_path,
        db_url=db_url,
        db_pool_size=db_pool_size,
        lease_ttl=lease_ttl,
        event_ttl=event_ttl,
        lock_release=lock_release,  # type: ignore[arg-type]  # checked above
        lock_release_delay=lock_release_delay,
        config_path=config,
        enable_local_model=not no_local,
        local_slots=local_slots,
        local_threads=local_threads,
        hosted_tools="reject" if reject_hosted_tools else "drop",
        log_content=log_content,
        faults=FaultSettings(
            rate_limit=fault_rate_limit,
            unavailable=fault_unavailable,
            conversation_locked=fault_locked,
        ),
        require_auth=require_auth,
        cors_origin=cors_origin,
        limits=Limits(
            max_body_bytes=int(max_body_mib * 1024 * 1024),
            body_timeout=body_timeout,
            keep_alive_timeout=keep_alive_timeout,
            requests_per_minute=requests_per_minute,
            concurrent_streams=concurrent_streams,
        ),
    )
    if workers < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--workers")
    if local_slots < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--local-slots")
    if local_threads is not None and local_threads < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--local-threads")
    _migrate_or_refuse(settings)
    # only once every refusal above is behind us: a serve that does not start leaves
    # the process's logging as it found it
    configure_logging(log_level, log_format)
    server_app = _serving_app(settings) if workers == 1 else None
    if log_format == "json":
        # every line a machine reads must parse, this one included
        logging.getLogger("turnstream.cli").info("database %s", display_database(settings.database))
    else:
        typer.echo(f"turnstream: database {display_database(settings.database)}", err=True)
    # on shutdown, streams get a grace period to finish; then they are cancelled, and
    # every run still holding a conversation records itself cancelled and lets go
    uvicorn_options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level.lower(),
        "timeout_graceful_shutdown": shutdown_grace,
        # json: uvicorn's loggers go through the root's JSON handler. In both formats
        # the per-request line (turnstream.requests, written when the request ends)
        # replaces uvicorn's access line, which said less, twice per request for
        # people, and was written in front of every response's head
        "log_config": uvicorn_log_config(log_format),
        "access_log": False,
        # an idle or silent connection is closed after this (slow-drip bodies are
        # cut off by the body deadline in the server itself)
        "timeout_keep_alive": max(int(keep_alive_timeout), 1),
    }
    if server_app is None:
        _serve_workers(settings, workers, uvicorn_options)
        return
    uvicorn.run(server_app, **uvicorn_options)


def _migrate_or_refuse(settings: Settings) -> None:
    """Bring the database to this code's schema now, once, before uvicorn starts.

    Every store migrates when it opens, but that happens in the app's startup, where
    a database this code cannot run on (one a newer turnstream migrated) ends as a
    uvicorn traceback, once per worker. Here it is one line and exit code 1.
    """
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from turnstream.storage import SchemaTooNewError, create_store

    database = settings.database
    try:
        asyncio.run(create_store(database, pool_size=1).upgrade())
    except (SchemaTooNewError, SQLAlchemyError, OSError, ValueError) as exc:
        typer.echo(f"turnstream: {display_database(database)}: {exc}", err=True)
        raise typer.Exit(1) from None


def _serving_app(settings: Settings) -> Any:
    from turnstream.server.config import ConfigError

    from ._apps import create_serving_app, freeze_startup_heap

    try:
        app = create_serving_app(settings)
    except ConfigError as exc:
        typer.echo(f"turnstream: {exc}", err=True)
        raise typer.Exit(2) from None
    freeze_startup_heap()
    return app


def _serve_workers(settings: Settings, workers: int, uvicorn_options: dict[str, Any]) -> None:
    """N processes on one port: uvicorn forks workers that each import the app
    factory, which rebuilds the app from the settings passed in the environment."""
    import os

    import uvicorn

    from turnstream.server.config import ConfigError, read_model_config

    from ._apps import SETTINGS_ENV, settings_to_json

    try:  # refuse a bad configuration once, here, not in every worker
        read_model_config(settings.config_path, os.environ)
    except ConfigError as exc:
        typer.echo(f"turnstream: {exc}", err=True)
        raise typer.Exit(2) from None
    os.environ[SETTINGS_ENV] = settings_to_json(settings)
    uvicorn.run(
        "turnstream.cli._apps:create_serving_app_from_environment",
        factory=True,
        workers=workers,
        # a worker imports and builds the whole app before it answers the
        # supervisor's health check; uvicorn's 5 s default kills slow starters on a
        # busy machine, over and over
        timeout_worker_healthcheck=60,
        **uvicorn_options,
    )


app.command()(chat)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


if __name__ == "__main__":  # pragma: no cover
    app()
