from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.livesrv import LiveServer, running_server

# httpx waits 5 s by default, which a test's own server on a busy 2-core machine (its
# thread sharing the GIL with the test) can exceed without anything being wrong. The
# module functions (`httpx.get`, `httpx.post`) and clients built without a timeout all
# share this one object, so the tests' ceiling is raised here, once; a test about
# timeouts passes its own.
_TEST_CEILING = 60.0
for _phase in ("connect", "read", "write", "pool"):
    setattr(httpx._config.DEFAULT_TIMEOUT_CONFIG, _phase, _TEST_CEILING)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "turnstream.db") as live:
        yield live
