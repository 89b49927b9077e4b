"""`turnstream chat`: talk to a model in the terminal, with tools, on a durable conversation.

Without `--base-url` it starts the server in-process (the embedded defaults: the SQLite
file and the local model) on a free loopback port and talks to it over HTTP, exactly
as it would to any other Responses server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import openai
import platformdirs
import typer
from rich.console import Console

from turnstream.runtime.builtin_tools import BUILTIN_TOOLS
from turnstream.web.chats import CHAT_INSTRUCTIONS, ChatIndex, chat_index_path

from ._session import ChatError, ChatSession, describe_error
from ._tools import ToolLoadError, load_tools, merge_tools

__all__ = ["chat"]

DEFAULT_MODEL = "local"
NO_LOCAL_MODEL = (
    "this chat uses `echo`, a test double that "
    "repeats your words and calls the tool you name. Install the model with "
    "scripts/setup (or pip install 'turnstream[local]'), or pass --base-url/--model."
)


def chat(
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="Ask one question, print the answer, exit."),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="With -m: print the runtime's events as JSON lines.")
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option(
            envvar="OPENAI_BASE_URL",
            help="A Responses API to use instead of the embedded server (e.g. https://api.openai.com/v1).",
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="OPENAI_API_KEY", help="API key for --base-url.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name (default: `local` when served).")
    ] = None,
    conversation: Annotated[
        str | None, typer.Option(help="Continue this conversation (conv_...).")
    ] = None,
    tools: Annotated[
        list[str] | None,
        typer.Option("--tools", help="module:attr naming your @tool function(s); repeatable."),
    ] = None,
    no_builtin_tools: Annotated[
        bool,
        typer.Option(
            "--no-builtin-tools", help="Do not offer the built-in calculator/time/units tools."
        ),
    ] = False,
    max_output_tokens: Annotated[
        int | None, typer.Option(help="Cap on each response's output tokens.")
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            help="Embedded server: the SQLite file (default: $TURNSTREAM_DB or the user data dir)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Embedded server: TOML file mapping model names to providers."),
    ] = None,
    no_local: Annotated[
        bool, typer.Option("--no-local", help="Embedded server: do not load the local model.")
    ] = False,
    local_threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="TURNSTREAM_LOCAL_THREADS",
            help="Embedded server: CPU threads for the local model (default: the usable "
            "CPUs, at most 8); fewer suit a machine busy with other work.",
        ),
    ] = None,
) -> None:
    """Chat with a model in the terminal (tools, streaming, durable conversations)."""
    err = Console(stderr=True, highlight=False)
    try:
        chosen = list(BUILTIN_TOOLS) if not no_builtin_tools else []
        chosen = merge_tools([chosen, *(load_tools(ref) for ref in tools or [])])
    except ToolLoadError as exc:
        _fail(err, str(exc))
        raise typer.Exit(2) from None
    if json_lines and message is None:
        _fail(err, "--json needs -m/--message")
        raise typer.Exit(2)

    server = None
    if base_url is None:
        server = _start_embedded(
            db,
            config,
            no_local,
            local_threads,
            # only the chat's model: the other one would load beside its first turns
            preload=(model or DEFAULT_MODEL,),
            quiet=message is not None,
            console=err,
        )
        url = server.base_url
        index = ChatIndex(chat_index_path(server.settings.db_path), scope="embedded")
    else:
        url = base_url.rstrip("/")
        data_dir = Path(platformdirs.user_data_dir("turnstream"))
        index = ChatIndex(data_dir / "remote.chats.json", scope=url)
    key = api_key or ("turnstream-local" if server is not None else None)
    if key is None:
        key = "unused"  # many self-hosted servers take none; a 401 says so clearly
    status = 0
    try:
        with asyncio.Runner() as runner:
            client = openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0)
            try:
                session = ChatSession(
                    client=client,
                    model="",
                    tools=chosen,
                    instructions=CHAT_INSTRUCTIONS,
                    index=index,
                    conversation=conversation,
                    request_options=(
                        {"max_output_tokens": max_output_tokens} if max_output_tokens else {}
                    ),
                )
                try:
                    runner.run(
                        _choose_model(
                            session,
                            model,
                            embedded=server is not None,
                            no_local=no_local,
                            console=err,
                        )
                    )
                except (ChatError, openai.APIError) as exc:
                    _fail(err, f"error: {describe_error(exc, url)}")
                    status = 1
                else:
                    if message is not None:
                        if server is not None:
                            _wait_for_load(server, session.model, err)
                        status = runner.run(_once(session, message, json_lines, url))
                    else:
                        status = _interactive(runner, session, url, server)
            finally:
                runner.run(client.close())
    finally:
        if server is not None:
            server.stop()
    if status:
        raise typer.Exit(status)


async def _once(session: ChatSession, message: str, as_json: bool, url: str) -> int:
    from ._oneshot import run_once

    return await run_once(session, message, as_json=as_json, base_url=url)


def _load_state(server: Any, model: str) -> tuple[bool, float] | None:
    """`(ready, progress)` of a model the embedded server serves (echo is always
    ready); `None` for a server that is not embedded or a model it does not serve.
    A model that waits for its first use (the one a `/model` switch picks) begins
    loading here."""
    provider = server.provider_for(model) if server is not None else None
    if provider is None:
        return None
    state = provider.load_state(model)
    if state == "ready":
        return (True, 1.0)
    if state == "failed":
        return (False, 1.0)  # the request that follows says why, and tries again
    if state == "on_first_use":
        server.begin_load(model)
        return (False, 0.0)
    return (False, provider.model_load_progress(model))


def _wait_for_load(server: Any, model: str, console: Console) -> None:
    """Hold a one-shot question until the embedded model has loaded (or failed to).

    The server itself only waits `load_wait` seconds and then answers `model_loading`:
    right for a client that can retry, but a first `chat -m` on a slow machine (the
    1.5B took 50-90 s to load with the other core busy) would fail on it. A failed load
    is left to the question, whose error says what to install.
    """
    state = _load_state(server, model)
    if state is None or state[0]:
        return
    console.print(f"loading the model {model} (first use)…", style="dim", markup=False)
    while state is not None and not state[0] and state[1] < 1.0:
        time.sleep(0.1)
        state = _load_state(server, model)


def _interactive(runner: asyncio.Runner, session: ChatSession, url: str, server: Any) -> int:
    from ._terminal import InteractiveChat, run_interactive

    console = Console(highlight=False)
    run_interactive(
        runner, InteractiveChat(session, console, url, lambda model: _load_state(server, model))
    )
    return 0


def _start_embedded(
    db: Path | None,
    config: Path | None,
    no_local: bool,
    local_threads: int | None,
    *,
    preload: tuple[str, ...],
    quiet: bool,
    console: Console,
) -> Any:
    from turnstream.server.settings import Settings, default_db_path

    from ._embedded import EmbeddedServer

    # The server's own log lines would tear through the chat; keep warnings and worse.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings(
        db_path=db or default_db_path(),
        config_path=config,
        enable_local_model=not no_local,
        local_threads=local_threads,
        local_preload=preload,
    )
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = EmbeddedServer(settings)
        server.start()
    except Exception as exc:
        _fail(console, f"cannot start the embedded server: {exc}")
        raise typer.Exit(1) from None
    if not quiet:
        console.print(f"[dim]embedded server on {server.base_url} · database {settings.db_path}[/]")
    return server


async def _choose_model(
    session: ChatSession,
    requested: str | None,
    *,
    embedded: bool,
    no_local: bool,
    console: Console,
) -> None:
    """Check the server is reachable and pick the model: `requested`, else `local`."""
    try:
        page = await session.client.models.list()
        names: list[str] | None = [m.id async for m in page]
    except openai.NotFoundError:
        names = None  # a server without /models: trust --model
    session.models = names
    if requested is not None:
        if names is not None and requested not in names:
            raise ChatError(
                f"the server does not serve the model {requested!r}; it serves: {', '.join(names)}"
            )
        session.model = requested
        return
    if names is None or DEFAULT_MODEL in names:
        session.model = DEFAULT_MODEL
        return
    if embedded and "echo" in names:
        reason = "is switched off (--no-local)" if no_local else "is not installed"
        console.print(
            f"note: the embedded model {reason}; {NO_LOCAL_MODEL}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        session.model = "echo"
        return
    raise ChatError(
        f"the server does not serve {DEFAULT_MODEL!r}; pass --model (it serves: {', '.join(names)})"
    )


def _fail(console: Console, text: str) -> None:
    console.print(f"turnstream chat: {text}", style="red", markup=False, soft_wrap=True)
