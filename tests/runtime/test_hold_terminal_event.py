"""`HoldTerminalEvent` holds back only the terminal event, however the server batched
its frames: the cancel-in-doubt tests rely on the client having read the rest."""

from __future__ import annotations

import asyncio
from typing import Any

from .server_taps import HoldTerminalEvent

CALL = b'event: response.output_item.done\ndata: {"type":"response.output_item.done"}\n\n'
DONE = b'event: response.completed\ndata: {"type":"response.completed"}\n\n'


async def test_frames_batched_with_the_terminal_event_go_out_before_the_hold() -> None:
    sent: list[dict[str, Any]] = []
    first_sent = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": CALL + DONE, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        first_sent.set()

    hold = HoldTerminalEvent(app)
    serving = asyncio.create_task(hold({"type": "http"}, None, send))
    await asyncio.wait_for(first_sent.wait(), 30)
    await asyncio.sleep(0.05)  # the hold is in place: nothing more may have left
    assert hold.held
    assert [m["body"] for m in sent] == [CALL]
    hold.release.set()
    await serving
    assert b"".join(m["body"] for m in sent) == CALL + DONE
