"""User tools for `--tools tests.cli.sample_tools:...` in the chat tests."""

from __future__ import annotations

import asyncio

from turnstream.runtime import ToolContext, tool


@tool
def shout(text: str) -> str:
    """Return the text in capitals."""
    return text.upper()


@tool
async def slow_lookup(key: str, context: ToolContext) -> str:
    """Look something up, slowly (30 s), so a test can press Ctrl-C while it runs."""
    # the card shows this once the tool is really running: a test waits for it
    # before pressing Ctrl-C, instead of hoping the tool has started
    await context.progress("looking it up")
    await asyncio.sleep(30)
    return f"value of {key}"


TOOLS = [shout, slow_lookup]
NOT_A_TOOL = 42
