"""schemathesis against the server's own `/openapi.json`: every `/v1` operation,
with a key. Zero 5xx, every 4xx in OpenAI's error shape, and another project's
stored data intact afterwards. Bounded: a few dozen cases per operation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.livesrv import LiveServer, start_server
from turnstream.server.app import create_app
from turnstream.server.settings import Settings

# the schema as the server publishes it; building the app opens nothing
_DOCUMENT = create_app(Settings(enable_local_model=False), providers=[]).openapi()
schema = schemathesis.openapi.from_dict(_DOCUMENT).include(path_regex="^/v1/")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Any]]:
    live = start_server(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    store = live.state.store
    _, secret = live.call(store.create_key("fuzzer", project="fuzz"))
    # another project's data, which no fuzzed request may touch
    other = store.scoped("bystander")
    live.call(
        other.create_conversation(
            "conv_bystander",
            metadata={"k": "v"},
            items=[{"type": "message", "role": "user", "content": "keep me"}],
            created_at=1,
        )
    )
    before = live.call(other.all_items("conv_bystander"))
    try:
        yield live, {"authorization": f"Bearer {secret}"}
        assert live.call(other.get_conversation("conv_bystander"))["metadata"] == {"k": "v"}
        assert live.call(other.all_items("conv_bystander")) == before
    finally:
        live.stop()


@pytest.fixture
def live_api(fuzzed: tuple[LiveServer, Any]) -> tuple[LiveServer, Any]:
    return fuzzed


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_5xx_and_every_4xx_in_openais_shape(
    case: schemathesis.Case, live_api: tuple[LiveServer, Any]
) -> None:
    live, headers = live_api
    response = case.call(base_url=f"http://127.0.0.1:{live.port}", headers=headers, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        body = json.loads(response.text)
        assert set(body) == {"error"}, body
        assert set(body["error"]) >= {"message", "type", "param", "code"}, body
