"""One-shot mode for scripts: the answer to stdout, tool activity to stderr.

With `--json` every runtime event is one JSON line on stdout instead
(`turnstream.web.events.event_to_dict`), and a failure is an `{"type": "error"}` line.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from turnstream.runtime import TextDelta, ToolCallReady, ToolResult
from turnstream.web.events import event_to_dict

from ._display import format_duration
from ._session import ChatSession, describe_error

__all__ = ["run_once"]


async def run_once(
    session: ChatSession,
    message: str,
    *,
    as_json: bool,
    base_url: str,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one message; returns the exit status (0 ok, 1 failed, 130 interrupted)."""
    out = out or sys.stdout
    err = err or sys.stderr
    wrote_text = False
    try:
        run = await session.start_turn(message)
        async with run:
            async for event in run:
                if as_json:
                    data = event_to_dict(event, include_raw=False)
                    if data is not None:
                        out.write(json.dumps(data, ensure_ascii=False) + "\n")
                        out.flush()
                elif isinstance(event, TextDelta):
                    out.write(event.text)
                    out.flush()
                    wrote_text = True
                elif isinstance(event, ToolCallReady):
                    err.write(f"⚙ {event.name} {event.raw_arguments}\n")
                    err.flush()
                elif isinstance(event, ToolResult):
                    mark = "✗" if event.is_error else "→"
                    err.write(
                        f"{mark} {event.name}: {event.output} ({format_duration(event.duration)})\n"
                    )
                    err.flush()
    except Exception as exc:
        text = describe_error(exc, base_url)
        if wrote_text:
            out.write("\n")
        if as_json:
            out.write(json.dumps({"type": "error", "message": text}) + "\n")
            out.flush()
        err.write(f"turnstream chat: error: {text}\n")
        return 1
    if wrote_text:
        out.write("\n")
    if session.conversation and not as_json:
        err.write(f"conversation: {session.conversation}\n")
    return 0
