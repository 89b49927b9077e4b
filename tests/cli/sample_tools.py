"""User tools for `--tools tests.cli.sample_tools:...` in the chat tests."""

from __future__ import annotations

import asyncio

from turnstream.runtime import tool


@tool
def shout(text: str) -> str:
    """Return the text in capitals."""
    return text.upper()


@tool
async def slow_lookup(key: str) -> str:
    """Look something up, slowly (30 s), so a test can press Ctrl-C while it runs."""
    await asyncio.sleep(30)
    return f"value of {key}"


TOOLS = [shout, slow_lookup]
NOT_A_TOOL = 42
