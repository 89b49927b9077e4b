from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.livesrv import LiveServer, running_server


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "turnstream.db") as live:
        yield live
