"""The embedded model opens no socket anyone can connect to (needs the real model).

xllamacpp runs llama.cpp's HTTP server beside the in-process API; left alone it
listened on a random loopback TCP port answering `/v1/chat/completions`, `/props`
and `/slots` with no key. After the model has loaded, this process must have no
new TCP listener, and any Unix listener it gained must have no path to connect to.
The model is the session's 0.5B (conftest.py), which records the listeners gained
while it loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.providers.real_model import LoadedModel

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real-model")]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_the_loaded_model_listens_on_nothing_reachable(small_model: LoadedModel) -> None:
    new = small_model.gained
    assert not [s for s in new if s[0] != "unix"], new
    # a Unix listener whose path is gone cannot be connected to
    reachable = [path for kind, path in new if path and Path(path.lstrip("@")).exists()]
    assert reachable == []
