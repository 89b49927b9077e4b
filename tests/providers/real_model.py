"""Shared by the tests on the real embedded models: what is missing, and the sockets a
process listens on."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from turnstream.providers._local_model import MODEL_SPECS, LocalModelError, locate_parts
from turnstream.providers.local import LocalProvider

__all__ = ["TEST_THREADS", "LoadedModel", "listeners", "missing"]

TEST_THREADS = 1
"""The real-model tests share two cores with another xdist worker. llama.cpp's
threads wait for each other at every step, so two threads on a busy machine stall on
whichever is descheduled: on these machines one thread evaluated a prompt about twice
as fast as two while the other worker ran."""


@dataclass(frozen=True)
class LoadedModel:
    """A real model loaded for the session, and what loading it opened."""

    provider: LocalProvider
    gained: frozenset[tuple[str, str]]
    """The listening sockets the process gained while this model loaded (Linux)."""


def missing(size: str) -> str | None:
    """Why the real model of `size` cannot run here, or None."""
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed (pip install 'turnstream[local]')"
    try:
        locate_parts(MODEL_SPECS[size])
    except LocalModelError as exc:
        return f"model packages for {size} are not installed: {exc}"
    return None


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


def listeners() -> set[tuple[str, str]]:
    """(kind, address) of every listening socket this process holds (Linux only)."""
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
