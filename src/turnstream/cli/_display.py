"""How a turn looks in a terminal: streamed Markdown, tool cards, a spinner.

Finished blocks (a complete answer, a tool call with its result) are printed once,
permanently, above a small live region that holds only what is still changing, so
the scrollback stays clean and a long answer never fights the terminal's height.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.segment import Segment
from rich.spinner import Spinner
from rich.text import Text

from turnstream.runtime import (
    ErrorReceived,
    RunEvent,
    TextDelta,
    TextDone,
    ToolArgumentsDelta,
    ToolCallReady,
    ToolCallStarted,
    ToolProgress,
    ToolResult,
    TurnCompleted,
    TurnQueued,
)

from ._math import readable_math

__all__ = ["TurnDisplay", "format_duration", "tool_card"]


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _arguments(raw: str) -> str:
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False)
    except ValueError:
        return raw


@dataclass
class _Call:
    name: str
    raw: str = ""
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    progress: str = ""


def tool_card(
    name: str, arguments: str, status: str, output: str | None = None, *, error: bool = False
) -> Panel:
    """A tool call as a small panel: name and status on top, arguments, then the result."""
    body = Text()
    body.append("args ", style="dim")
    body.append(_arguments(arguments) or "{}")
    if output is not None:
        body.append("\n")
        body.append("error " if error else "→ ", style="bold red" if error else "bold green")
        body.append(output if len(output) <= 600 else output[:600] + "…")
    colour = "red" if error else "green" if output is not None else "yellow"
    return Panel(
        body,
        title=f"[bold]⚙ {name}[/]",
        title_align="left",
        subtitle=status,
        subtitle_align="right",
        border_style=colour,
        expand=False,
    )


class _Tail:
    """A renderable cut to its last lines, so streaming text never outgrows the screen."""

    def __init__(self, renderable: RenderableType, reserve: int) -> None:
        self.renderable = renderable
        self.reserve = reserve

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        keep = max(3, console.size.height - self.reserve)
        for line in lines[-keep:]:
            yield from line
            yield Segment.line()


class TurnDisplay:
    """Feed it a run's events; it keeps the terminal up to date."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.text = ""
        self.calls: dict[str, _Call] = {}
        self.waiting = True
        self.queued = False
        """The server holds the response until the model has a free slot."""
        self.notes: list[str] = []
        self.live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=12,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> TurnDisplay:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush_text()
        for call in self.calls.values():
            self._print(tool_card(call.name, call.raw, "not run"))
        self.calls.clear()
        self.live.stop()

    def _print(self, renderable: RenderableType) -> None:
        self.console.print(renderable)

    def _render(self) -> RenderableType:
        parts: list[RenderableType] = []
        if self.text:
            parts.append(_Tail(Markdown(readable_math(self.text)), reserve=3 + 4 * len(self.calls)))
        for call in self.calls.values():
            status = call.progress or ("running…" if call.ready else "calling…")
            parts.append(tool_card(call.name, call.raw, status))
        if self.waiting and not parts:
            note = "waiting for a free slot…" if self.queued else "thinking…"
            parts.append(Spinner("dots", text=Text(note, style="dim")))
        return Group(*parts)

    def flush_text(self) -> None:
        if self.text.strip():
            self._print(Markdown(readable_math(self.text)))
        self.text = ""

    def feed(self, event: RunEvent) -> None:
        if isinstance(event, TextDelta):
            self.waiting = False
            self.text += event.text
        elif isinstance(event, TextDone):
            self.text = event.text
            self.flush_text()
        elif isinstance(
            event, ToolCallStarted | ToolArgumentsDelta | ToolCallReady | ToolProgress | ToolResult
        ):
            self._feed_tool(event)
        elif isinstance(event, TurnQueued):
            self.queued = event.waiting
        elif isinstance(event, ErrorReceived):
            self.notes.append(f"error from the server: {event.message}")
        elif isinstance(event, TurnCompleted):
            if event.status == "incomplete":
                self.notes.append("(the answer was cut short: incomplete)")
            self.waiting = True

    def _feed_tool(
        self,
        event: ToolCallStarted | ToolArgumentsDelta | ToolCallReady | ToolProgress | ToolResult,
    ) -> None:
        if isinstance(event, ToolCallStarted):
            self.waiting = False
            self.flush_text()
            self.calls[event.call_id] = _Call(event.name)
        elif isinstance(event, ToolArgumentsDelta):
            call = self.calls.get(event.call_id)
            if call is not None:
                call.raw += event.delta
        elif isinstance(event, ToolCallReady):
            call = self.calls.setdefault(event.call_id, _Call(event.name))
            call.raw, call.ready = event.raw_arguments, True
        elif isinstance(event, ToolProgress):
            call = self.calls.get(event.call_id)
            if call is not None:
                call.progress = event.message
        else:
            call = self.calls.pop(event.call_id, None) or _Call(event.name)
            status = (
                f"{'failed' if event.is_error else 'done'} in {format_duration(event.duration)}"
            )
            self._print(tool_card(call.name, call.raw, status, event.output, error=event.is_error))
            self.waiting = not self.calls
