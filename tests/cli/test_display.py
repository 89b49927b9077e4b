"""What the terminal chat shows while it waits: the model thinking, or a full queue."""

from __future__ import annotations

import io

from rich.console import Console

from turnstream.cli._display import TurnDisplay
from turnstream.runtime import TurnQueued, TurnStarted


def shown(display: TurnDisplay) -> str:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    with console.capture() as capture:
        console.print(display._render())
    return capture.get()


def test_a_queued_turn_says_it_waits_for_a_free_slot_until_it_leaves_the_queue() -> None:
    display = TurnDisplay(Console(file=io.StringIO()))
    display.feed(TurnStarted(1, "resp_1"))
    assert "thinking" in shown(display)
    display.feed(TurnQueued(1, "resp_1", waiting=True))
    assert "waiting for a free slot" in shown(display)
    display.feed(TurnQueued(1, "resp_1", waiting=False))
    assert "thinking" in shown(display)
    assert "free slot" not in shown(display)
