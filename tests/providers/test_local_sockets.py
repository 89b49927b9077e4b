"""The embedded model opens no socket anyone can connect to (needs the real model).

xllamacpp runs llama.cpp's HTTP server beside the in-process API; left alone it
listened on a random loopback TCP port answering `/v1/chat/completions`, `/props`
and `/slots` with no key. After the model has loaded, this process must have no
new TCP listener, and any Unix listener it gained must have no path to connect to.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from turnstream.providers._local_model import ensure_model
from turnstream.providers.local import LocalProvider

from .test_local_real import _missing

pytestmark = pytest.mark.slow


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _listeners() -> set[tuple[str, str]]:
    """(kind, address) of every listening socket this process holds."""
    mine = _socket_inodes()
    found = set()
    for proto in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in mine and fields[3] == "0A":  # 0A: LISTEN
                found.add((proto, fields[1]))
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        # flags 00010000: __SO_ACCEPTCON, a listening socket
        if fields[6] in mine and fields[3] == "00010000":
            found.add(("unix", fields[7] if len(fields) > 7 else ""))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_the_loaded_model_listens_on_nothing_reachable() -> None:
    reason = _missing("0.5b")
    if reason:
        pytest.skip(reason)
    ensure_model("0.5b")
    before = _listeners()
    provider = LocalProvider({"local": "0.5b"})

    async def load() -> None:
        provider.start()
        await provider.ready()

    asyncio.run(load())
    try:
        new = _listeners() - before
        assert not [s for s in new if s[0] != "unix"], new
        # a Unix listener whose path is gone cannot be connected to
        reachable = [path for kind, path in new if path and Path(path.lstrip("@")).exists()]
        assert reachable == []
    finally:
        asyncio.run(provider.aclose())
