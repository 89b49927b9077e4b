"""The interactive terminal chat: a prompt, slash commands, and turns shown live.

Ctrl-C during a turn cancels that turn only (`RunStream.cancel()`): the response is
closed, running tools are cancelled, and their outputs are owed to the conversation
and sent first by the next turn, so the conversation stays usable. Ctrl-C at the
prompt clears the line; `/exit` or Ctrl-D quits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from turnstream.runtime import RunStream

from ._display import TurnDisplay, tool_card
from ._session import ChatSession, describe_error

__all__ = ["LoadingState", "run_interactive"]

LoadingState = Callable[[str], "tuple[bool, float] | None"]
"""`model -> (ready, progress 0..1)` for a model that loads, else `None`."""

HELP = """\
Commands:
  /new               start a new conversation
  /resume [conv_id]  continue an earlier conversation (a list to pick from without an id)
  /history           show this conversation so far
  /tools             list the tools the model may call
  /model [NAME]      show or switch the model
  /help              this help
  /exit              quit (Ctrl-D works too)
Ctrl-C stops the current answer; the conversation stays usable."""


class InteractiveChat:
    def __init__(
        self,
        session: ChatSession,
        console: Console,
        base_url: str,
        loading: LoadingState | None = None,
    ) -> None:
        self.session = session
        self.console = console
        self.base_url = base_url
        self.loading = loading
        self._run: RunStream | None = None
        self._task: asyncio.Task[Any] | None = None
        self._interrupted = False

    # -- Ctrl-C -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _ctrl_c_cancels_turn(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._interrupted = False
        try:
            loop.add_signal_handler(signal.SIGINT, self._on_interrupt)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            yield
            return
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            self._task = None

    def _on_interrupt(self) -> None:
        self._interrupted = True
        if self._run is not None:
            self._run.cancel()
        elif self._task is not None:
            self._task.cancel()

    # -- a turn -----------------------------------------------------------------------

    async def turn(self, text: str) -> None:
        with self._ctrl_c_cancels_turn():
            try:
                await self._wait_for_model()
                with TurnDisplay(self.console) as display:
                    self._run = await self.session.start_turn(text)
                    async with self._run as run:
                        async for event in run:
                            display.feed(event)
                for note in display.notes:
                    self.console.print(note, style="yellow")
                if run.cancelled:
                    self.console.print("⏹ stopped (Ctrl-C); ask again or continue", style="yellow")
            except asyncio.CancelledError:
                if not self._interrupted:
                    raise
                self.console.print("⏹ stopped (Ctrl-C)", style="yellow")
            except Exception as exc:  # a failed turn must not end the chat
                self.console.print(
                    f"error: {describe_error(exc, self.base_url)}", style="bold red", markup=False
                )
            finally:
                self._run = None

    async def _wait_for_model(self) -> None:
        if self.loading is None:
            return
        state = self.loading(self.session.model)
        if state is None or state[0]:
            return
        with Progress(
            TextColumn(f"loading the model [bold]{self.session.model}[/] (first use)"),
            BarColumn(),
            TaskProgressColumn(),
            console=self.console,
            transient=True,
        ) as progress:
            task = progress.add_task("load", total=1.0)
            started = time.monotonic()
            while state is not None and not state[0]:
                progress.update(task, completed=state[1])
                await asyncio.sleep(0.1)
                state = self.loading(self.session.model)
                if state is not None and not state[0] and state[1] >= 1.0:
                    break  # the load ended without a model: the request reports why
            progress.update(task, completed=1.0)
        self.console.print(
            f"[dim]model {self.session.model} loaded in {time.monotonic() - started:.1f} s[/]"
        )

    # -- commands ---------------------------------------------------------------------

    async def command(self, line: str) -> bool:
        """Run a slash command; returns False when the chat should end."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        try:
            if name in ("/exit", "/quit"):
                return False
            if name == "/help":
                self.console.print(HELP)
            elif name == "/new":
                self.session.conversation = None
                self.console.print("new conversation")
            elif name == "/resume":
                await self._resume(arg)
            elif name == "/history":
                await self._history()
            elif name == "/tools":
                self._tools()
            elif name == "/model":
                self._model(arg)
            else:
                self.console.print(f"unknown command {name}; /help lists them", style="yellow")
        except (openai.APIError, OSError) as exc:
            self.console.print(
                f"error: {describe_error(exc, self.base_url)}", style="bold red", markup=False
            )
        return True

    def pick_conversation(self) -> str | None:
        """Show the chats this machine started and read a number (blocking, at the prompt)."""
        entries = self.session.index.list()[:20]
        if not entries:
            self.console.print("no earlier conversations yet")
            return None
        table = Table(show_header=False, box=None)
        for number, entry in enumerate(entries, 1):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.updated_at))
            table.add_row(f"[bold]{number}[/]", entry.title or "(untitled)", when, entry.id)
        self.console.print(table)
        try:
            choice = self.console.input("resume which? (number) ").strip()
        except (KeyboardInterrupt, EOFError):
            choice = ""
        if not choice.isdigit() or not 1 <= int(choice) <= len(entries):
            self.console.print("not resumed")
            return None
        return entries[int(choice) - 1].id

    async def _resume(self, target: str) -> None:
        if not target:
            self.console.print("usage: /resume [conv_id]")
            return
        try:
            items = await self.session.items(target)
        except openai.NotFoundError:
            self.session.index.forget(target)
            self.console.print(f"conversation {target} does not exist on this server", style="red")
            return
        self.session.conversation = target
        self.session.index.touch(target)
        self.console.print(f"resumed {target}")
        self._print_items(items[-12:])

    async def _history(self) -> None:
        if self.session.conversation is None:
            self.console.print("nothing yet: this conversation starts with your next message")
            return
        self._print_items(await self.session.items())

    def _print_items(self, items: list[dict[str, Any]]) -> None:
        calls: dict[str, dict[str, Any]] = {}
        for item in items:
            kind = item.get("type")
            if kind == "message":
                text = "".join(
                    str(part.get("text") or part.get("refusal") or "")
                    for part in item.get("content", [])
                    if isinstance(part, dict)
                )
                if item.get("role") == "user":
                    self.console.print(f"[bold cyan]you›[/] {text}", highlight=False)
                else:
                    self.console.print(Markdown(text))
            elif kind == "function_call":
                calls[str(item.get("call_id"))] = item
            elif kind == "function_call_output":
                call = calls.pop(str(item.get("call_id")), {})
                output = item.get("output")
                text = output if isinstance(output, str) else json.dumps(output)
                self.console.print(
                    tool_card(
                        str(call.get("name", "tool")),
                        str(call.get("arguments", "")),
                        "",
                        text,
                        error=text.startswith("Error"),
                    )
                )
        for call in calls.values():
            self.console.print(
                tool_card(str(call.get("name")), str(call.get("arguments", "")), "no result yet")
            )

    def _tools(self) -> None:
        if not self.session.tools:
            self.console.print("no tools")
            return
        table = Table("tool", "description", box=None)
        for tool in self.session.tools:
            table.add_row(f"[bold]{tool.name}[/]", tool.description.splitlines()[0])
        self.console.print(table)

    def _model(self, name: str) -> None:
        if not name:
            listed = ", ".join(self.session.models or []) or "unknown"
            self.console.print(f"model: [bold]{self.session.model}[/] (served: {listed})")
            return
        if self.session.models is not None and name not in self.session.models:
            listed = ", ".join(self.session.models)
            self.console.print(f"this server does not serve {name!r}; it serves: {listed}")
            return
        self.session.model = name
        self.console.print(f"model: [bold]{name}[/]")


def run_interactive(
    runner: asyncio.Runner,
    chat: InteractiveChat,
) -> None:
    """The prompt loop. Runs each turn or command on `runner`'s event loop."""
    console = chat.console
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    session = chat.session
    console.print(
        f"[bold]turnstream chat[/] · model [bold]{session.model}[/] · "
        f"{len(session.tools)} tools · /help for commands, /exit to quit"
    )
    if session.conversation:
        console.print(f"conversation {session.conversation}")
    while True:
        try:
            line = console.input("[bold cyan]you›[/] ")
        except EOFError:
            console.print()
            break
        except KeyboardInterrupt:
            console.print("\n(/exit quits)")
            continue
        if not line.strip():
            continue
        if line.split() == ["/resume"]:
            target = chat.pick_conversation()
            if target is None:
                continue
            line = f"/resume {target}"
        try:
            if line.startswith("/"):
                if not runner.run(chat.command(line)):
                    break
            else:
                runner.run(chat.turn(line.strip()))
        except KeyboardInterrupt:
            # Ctrl-C during a command (turns handle their own): drop it, keep the chat.
            console.print("(interrupted)")
